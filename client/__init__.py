"""Small Python API for the `asr` ensemble: audio in, text out, over HTTP or gRPC.

    from client import TranscriptionClient
    with TranscriptionClient("127.0.0.1:8000") as asr:
        print(asr.transcribe_file("speech.flac"))                  # decoded here, sent as float32
        print(asr.transcribe_file("speech.mp3", send_file=True))   # the file's bytes, decoded in Triton
        result = asr.transcribe_full(audio, hotwords=["KUBERNETES"])   # text + word timestamps

Hotwords are boosted by the beam-search decoder (a server built with `--decoder-mode beam`);
the greedy decoder ignores them. Word timestamps come from every decoder.

Streaming (gRPC only; the `streaming_asr` model, docs/streaming.md): partial transcripts while
the audio is sent in chunks, then the final one:

    with TranscriptionClient("127.0.0.1:8001", "grpc") as asr:
        for update in asr.stream(audio, chunk_seconds=0.5, realtime=True):
            print("final" if update.is_final else "partial", update.text)
"""
from __future__ import annotations

import json
import queue
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from w2v_triton.serving import spec
from w2v_triton.serving.audio import AudioError, load_audio

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
    words: list[dict] = field(default_factory=list)
    duration_s: float | None = None


@dataclass
class StreamUpdate:
    """One response of a stream: the partial (or, when is_final, the final) transcript after
    chunk `chunk` (0-based), `latency_s` after that chunk was sent; `audio_s` of audio sent."""

    text: str
    is_final: bool
    chunk: int
    latency_s: float
    audio_s: float
    words: list[dict] = field(default_factory=list)


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

    def transcribe(self, audio: np.ndarray | bytes, hotwords: list[str] | str | None = None,
                   prompt: str | None = None) -> str:
        """Transcribe float32 mono 16 kHz samples, or an encoded file's bytes (decoded by the server).
        `prompt`: text whose words the server's LM does not know are boosted (docs/decoding.md)."""
        return self._infer(audio, hotwords, timestamps=False, prompt=prompt).text

    def transcribe_full(self, audio: np.ndarray | bytes, hotwords: list[str] | str | None = None,
                        prompt: str | None = None) -> Transcription:
        """Transcript and word timestamps of float32 mono 16 kHz samples or an encoded file's bytes."""
        return self._infer(audio, hotwords, timestamps=True, prompt=prompt)

    def transcribe_file(self, path: str | Path, hotwords: list[str] | str | None = None,
                        send_file: bool = False) -> str:
        """Transcribe an audio file: decoded here and sent as float32 (default), or with
        `send_file` sent as its bytes (AUDIO_FILE) for the server to decode."""
        return self.transcribe(read_file(path) if send_file else load_audio(path), hotwords)

    def _infer(self, audio: np.ndarray | bytes, hotwords: list[str] | str | None, timestamps: bool,
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

    def stream(self, audio: np.ndarray, chunk_seconds: float = 0.5, realtime: bool = False,
               hotwords: list[str] | str | None = None, sequence_id: int | None = None,
               model: str = spec.STREAMING_MODEL) -> Iterator[StreamUpdate]:
        """Send float32 mono 16 kHz `audio` as one stream of `chunk_seconds` chunks over gRPC
        bidirectional streaming and yield each chunk's update, the final one last. `realtime`
        paces the chunks like a live source (chunk k is sent at k x chunk_seconds); otherwise
        each chunk is sent when the previous chunk's update has arrived."""
        if self.protocol != "grpc":
            raise ClientError("streaming needs protocol 'grpc' (gRPC bidirectional streaming)")
        self.check_ready(model)
        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        step = max(1, int(chunk_seconds * spec.SAMPLE_RATE))
        starts = list(range(0, max(audio.size, 1), step))
        sequence_id = sequence_id or random.getrandbits(62) + 1
        updates: queue.Queue = queue.Queue()
        self._client.start_stream(callback=lambda result, error: updates.put((result, error, time.perf_counter())),
                                  stream_timeout=self.timeout)
        sent: dict[int, float] = {}
        received = 0
        try:
            began = time.perf_counter()
            for k, start in enumerate(starts):
                if realtime:
                    time.sleep(max(0.0, began + k * chunk_seconds - time.perf_counter()))
                chunk = audio[start: start + step].reshape(1, -1)
                inputs = [self._module.InferInput(spec.AUDIO, list(chunk.shape), "FP32")]
                inputs[0].set_data_from_numpy(chunk)
                if k == 0 and hotwords is not None:
                    joined = hotwords if isinstance(hotwords, str) else ",".join(hotwords)
                    inputs.append(self._module.InferInput(spec.HOTWORDS, [1, 1], "BYTES"))
                    inputs[1].set_data_from_numpy(np.array([[joined.encode("utf-8")]], dtype=np.object_))
                sent[k] = time.perf_counter()
                self._client.async_stream_infer(
                    model, inputs, request_id=str(k), sequence_id=sequence_id, sequence_start=k == 0,
                    sequence_end=k == len(starts) - 1,
                    outputs=[self._module.InferRequestedOutput(n)
                             for n in (spec.TRANSCRIPT, spec.IS_FINAL, spec.WORD_TIMESTAMPS)])
                while received < k + 1 and (not realtime or not updates.empty() or k == len(starts) - 1):
                    update = self._next_update(updates, sent, step, audio.size)
                    received += 1
                    yield update
                    if update.is_final:
                        return
            while received < len(starts):
                update = self._next_update(updates, sent, step, audio.size)
                received += 1
                yield update
                if update.is_final:
                    return
        finally:
            self._client.stop_stream()

    def _next_update(self, updates: queue.Queue, sent: dict[int, float], step: int, samples: int) -> StreamUpdate:
        try:
            result, error, arrived = updates.get(timeout=self.timeout)
        except queue.Empty:
            raise ClientError(f"no streaming response within {self.timeout:g} s") from None
        if error is not None:
            message = getattr(error, "message", lambda: str(error))()
            raise ClientError(f"server rejected the stream: {message}")
        chunk = int(result.get_response().id)
        words = json.loads(result.as_numpy(spec.WORD_TIMESTAMPS).reshape(-1)[0].decode("utf-8"))
        return StreamUpdate(result.as_numpy(spec.TRANSCRIPT).reshape(-1)[0].decode("utf-8"),
                            bool(result.as_numpy(spec.IS_FINAL).reshape(-1)[0]), chunk,
                            arrived - sent[chunk], min(samples, (chunk + 1) * step) / spec.SAMPLE_RATE, words)

    def stream_file(self, path: str | Path, **kwargs) -> Iterator[StreamUpdate]:
        """Stream any soundfile-readable file (see `stream`)."""
        return self.stream(load_audio(path), **kwargs)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "TranscriptionClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_connection_failure(exc) -> bool:
    """gRPC reports a dead server as an InferenceServerException too: tell it from a refusal."""
    return str(exc.status()) in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")


def _is_refusal(exc) -> bool:
    """The request's fault (HTTP 4xx, gRPC INVALID_ARGUMENT...), not a failure inside the server."""
    status = str(exc.status() or "")
    return status.startswith("4") or status in ("StatusCode.INVALID_ARGUMENT", "StatusCode.NOT_FOUND",
                                                "StatusCode.OUT_OF_RANGE", "StatusCode.FAILED_PRECONDITION")


__all__ = ["AudioError", "ClientError", "RequestRejected", "ServerUnreachable", "StreamUpdate", "Transcription",
           "TranscriptionClient", "read_file"]
