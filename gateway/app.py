"""OpenAI-compatible HTTP gateway in front of the Triton `asr` ensemble: routing only.

    POST /v1/audio/transcriptions   multipart `file` (+ `model`, `response_format`, ...), as OpenAI's
    GET  /v1/models                 the one model served
    GET  /health                    200 when Triton and the ensemble are ready, else 503
    GET  /                          a page to upload or record audio (static/index.html)
    WS   /v1/realtime               Realtime-style transcription sessions (realtime.py)

The uploaded bytes go unchanged to the ensemble's AUDIO_FILE input through the project's
client (tritonclient): decoding, resampling, recognition and word timing all run inside Triton.
Settings come from the environment: TRITON_URL (host:port, default 127.0.0.1:8000),
TRITON_PROTOCOL (http|grpc), TRITON_TIMEOUT_S, GATEWAY_MAX_UPLOAD_MB (default 25, OpenAI's limit),
GATEWAY_LANGUAGE (what verbose_json reports; the model is not told a language).
Run: `make gateway`, or `uvicorn gateway.app:app --port 8080`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from client import PROTOCOLS, ClientError, RequestRejected, ServerUnreachable, Transcription, TranscriptionClient
from gateway.realtime import realtime_router
from w2v_triton.serving import spec

log = logging.getLogger("w2v_triton.gateway")
PAGE = Path(__file__).parent / "static" / "index.html"
RESPONSE_FORMATS = ("json", "text", "verbose_json")
IGNORED_LANGUAGE_NOTE = ("'language' is ignored: the model transcribes the language it was trained on "
                         "and is not told one")


@dataclass(frozen=True)
class Settings:
    triton_url: str = "127.0.0.1:8000"
    triton_protocol: str = "http"
    triton_timeout_s: float = 120.0
    max_upload_mb: float = 25.0
    language: str = "english"

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ
        if env.get("TRITON_PROTOCOL", cls.triton_protocol) not in PROTOCOLS:
            raise ValueError(f"TRITON_PROTOCOL={env['TRITON_PROTOCOL']!r}: expected one of {PROTOCOLS}")
        return cls(env.get("TRITON_URL", cls.triton_url), env.get("TRITON_PROTOCOL", cls.triton_protocol),
                   float(env.get("TRITON_TIMEOUT_S", cls.triton_timeout_s)),
                   float(env.get("GATEWAY_MAX_UPLOAD_MB", cls.max_upload_mb)),
                   env.get("GATEWAY_LANGUAGE", cls.language))


class BadRequest(Exception):
    """A request this gateway cannot serve: answered 400 in OpenAI's error shape."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param, self.status = param, status


def _error(status: int, message: str, kind: str, param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}}, status)


def _options(form) -> tuple[UploadFile, str, list[str]]:
    """Check the form against what the ensemble can do; return (file, response_format, notes)."""
    known = {"file", "model", "language", "prompt", "response_format", "temperature",
             "timestamp_granularities[]", "timestamp_granularities", "stream"}
    unknown = sorted(set(form.keys()) - known)
    if unknown:
        raise BadRequest(f"unsupported field(s): {', '.join(unknown)}; this gateway accepts "
                         f"{', '.join(sorted(known))}", unknown[0])
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise BadRequest("'file' is required: the audio file as a multipart upload", "file")
    if not str(form.get("model") or "").strip():
        raise BadRequest("'model' is required (any name: this gateway serves one model)", "model")
    response_format = form.get("response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise BadRequest(f"response_format '{response_format}' is not supported; use one of "
                         f"{', '.join(RESPONSE_FORMATS)}", "response_format")
    if str(form.get("prompt") or "").strip():
        raise BadRequest("'prompt' is not supported: a CTC model takes no text prompt", "prompt")
    temperature = form.get("temperature")
    if temperature not in (None, "") and _float(temperature, "temperature") != 0.0:
        raise BadRequest("'temperature' must be 0: decoding is deterministic", "temperature")
    if str(form.get("stream") or "false").lower() not in ("false", "0"):
        raise BadRequest("'stream' is not supported: the transcript comes in one response", "stream")
    granularities = form.getlist("timestamp_granularities[]") + form.getlist("timestamp_granularities")
    if set(granularities) - {"word"}:
        raise BadRequest("only word timestamps exist (timestamp_granularities[]=word); the ensemble "
                         "has no segments", "timestamp_granularities[]")
    notes = [IGNORED_LANGUAGE_NOTE] if str(form.get("language") or "").strip() else []
    return upload, response_format, notes


def _float(value: str, param: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise BadRequest(f"'{param}' must be a number, got {value!r}", param) from None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    app = FastAPI(title="w2v-triton gateway", version="1", docs_url="/docs", redoc_url=None)
    app.include_router(realtime_router())

    def client() -> TranscriptionClient:
        return TranscriptionClient(settings.triton_url, settings.triton_protocol, settings.triton_timeout_s)

    def transcribe(data: bytes) -> Transcription:   # blocking: runs in the thread pool
        with client() as asr:
            return asr.transcribe_full(data)

    def ready() -> str | None:
        with client() as asr:
            try:
                asr.check_ready()
            except ServerUnreachable as exc:
                return str(exc)
        return None

    @app.exception_handler(BadRequest)
    async def bad_request(_request: Request, exc: BadRequest) -> JSONResponse:
        return _error(exc.status, str(exc), "invalid_request_error", exc.param)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(PAGE, media_type="text/html")

    @app.get("/health")
    async def health() -> JSONResponse:
        problem = await run_in_threadpool(ready)
        body = {"status": "ok" if problem is None else "unavailable", "triton": settings.triton_url,
                "model": spec.ENSEMBLE_MODEL}
        if problem is not None:
            body["detail"] = problem
        return JSONResponse(body, 200 if problem is None else 503)

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": spec.ENSEMBLE_MODEL, "object": "model", "created": 0,
                                            "owned_by": "w2v-triton"}]}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise BadRequest(f"expected a multipart/form-data body with a 'file' field, got "
                             f"'{content_type or 'no content type'}'")
        limit = int(settings.max_upload_mb * 1e6)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + 64_000:   # refused before the body is read
            raise BadRequest(f"the request is {int(declared) / 1e6:.1f} MB; files up to "
                             f"{settings.max_upload_mb:g} MB are accepted", "file", status=413)
        try:
            form = await request.form()
        except Exception as exc:   # a broken multipart body
            raise BadRequest(f"expected a multipart/form-data body with a 'file' field ({exc})") from None
        upload, response_format, notes = _options(form)
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise BadRequest(f"the file is over the limit of {settings.max_upload_mb:g} MB", "file", status=413)
        try:
            result = await run_in_threadpool(transcribe, data)
        except RequestRejected as exc:     # bad audio: Triton's preprocessor says what is wrong
            raise BadRequest(str(exc).removeprefix("server rejected the request: "), "file") from None
        except ServerUnreachable as exc:
            log.warning("Triton unreachable: %s", exc)
            return _error(502, f"the speech recognition server is unavailable: {exc}", "server_error")
        except ClientError as exc:         # Triton failed inside (a model crashed): not the caller's fault
            log.error("Triton failed: %s", exc)
            return _error(502, f"the speech recognition server failed: {exc}", "server_error")
        headers = {"X-Gateway-Note": " | ".join(notes)} if notes else {}
        if response_format == "text":
            return PlainTextResponse(result.text, headers=headers)
        if response_format == "json":
            return JSONResponse({"text": result.text}, headers=headers)
        words = [{"word": w["word"], "start": w["start_s"], "end": w["end_s"]} for w in result.words]
        return JSONResponse({"task": "transcribe", "language": settings.language, "duration": result.duration_s,
                             "text": result.text, "words": words}, headers=headers)

    return app


app = create_app()
