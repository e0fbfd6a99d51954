"""Beam search backends: flashlight-text vs pyctcdecode on small logits, hotwords in both,
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


def mad_logits() -> np.ndarray:
    """Frames of "THE CAT ATE THE MAD" whose last letter looks slightly more like T ("MAT")."""
    frames = spelled("THE CAT ATE THE MAD")
    logits = one_hot(frames, 4.0)
    d = frames.index("D")
    logits[d:d + 2, VOCAB["T"]] = 3.8
    return logits


def test_hotword_requests_stay_in_flashlight(lm_dir):
    # "MAD" is not in the LM: only the request's own trie can spell it, and only its bonus picks it.
    logits = mad_logits()
    both = decoders(lm_dir, alpha=0.5, beta=1.0, hotword_weight=10.0)
    decoder = both["flashlight"]
    assert decoder.decode(logits) == "THE CAT ATE THE MAT"
    assert decoder.decode(logits, ["MAD"]) == "THE CAT ATE THE MAD" == both["pyctcdecode"].decode(logits, ["MAD"])
    assert decoder._beam is None   # pyctcdecode is never built for a flashlight repository
    # the batch path takes each request's own hotwords; the shared trie never learns MAD
    assert decoder.decode_batch([logits, logits], [None, ["MAD"]]) == ["THE CAT ATE THE MAT", "THE CAT ATE THE MAD"]
    beam = decoder._fast
    assert beam.trie.search([beam.spell[c] for c in "MAD"]) is None
    assert decoder.decode(logits) == "THE CAT ATE THE MAT"


def test_flashlight_hotword_bonus_is_what_picks_the_word(lm_dir):
    """Without the bonus an out-of-LM hotword is only as likely as the LM's unknown word."""
    logits = mad_logits()
    assert decoders(lm_dir, alpha=0.5, beta=1.0, hotword_weight=0.0)["flashlight"].decode(logits, ["MAD"]) \
        == "THE CAT ATE THE MAT"
    # an in-LM word is boosted too: the frames say RAT, a strong enough bonus for MAT wins
    frames = spelled("THE CAT ATE THE RAT")
    rat = one_hot(frames, 4.0)
    r = frames.index("R")
    rat[r:r + 2, VOCAB["M"]] = 3.5
    for weight, expected in ((0.5, "THE CAT ATE THE RAT"), (10.0, "THE CAT ATE THE MAT")):
        got = {b: d.decode(rat, ["MAT"]) for b, d in decoders(lm_dir, alpha=0.5, beta=1.0,
                                                              hotword_weight=weight).items()}
        assert got == {"flashlight": expected, "pyctcdecode": expected}, weight


def test_flashlight_hotword_phrases_unspellable_words_and_alpha_zero(lm_dir):
    logits = mad_logits()
    decoder = decoders(lm_dir, alpha=0.5, beta=1.0)["flashlight"]
    assert decoder.decode(logits, ["NEW MAD YORK"]) == "THE CAT ATE THE MAD"   # a phrase: boosted word by word
    assert decoder.decode(logits, ["M4D", "ÉTÉ"]) == "THE CAT ATE THE MAT"     # nothing spellable: no search of its own
    assert decoders(lm_dir, alpha=0.0, beta=1.0)["flashlight"].decode(logits, ["MAD"]) == "THE CAT ATE THE MAD"


def test_a_stream_holds_its_own_hotword_search(lm_dir):
    """What `streaming_asr` does with flashlight: one search per stream, fed chunk by chunk
    (decode_begin / decode_step / decode_end), gives the one-shot hotword decode's best path."""
    from w2v_triton.serving.ctc_output import log_softmax

    decoder = decoders(lm_dir, alpha=0.5, beta=1.0)["flashlight"]
    beam = decoder._fast
    emissions = np.ascontiguousarray(log_softmax(decoder.labels.select(mad_logits())))
    frames, tokens = emissions.shape
    search = beam.search(["MAD"])
    search.decoder.decode_begin()
    for start in range(0, frames, 7):
        chunk = np.ascontiguousarray(emissions[start:start + 7])
        search.decoder.decode_step(chunk.ctypes.data, chunk.shape[0], tokens)
    search.decoder.decode_end()
    streamed = search.decoder.get_best_hypothesis()
    whole = beam.search(["MAD"])
    one_shot = whole.decoder.decode(emissions.ctypes.data, frames, tokens)[0]
    assert list(streamed.tokens) == list(one_shot.tokens)
    path = [decoder.labels.text[t] for t in streamed.tokens[1:frames + 1]]
    assert "".join(c for i, c in enumerate(path) if c and (i == 0 or c != path[i - 1])).split() == \
        ["THE", "CAT", "ATE", "THE", "MAD"]


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
