"""The gateway's settings: one typed dataclass, read from the environment (defaults defined here once).

    TRITON_URL (127.0.0.1:8000)  TRITON_PROTOCOL (http|grpc)  TRITON_TIMEOUT_S (120)
    TRITON_GRPC_URL (127.0.0.1:8001: /v1/realtime streams over gRPC)  GATEWAY_REALTIME_CHUNK_SECONDS (0.32)
    GATEWAY_MAX_UPLOAD_MB (25, OpenAI's limit)   GATEWAY_UPLOAD_TIMEOUT_S (120: the whole body)
    GATEWAY_LANGUAGE (english: what verbose_json reports; the model is not told a language)
    GATEWAY_API_KEYS (comma-separated)  GATEWAY_API_KEYS_FILE (one key per line)  GATEWAY_AUTH (auto|off)
    GATEWAY_RETRY_AFTER_S (5)
    GATEWAY_SEGMENT_PAUSE_S (0.5)  GATEWAY_SEGMENT_MAX_S (7)  GATEWAY_SEGMENT_MAX_CHARS (84)
    GATEWAY_SUBTITLE_LINE_CHARS (42)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping

from client import PROTOCOLS
from w2v_triton.serving.segments import SegmentRule

AUTH_MODES = ("auto", "off")   # auto: keys when configured, else loopback clients only; off: never checked

# field -> environment variable
ENV = {
    "triton_url": "TRITON_URL", "triton_protocol": "TRITON_PROTOCOL", "triton_timeout_s": "TRITON_TIMEOUT_S",
    "max_upload_mb": "GATEWAY_MAX_UPLOAD_MB", "upload_timeout_s": "GATEWAY_UPLOAD_TIMEOUT_S",
    "language": "GATEWAY_LANGUAGE", "api_keys": "GATEWAY_API_KEYS", "api_keys_file": "GATEWAY_API_KEYS_FILE",
    "auth": "GATEWAY_AUTH", "retry_after_s": "GATEWAY_RETRY_AFTER_S",
    "triton_grpc_url": "TRITON_GRPC_URL", "realtime_chunk_seconds": "GATEWAY_REALTIME_CHUNK_SECONDS",
}
SEGMENT_ENV = {"pause_s": "GATEWAY_SEGMENT_PAUSE_S", "max_seconds": "GATEWAY_SEGMENT_MAX_S",
               "max_chars": "GATEWAY_SEGMENT_MAX_CHARS", "line_chars": "GATEWAY_SUBTITLE_LINE_CHARS"}


class SettingsError(ValueError):
    """A setting that cannot work: the gateway refuses to start, naming the variable."""


@dataclass(frozen=True)
class Settings:
    triton_url: str = "127.0.0.1:8000"
    triton_protocol: str = "http"
    triton_timeout_s: float = 120.0
    max_upload_mb: float = 25.0
    upload_timeout_s: float = 120.0      # a body not received in full by then is cut (408)
    language: str = "english"
    api_keys: tuple[str, ...] = ()
    api_keys_file: str = ""
    auth: str = "auto"
    retry_after_s: int = 5               # Retry-After of a 502/503 (Triton unreachable or not ready)
    triton_grpc_url: str = "127.0.0.1:8001"   # /v1/realtime: streaming_asr over gRPC streaming
    realtime_chunk_seconds: float = 0.32      # /v1/realtime: audio per chunk sent to Triton
    segments: SegmentRule = field(default_factory=SegmentRule)

    def __post_init__(self) -> None:
        if self.triton_protocol not in PROTOCOLS:
            raise SettingsError(f"TRITON_PROTOCOL={self.triton_protocol!r}: expected one of {PROTOCOLS}")
        if self.auth not in AUTH_MODES:
            raise SettingsError(f"GATEWAY_AUTH={self.auth!r}: expected one of {AUTH_MODES}")
        for name in ("triton_timeout_s", "max_upload_mb", "upload_timeout_s", "realtime_chunk_seconds"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{ENV[name]} must be positive, got {getattr(self, name)}")
        if self.retry_after_s < 0:
            raise SettingsError("GATEWAY_RETRY_AFTER_S must be >= 0")

    def keys(self) -> tuple[str, ...]:
        """The accepted API keys: GATEWAY_API_KEYS and the lines of GATEWAY_API_KEYS_FILE (read
        at start-up; blank lines and '#' comments skipped)."""
        keys = list(self.api_keys)
        if self.api_keys_file:
            try:
                lines = Path(self.api_keys_file).read_text().splitlines()
            except OSError as exc:
                raise SettingsError(f"GATEWAY_API_KEYS_FILE={self.api_keys_file}: {exc.strerror or exc}") from None
            keys += [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        return tuple(dict.fromkeys(keys))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name in ENV and env.get(ENV[f.name], "") != "":
                values[f.name] = _parse(ENV[f.name], env[ENV[f.name]], f.type)
        rule = {f.name: _parse(SEGMENT_ENV[f.name], env[SEGMENT_ENV[f.name]], f.type)
                for f in fields(SegmentRule) if env.get(SEGMENT_ENV[f.name], "") != ""}
        if rule:
            try:
                values["segments"] = SegmentRule(**rule)   # type: ignore[arg-type]
            except ValueError as exc:
                raise SettingsError(f"{', '.join(SEGMENT_ENV[k] for k in rule)}: {exc}") from None
        return cls(**values)   # type: ignore[arg-type]


def _parse(name: str, raw: str, kind: object) -> object:
    """One variable's text as its field's type (the annotations are strings: `from __future__`)."""
    try:
        if kind in ("float", float):
            return float(raw)
        if kind in ("int", int):
            return int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None
    if str(kind).startswith("tuple"):
        return tuple(k.strip() for k in raw.split(",") if k.strip())
    return raw
