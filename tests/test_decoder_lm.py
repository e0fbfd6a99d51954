"""Beam decoding with a KenLM: case checks, hotwords, word timestamps (no server).

`write_arpa` makes a small word-bigram ARPA from texts; the server and tuning tests use it
too (a few KB, loads in milliseconds).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from w2v_triton.serving.ctc_decoding import CTCDecoder, DecoderConfig, DecoderConfigError, prompt_words
from w2v_triton.build.lm_sentences import write_lm_dir
from w2v_triton.serving.spec import BASE_960H_VOCAB as VOCAB


TEXTS = ["THE CAT SAT ON THE MAT", "A DOG SAT ON THE LOG", "THE CAT ATE THE RAT"]


def one_hot(tokens: list[str], confidence: float = 10.0) -> np.ndarray:
    logits = np.full((len(tokens), len(VOCAB)), -confidence, np.float32)
    for frame, token in enumerate(tokens):
        logits[frame, VOCAB[token]] = confidence
    return logits


def spelled(text: str, repeat: int = 2) -> list[str]:
    """Frames spelling `text`: each letter `repeat` frames, blanks between, '|' between words."""
    frames = ["<pad>"]
    for word in text.split():
        for letter in word:
            frames += [letter] * repeat + ["<pad>"]
        frames += ["|"]
    return frames[:-1] + ["<pad>"]


@pytest.fixture
def lm_dir(tmp_path):
    return write_lm_dir(tmp_path / "lm", TEXTS)


def lm_decoder(lm_dir: Path, **kw) -> CTCDecoder:
    return CTCDecoder(VOCAB, DecoderConfig(mode="beam", beam_width=16, lm_path=str(lm_dir / "lm.arpa"),
                                           unigrams_path=str(lm_dir / "unigrams.txt"), **kw))


@pytest.mark.parametrize("backend", ["flashlight", "pyctcdecode"])
def test_lm_fixes_a_misspelling(lm_dir, backend):
    logits = one_hot(spelled("THE CAT SAT ON THE MAT"), 3.0)
    logits[spelled("THE CAT SAT ON THE MAT").index("C") + 1, VOCAB["K"]] = 3.5  # one 'K' frame
    assert CTCDecoder(VOCAB).decode(logits) != "THE CAT SAT ON THE MAT"
    assert lm_decoder(lm_dir, alpha=1.0, beta=1.0, backend=backend).decode(logits) == "THE CAT SAT ON THE MAT"


@pytest.mark.parametrize("with_unigrams", [True, False])
def test_lower_case_lm_is_refused_with_a_clear_message(tmp_path, with_unigrams):
    folder = write_lm_dir(tmp_path / "lower", TEXTS, case="lower")
    config = DecoderConfig(mode="beam", lm_path=str(folder / "lm.arpa"),
                           unigrams_path=str(folder / "unigrams.txt") if with_unigrams else "")
    with pytest.raises(DecoderConfigError, match="lower case but the acoustic model's vocabulary is upper case"):
        CTCDecoder(VOCAB, config)


def test_unreadable_lm_fails_loudly(tmp_path):
    bad = tmp_path / "lm.arpa"
    bad.write_text("this is not an ARPA file\n")
    with pytest.raises(DecoderConfigError, match="lm.arpa"):
        CTCDecoder(VOCAB, DecoderConfig(mode="beam", lm_path=str(bad)))


def test_lm_needs_beam_mode(lm_dir):
    with pytest.raises(DecoderConfigError, match="needs mode 'beam'"):
        DecoderConfig(mode="greedy", lm_path=str(lm_dir / "lm.arpa")).validate()


def test_missing_lm_file_names_the_path(tmp_path):
    with pytest.raises(DecoderConfigError, match="nowhere.arpa does not exist"):
        DecoderConfig.from_parameters({"mode": "beam", "lm_path": "nowhere.arpa"}, base_dir=tmp_path)


def test_hotword_weight_comes_from_parameters(tmp_path):
    assert DecoderConfig.from_parameters({"hotword_weight": "4.5"}).hotword_weight == 4.5


def test_hotwords_bias_beam_search(lm_dir):
    # The frames say "MAT" slightly less than "RAT": the hotword MAT tips it over.
    frames = spelled("THE CAT ATE THE RAT")
    logits = one_hot(frames, 4.0)
    r_frame = frames.index("R")
    logits[r_frame:r_frame + 2, VOCAB["M"]] = 3.5
    decoder = lm_decoder(lm_dir, alpha=0.5, beta=1.0, hotword_weight=10.0)
    assert decoder.decode(logits) == "THE CAT ATE THE RAT"
    assert decoder.decode(logits, decoder.parse_hotwords("mat, ")) == "THE CAT ATE THE MAT"
    # Beam search without an LM takes hotwords too.
    no_lm = CTCDecoder(VOCAB, DecoderConfig(mode="beam", beam_width=16))
    assert no_lm.decode(logits) == "THE CAT ATE THE RAT"
    assert no_lm.decode(logits, ["MAT"]) == "THE CAT ATE THE MAT"


def test_parse_hotwords():
    decoder = CTCDecoder(VOCAB)
    assert decoder.parse_hotwords(b"paris, new  york,,") == ["PARIS", "NEW YORK"]
    assert decoder.parse_hotwords("") == [] and decoder.parse_hotwords(None) == []


def test_greedy_ignores_hotwords():
    frames = spelled("HI THERE")
    assert CTCDecoder(VOCAB).decode(one_hot(frames), ["HELLO"]) == "HI THERE"


@pytest.mark.parametrize("mode", ["greedy", "beam", "beam+lm", "beam+lm-pyctcdecode"])
def test_word_timestamps_follow_the_frames(lm_dir, mode):
    frames = ["<pad>"] * 10 + spelled("THE CAT", repeat=3) + ["<pad>"] * 20
    decoder = (CTCDecoder(VOCAB) if mode == "greedy" else
               CTCDecoder(VOCAB, DecoderConfig(mode="beam", beam_width=8)) if mode == "beam" else
               lm_decoder(lm_dir, backend="pyctcdecode") if mode.endswith("pyctcdecode") else lm_decoder(lm_dir))
    decoded = decoder.decode_full(one_hot(frames))
    assert decoded.text == "THE CAT"
    assert [w.word for w in decoded.words] == ["THE", "CAT"]
    the_start = frames.index("T")
    cat_end = max(i for i, f in enumerate(frames) if f == "T") + 1  # end frame is exclusive
    assert decoded.words[0].start_s == pytest.approx(the_start * 0.02)
    assert decoded.words[1].end_s == pytest.approx(cat_end * 0.02)
    assert decoded.words[0].end_s <= decoded.words[1].start_s
    import json
    assert json.loads(decoded.words_json())[1] == {"word": "CAT", "start_s": decoded.words[1].start_s,
                                                   "end_s": decoded.words[1].end_s,
                                                   "logprob": decoded.words[1].logprob}


@pytest.mark.parametrize("mode", ["greedy", "beam", "beam+lm", "beam+lm-pyctcdecode"])
def test_word_confidence_is_the_paths_mean_log_probability(lm_dir, mode):
    """A word spelled by confident frames has a log-probability near 0; a word on less certain
    frames scores the mean of those frames' log-probabilities."""
    frames = ["<pad>"] * 4 + spelled("THE CAT", repeat=3) + ["<pad>"] * 4
    logits = one_hot(frames, 10.0)
    cat = [i for i, f in enumerate(frames) if f in ("C", "A") or (f == "T" and i > frames.index("|"))]
    logits[cat[0]:cat[-1] + 1] = one_hot(frames[cat[0]:cat[-1] + 1], 3.0)   # C..T of CAT, less sure
    decoder = (CTCDecoder(VOCAB) if mode == "greedy" else
               CTCDecoder(VOCAB, DecoderConfig(mode="beam", beam_width=8)) if mode == "beam" else
               lm_decoder(lm_dir, backend="pyctcdecode") if mode.endswith("pyctcdecode") else lm_decoder(lm_dir))
    the, cat_word = decoder.decode_full(logits).words
    assert (the.word, cat_word.word) == ("THE", "CAT")
    assert -1e-3 < the.logprob <= 0.0
    # each CAT frame: its label at +3 against the other kept labels (specials dropped) at -3
    kept = len(decoder.labels.text)
    expected = 3.0 - np.log(np.exp(3.0) + (kept - 1) * np.exp(-3.0))
    assert expected < -0.05
    assert cat_word.logprob == pytest.approx(expected, abs=1e-3)


def test_greedy_words_equal_text_on_random_logits(rng):
    decoder = CTCDecoder(VOCAB)
    for _ in range(20):
        logits = rng.standard_normal((int(rng.integers(0, 80)), len(VOCAB))).astype(np.float32)
        decoded = decoder.decode_full(logits)
        assert decoded.text == " ".join(w.word for w in decoded.words)
        assert all(w.start_s < w.end_s for w in decoded.words)


def test_set_search_changes_weights_without_reloading(lm_dir):
    decoder = lm_decoder(lm_dir, backend="pyctcdecode")
    beam = decoder._beam
    decoder.set_search(alpha=2.0, beta=0.0, beam_width=4)
    assert decoder._beam is beam and (decoder.config.alpha, decoder.config.beta, decoder.config.beam_width) == (2.0, 0.0, 4)
    assert beam._language_model.alpha == 2.0 and beam._language_model.beta == 0.0


def test_set_search_reconfigures_flashlight_over_the_same_lm(lm_dir):
    decoder = lm_decoder(lm_dir)
    fast = decoder._fast
    lm = fast.lm
    decoder.set_search(alpha=2.0, beta=0.5, beam_width=4)
    assert decoder._fast is fast and fast.lm is lm and fast.config == decoder.config
    assert (fast.config.alpha, fast.config.beta, fast.config.beam_width) == (2.0, 0.5, 4)
    assert decoder.decode(one_hot(spelled("THE CAT SAT"))) == "THE CAT SAT"


def test_prompt_words():
    assert prompt_words("Celeste arrived on Monday. O'Brien's GPT-3 and DALL·E, celeste!") == [
        "CELESTE", "ARRIVED", "ON", "MONDAY", "O'BRIEN'S", "GPT", "AND", "DALL", "E"]
    assert prompt_words(b"  , 42 !") == [] and prompt_words(None) == []


@pytest.mark.parametrize("backend", ["flashlight", "pyctcdecode"])
def test_a_prompt_adds_its_out_of_lm_words_as_hotwords(lm_dir, backend):
    decoder = lm_decoder(lm_dir, backend=backend, max_prompt_words=5)
    # the LM knows THE, CAT, SAT, ON, MAT...: only MAD and ZEBRA are added; the 6th word is past the limit
    assert decoder.prompt_hotwords("The cat, the MAD zebra sat; quokka") == ["MAD", "ZEBRA"]
    assert decoder.prompt_hotwords(b"") == [] and decoder.prompt_hotwords(None) == []
    # what the frames say MAT (an LM word) slightly less than MAD: the prompt naming MAD tips it
    frames = spelled("THE CAT ATE THE MAD")
    logits = one_hot(frames, 4.0)
    logits[frames.index("D"):frames.index("D") + 2, VOCAB["T"]] = 3.8
    assert decoder.decode(logits) == "THE CAT ATE THE MAT"
    assert decoder.decode(logits, decoder.prompt_hotwords("a mad cat")) == "THE CAT ATE THE MAD"
    assert CTCDecoder(VOCAB).prompt_hotwords("zebra") == []   # greedy takes none
    with pytest.raises(DecoderConfigError, match="max_prompt_words"):
        DecoderConfig(max_prompt_words=-1).validate()


def test_pause_pieces_cut_in_the_middle_of_long_pauses_only():
    from w2v_triton.serving.ctc_output import pause_pieces

    # 0 = blank, 1 = delimiter, 2 = a letter; quiet runs: [0, 3) leading, [5, 7) short, [8, 16) long, [18, 22) trailing
    path = np.array([0, 0, 0, 2, 2, 0, 1, 2, 0, 0, 1, 1, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0])
    assert pause_pieces(path, [0, 1], 5) == [(0, 12), (12, 22)]
    assert pause_pieces(path, [0, 1], 9) == [(0, 22)]           # no pause that long
    assert pause_pieces(np.zeros(0, np.int64), [0, 1], 5) == [(0, 0)]


@pytest.mark.parametrize("backend", ["flashlight", "pyctcdecode"])
def test_long_logits_are_searched_per_pause_delimited_piece(lm_dir, backend):
    """Past `split_above_seconds`, one beam search per piece between pauses, joined with the words'
    times shifted to the utterance; up to it (the default: one acoustic pass, 40 s), one search."""
    first, second = spelled("THE CAT SAT ON THE MAT"), spelled("A DOG SAT ON THE LOG")
    frames = first + ["<pad>"] * 40 + second
    logits = one_hot(frames, 3.0)
    split = lm_decoder(lm_dir, backend=backend, split_above_seconds=1.0)
    pieces = split.pieces(split.labels.select(logits))
    assert len(pieces) == 2 and pieces[0][0] == 0 and pieces[1][1] == len(frames)
    assert len(first) < pieces[1][0] < len(first) + 40        # cut inside the pause
    decoded = split.decode_full(logits)
    assert decoded.text == "THE CAT SAT ON THE MAT A DOG SAT ON THE LOG"
    alone = split.decode_full(logits[pieces[1][0]:])
    assert [w.start_s for w in decoded.words[6:]] == pytest.approx([w.start_s + pieces[1][0] * 0.02 for w in alone.words])
    assert decoded.words[6].start_s == pytest.approx((len(first) + 40 + second.index("A")) * 0.02)
    whole = lm_decoder(lm_dir, backend=backend)               # default: 1.7 s of logits is one search
    assert whole.pieces(whole.labels.select(logits)) == [(0, len(frames))]
    assert lm_decoder(lm_dir, backend=backend, split_above_seconds=0.0).pieces(whole.labels.select(logits)) \
        == [(0, len(frames))]                                 # 0: never


def test_split_settings_are_checked():
    with pytest.raises(DecoderConfigError, match="split_above_seconds"):
        DecoderConfig(mode="beam", split_above_seconds=-1.0).validate()
    with pytest.raises(DecoderConfigError, match="split_pause_seconds"):
        DecoderConfig(mode="beam", split_pause_seconds=0.0).validate()
