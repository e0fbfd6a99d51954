"""Decoding one segment of a stream as its frames arrive, and which words of it are stable.

Why: a stream's partials used to re-decode every frame emitted so far at every chunk, so a
chunk's cost grew with the stream (docs/streaming.md). A `SegmentDecoder` carries its search
state across chunks, so a chunk costs its own frames plus a walk back over the open segment
(bounded by the VAD's max_segment_seconds), whatever the stream's length:

* greedy: the best path is the argmax of each frame; frames never change once emitted, so a word
  is stable as soon as a word delimiter follows it;
* beam + LM (flashlight-text): `decode_begin` / `decode_step` on the new frames /
  `get_best_hypothesis`; each segment gets a search object of its own (`FlashlightBeam.stream_search`,
  with the stream's hotwords), dropped at the segment's end with its hypotheses and LM states.
  A word is stable once it ended `lag` seconds before the last frame (beams have merged by then);
* pyctcdecode (beam without LM, or `backend: pyctcdecode`): no incremental API, so the open
  segment's frames are re-decoded at each chunk: bounded by the segment, not the stream.

`Committer` turns hypotheses into an append-only committed prefix (what a client may show as
final text of the segment) and an unstable tail that may still change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from w2v_triton.serving.ctc_output import SECONDS_PER_FRAME, Decoded, WordTime, log_softmax, path_decode
from w2v_triton.serving.typing import AnyArray

if TYPE_CHECKING:   # types only: ctc_decoding imports this module
    from w2v_triton.serving.ctc_decoding import CTCDecoder


class SegmentDecoder(Protocol):
    def step(self, logits: AnyArray) -> None:
        """Decode the next [frames, vocab] logits of the segment."""

    def hypothesis(self) -> Decoded:
        """The best transcript so far; word times in seconds from the segment's first frame."""

    def stable_seconds(self) -> float:
        """Words that end before this (segment time) will not change any more."""


class GreedySegment:
    def __init__(self, decoder: CTCDecoder) -> None:
        self.labels = decoder.labels
        self.delimiter = self.labels.text.index(" ") if " " in self.labels.text else -1
        self.path = np.zeros(0, np.int64)
        self.path_logprob = np.zeros(0, np.float32)   # each frame's log-probability of its label
        self.last_delimiter = 0

    def step(self, logits: AnyArray) -> None:
        log_probs = log_softmax(self.labels.select(np.asarray(logits, np.float32)))
        best = log_probs.argmax(axis=-1)
        hits = np.flatnonzero(best == self.delimiter)
        if hits.size:
            self.last_delimiter = self.path.size + int(hits[-1])
        self.path = np.concatenate([self.path, best])
        self.path_logprob = np.concatenate([self.path_logprob, log_probs[np.arange(best.size), best]])

    def hypothesis(self) -> Decoded:
        return path_decode(self.path, self.path_logprob, self.labels.text, self.labels.blank)

    def stable_seconds(self) -> float:
        return self.last_delimiter * SECONDS_PER_FRAME


class FlashlightSegment:
    def __init__(self, decoder: CTCDecoder, search: Any, lag_seconds: float) -> None:
        self.labels, self.search, self.lag = decoder.labels, search, lag_seconds
        self.search.decoder.decode_begin()
        self.emissions: list[AnyArray] = []   # the segment's log-probabilities: the words' confidences
        self.frames = 0

    def step(self, logits: AnyArray) -> None:
        emissions = np.ascontiguousarray(log_softmax(self.labels.select(np.asarray(logits, np.float32))))
        if emissions.shape[0]:
            self.search.decoder.decode_step(emissions.ctypes.data, emissions.shape[0], emissions.shape[1])
            self.emissions.append(emissions)
            self.frames += emissions.shape[0]

    def hypothesis(self) -> Decoded:
        if not self.frames:
            return Decoded("")
        best = self.search.decoder.get_best_hypothesis(0)
        # tokens: one label per frame after a leading silence
        path = np.asarray(best.tokens[1:self.frames + 1], dtype=np.int64)
        self.emissions = [np.concatenate(self.emissions)]
        return path_decode(path, self.emissions[0][np.arange(path.size), path], self.labels.text, self.labels.blank)

    def stable_seconds(self) -> float:
        return self.frames * SECONDS_PER_FRAME - self.lag


class RedecodeSegment:
    def __init__(self, decoder: CTCDecoder, hotwords: list[str] | None, lag_seconds: float) -> None:
        self.decoder, self.hotwords, self.lag = decoder, hotwords, lag_seconds
        self.logits: list[AnyArray] = []
        self.frames = 0

    def step(self, logits: AnyArray) -> None:
        self.logits.append(np.asarray(logits, np.float32))
        self.frames += logits.shape[0]

    def hypothesis(self) -> Decoded:
        if not self.frames:
            return Decoded("")
        self.logits = [np.concatenate(self.logits)]
        return self.decoder.decode_full(self.logits[0], self.hotwords)

    def stable_seconds(self) -> float:
        return self.frames * SECONDS_PER_FRAME - self.lag


@dataclass
class Committer:
    """The committed words of one segment (append-only) and the rest of its best hypothesis."""

    committed: list[WordTime]
    end_s: float = 0.0     # segment time where the committed words end

    def update(self, decoder: SegmentDecoder) -> tuple[list[WordTime], list[WordTime]]:
        """(newly committed words, unstable tail): the hypothesis' words that start after the
        committed ones; of those, the leading words that end before the decoder's stable point
        are committed (never taken back, even if the hypothesis later changes its mind)."""
        stable = decoder.stable_seconds()
        tail = [w for w in decoder.hypothesis().words if w.start_s >= self.end_s]
        fresh: list[WordTime] = []
        for word in tail:
            if word.end_s > stable:
                break
            fresh.append(word)
        if fresh:
            self.committed += fresh
            self.end_s = fresh[-1].end_s
        return fresh, tail[len(fresh):]
