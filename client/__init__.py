"""Small Python API for the `asr` ensemble: audio in, text out, over HTTP or gRPC.

    from client import TranscriptionClient
    with TranscriptionClient("127.0.0.1:8000") as asr:
        print(asr.transcribe_file("speech.flac"))                  # decoded here, sent as float32
        print(asr.transcribe_file("speech.mp3", send_file=True))   # the file's bytes, decoded in Triton
        result = asr.transcribe_full(audio, hotwords=["KUBERNETES"])   # text + word timestamps

Hotwords are boosted by the beam-search decoder (a server built with `--decoder-mode beam`);
the greedy decoder ignores them. Word timestamps come from every decoder.

Streaming (gRPC only; the `streaming_asr` model, docs/streaming.md): the open segment's partial
in every chunk's answer, and each segment's final, in an update of its own, once the server's VAD
has closed it and the acoustic model has re-run over it:

    with TranscriptionClient("127.0.0.1:8001", "grpc") as asr:
        for update in asr.stream(audio, chunk_seconds=0.5, realtime=True):   # a whole array
            print(update.text, [f["text"] for f in update.finals])
        with asr.open_stream() as live:                                      # push: chunks as they come
            live.send(chunk)                     # returns at once; updates arrive on their own
            for update in live.updates(): ...    # (or live.get(timeout))
            live.end()                           # END: the last segment's final follows

A stream always ends with END: `LiveStream.close` (and leaving its `with`, on any exit) sends it
when the caller has not, so the server frees the stream at once instead of after its idle timeout.
"""
from __future__ import annotations

import json
import queue
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from w2v_triton.serving import spec
from w2v_triton.serving.audio import AudioError, load_audio
from w2v_triton.serving.typing import AnyArray

if TYPE_CHECKING:   # tritonclient is imported where the protocol is chosen (http or grpc)
    from tritonclient.grpc import InferResult
    from tritonclient.utils import InferenceServerException

PROTOCOLS = ("http", "grpc")


def read_file(path: str | Path) -> bytes:
    """A file's bytes as they are, for the AUDIO_FILE input (AudioError when unreadable)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AudioError(f"{path}: cannot read ({exc.strerror or exc})") from None


class ClientError(RuntimeError):
    """The server cannot be reached or rejected the request; the message says which."""


class ServerUnreachable(ClientError):
    """No Triton server answered at the URL (refused, timed out, not ready)."""


class RequestRejected(ClientError):
    """The server answered and refused this request (bad audio, wrong input): the caller's fault."""


@dataclass
class Transcription:
    """A transcript and its words, {"word", "start_s", "end_s", "logprob"} each, as the decoder sends them
    (docs/decoding.md);
    `duration_s`: the length of the audio the server transcribed (of a file: as decoded)."""

    text: str
    words: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float | None = None


@dataclass
class StreamUpdate:
    """One response of a stream, to chunk `chunk` (0-based), `latency_s` after that chunk was sent;
    `audio_s`: audio sent up to that chunk. Two kinds (`kind`): a chunk's own answer, where `text`
    is the open segment's partial (committed words + unstable tail; "" when no segment is open)
    and `events` are speech_started / speech_stopped / delta (committed words), in order; and a
    segment's final, sent on its own once computed (after the answer of the chunk that closed the
    segment, possibly after later chunks' answers): `events` is that one `final` (transcript, words,
    times) and `text` is "". `is_final`: the stream's last response (END's answer, which carries
    the finals of the segments END closed)."""

    text: str
    is_final: bool
    chunk: int
    latency_s: float
    audio_s: float
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finals(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == "final"]

    @property
    def kind(self) -> str:
        """"final": a segment final's own response (its latency runs from the send of the chunk
        that closed the segment); "chunk": a chunk's answer (END's included)."""
        only_finals = bool(self.events) and all(e["type"] == "final" for e in self.events)
        return "final" if only_finals and not self.is_final else "chunk"

    @property
    def finals_owed(self) -> int:
        """How this response changes the count of segment finals still to come: each
        speech_stopped is followed by its segment's final, here (END) or in a response of its own
        (+1 each), which pays it (-1)."""
        return sum(1 for e in self.events if e["type"] == "speech_stopped") - len(self.finals)


def stream_transcript(updates: Iterable[StreamUpdate]) -> str:
    """A stream's transcript: its segments' finals in order."""
    return " ".join(f["text"] for u in updates for f in u.finals if f["text"])


class TranscriptionClient:
    """A connection to a Triton server that serves the `asr` ensemble."""

    def __init__(self, url: str = "127.0.0.1:8000", protocol: str = "http", timeout: float = 60.0,
                 model: str = spec.ENSEMBLE_MODEL) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol {protocol!r}: expected one of {PROTOCOLS}")
        self.url, self.protocol, self.model, self.timeout = url, protocol, model, timeout
        if protocol == "http":
            import tritonclient.http as module
            self._client = module.InferenceServerClient(url, connection_timeout=timeout, network_timeout=timeout)
        else:
            import tritonclient.grpc as module
            self._client = module.InferenceServerClient(url)
        from tritonclient.utils import InferenceServerException

        self._module = module
        self._rejection = InferenceServerException
        self._checked = False

    def check_ready(self, model: str | None = None) -> None:
        """Raise ServerUnreachable unless the server answers and `model` (default: the ensemble)
        is ready; checked once per client for the ensemble."""
        model = model or self.model
        if self._checked and model == self.model:
            return
        try:
            ready = self._client.is_model_ready(model)
        except Exception as exc:  # connection refused, DNS, timeout: all mean "unreachable"
            raise self._unreachable(exc) from None
        if not ready:
            raise ServerUnreachable(f"the server at {self.url} is up but model '{model}' is not ready")
        self._checked = self._checked or model == self.model

    def model_parameters(self, model: str) -> dict[str, str]:
        """A served model's config `parameters` (strings), e.g. the decoder's `mode`: what a caller
        needs to know whether hotwords are used (DecoderConfig.from_parameters reads them)."""
        try:
            if self.protocol == "grpc":
                config = self._client.get_model_config(model, as_json=True, client_timeout=self.timeout)["config"]
            else:
                config = self._client.get_model_config(model)
        except self._rejection as exc:
            if _is_connection_failure(exc) or not _is_refusal(exc):
                raise self._unreachable(exc) from None
            raise RequestRejected(f"server has no model '{model}': {exc.message()}") from None
        except Exception as exc:  # the connection broke
            raise self._unreachable(exc) from None
        return {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}

    def transcribe(self, audio: AnyArray | bytes, hotwords: list[str] | str | None = None,
                   prompt: str | None = None) -> str:
        """Transcribe float32 mono 16 kHz samples, or an encoded file's bytes (decoded by the server).
        `prompt`: text whose words the server's LM does not know are boosted (docs/decoding.md)."""
        return self._infer(audio, hotwords, timestamps=False, prompt=prompt).text

    def transcribe_full(self, audio: AnyArray | bytes, hotwords: list[str] | str | None = None,
                        prompt: str | None = None) -> Transcription:
        """Transcript and word timestamps of float32 mono 16 kHz samples or an encoded file's bytes."""
        return self._infer(audio, hotwords, timestamps=True, prompt=prompt)

    def transcribe_file(self, path: str | Path, hotwords: list[str] | str | None = None,
                        send_file: bool = False) -> str:
        """Transcribe an audio file: decoded here and sent as float32 (default), or with
        `send_file` sent as its bytes (AUDIO_FILE) for the server to decode."""
        return self.transcribe(read_file(path) if send_file else load_audio(path), hotwords)

    def _infer(self, audio: AnyArray | bytes, hotwords: list[str] | str | None, timestamps: bool,
               prompt: str | None = None) -> Transcription:
        self.check_ready()
        if isinstance(audio, (bytes, bytearray, memoryview)):
            requests = [self._module.InferInput(spec.AUDIO_FILE, [1, 1], "BYTES")]
            requests[0].set_data_from_numpy(np.array([[bytes(audio)]], dtype=np.object_))
        else:
            audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(1, -1)
            requests = [self._module.InferInput(spec.AUDIO, list(audio.shape), "FP32")]
            requests[0].set_data_from_numpy(audio)
        if hotwords is not None:   # "" is sent as is: the decoder reads it as no hotwords
            joined = hotwords if isinstance(hotwords, str) else ",".join(hotwords)
            requests.append(self._module.InferInput(spec.HOTWORDS, [1, 1], "BYTES"))
            requests[-1].set_data_from_numpy(np.array([[joined.encode("utf-8")]], dtype=np.object_))
        if prompt:
            requests.append(self._module.InferInput(spec.PROMPT, [1, 1], "BYTES"))
            requests[-1].set_data_from_numpy(np.array([[prompt.encode("utf-8")]], dtype=np.object_))
        names = [spec.TRANSCRIPT] + ([spec.WORD_TIMESTAMPS, spec.AUDIO_LENGTHS] if timestamps else [])
        outputs = [self._module.InferRequestedOutput(name) for name in names]
        try:
            if self.protocol == "grpc":
                result = self._client.infer(self.model, requests, outputs=outputs, client_timeout=self.timeout)
            else:
                result = self._client.infer(self.model, requests, outputs=outputs)
        except self._rejection as exc:
            if _is_connection_failure(exc):
                raise self._unreachable(exc) from None
            if _is_refusal(exc):
                raise RequestRejected(f"server rejected the request: {exc.message()}") from None
            raise ClientError(f"server failed the request: {exc.message()}") from None
        except Exception as exc:  # the connection broke: refused, reset, timed out
            raise self._unreachable(exc) from None
        text = result.as_numpy(spec.TRANSCRIPT).reshape(-1)[0].decode("utf-8")
        if not timestamps:
            return Transcription(text)
        words = json.loads(result.as_numpy(spec.WORD_TIMESTAMPS).reshape(-1)[0].decode("utf-8"))
        samples = int(result.as_numpy(spec.AUDIO_LENGTHS).reshape(-1)[0])
        return Transcription(text, words, samples / spec.SAMPLE_RATE)

    def _unreachable(self, exc: Exception) -> ServerUnreachable:
        return ServerUnreachable(f"cannot reach a Triton server at {self.url} over {self.protocol} "
                                 f"({type(exc).__name__}); is `make serve` running?")

    def open_stream(self, hotwords: list[str] | str | None = None, sequence_id: int | None = None,
                    model: str = spec.STREAMING_MODEL,
                    on_update: Callable[[StreamUpdate | ClientError], None] | None = None) -> LiveStream:
        """A push-style stream (gRPC bidirectional streaming, one at a time per client): send
        chunks as they come, read updates as they arrive (see LiveStream); `on_update` receives
        each update (or the stream's error) on gRPC's thread instead."""
        if self.protocol != "grpc":
            raise ClientError("streaming needs protocol 'grpc' (gRPC bidirectional streaming)")
        self.check_ready(model)
        return LiveStream(self, model, hotwords, sequence_id or random.getrandbits(62) + 1, on_update)

    def stream(self, audio: AnyArray, chunk_seconds: float = 0.5, realtime: bool = False,
               hotwords: list[str] | str | None = None, sequence_id: int | None = None,
               model: str = spec.STREAMING_MODEL) -> Iterator[StreamUpdate]:
        """Send float32 mono 16 kHz `audio` as one stream of `chunk_seconds` chunks and yield every
        update as it arrives (each chunk's answer and each segment's final), the stream's last
        (is_final) last. `realtime` paces the chunks like a live source (chunk k is sent at
        k x chunk_seconds); otherwise each chunk is sent when the previous chunk's answer has
        arrived (finals may still be on their way). END is sent however the generator is left."""
        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        step = max(1, int(chunk_seconds * spec.SAMPLE_RATE))
        starts = list(range(0, max(audio.size, 1), step))
        with self.open_stream(hotwords, sequence_id, model) as live:
            began = time.perf_counter()
            for k, start in enumerate(starts):
                if realtime:
                    time.sleep(max(0.0, began + k * chunk_seconds - time.perf_counter()))
                chunk = audio[start: start + step]
                if k == len(starts) - 1:
                    live.end(chunk)
                else:
                    live.send(chunk)
                while True:
                    update = live.get(None if not realtime else 0.0)
                    if update is None:
                        break
                    yield update
                    if update.is_final or (not realtime and update.kind == "chunk"):
                        break
            yield from live.updates()

    def stream_file(self, path: str | Path, **kwargs: Any) -> Iterator[StreamUpdate]:
        """Stream any soundfile-readable file (see `stream`)."""
        return self.stream(load_audio(path), **kwargs)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TranscriptionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveStream:
    """One stream of the `streaming_asr` model, fed chunk by chunk (TranscriptionClient.open_stream).

    `send` and `end` return at once; every chunk gets its answer, and every segment closed before
    END its final as an update of its own (StreamUpdate.kind), read with `get` or `updates` (a
    server-side error of the stream is raised there as ClientError). `close` (and
    leaving `with`) sends END if the caller has not, waits for the requests in flight and closes
    the gRPC stream, so the server frees the stream's state and sequence slot at once."""

    def __init__(self, owner: TranscriptionClient, model: str, hotwords: list[str] | str | None,
                 sequence_id: int, on_update: Callable[[StreamUpdate | ClientError], None] | None = None) -> None:
        self.owner, self.model, self.sequence_id = owner, model, sequence_id
        self.hotwords = hotwords if hotwords is None or isinstance(hotwords, str) else ",".join(hotwords)
        self.sent: dict[int, float] = {}
        self.samples: dict[int, int] = {}
        self.received = 0      # chunks answered (or failed)
        self.owed = 0          # segment finals announced (speech_stopped) and not received yet
        self.ended = False
        self.closed = False
        self.on_update = on_update
        self._queue: queue.Queue[StreamUpdate | ClientError] = queue.Queue()
        owner._client.start_stream(callback=self._deliver, stream_timeout=None)

    def _deliver(self, result: InferResult | None, error: InferenceServerException | None) -> None:
        """gRPC's callback thread: each response becomes an update (or the stream's error), handed
        to `on_update` when given, else queued for `get`."""
        arrived = time.perf_counter()
        if error is not None or result is None:   # gRPC gives one of the two
            message = getattr(error, "message", lambda: str(error))()
            item: StreamUpdate | ClientError = ClientError(f"server rejected the stream: {message}")
        else:
            chunk = int(result.get_response().id)
            events = json.loads(result.as_numpy(spec.STREAM_EVENTS).reshape(-1)[0].decode("utf-8"))
            item = StreamUpdate(result.as_numpy(spec.TRANSCRIPT).reshape(-1)[0].decode("utf-8"),
                                bool(result.as_numpy(spec.IS_FINAL).reshape(-1)[0]), chunk,
                                arrived - self.sent[chunk], self.samples[chunk] / spec.SAMPLE_RATE, events)
        if self.on_update is not None:
            self._count(item)
            self.on_update(item)
        else:
            self._queue.put(item)

    def send(self, audio: AnyArray, end: bool = False) -> int:
        """Send the next chunk (float32 mono 16 kHz; may be empty with `end`); returns its index."""
        if self.ended:
            raise ClientError("the stream has ended: open a new one")
        module = self.owner._module
        chunk = np.ascontiguousarray(audio, dtype=np.float32).reshape(1, -1)
        k = len(self.sent)
        inputs = [module.InferInput(spec.AUDIO, list(chunk.shape), "FP32")]
        inputs[0].set_data_from_numpy(chunk)
        if k == 0 and self.hotwords is not None:
            inputs.append(module.InferInput(spec.HOTWORDS, [1, 1], "BYTES"))
            inputs[1].set_data_from_numpy(np.array([[self.hotwords.encode("utf-8")]], dtype=np.object_))
        self.samples[k] = self.samples.get(k - 1, 0) + chunk.size
        self.sent[k] = time.perf_counter()
        self.ended = end
        self.owner._client.async_stream_infer(
            self.model, inputs, request_id=str(k), sequence_id=self.sequence_id, sequence_start=k == 0,
            sequence_end=end, outputs=[module.InferRequestedOutput(n)
                                       for n in (spec.TRANSCRIPT, spec.IS_FINAL, spec.STREAM_EVENTS)])
        return k

    def end(self, audio: AnyArray | None = None) -> int:
        """Send the last chunk (END; empty by default): its update comes after the stream's other
        finals and carries the open segment's final."""
        return self.send(np.zeros(0, np.float32) if audio is None else audio, end=True)

    def _count(self, item: StreamUpdate | ClientError) -> None:
        if isinstance(item, StreamUpdate):
            self.owed += item.finals_owed
            if item.kind == "final":    # owed, not a chunk's answer
                return
        self.received += 1

    @property
    def outstanding(self) -> int:
        """Responses still to come: an answer per chunk sent, and the finals announced."""
        return len(self.sent) + self.owed - self.received

    def get(self, timeout: float | None = None) -> StreamUpdate | None:
        """The next update; None when there is none within `timeout` (0: only one already there;
        None: the client's timeout, then ClientError), or none is to come. Not with `on_update`."""
        if self.outstanding <= 0:
            return None
        try:
            item = self._queue.get_nowait() if timeout == 0 else \
                self._queue.get(timeout=self.owner.timeout if timeout is None else timeout)
        except queue.Empty:
            if timeout is None:
                raise ClientError(f"no streaming response within {self.owner.timeout:g} s") from None
            return None
        self._count(item)
        if isinstance(item, ClientError):
            raise item
        return item

    def updates(self) -> Iterator[StreamUpdate]:
        """The updates of every chunk sent so far and the finals they announced, as they arrive
        (the client's timeout each)."""
        while self.outstanding > 0:
            update = self.get()
            assert update is not None
            yield update

    def close(self) -> None:
        """END if not sent (errors of that cleanup END are ignored), then close the gRPC stream
        once the server has answered what was sent."""
        if self.closed:
            return
        self.closed = True
        try:
            if not self.ended and self.sent:
                self.end()
        except Exception:  # the connection is gone: nothing more to free
            pass
        self.owner._client.stop_stream()

    def __enter__(self) -> LiveStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_connection_failure(exc: InferenceServerException) -> bool:
    """gRPC reports a dead server as an InferenceServerException too: tell it from a refusal."""
    return str(exc.status()) in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")


def _is_refusal(exc: InferenceServerException) -> bool:
    """The request's fault (HTTP 4xx, gRPC INVALID_ARGUMENT...), not a failure inside the server."""
    status = str(exc.status() or "")
    return status.startswith("4") or status in ("StatusCode.INVALID_ARGUMENT", "StatusCode.NOT_FOUND",
                                                "StatusCode.OUT_OF_RANGE", "StatusCode.FAILED_PRECONDITION")


__all__ = ["AudioError", "ClientError", "LiveStream", "RequestRejected", "ServerUnreachable", "StreamUpdate",
           "Transcription", "TranscriptionClient", "read_file", "stream_transcript"]
