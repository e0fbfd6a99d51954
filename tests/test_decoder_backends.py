"""Beam search backends: flashlight-text vs pyctcdecode on small logits, hotword routing,
configuration errors (no server)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_decoder_lm import TEXTS, VOCAB, one_hot, spelled, write_lm_dir

from w2v_triton.serving.ctc_decoding import CTCDecoder, DecoderConfig, DecoderConfigError

pytest.importorskip("flashlight.lib.text.decoder")


@pytest.fixture
def lm_dir(tmp_path: Path) -> Path:
    return write_lm_dir(tmp_path / "lm", TEXTS)


def decoders(lm_dir: Path, **kw) -> dict[str, CTCDecoder]:
    return {b: CTCDecoder(VOCAB, DecoderConfig(mode="beam", beam_width=16, lm_path=str(lm_dir / "lm.arpa"),
                                               unigrams_path=str(lm_dir / "unigrams.txt"), backend=b, **kw))
            for b in ("flashlight", "pyctcdecode")}


def noisy(text: str, rng: np.random.Generator, confidence: float = 4.0, noise: float = 1.5) -> np.ndarray:
    return one_hot(spelled(text, repeat=2), confidence) + rng.normal(0, noise, (len(spelled(text)), len(VOCAB))).astype(np.float32)


def test_backends_agree_on_small_logits(lm_dir, rng):
    """Same text and word spans from both backends on noisy spellings of LM sentences."""
    both = decoders(lm_dir, alpha=0.5, beta=1.0)
    checked = 0
    for text in TEXTS + ["THE DOG ATE THE CAT", "A RAT SAT ON THE LOG"]:
        for _ in range(3):
            logits = noisy(text, rng)
            fast, slow = (both[b].decode_full(logits) for b in ("flashlight", "pyctcdecode"))
            assert fast.text == slow.text, text
            assert [w.word for w in fast.words] == [w.word for w in slow.words], text
            # flashlight's spans come from its best alignment, pyctcdecode's from its beam's own
            # bookkeeping: on noisy frames they may differ by one frame (20 ms), never more
            for a, b in zip(fast.words, slow.words):
                assert abs(a.start_s - b.start_s) <= 0.0201 and abs(a.end_s - b.end_s) <= 0.0201, text
            checked += fast.text == text
    assert checked >= 10   # the noise leaves most sentences readable: the comparison is not vacuous


def test_flashlight_uses_alpha_like_pyctcdecode(tmp_path):
    """A strong LM weight overrides the acoustics in both backends the same way."""
    lm_dir = write_lm_dir(tmp_path / "lm", TEXTS + ["THE CAT ATE THE RAT"] * 5)   # "THE RAT" is likely
    frames = spelled("THE CAT ATE THE RAT")
    logits = one_hot(frames, 4.0)
    r = frames.index("R")
    logits[r:r + 2, VOCAB["M"]] = 4.3   # acoustics slightly prefer MAT
    for alpha, expected in ((0.0, "THE CAT ATE THE MAT"), (3.0, "THE CAT ATE THE RAT")):
        got = {b: d.decode(logits) for b, d in decoders(lm_dir, alpha=alpha, beta=0.0).items()}
        assert got == {"flashlight": expected, "pyctcdecode": expected}, alpha


def test_hotword_requests_go_to_pyctcdecode(lm_dir):
    # "MAD" is not in the LM: flashlight's lexicon search cannot emit it; the hotword request can.
    frames = spelled("THE CAT ATE THE MAD")
    logits = one_hot(frames, 4.0)
    d = frames.index("D")
    logits[d:d + 2, VOCAB["T"]] = 3.8
    decoder = decoders(lm_dir, alpha=0.5, beta=1.0, hotword_weight=10.0)["flashlight"]
    assert decoder._beam is None   # pyctcdecode is built at the first hotword request only
    assert decoder.decode(logits) == "THE CAT ATE THE MAT"
    assert decoder.decode(logits, ["MAD"]) == "THE CAT ATE THE MAD"
    assert decoder._beam is not None
    # the batch path routes per request
    assert decoder.decode_batch([logits, logits], [None, ["MAD"]]) == ["THE CAT ATE THE MAT", "THE CAT ATE THE MAD"]


def test_flashlight_without_lm_is_pyctcdecode_beam():
    decoder = CTCDecoder(VOCAB, DecoderConfig(mode="beam", backend="flashlight"))
    assert decoder._fast is None and decoder._beam is not None
    assert decoder.decode(one_hot(spelled("HELLO THERE"))) == "HELLO THERE"


def test_empty_logits(lm_dir):
    for decoder in decoders(lm_dir).values():
        assert decoder.decode(np.zeros((0, len(VOCAB)), np.float32)) == ""


@pytest.mark.parametrize("params, message", [
    ({"backend": "torchaudio"}, "decoder backend 'torchaudio'"),
    ({"beam_prune_logp": "5"}, "must be < 0"),
    ({"token_min_logp": "0"}, "must be < 0"),
    ({"beam_prune_logp": "lots"}, "beam_prune_logp='lots'"),
])
def test_bad_backend_parameters_are_refused(params, message):
    with pytest.raises(DecoderConfigError, match=message):
        DecoderConfig.from_parameters({"mode": "beam", **params})


def test_parameters_choose_the_backend():
    config = DecoderConfig.from_parameters({"mode": "beam", "backend": "pyctcdecode", "beam_prune_logp": "-6"})
    assert (config.backend, config.beam_prune_logp, config.token_min_logp) == ("pyctcdecode", -6.0, -5.0)
    assert DecoderConfig().backend == "flashlight"


def test_lm_without_spellable_words_is_refused(tmp_path):
    folder = write_lm_dir(tmp_path / "lm", ["ÉTÉ ÇA"])
    with pytest.raises(DecoderConfigError, match="no LM word can be spelled"):
        CTCDecoder(VOCAB, DecoderConfig(mode="beam", lm_path=str(folder / "lm.arpa"),
                                        unigrams_path=str(folder / "unigrams.txt")))


def test_flashlight_refuses_an_unloadable_binary(tmp_path, lm_dir):
    bad = tmp_path / "lm.bin"
    bad.write_bytes(b"mmap lm http://kheafield.com/code" + b"\0" * 64)
    with pytest.raises(DecoderConfigError, match="lm.bin"):
        CTCDecoder(VOCAB, DecoderConfig(mode="beam", lm_path=str(bad), unigrams_path=str(lm_dir / "unigrams.txt")))


def test_binary_lm_without_word_list_is_refused(tmp_path):
    bad = tmp_path / "lm.bin"
    bad.write_bytes(b"mmap lm http://kheafield.com/code" + b"\0" * 64)
    with pytest.raises(DecoderConfigError, match="needs the LM's word list"):
        CTCDecoder(VOCAB, DecoderConfig(mode="beam", lm_path=str(bad)))
