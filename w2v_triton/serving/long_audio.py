"""Long audio: overlapping windows through the acoustic model, logits stitched at the seams.

A wav2vec2 pass costs memory and time quadratic in length (self-attention over all frames), and
a Triton request of many minutes would otherwise need one huge tensor. Audio longer than
`LongAudioConfig.max_single_seconds` is cut into windows of `window_seconds` that overlap by
`overlap_seconds`; every window starts on a frame boundary (a multiple of 320 samples), so
window frame t is global frame start/320 + t. Windows run in mini-batches of `batch_windows`
(zero-padded: the masked front-end makes a padded row exact), and each window contributes the
frames between the midpoints of its overlaps with its neighbours, so every kept frame has at
least overlap/2 of context on both sides. The last window is shifted left to be full length.

Differences from one full pass are confined to context: a window's first group norm and its
attention see only the window (the normalisation of the whole utterance is done before, by the
preprocessor). The central frames agree closely; greedy transcripts differ by a small CER.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from w2v_triton.serving import spec
from w2v_triton.serving.typing import AnyArray

STRIDE = spec.FRAME_STRIDE_SAMPLES


def frame_count(samples: int) -> int:
    """Logit frames of an utterance of `samples` (conv front-end arithmetic; 0 if too short)."""
    return 0 if samples < spec.MIN_SAMPLES else (samples - spec.MIN_SAMPLES) // STRIDE + 1


@dataclass(frozen=True)
class LongAudioConfig:
    window_seconds: float = 30.0
    overlap_seconds: float = 3.0
    # windows per model call; batch x window bounds every call's padded audio. 1: one 30 s window
    # peaks at about half of two (docs/optimization.md, "Memory"), at the same speed on a CPU
    batch_windows: int = 1
    max_single_seconds: float = 40.0  # longer inputs are windowed; shorter run in one pass

    def __post_init__(self) -> None:
        if self.window_seconds <= 0 or self.overlap_seconds < 0 or self.batch_windows < 1:
            raise ValueError(f"invalid long-audio settings: {self}")
        if self.overlap_seconds >= self.window_seconds / 2:
            raise ValueError("overlap must be shorter than half a window")
        if self.max_single_seconds < self.window_seconds:
            raise ValueError("max_single_seconds must be >= window_seconds")

    @property
    def window(self) -> int:
        """Window length in samples, a multiple of the frame stride."""
        return max(spec.MIN_SAMPLES, int(self.window_seconds * spec.SAMPLE_RATE) // STRIDE * STRIDE)

    @property
    def hop(self) -> int:
        overlap = int(self.overlap_seconds * spec.SAMPLE_RATE) // STRIDE * STRIDE
        return self.window - overlap

    @property
    def max_single(self) -> int:
        return int(self.max_single_seconds * spec.SAMPLE_RATE)

    @property
    def batch_samples(self) -> int:
        """Padded samples one model call may hold (a length bucket of short utterances too, except
        one utterance up to `max_single` alone): what bounds the runtime's peak working memory."""
        return self.batch_windows * self.window


def window_starts(samples: int, config: LongAudioConfig) -> list[int]:
    """Start sample of every window (multiples of STRIDE); one window if the audio fits."""
    if samples <= config.window:
        return [0]
    starts = [0]
    while starts[-1] + config.window < samples:
        starts.append(starts[-1] + config.hop)
    last = -(-(samples - config.window) // STRIDE) * STRIDE   # last window as long as fits
    if last > starts[-2]:
        starts[-1] = last
    return starts


def seams(starts: list[int], samples: int, config: LongAudioConfig) -> list[tuple[int, int]]:
    """Global frame range [lo, hi) each window contributes: cut at the middle of each overlap."""
    total = frame_count(samples)
    firsts = [s // STRIDE for s in starts]
    ends = [min(f + frame_count(min(config.window, samples - s)), total) for f, s in zip(firsts, starts, strict=True)]
    cuts = [0] + [(firsts[k + 1] + ends[k]) // 2 for k in range(len(starts) - 1)] + [total]
    return [(cuts[k], cuts[k + 1]) for k in range(len(starts))]


def run_long(run_batch: Callable[[list[AnyArray]], list[AnyArray]], audio: AnyArray,
             config: LongAudioConfig) -> AnyArray:
    """[T, V] logits of one long utterance. `run_batch(list of 1-D arrays) -> list of [T_i, V]`
    is called with at most `config.batch_windows` windows of at most `config.window` samples."""
    starts = window_starts(audio.size, config)
    ranges = seams(starts, audio.size, config)
    pieces: list[AnyArray] = []
    short = 0   # frames the last window's model does not emit (SEW: the tail of a partial squeeze window)
    for first in range(0, len(starts), config.batch_windows):
        chunk = starts[first: first + config.batch_windows]
        outputs = run_batch([audio[s: s + config.window] for s in chunk])
        for k, (start, logits) in enumerate(zip(chunk, outputs, strict=True), first):
            lo, hi = ranges[k]
            offset = start // STRIDE
            pieces.append(logits[lo - offset: hi - offset])
            short = (hi - lo) - pieces[-1].shape[0]
            if short and k != len(starts) - 1:
                raise AssertionError(f"window {k} gave {logits.shape[0]} frames, its seam needs {hi - offset}")
    logits = np.concatenate(pieces, axis=0)
    if logits.shape[0] != frame_count(audio.size) - short:
        raise AssertionError(f"stitched {logits.shape[0]} frames, expected {frame_count(audio.size)}")
    return logits
