"""Small Python API for the `asr` ensemble: audio in, text out, over HTTP or gRPC.

    from client import TranscriptionClient
    with TranscriptionClient("127.0.0.1:8000") as asr:
        print(asr.transcribe_file("speech.flac"))                  # decoded here, sent as float32
        print(asr.transcribe_file("speech.mp3", send_file=True))   # the file's bytes, decoded in Triton
        result = asr.transcribe_full(audio, hotwords=["KUBERNETES"])   # text + word timestamps

Hotwords are boosted by the beam-search decoder (a server built with `--decoder-mode beam`);
the greedy decoder ignores them. Word timestamps come from every decoder.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from w2v_triton import spec
from w2v_triton.audio import AudioError, load_audio

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
    """A transcript and its words, {"word", "start_s", "end_s"} each, as the decoder sends them;
    `duration_s`: the length of the audio the server transcribed (of a file: as decoded)."""

    text: str
    words: list[dict] = field(default_factory=list)
    duration_s: float | None = None


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

    def check_ready(self) -> None:
        """Raise ServerUnreachable unless the server answers and the model is ready (once per client)."""
        if self._checked:
            return
        try:
            ready = self._client.is_model_ready(self.model)
        except Exception as exc:  # connection refused, DNS, timeout: all mean "unreachable"
            raise self._unreachable(exc) from None
        if not ready:
            raise ServerUnreachable(f"the server at {self.url} is up but model '{self.model}' is not ready")
        self._checked = True

    def transcribe(self, audio: np.ndarray | bytes, hotwords: list[str] | str | None = None) -> str:
        """Transcribe float32 mono 16 kHz samples, or an encoded file's bytes (decoded by the server)."""
        return self._infer(audio, hotwords, timestamps=False).text

    def transcribe_full(self, audio: np.ndarray | bytes, hotwords: list[str] | str | None = None) -> Transcription:
        """Transcript and word timestamps of float32 mono 16 kHz samples or an encoded file's bytes."""
        return self._infer(audio, hotwords, timestamps=True)

    def transcribe_file(self, path: str | Path, hotwords: list[str] | str | None = None,
                        send_file: bool = False) -> str:
        """Transcribe an audio file: decoded here and sent as float32 (default), or with
        `send_file` sent as its bytes (AUDIO_FILE) for the server to decode."""
        return self.transcribe(read_file(path) if send_file else load_audio(path), hotwords)

    def _infer(self, audio: np.ndarray | bytes, hotwords: list[str] | str | None, timestamps: bool) -> Transcription:
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


__all__ = ["AudioError", "ClientError", "RequestRejected", "ServerUnreachable", "Transcription",
           "TranscriptionClient", "read_file"]
