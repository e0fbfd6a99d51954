"""Words with times -> segments (subtitle cues) by the pauses of the CTC alignment.

A CTC model has no segments of its own (Whisper's come from its 30 s windows and timestamp
tokens); what it has is each word's frames. The rule, applied in this order:

1. a pause of at least `pause_s` between two words ends a segment (speakers pause between
   sentences and clauses: cues then break where the speech does);
2. a segment still longer than `max_seconds` or `max_chars` (its text with single spaces) is cut
   at its longest pause between two words, the cut nearest its middle among equally long pauses,
   and each part again, until every part fits or is one word (a single word is never cut).

Deterministic, so the same words always give the same cues. The gateway turns segments into
OpenAI's `segments`, SRT and WebVTT (docs/gateway.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from w2v_triton.serving.ctc_output import SECONDS_PER_FRAME, WordTime


@dataclass(frozen=True)
class SegmentRule:
    """Where segments break; the defaults follow common subtitle guidelines (at most ~7 s on
    screen, two lines of 42 characters)."""

    pause_s: float = 0.5        # a pause this long between words ends a segment
    max_seconds: float = 7.0    # no segment longer than this (unless it is one word)
    max_chars: int = 84         # nor with more characters (unless it is one word)
    line_chars: int = 42        # subtitle lines are wrapped at this width

    def __post_init__(self) -> None:
        if self.pause_s <= 0 or self.max_seconds <= 0 or self.max_chars < 1 or self.line_chars < 1:
            raise ValueError(f"segment rule needs positive limits, got {self}")


@dataclass(frozen=True)
class Segment:
    """Consecutive words; `start_s`/`end_s` are the first word's start and the last word's end."""

    words: tuple[WordTime, ...]

    @property
    def start_s(self) -> float:
        return self.words[0].start_s

    @property
    def end_s(self) -> float:
        return self.words[-1].end_s

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)

    @property
    def avg_logprob(self) -> float:
        """The words' confidence averaged per frame (WordTime.logprob is a per-frame mean)."""
        frames = [max(1, round((w.end_s - w.start_s) / SECONDS_PER_FRAME)) for w in self.words]
        return sum(w.logprob * n for w, n in zip(self.words, frames)) / sum(frames)


def segment_words(words: Sequence[WordTime], rule: SegmentRule = SegmentRule()) -> list[Segment]:
    """The segments of `words` (in time order) by the rule in the module docstring."""
    pieces: list[list[WordTime]] = []
    for word in words:
        if pieces and word.start_s - pieces[-1][-1].end_s < rule.pause_s:
            pieces[-1].append(word)
        else:
            pieces.append([word])
    return [Segment(tuple(part)) for piece in pieces for part in _fit(piece, rule)]


def _fit(words: list[WordTime], rule: SegmentRule) -> list[list[WordTime]]:
    duration = words[-1].end_s - words[0].start_s
    chars = sum(len(w.word) for w in words) + len(words) - 1
    if len(words) == 1 or (duration <= rule.max_seconds and chars <= rule.max_chars):
        return [words]
    middle = (words[0].start_s + words[-1].end_s) / 2
    # the longest pause (in whole frames, so that near-equal pauses tie), then the one nearest the middle
    cut = max(range(1, len(words)), key=lambda i: (round((words[i].start_s - words[i - 1].end_s) / SECONDS_PER_FRAME),
                                                   -abs(words[i].start_s - middle)))
    return _fit(words[:cut], rule) + _fit(words[cut:], rule)
