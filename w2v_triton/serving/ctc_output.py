"""What a CTC decode returns, and the best path turned into text with word times.

Shared by every decoding backend (w2v_triton.serving.ctc_decoding's pyctcdecode and greedy paths,
w2v_triton.serving.ctc_flashlight), so that none imports another to get them.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
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
    word: str
    start_s: float
    end_s: float

    @classmethod
    def from_frames(cls, word: str, start: int, end: int) -> "WordTime":
        """[start, end) logit frames -> seconds (rounded to 0.1 ms)."""
        return cls(word, round(start * SECONDS_PER_FRAME, 4), round(end * SECONDS_PER_FRAME, 4))


@dataclass(frozen=True)
class Decoded:
    text: str
    words: list[WordTime] = field(default_factory=list)

    def words_json(self) -> str:
        return json.dumps([w.__dict__ for w in self.words])


def greedy_decode(selected: AnyArray, text: list[str], blank: int) -> Decoded:
    """Best path (argmax per frame) with word spans (see path_decode)."""
    return path_decode(selected.argmax(axis=-1), text, blank)


def path_decode(best: AnyArray, text: list[str], blank: int) -> Decoded:
    """A path of one label per frame -> words with spans: each word runs from its first
    character's first frame to its last character's last frame + 1 (the convention of
    pyctcdecode's word frames). Shared by greedy decoding and the streaming decoders."""
    if best.size == 0:
        return Decoded("")
    starts = np.flatnonzero(np.r_[True, best[1:] != best[:-1]])
    ends = np.r_[starts[1:], best.size]
    words: list[WordTime] = []
    chars: list[str] = []
    first = last = 0
    for token, a, b in zip(best[starts].tolist(), starts.tolist(), ends.tolist()):
        if token == blank:
            continue
        char = text[token]
        if char == " ":
            if chars:
                words.append(WordTime.from_frames("".join(chars), first, last))
            chars = []
            continue
        if not chars:
            first = a
        chars.append(char)
        last = b
    if chars:
        words.append(WordTime.from_frames("".join(chars), first, last))
    return Decoded(" ".join(w.word for w in words), words)
