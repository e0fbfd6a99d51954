"""Streaming recognition: chunks of a stream in; partials, committed words and segment finals out.

wav2vec2 attends over the whole utterance, so it has no native streaming mode. A stream here is
recognised in chunks with context, and cut into segments at pauses (docs/streaming.md):

* every chunk is appended to the stream's audio; the acoustic model runs on a window that starts
  `left_context_seconds` before the first frame not yet emitted (on a frame boundary, so window
  frame k is global frame start/320 + k, as in long_audio) and ends at the newest sample. Only
  frames with `right_context_seconds` of audio after them are emitted; their logits never change.
* the VAD (vad.py: silero-vad, batched over the round's streams) and its endpointer open a
  segment where speech starts and close it after `min_silence_seconds` of silence, or cut it at
  `max_segment_seconds`. The open segment's emitted frames go to a decoder that keeps its state
  across chunks (ctc_incremental.py: greedy, flashlight beam + LM with the stream's hotwords, or
  pyctcdecode re-decoding the segment), and a `Committer` turns its best hypothesis into
  append-only committed words plus an unstable tail.
* when a segment closes, its final is the offline path over that segment alone: whole-segment
  normalisation, one AcousticModel.run (<= max_segment_seconds, one pass), the offline decoder:
  exactly the offline transcript of that segment's audio. That pass costs up to ten chunk windows,
  so it is not on the chunk path: `process` answers the chunk at once and hands the closed segment
  back as a `PendingFinal` (its audio copied); `finals` computes them later (the server's
  `FinalWorker`, stream_finals.py, in a thread of its own; `complete` in process).
* a stream cannot normalise over its whole length (wav2vec2's zero mean / unit variance): chunk
  windows use the running mean and variance of the audio received so far ("running"), the
  window's own ("window"), or none; segment finals normalise like offline.

A chunk's work is bounded by its own audio, the context, and the open segment, never by how long
the stream has run nor by the finals of the segments it closes, and so is a stream's memory: audio from the open segment's start (or the
left context) on, the open segment's logits and decoder, and a few numbers. `StreamRegistry`
frees a stream at END, on an error, and when idle for `idle_seconds` (a timer thread, not only at
the next call), and caps the number of live streams. Several streams' chunks and finals run in
one AcousticModel.run call (length buckets), which is how the Triton model uses the batches its
sequence batcher forms; so do the finals the worker finds queued together.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from w2v_triton.serving import spec
from w2v_triton.serving.acoustic import AcousticModel
from w2v_triton.serving.ctc_decoding import CTCDecoder
from w2v_triton.serving.ctc_incremental import Committer, SegmentDecoder
from w2v_triton.serving.ctc_output import Decoded
from w2v_triton.serving.long_audio import STRIDE, LongAudioConfig, frame_count
from w2v_triton.serving.preprocessing import InvalidAudio, normalize, preprocess, validate
from w2v_triton.serving.settings import parse_parameters, to_parameters
from w2v_triton.serving.typing import AnyArray
from w2v_triton.serving.vad import (
    HYSTERESIS,
    SILERO_FILE,
    VADS,
    WINDOW,
    Endpointer,
    NoVAD,
    SegmentEvent,
    SileroVAD,
    VadState,
    build_vad,
)

logger = logging.getLogger(__name__)

NORMALIZATIONS = ("running", "window", "none")


class StreamingConfigError(ValueError):
    """Streaming parameters that cannot work; fails the model load with the message."""


class StreamError(ValueError):
    """A request that fails its own stream only (bad audio, unknown stream, too many streams)."""


STREAM_PREFIX = "stream_"


@dataclass(frozen=True)
class StreamingConfig:
    left_context_seconds: float = 4.0     # past audio each chunk window sees
    right_context_seconds: float = 0.5    # look-ahead a frame needs before it is emitted
    normalization: str = "running"        # chunk windows: running stats | window's own | none
    max_chunk_seconds: float = 5.0        # a larger chunk is refused
    vad: str = "silero"                   # segments from silero-vad, or none (cut at max_segment_seconds)
    vad_threshold: float = 0.5            # speech probability that opens a segment
    min_silence_seconds: float = 0.5      # silence that closes it
    speech_pad_seconds: float = 0.3       # audio kept before the speech and after it in a segment
    max_segment_seconds: float = 30.0     # a longer segment is cut (its final is one acoustic pass)
    commit_lag_seconds: float = 1.0       # beam decoders: words this far behind the last frame are committed
    idle_seconds: float = 15.0            # a stream without a chunk for this long is freed
    max_streams: int = 64                 # live streams at once; START of one more is refused

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise StreamingConfigError(f"normalization {self.normalization!r}: expected one of {NORMALIZATIONS}")
        if self.vad not in VADS:
            raise StreamingConfigError(f"vad {self.vad!r}: expected one of {VADS}")
        single = LongAudioConfig().max_single_seconds
        if not 1.0 <= self.max_segment_seconds <= single:
            raise StreamingConfigError(f"max_segment_seconds must be 1 to {single:g} s (a segment's final is "
                                       f"one acoustic pass), got {self.max_segment_seconds:g}")
        if not HYSTERESIS < self.vad_threshold < 1:
            raise StreamingConfigError(f"vad_threshold must be between {HYSTERESIS} and 1, got {self.vad_threshold}")
        if (self.left_context_seconds < 0 or self.right_context_seconds < 0 or self.max_chunk_seconds <= 0
                or self.idle_seconds <= 0 or self.max_streams < 1 or self.min_silence_seconds <= 0
                or self.speech_pad_seconds < 0 or self.commit_lag_seconds < 0):
            raise StreamingConfigError(f"invalid streaming settings: {self}")

    @property
    def left(self) -> int:
        """Left context in samples, a multiple of the frame stride."""
        return int(self.left_context_seconds * spec.SAMPLE_RATE) // STRIDE * STRIDE

    @property
    def right(self) -> int:
        return int(self.right_context_seconds * spec.SAMPLE_RATE)

    @property
    def pad(self) -> int:
        return int(self.speech_pad_seconds * spec.SAMPLE_RATE)

    def endpointer(self) -> Endpointer:
        return Endpointer(self.vad_threshold, int(self.min_silence_seconds * spec.SAMPLE_RATE), self.pad,
                          int(self.max_segment_seconds * spec.SAMPLE_RATE))

    def to_parameters(self) -> dict[str, str]:
        return to_parameters(self, prefix=STREAM_PREFIX)

    @classmethod
    def from_parameters(cls, parameters: dict[str, str]) -> StreamingConfig:
        """From Triton's string parameters: keys `stream_<field>`; other keys are ignored, an
        unknown `stream_` key is an error (a setting this version does not have)."""
        names = set(cls.__dataclass_fields__)
        unknown = sorted(k for k in parameters if k.startswith(STREAM_PREFIX) and k[len(STREAM_PREFIX):] not in names)
        if unknown:
            raise StreamingConfigError(f"unknown streaming setting {unknown[0][len(STREAM_PREFIX):]!r}; "
                                       f"known: {', '.join(sorted(names))}")
        return cls(**parse_parameters(cls, parameters, StreamingConfigError, STREAM_PREFIX))


@dataclass
class StreamState:
    """One stream in progress. `audio` holds the samples from `audio_start` on; `recent` the
    emitted logits from frame `recent_start` on (the open segment's, or the last speech pad's)."""

    endpointer: Endpointer
    hotwords: list[str] | None = None
    audio: AnyArray = field(default_factory=lambda: np.zeros(0, np.float32))
    audio_start: int = 0
    received: int = 0                 # samples received so far
    emitted: int = 0                  # frames whose logits are final
    total: float = 0.0                # running sums for the running normalisation
    total_sq: float = 0.0
    last_seen: float = 0.0
    vad: VadState = field(default_factory=VadState)
    segment: int = 0                  # index of the open segment (or of the next one)
    segment_start: int | None = None  # first sample of the open segment
    decoder: SegmentDecoder | None = None
    committer: Committer | None = None
    fed: int = 0                      # next frame for the open segment's decoder
    recent: AnyArray | None = None
    recent_start: int = 0

    def kept_bytes(self) -> int:
        return self.audio.nbytes + (0 if self.recent is None else self.recent.nbytes)


def _event(kind: str, segment: int, **values: Any) -> dict[str, Any]:
    return {"type": kind, "segment": segment, **values}


@dataclass(frozen=True)
class PendingFinal:
    """A closed segment whose final is still to come: its audio preprocessed like offline (None
    when too short for one frame), its place in the stream and the stream's hotwords. It holds its
    own copy of the audio, so the stream may move on, end or be freed before the final is computed."""

    segment: int
    start: int                        # samples, stream time
    stop: int
    audio: AnyArray | None
    hotwords: list[str] | None = None


@dataclass(frozen=True)
class StreamResult:
    """One response of a stream. A chunk's answer: `text`, the open segment's partial (committed
    words + unstable tail), "" when no segment is open; `events` (JSON-able, in order):
    speech_started {start_s}, speech_stopped {end_s}, delta {text: committed words appended, with
    their leading space}, final {text, words, start_s, end_s}; every event names its `segment`.
    `pending`: the segments this chunk closed, whose finals are computed off the chunk path and
    sent as responses of their own (`final_response`), except at END (`is_final`), whose one
    response waits for them (`with_finals`)."""

    text: str
    is_final: bool
    events: list[dict[str, Any]]
    emitted_seconds: float            # audio whose frames are final
    pending: list[PendingFinal] = field(default_factory=list)

    def events_json(self) -> str:
        return json.dumps(self.events)

    @property
    def finals(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "final"]

    def with_finals(self, finals: list[dict[str, Any]]) -> StreamResult:
        """This answer with its segments' finals appended to its events (END's one response)."""
        return replace(self, events=self.events + finals, pending=[])

    def final_response(self, final: dict[str, Any]) -> StreamResult:
        """The response that carries one segment's final on its own: no partial ("": it says
        nothing about the open segment), the final event alone, never the stream's last."""
        return StreamResult("", False, [final], self.emitted_seconds)


def transcript(results: list[StreamResult]) -> str:
    """The stream's transcript: its segments' finals, in order."""
    return " ".join(f["text"] for r in results for f in r.finals if f["text"])


class ChunkedRecognizer:
    """Runs chunks of many streams through one acoustic model, one VAD and one decoder."""

    def __init__(self, acoustic: AcousticModel, decoder: CTCDecoder, do_normalize: bool,
                 config: StreamingConfig | None = None, vad: SileroVAD | NoVAD | None = None) -> None:
        self.acoustic, self.decoder, self.do_normalize = acoustic, decoder, do_normalize
        self.config = config or StreamingConfig()
        self.vad = vad if vad is not None else build_vad(self.config.vad)

    def new_stream(self, hotwords: list[str] | None = None, now: float = 0.0) -> StreamState:
        return StreamState(self.config.endpointer(), hotwords=hotwords, last_seen=now)

    # -- windows -------------------------------------------------------------------------------
    def _normalized(self, state: StreamState, window: AnyArray) -> AnyArray:
        mode = self.config.normalization if self.do_normalize else "none"
        if mode == "none":
            return window
        if mode == "window":
            return normalize(window)
        mean = state.total / state.received
        var = max(state.total_sq / state.received - mean * mean, 0.0)
        return cast(AnyArray, ((window - mean) / np.sqrt(var + spec.NORMALIZE_EPS)).astype(np.float32))

    def _window(self, state: StreamState, until_frame: int) -> tuple[int, AnyArray] | None:
        """(first global frame, normalised audio) of the window that yields frames
        [emitted, until_frame), or None when there is nothing to emit."""
        if until_frame <= state.emitted:
            return None
        start = max(state.audio_start, state.emitted * STRIDE - self.config.left)
        window = state.audio[start - state.audio_start:]
        return start // STRIDE, self._normalized(state, window)

    def _append(self, state: StreamState, chunk: AnyArray) -> AnyArray:
        chunk = validate(chunk, min_samples=0)
        if chunk.size > self.config.max_chunk_seconds * spec.SAMPLE_RATE:
            raise StreamError(f"chunk of {chunk.size / spec.SAMPLE_RATE:.2f} s is longer than "
                              f"{self.config.max_chunk_seconds:g} s: send shorter chunks")
        chunk = chunk.astype(np.float32, copy=False)
        state.audio = np.concatenate([state.audio, chunk])
        state.received += chunk.size
        state.total += float(chunk.sum(dtype=np.float64))
        state.total_sq += float(np.square(chunk, dtype=np.float64).sum())
        return chunk

    def _trim(self, state: StreamState) -> None:
        """Drop audio and logits no later window, segment or final needs: a segment that opens
        later starts at most `pad` before the VAD's next window."""
        keep = state.emitted * STRIDE - self.config.left
        keep = min(keep, state.segment_start if state.segment_start is not None else state.vad.position - self.config.pad)
        if keep > state.audio_start:
            state.audio = state.audio[keep - state.audio_start:].copy()
            state.audio_start = keep
        first = (state.segment_start if state.segment_start is not None
                 else max(0, state.vad.position - self.config.pad)) // STRIDE
        if state.recent is not None:   # recent stays [recent_start, emitted)
            drop = min(max(first - state.recent_start, 0), state.recent.shape[0])
            if drop:
                state.recent = state.recent[drop:].copy()
                state.recent_start += drop

    def _segment_audio(self, state: StreamState, start: int, stop: int) -> AnyArray | None:
        """The segment's audio, preprocessed like offline (None when too short for one frame)."""
        if stop - start < spec.MIN_SAMPLES:
            return None
        return preprocess(state.audio[start - state.audio_start: stop - state.audio_start], self.do_normalize)

    # -- one round: at most one chunk per stream -------------------------------------------------
    def process(self, items: list[tuple[StreamState, AnyArray, bool]]) -> list[StreamResult | Exception]:
        """Add a chunk to each stream (`end`: the stream's last chunk) and return its result, or the
        exception that fails that stream alone. The round's VAD windows run in one batched call,
        and its chunk windows in one AcousticModel.run call. A segment the chunk closes comes back
        in the result's `pending`, its final not computed (`finals`): the chunk's cost does not
        include a pass over up to max_segment_seconds of audio."""
        results: list[StreamResult | Exception | None] = [None] * len(items)
        chunks: dict[int, AnyArray] = {}
        for i, (state, chunk, end) in enumerate(items):
            try:
                appended = self._append(state, chunk)
                if end and state.received < spec.MIN_SAMPLES:
                    validate(state.audio)        # raises the offline "audio too short" message
                chunks[i] = appended
            except (InvalidAudio, StreamError) as exc:
                results[i] = exc
        live = list(chunks)
        probs = self.vad.probabilities([items[i][0].vad for i in live], [chunks[i] for i in live],
                                       [items[i][2] for i in live])
        jobs: list[AnyArray] = []
        plans: dict[int, tuple[list[tuple[SegmentEvent, AnyArray | None]], int, int | None, int]] = {}
        for i, p in zip(live, probs, strict=True):
            state, _, end = items[i]
            segments = state.endpointer.feed(p, state.vad.position - p.size * WINDOW)
            if end:
                segments += state.endpointer.finish(state.received)
            until = frame_count(state.received) if end else frame_count(state.received - self.config.right)
            window = self._window(state, until)
            window_job = None
            if window is not None:
                window_job = len(jobs)
                jobs.append(window[1])
            closes: list[tuple[SegmentEvent, AnyArray | None]] = []
            start = state.segment_start
            for event in segments:
                event = SegmentEvent(event.kind, min(event.sample, state.received))  # a padded last window
                if event.kind == "start":
                    start = event.sample
                    closes.append((event, None))
                    continue
                assert start is not None
                closes.append((event, self._segment_audio(state, start, event.sample)))
            plans[i] = (closes, until, window_job, window[0] if window is not None else 0)
        outputs = self.acoustic.run(jobs) if jobs else []
        for i in live:
            state, _, end = items[i]
            closes, until, window_job, first = plans[i]
            if window_job is not None:
                fresh = outputs[window_job][state.emitted - first: until - first]
                state.recent = fresh if state.recent is None else np.concatenate([state.recent, fresh])
                state.emitted = until
            events: list[dict[str, Any]] = []
            pending: list[PendingFinal] = []
            for event, audio in closes:
                if event.kind == "start":
                    self._open(state, event.sample)
                    events.append(_event("speech_started", state.segment, start_s=event.sample / spec.SAMPLE_RATE))
                else:
                    pending.append(self._close(state, event.sample, audio, events))
            text = self._advance(state, events)
            self._trim(state)
            results[i] = StreamResult(text, end, events, state.emitted * STRIDE / spec.SAMPLE_RATE, pending)
        return cast(list[StreamResult | Exception], results)   # every slot is filled above

    def finals(self, pending: list[PendingFinal]) -> list[dict[str, Any]]:
        """The `final` events of closed segments, in order: the offline path over each segment's
        audio alone (its acoustic passes in one AcousticModel.run call, the offline decoder with
        the stream's hotwords)."""
        jobs = [p.audio for p in pending if p.audio is not None]
        outputs = iter(self.acoustic.run(jobs) if jobs else [])
        events = []
        for p in pending:
            decoded = self.decoder.decode_full(next(outputs), p.hotwords) if p.audio is not None else Decoded("")
            offset = p.start / spec.SAMPLE_RATE
            words = [w.shifted(offset).__dict__ for w in decoded.words]
            events.append(_event("final", p.segment, text=decoded.text, words=words,
                                 start_s=offset, end_s=p.stop / spec.SAMPLE_RATE))
        return events

    def complete(self, result: StreamResult) -> list[StreamResult]:
        """The responses a chunk's result becomes once its finals are computed, as the server
        sends them: the chunk's answer, then one response per final; at END one response with
        the finals appended. In process and synchronous (the server computes them in a thread)."""
        finals = self.finals(result.pending)
        if result.is_final:
            return [result.with_finals(finals)]
        return [replace(result, pending=[])] + [result.final_response(f) for f in finals]

    def _open(self, state: StreamState, sample: int) -> None:
        state.segment_start = sample
        state.decoder = self.decoder.begin_segment(state.hotwords, self.config.commit_lag_seconds)
        state.committer = Committer([])
        state.fed = sample // STRIDE

    def _close(self, state: StreamState, stop: int, audio: AnyArray | None,
               events: list[dict[str, Any]]) -> PendingFinal:
        """The open segment ends at `stop`: speech_stopped now, and its final to compute (from
        `audio`, the segment alone, preprocessed like offline)."""
        start = cast(int, state.segment_start)
        events.append(_event("speech_stopped", state.segment, end_s=stop / spec.SAMPLE_RATE))
        pending = PendingFinal(state.segment, start, stop, audio, state.hotwords)
        state.segment += 1
        state.segment_start, state.decoder, state.committer = None, None, None
        return pending

    def _advance(self, state: StreamState, events: list[dict[str, Any]]) -> str:
        """Feed the open segment's decoder its new frames; commit what is stable (a delta event);
        return the segment's partial."""
        if state.decoder is None or state.committer is None:
            return ""
        if state.recent is not None and state.emitted > state.fed:
            begin = max(state.fed, state.recent_start) - state.recent_start
            state.decoder.step(state.recent[begin: state.emitted - state.recent_start])
            state.fed = state.emitted
        before = len(state.committer.committed)
        fresh, tail = state.committer.update(state.decoder)
        if fresh:
            lead = " " if before else ""
            events.append(_event("delta", state.segment, text=lead + " ".join(w.word for w in fresh)))
        return " ".join(w.word for w in state.committer.committed + tail)

    def recognize(self, audio: AnyArray, chunk_seconds: float = 0.5,
                  hotwords: list[str] | None = None) -> list[StreamResult]:
        """One stream sent in chunks (in-process): the responses the server would send (`complete`),
        each chunk's answer followed by its segments' finals; the last is END's."""
        step = max(1, int(chunk_seconds * spec.SAMPLE_RATE))
        state = self.new_stream(hotwords)
        results = []
        starts = list(range(0, max(audio.size, 1), step))
        for k, s in enumerate(starts):
            result = self.process([(state, audio[s: s + step], k == len(starts) - 1)])[0]
            if isinstance(result, Exception):
                raise result
            results += self.complete(result)
        return results


@dataclass(frozen=True)
class ChunkRequest:
    stream_id: int
    audio: AnyArray
    start: bool
    end: bool
    hotwords: str | bytes | None = None


class StreamRegistry:
    """Live streams by id (Triton's CORRID): START creates (or restarts) one, END and errors free
    it, and a stream idle for `idle_seconds` is freed by a timer thread (`start_reaper`; Triton's
    sequence batcher frees its slot after max_sequence_idle_microseconds but does not tell the
    model) or at the next call. Thread-safe: the timer and `handle` share one lock."""

    def __init__(self, recognizer: ChunkedRecognizer, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[int], None] | None = None) -> None:
        self.recognizer, self.clock, self.on_change = recognizer, clock, on_change
        self.config = recognizer.config
        self.streams: dict[int, StreamState] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    def evict_idle(self) -> list[int]:
        with self.lock:
            now = self.clock()
            idle = [sid for sid, s in self.streams.items() if now - s.last_seen > self.config.idle_seconds]
            for sid in idle:
                logger.info("stream %d idle for more than %g s: freed", sid, self.config.idle_seconds)
                del self.streams[sid]
        if idle:
            self._changed()
        return idle

    def start_reaper(self, on_evict: Callable[[list[int]], None] | None = None,
                     interval: float | None = None) -> None:
        """Free idle streams every `interval` seconds (default: a quarter of idle_seconds, at
        most 1 s) in a daemon thread, until `stop_reaper`."""
        every = interval or min(1.0, self.config.idle_seconds / 4)

        def run() -> None:
            while not self._stop.wait(every):
                idle = self.evict_idle()
                if idle and on_evict is not None:
                    on_evict(idle)

        self._reaper = threading.Thread(target=run, name="stream-reaper", daemon=True)
        self._reaper.start()

    def stop_reaper(self) -> None:
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(5)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(len(self.streams))

    def handle(self, requests: list[ChunkRequest]) -> list[StreamResult | Exception]:
        """Results in request order; a request of a stream already in this call waits for the
        next round (one chunk per stream per acoustic batch, in arrival order)."""
        self.evict_idle()
        with self.lock:
            results = self._handle(requests)
        self._changed()
        return results

    def _handle(self, requests: list[ChunkRequest]) -> list[StreamResult | Exception]:
        results: list[StreamResult | Exception | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        while pending:
            round_ids: set[int] = set()
            batch: list[int] = []
            later: list[int] = []
            for i in pending:
                (later if requests[i].stream_id in round_ids else batch).append(i)
                round_ids.add(requests[i].stream_id)
            items, owners = [], []
            for i in batch:
                request = requests[i]
                try:
                    state = self._state(request)
                except StreamError as exc:
                    results[i] = exc
                    continue
                items.append((state, request.audio, request.end))
                owners.append(i)
            processed = self.recognizer.process(items)
            answered = self.clock()   # idle counts from a stream's last answer: a slow round idles no one
            for (state, _, _), i, result in zip(items, owners, processed, strict=True):
                results[i] = result
                request = requests[i]
                if request.end or isinstance(result, Exception):
                    self.streams.pop(request.stream_id, None)
                else:
                    state.last_seen = answered
            pending = later
        return cast(list[StreamResult | Exception], results)   # every request got a result or an error

    def _state(self, request: ChunkRequest) -> StreamState:
        now = self.clock()
        if request.start:
            if request.stream_id not in self.streams and len(self.streams) >= self.config.max_streams:
                raise StreamError(f"too many live streams ({self.config.max_streams}): try again later")
            hotwords = self.recognizer.decoder.parse_hotwords(request.hotwords) or None
            self.streams[request.stream_id] = self.recognizer.new_stream(hotwords, now)
        state = self.streams.get(request.stream_id)
        if state is None:
            raise StreamError(f"stream {request.stream_id} is not live: its first chunk must set START "
                              f"(a stream ends at END, on an error, or after {self.config.idle_seconds:g} s idle)")
        state.last_seen = now
        return state


DECODER_PREFIX = "decoder_"


def split_parameters(parameters: dict[str, str]) -> tuple[dict[str, str], dict[str, str], dict[str, str], bool]:
    """The streaming model's parameters -> (acoustic, decoder, streaming, do_normalize).
    The repository builder renders them from the same values as the offline models' own."""
    acoustic, decoder, streaming = {}, {}, {}
    do_normalize = True
    for key, value in parameters.items():
        if key == "do_normalize":
            do_normalize = value.lower() == "true"
        elif key.startswith(STREAM_PREFIX):
            streaming[key] = value
        elif key.startswith(DECODER_PREFIX):
            decoder[key[len(DECODER_PREFIX):]] = value
        else:
            acoustic[key] = value
    return acoustic, decoder, streaming, do_normalize


ACOUSTIC_FILES = "acoustic"     # in the streaming model's version folder: the acoustic model's file(s)
DECODER_FILES = "decoder"       # ... the decoder's (vocabulary, LM, unigrams)
VAD_FILES = "vad"               # ... and the VAD's ONNX file (silero)


def version_dir(repository: str | Path) -> Path:
    """The streaming model's version folder in a rendered repository (where its files are)."""
    return Path(repository) / spec.STREAMING_MODEL / "1"


def build_recognizer(parameters: dict[str, str], files_dir: str | Path, device_id: int = 0,
                     warmup: bool | None = None) -> ChunkedRecognizer:
    """A recognizer over the acoustic model and decoder files in `files_dir` (the streaming
    model's version folder: the builder links the offline models' files there, because Triton
    may fetch each model folder on its own, e.g. from gs://), configured by the streaming model's
    parameters (the server and the in-process tests)."""
    from w2v_triton.serving.acoustic import AcousticSettings
    from w2v_triton.serving.ctc_decoding import DecoderConfig
    from w2v_triton.serving.vocabulary import Vocabulary

    files_dir = Path(files_dir)
    acoustic_params, decoder_params, stream_params, do_normalize = split_parameters(parameters)
    settings = AcousticSettings.from_parameters(acoustic_params)
    acoustic = AcousticModel.from_settings(files_dir / ACOUSTIC_FILES, settings, device_id)
    if settings.warmup if warmup is None else warmup:
        acoustic.warmup()
    decoder_dir = files_dir / DECODER_FILES
    decoder = CTCDecoder(Vocabulary.load_from_dir(decoder_dir),
                         DecoderConfig.from_parameters(decoder_params, base_dir=decoder_dir))
    config = StreamingConfig.from_parameters(stream_params)
    return ChunkedRecognizer(acoustic, decoder, do_normalize, config,
                             build_vad(config.vad, files_dir / VAD_FILES / SILERO_FILE))
