"""What a CTC decode returns, and the best path turned into text with word times.

Shared by every decoding backend (w2v_triton.serving.ctc_decoding's pyctcdecode and greedy paths,
w2v_triton.serving.ctc_flashlight), so that none imports another to get them.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field, replace
from typing import cast

import numpy as np

from w2v_triton.serving.spec import FRAME_STRIDE_SAMPLES, SAMPLE_RATE
from w2v_triton.serving.typing import AnyArray

_SPACES = re.compile(r" +")
SECONDS_PER_FRAME = FRAME_STRIDE_SAMPLES / SAMPLE_RATE


class DecoderConfigError(ValueError):
    """Decoder parameters or files that cannot work; fails the model load loudly."""


def log_softmax(x: AnyArray) -> AnyArray:
    x = x - x.max(axis=-1, keepdims=True)
    return cast(AnyArray, x - np.log(np.exp(x).sum(axis=-1, keepdims=True)))


def clean_text(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def greedy_ids(logits: AnyArray, blank: int) -> list[int]:
    """Best path: argmax per frame, merge repeats, drop blanks."""
    best = logits.argmax(axis=-1)
    if best.size == 0:
        return []
    keep = np.ones(best.size, dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    return [int(t) for t in best[keep] if t != blank]


@dataclass(frozen=True)
class WordTime:
    """A word, its [start, end) in seconds, and `logprob`: the mean natural-log probability per
    frame of the best path's labels over the word's frames (its confidence; what the gateway's
    segments average into Whisper's `avg_logprob`)."""

    word: str
    start_s: float
    end_s: float
    logprob: float

    @classmethod
    def from_frames(cls, word: str, start: int, end: int, frame_logprob: AnyArray) -> WordTime:
        """[start, end) logit frames -> seconds (rounded to 0.1 ms); `frame_logprob`: the path's
        log-probability of every frame of the utterance."""
        mean = float(frame_logprob[start:end].mean()) if end > start else 0.0
        return cls(word, round(start * SECONDS_PER_FRAME, 4), round(end * SECONDS_PER_FRAME, 4), round(mean, 4))

    def shifted(self, seconds: float) -> WordTime:
        """This word `seconds` later (a piece's or a segment's words on the whole audio's clock)."""
        return replace(self, start_s=round(self.start_s + seconds, 4), end_s=round(self.end_s + seconds, 4))


@dataclass(frozen=True)
class Decoded:
    text: str
    words: list[WordTime] = field(default_factory=list)

    def words_json(self) -> str:
        return json.dumps([w.__dict__ for w in self.words])

    @classmethod
    def joined(cls, parts: list[tuple[float, Decoded]]) -> Decoded:
        """Decodes of consecutive pieces of one utterance, each with its start (seconds), as one."""
        words = [w.shifted(start) for start, part in parts for w in part.words]
        return cls(" ".join(part.text for _, part in parts if part.text), words)


def pause_pieces(best: AnyArray, quiet_labels: list[int], pause_frames: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges of a best path cut in the middle of every pause: a run of at least
    `pause_frames` frames whose best label is one of `quiet_labels` (blank, word delimiter)
    between two spoken ones. One range (the whole path) when it has no such pause."""
    quiet = np.isin(best, quiet_labels).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet, [0]])))
    cuts = [(a + b) // 2 for a, b in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True)
            if b - a >= pause_frames and a > 0 and b < best.size]
    bounds = [0, *cuts, int(best.size)]
    return list(itertools.pairwise(bounds))


def greedy_decode(selected: AnyArray, text: list[str], blank: int) -> Decoded:
    """The best path of [frames, labels] logits (argmax per frame), as words with spans."""
    best = selected.argmax(axis=-1)
    if best.size == 0:
        return Decoded("")
    return path_decode(best, log_softmax(selected)[np.arange(best.size), best], text, blank)


def path_decode(path: AnyArray, frame_logprob: AnyArray, text: list[str], blank: int) -> Decoded:
    """A path of one label per frame (and each frame's log-probability of it) as words with spans:
    each word runs from its first character's first frame to its last character's last frame + 1
    (the convention of pyctcdecode's word frames). Greedy and flashlight decodes both end here."""
    if path.size == 0:
        return Decoded("")
    starts = np.flatnonzero(np.r_[True, path[1:] != path[:-1]])
    ends = np.r_[starts[1:], path.size]
    words: list[WordTime] = []
    chars: list[str] = []
    first = last = 0
    for token, a, b in zip(path[starts].tolist(), starts.tolist(), ends.tolist(), strict=True):
        if token == blank:
            continue
        char = text[token]
        if char == " ":
            if chars:
                words.append(WordTime.from_frames("".join(chars), first, last, frame_logprob))
            chars = []
            continue
        if not chars:
            first = a
        chars.append(char)
        last = b
    if chars:
        words.append(WordTime.from_frames("".join(chars), first, last, frame_logprob))
    return Decoded(" ".join(w.word for w in words), words)
