"""A stream's segment decoders (w2v_triton.serving.ctc_incremental): fed chunk by chunk they give the
one-shot decode; committed words only grow, their deltas add up to them, and they are stable."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_decoder_lm import TEXTS, VOCAB, one_hot, spelled

from w2v_triton.build.lm_sentences import write_lm_dir
from w2v_triton.serving.ctc_decoding import CTCDecoder, DecoderConfig
from w2v_triton.serving.ctc_incremental import (Committer, FlashlightSegment, GreedySegment, RedecodeSegment,
                                                SegmentDecoder)

SENTENCE = "THE CAT SAT ON THE MAT A DOG SAT ON THE LOG THE CAT ATE THE RAT"


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory) -> Path:
    return write_lm_dir(tmp_path_factory.mktemp("lm") / "lm", TEXTS)


def beam(lm_dir: Path, backend: str) -> CTCDecoder:
    return CTCDecoder(VOCAB, DecoderConfig(mode="beam", beam_width=16, lm_path=str(lm_dir / "lm.arpa"),
                                           unigrams_path=str(lm_dir / "unigrams.txt"), backend=backend))


def noisy_logits(rng: np.random.Generator) -> np.ndarray:
    return one_hot(spelled(SENTENCE), 4.0) + rng.normal(0, 1.0, (len(spelled(SENTENCE)), len(VOCAB))).astype(np.float32)


def run(segment: SegmentDecoder, logits: np.ndarray, step: int) -> tuple[list[str], list[list[str]], Committer]:
    """Feed `logits` in chunks of `step` frames; the deltas and the committed words after each."""
    committer = Committer([])
    deltas, history = [], []
    for k in range(0, logits.shape[0], step):
        segment.step(logits[k:k + step])
        fresh, _ = committer.update(segment)
        deltas += [w.word for w in fresh]
        history.append([w.word for w in committer.committed])
    return deltas, history, committer


@pytest.mark.parametrize("kind", ["greedy", "flashlight", "pyctcdecode"])
def test_chunked_decode_equals_one_shot_and_commits_grow(kind, lm_dir, rng):
    decoder = CTCDecoder(VOCAB) if kind == "greedy" else beam(lm_dir, kind)
    logits = noisy_logits(rng)
    segment = decoder.begin_segment(lag_seconds=0.3)
    assert isinstance(segment, {"greedy": GreedySegment, "flashlight": FlashlightSegment,
                                "pyctcdecode": RedecodeSegment}[kind])
    deltas, history, committer = run(segment, logits, 7)
    whole = decoder.decode_full(logits)
    # the open segment's last word may be unfinished (a lexicon search ends words at decode_end)
    partial = [w.word for w in segment.hypothesis().words]
    assert partial[:-1] == [w.word for w in whole.words][:-1] and whole.words[-1].word.startswith(partial[-1])
    assert all(a == b[:len(a)] for a, b in zip(history, history[1:]))     # append-only
    assert deltas == history[-1] and len(deltas) >= 10                       # most words committed before the end
    final = [w.word for w in whole.words]
    assert history[-1] == final[:len(history[-1])]                         # and they were right
    if kind == "flashlight":
        assert whole.text == SENTENCE                                        # the LM reads the noisy spelling


def test_greedy_commits_a_word_once_a_delimiter_follows_it():
    decoder = CTCDecoder(VOCAB)
    segment = decoder.begin_segment()
    committer = Committer([])
    frames = spelled("HELLO WORLD")
    cut = frames.index("|")
    segment.step(one_hot(frames[:cut]))
    assert committer.update(segment)[0] == [] and segment.hypothesis().text == "HELLO"
    segment.step(one_hot(frames[cut:cut + 1]))
    fresh, tail = committer.update(segment)
    assert [w.word for w in fresh] == ["HELLO"] and tail == []
    segment.step(one_hot(frames[cut + 1:]))
    fresh, tail = committer.update(segment)
    assert fresh == [] and [w.word for w in tail] == ["WORLD"]


def test_a_stream_segment_has_a_search_of_its_own(lm_dir, rng):
    """Two segments decoded in interleaved chunks do not share search state (nor with one-shot decodes)."""
    decoder = beam(lm_dir, "flashlight")
    a, b = noisy_logits(rng), one_hot(spelled("A DOG SAT ON THE LOG"), 4.0)
    first, second = decoder.begin_segment(), decoder.begin_segment()
    for k in range(0, max(a.shape[0], b.shape[0]), 5):
        first.step(a[k:k + 5])
        second.step(b[k:k + 5])
        decoder.decode(a[:k + 5])          # the shared one-shot search, in between
    assert first.hypothesis().text.split()[:-1] == decoder.decode(a).split()[:-1]
    assert second.hypothesis().text.split()[:-1] == "A DOG SAT ON THE LOG".split()[:-1]
