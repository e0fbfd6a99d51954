"""Streaming recognition: chunks of one utterance in, partial transcripts out, a final at the end.

wav2vec2 attends over the whole utterance, so it has no native streaming mode. A stream here is
recognised in chunks with context (docs/streaming.md):

* every chunk that arrives is appended to the stream's audio; the acoustic model then runs on a
  window that starts `left_context_seconds` before the first frame not yet emitted (on a frame
  boundary, so window frame k is global frame start/320 + k, as in long_audio) and ends at the
  newest sample. Only frames with at least `right_context_seconds` of audio after them are
  emitted (their look-ahead is complete); the rest wait for the next chunk.
* the partial transcript is the stream's decoder (the offline CTCDecoder: greedy or beam + LM,
  hotwords) over all emitted frames.
* at END the final transcript comes from one pass over the whole utterance, exactly the offline
  path (preprocess -> AcousticModel.run -> decode), when the stream is at most
  `max_full_seconds` long (its audio is kept that long); a longer stream's final comes from its
  chunk frames plus a tail window (final_pass "streamed" forces this path for every stream).
* a stream cannot normalise over its whole utterance (wav2vec2's zero mean / unit variance):
  chunk windows use the running mean and variance of the audio received so far (normalization
  "running") or the window's own statistics ("window"); the final full pass normalises exactly
  like offline.

State per stream is bounded: kept audio <= max(max_full_seconds, left + right context + one
chunk), emitted logits <= max_stream_seconds; `StreamRegistry` frees a stream at END, on an error
and after `idle_seconds` without a chunk, and caps the number of live streams. Several streams'
chunks are run in one AcousticModel.run call (length buckets), which is how the Triton model uses
the batches its sequence batcher forms.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from w2v_triton.serving import spec
from w2v_triton.serving.acoustic import AcousticModel
from w2v_triton.serving.ctc_decoding import CTCDecoder
from w2v_triton.serving.ctc_output import Decoded
from w2v_triton.serving.long_audio import STRIDE, frame_count
from w2v_triton.serving.preprocessing import InvalidAudio, normalize, preprocess, validate
from w2v_triton.serving.settings import parse_parameters, to_parameters
from w2v_triton.serving.typing import AnyArray

logger = logging.getLogger(__name__)

NORMALIZATIONS = ("running", "window", "none")
FINAL_PASSES = ("full", "streamed")


class StreamingConfigError(ValueError):
    """Streaming parameters that cannot work; fails the model load with the message."""


class StreamError(ValueError):
    """A request that fails its own stream only (bad audio, unknown stream, stream too long)."""


STREAM_PREFIX = "stream_"


@dataclass(frozen=True)
class StreamingConfig:
    left_context_seconds: float = 4.0     # past audio each chunk window sees
    right_context_seconds: float = 0.5    # look-ahead a frame needs before it is emitted
    normalization: str = "running"        # chunk windows: running stats | window's own | none
    final_pass: str = "full"              # full: offline pass at END (kept audio); streamed: chunk frames
    max_full_seconds: float = 40.0        # audio kept for the final full pass (offline single-pass limit)
    max_chunk_seconds: float = 5.0        # a larger chunk is refused
    max_stream_seconds: float = 600.0     # a longer stream is refused (bounds the kept logits)
    idle_seconds: float = 60.0            # a stream without a chunk for this long is freed
    max_streams: int = 64                 # live streams at once

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise StreamingConfigError(f"normalization {self.normalization!r}: expected one of {NORMALIZATIONS}")
        if self.final_pass not in FINAL_PASSES:
            raise StreamingConfigError(f"final_pass {self.final_pass!r}: expected one of {FINAL_PASSES}")
        if (self.left_context_seconds < 0 or self.right_context_seconds < 0 or self.max_chunk_seconds <= 0
                or self.max_stream_seconds <= 0 or self.idle_seconds <= 0 or self.max_streams < 1
                or self.max_full_seconds < 0):
            raise StreamingConfigError(f"invalid streaming settings: {self}")

    @property
    def left(self) -> int:
        """Left context in samples, a multiple of the frame stride."""
        return int(self.left_context_seconds * spec.SAMPLE_RATE) // STRIDE * STRIDE

    @property
    def right(self) -> int:
        return int(self.right_context_seconds * spec.SAMPLE_RATE)

    def to_parameters(self) -> dict[str, str]:
        return to_parameters(self, prefix=STREAM_PREFIX)

    @classmethod
    def from_parameters(cls, parameters: dict[str, str]) -> "StreamingConfig":
        """From Triton's string parameters: keys `stream_<field>`; other keys are ignored."""
        return cls(**parse_parameters(cls, parameters, StreamingConfigError, STREAM_PREFIX))


@dataclass
class StreamState:
    """One utterance in progress. `audio` holds the samples from `audio_start` on."""

    hotwords: list[str] | None = None
    audio: AnyArray = field(default_factory=lambda: np.zeros(0, np.float32))
    audio_start: int = 0
    received: int = 0                 # samples received so far
    emitted: int = 0                  # frames whose logits are final
    logits: list[AnyArray] = field(default_factory=list)
    total: float = 0.0                # running sums for the running normalisation
    total_sq: float = 0.0
    last_seen: float = 0.0
    text: str = ""

    @property
    def complete(self) -> bool:
        """The whole utterance is still kept (the final can be the offline pass)."""
        return self.audio_start == 0

    def kept_bytes(self) -> int:
        return self.audio.nbytes + sum(x.nbytes for x in self.logits)


@dataclass(frozen=True)
class StreamResult:
    text: str
    is_final: bool
    decoded: Decoded
    emitted_seconds: float            # audio whose frames are final


class ChunkedRecognizer:
    """Runs chunks of many streams through one acoustic model and one decoder (the offline ones)."""

    def __init__(self, acoustic: AcousticModel, decoder: CTCDecoder, do_normalize: bool,
                 config: StreamingConfig | None = None) -> None:
        self.acoustic, self.decoder, self.do_normalize = acoustic, decoder, do_normalize
        self.config = config or StreamingConfig()

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

    def _append(self, state: StreamState, chunk: AnyArray) -> None:
        chunk = validate(chunk, min_samples=0)
        if chunk.size > self.config.max_chunk_seconds * spec.SAMPLE_RATE:
            raise StreamError(f"chunk of {chunk.size / spec.SAMPLE_RATE:.2f} s is longer than "
                              f"{self.config.max_chunk_seconds:g} s: send shorter chunks")
        if state.received + chunk.size > self.config.max_stream_seconds * spec.SAMPLE_RATE:
            raise StreamError(f"stream longer than {self.config.max_stream_seconds:g} s: "
                              "end it and start a new one")
        state.audio = np.concatenate([state.audio, chunk.astype(np.float32, copy=False)])
        state.received += chunk.size
        state.total += float(chunk.sum(dtype=np.float64))
        state.total_sq += float(np.square(chunk, dtype=np.float64).sum())

    def _trim(self, state: StreamState) -> None:
        """Drop audio no later window needs, once the stream outgrows max_full_seconds."""
        if state.received <= self.config.max_full_seconds * spec.SAMPLE_RATE:
            return
        keep_from = max(state.audio_start, state.emitted * STRIDE - self.config.left)
        state.audio = state.audio[keep_from - state.audio_start:].copy()
        state.audio_start = keep_from

    # -- one round: at most one chunk per stream -------------------------------------------------
    def process(self, items: list[tuple[StreamState, AnyArray, bool]]) -> list[StreamResult | Exception]:
        """Add a chunk to each stream (`end`: the stream's last chunk) and return its partial or
        final result, or the exception that fails that stream alone. All windows of the round run
        in one AcousticModel.run call."""
        results: list[StreamResult | Exception | None] = [None] * len(items)
        jobs: list[tuple[int, str, int, AnyArray]] = []   # (item, kind, first frame, audio)
        for i, (state, chunk, end) in enumerate(items):
            try:
                self._append(state, chunk)
                if end:
                    if state.received < spec.MIN_SAMPLES:
                        validate(state.audio)        # raises the offline "audio too short" message
                    if self.config.final_pass == "full" and state.complete:
                        jobs.append((i, "full", 0, preprocess(state.audio, self.do_normalize)))
                        continue
                    until = frame_count(state.received)
                else:
                    until = frame_count(state.received - self.config.right)
                window = self._window(state, until)
                if window is not None:
                    jobs.append((i, "window", window[0], window[1]))
            except (InvalidAudio, StreamError) as exc:
                results[i] = exc
        outputs = self.acoustic.run([audio for *_, audio in jobs]) if jobs else []
        ran = {i: (kind, first, logits) for (i, kind, first, _), logits in zip(jobs, outputs)}
        for i, (state, _, end) in enumerate(items):
            if results[i] is not None:
                continue
            if i in ran:
                kind, first, logits = ran[i]
                if kind == "full":
                    state.logits, state.emitted = [logits], logits.shape[0]
                else:
                    until = frame_count(state.received) if end else frame_count(state.received - self.config.right)
                    state.logits.append(logits[state.emitted - first: until - first])
                    state.emitted = until
            self._trim(state)
            logits = self.emitted_logits(state)
            # no frames yet (the first chunk waits for its look-ahead): nothing to decode
            decoded = self.decoder.decode_full(logits, state.hotwords) if logits.shape[0] else Decoded("")
            state.text = decoded.text
            results[i] = StreamResult(decoded.text, end, decoded, state.emitted * STRIDE / spec.SAMPLE_RATE)
        return cast(list[StreamResult | Exception], results)   # every slot is filled above

    def emitted_logits(self, state: StreamState) -> AnyArray:
        if len(state.logits) > 1:
            state.logits = [np.concatenate(state.logits)]
        if not state.logits:
            return np.zeros((0, self.decoder.labels.vocab_size), np.float32)
        return state.logits[0]

    def recognize(self, audio: AnyArray, chunk_seconds: float = 0.5,
                  hotwords: list[str] | None = None) -> list[StreamResult]:
        """One utterance streamed in chunks (in-process): every partial, then the final."""
        step = max(1, int(chunk_seconds * spec.SAMPLE_RATE))
        state = StreamState(hotwords=hotwords)
        results = []
        starts = list(range(0, max(audio.size, 1), step))
        for k, s in enumerate(starts):
            result = self.process([(state, audio[s: s + step], k == len(starts) - 1)])[0]
            if isinstance(result, Exception):
                raise result
            results.append(result)
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
    it, and a stream idle for `idle_seconds` is freed at the next call (Triton's sequence
    batcher frees its slot after max_sequence_idle_microseconds but does not tell the model)."""

    def __init__(self, recognizer: ChunkedRecognizer, clock: Callable[[], float] = time.monotonic) -> None:
        self.recognizer, self.clock = recognizer, clock
        self.config = recognizer.config
        self.streams: dict[int, StreamState] = {}

    def evict_idle(self) -> list[int]:
        now = self.clock()
        idle = [sid for sid, s in self.streams.items() if now - s.last_seen > self.config.idle_seconds]
        for sid in idle:
            logger.info("stream %d idle for more than %g s: freed", sid, self.config.idle_seconds)
            del self.streams[sid]
        return idle

    def handle(self, requests: list[ChunkRequest]) -> list[StreamResult | Exception]:
        """Results in request order; a request of a stream already in this call waits for the
        next round (one chunk per stream per acoustic batch, in arrival order)."""
        self.evict_idle()
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
            for i, result in zip(owners, self.recognizer.process(items)):
                results[i] = result
                request = requests[i]
                if request.end or isinstance(result, Exception):
                    self.streams.pop(request.stream_id, None)
            pending = later
        return cast(list[StreamResult | Exception], results)   # every request got a result or an error

    def _state(self, request: ChunkRequest) -> StreamState:
        now = self.clock()
        if request.start:
            if request.stream_id not in self.streams and len(self.streams) >= self.config.max_streams:
                raise StreamError(f"too many live streams ({self.config.max_streams}): try again later")
            hotwords = self.recognizer.decoder.parse_hotwords(request.hotwords) or None
            self.streams[request.stream_id] = StreamState(hotwords=hotwords, last_seen=now)
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
DECODER_FILES = "decoder"       # ... and the decoder's (vocabulary, LM, unigrams)


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
    return ChunkedRecognizer(acoustic, decoder, do_normalize, StreamingConfig.from_parameters(stream_params))
