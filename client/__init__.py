"""Small Python API for the `asr` ensemble: audio in, text out, over HTTP or gRPC.

    from client import TranscriptionClient
    with TranscriptionClient("127.0.0.1:8000") as asr:
        print(asr.transcribe_file("speech.flac"))
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from w2v_triton import spec
from w2v_triton.audio import AudioError, load_audio

PROTOCOLS = ("http", "grpc")


class ClientError(RuntimeError):
    """The server cannot be reached or rejected the request; the message says which."""


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
        self._module = module
        self._checked = False

    def _check_ready(self) -> None:
        if self._checked:
            return
        try:
            ready = self._client.is_model_ready(self.model)
        except Exception as exc:  # connection refused, DNS, timeout: all mean "unreachable"
            raise ClientError(f"cannot reach a Triton server at {self.url} over {self.protocol} "
                              f"({type(exc).__name__}); is `make serve` running?") from None
        if not ready:
            raise ClientError(f"the server at {self.url} is up but model '{self.model}' is not ready")
        self._checked = True

    def transcribe(self, audio: np.ndarray) -> str:
        """Transcribe float32 mono 16 kHz samples."""
        self._check_ready()
        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(1, -1)
        request = self._module.InferInput(spec.AUDIO, list(audio.shape), "FP32")
        request.set_data_from_numpy(audio)
        output = self._module.InferRequestedOutput(spec.TRANSCRIPT)
        try:
            if self.protocol == "grpc":
                result = self._client.infer(self.model, [request], outputs=[output],
                                            client_timeout=self.timeout)
            else:
                result = self._client.infer(self.model, [request], outputs=[output])
        except Exception as exc:
            message = getattr(exc, "message", lambda: str(exc))()
            raise ClientError(f"server rejected the request: {message}") from None
        return result.as_numpy(spec.TRANSCRIPT).reshape(-1)[0].decode("utf-8")

    def transcribe_file(self, path: str | Path) -> str:
        """Read any soundfile-readable file (any rate/channels/format) and transcribe it."""
        return self.transcribe(load_audio(path))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "TranscriptionClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["AudioError", "ClientError", "TranscriptionClient"]
