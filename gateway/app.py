"""OpenAI-compatible HTTP gateway in front of the Triton `asr` ensemble: routing only.

    POST /v1/audio/transcriptions   multipart `file` (+ `model`, `response_format`, ...), as OpenAI's
    GET  /v1/models                 the one model served
    GET  /health                    200 when Triton and the ensemble are ready, else 503
    GET  /metrics                   Prometheus text format (gateway/metrics.py)
    GET  /                          a page to upload or record audio (static/index.html)
    WS   /v1/realtime               Realtime-style transcription sessions (realtime.py)

The uploaded bytes go unchanged to the ensemble's AUDIO_FILE input through the project's
client (tritonclient): decoding, resampling, recognition and word timing all run inside Triton;
the gateway turns the words into OpenAI's formats (gateway/formats.py). Parameters:
gateway/params.py; settings (environment): gateway/settings.py; keys: gateway/auth.py; errors
in OpenAI's shape: gateway/errors.py. Run: `make gateway`, or `uvicorn gateway.app:app --port 8080`.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.types import Message

from client import ClientError, RequestRejected, ServerUnreachable, Transcription, TranscriptionClient
from gateway import errors, formats, params
from gateway.auth import KeyCheck
from gateway.errors import SERVER, APIError
from gateway.metrics import GatewayMetrics
from gateway.realtime import realtime_router
from gateway.settings import Settings
from w2v_triton.serving import spec
from w2v_triton.serving.ctc_decoding import DecoderConfig, prompt_words

log = logging.getLogger("w2v_triton.gateway")
PAGE = Path(__file__).parent / "static" / "index.html"
MULTIPART_SLACK = 64_000   # bytes of multipart framing and form fields allowed beyond the file limit


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    keys = KeyCheck(settings.keys(), settings.auth)
    metrics = GatewayMetrics()
    app = FastAPI(title="w2v-triton gateway", version="1", docs_url="/docs", redoc_url=None)
    errors.install(app)
    metrics.install(app)
    app.include_router(realtime_router(settings, keys))
    retry = {"Retry-After": str(settings.retry_after_s)}
    served_decoder: list[DecoderConfig] = []   # read from Triton at the first prompt
    if not keys.enabled and settings.auth == "auto":
        log.info("no API keys configured: only clients on the loopback interface are served")

    def client() -> TranscriptionClient:
        return TranscriptionClient(settings.triton_url, settings.triton_protocol, settings.triton_timeout_s)

    def transcribe(data: bytes, prompt: str) -> Transcription:   # blocking: runs in the thread pool
        with client() as asr:
            return asr.transcribe_full(data, prompt=prompt or None)

    def decoder_config() -> DecoderConfig | None:
        """The served decoder's settings (whether it takes a prompt, how many of its words); None
        when Triton cannot say (the prompt is then sent without a note)."""
        if not served_decoder:
            try:
                with client() as asr:
                    parameters = asr.model_parameters(spec.DECODER_MODEL)
                served_decoder.append(DecoderConfig.from_parameters(parameters, check_files=False))
            except (ClientError, ValueError) as exc:
                log.warning("cannot read the decoder's settings: %s", exc)
                return None
        return served_decoder[0]

    def ready() -> str | None:
        with client() as asr:
            try:
                asr.check_ready()
            except ServerUnreachable as exc:
                return str(exc)
        return None

    async def authorized(request: Request) -> None:
        keys.check_connection(request)

    async def read_form(request: Request) -> FormData:
        """The multipart body, cut off past the size limit or the upload timeout."""
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise APIError(f"expected a multipart/form-data body with a 'file' field, got "
                           f"'{content_type or 'no content type'}'")
        limit = int(settings.max_upload_mb * 1e6)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:   # refused before the body is read
            raise APIError(f"the request is {int(declared) / 1e6:.1f} MB; files up to "
                           f"{settings.max_upload_mb:g} MB are accepted", "file", status=413)
        received = 0

        async def receive() -> Message:   # counts the body as it arrives (chunked uploads state no length)
            nonlocal received
            message = await request.receive()
            received += len(message.get("body", b""))
            if received > limit + MULTIPART_SLACK:
                raise APIError(f"the file is over the limit of {settings.max_upload_mb:g} MB", "file", status=413)
            return message

        try:
            return await asyncio.wait_for(Request(request.scope, receive).form(), settings.upload_timeout_s)
        except asyncio.TimeoutError:
            raise APIError(f"the upload did not arrive within {settings.upload_timeout_s:g} s "
                           "(GATEWAY_UPLOAD_TIMEOUT_S)", "file", status=408, code="upload_timeout") from None
        except APIError:
            raise
        except Exception as exc:   # a broken multipart body
            raise APIError(f"expected a multipart/form-data body with a 'file' field ({exc})") from None

    api = APIRouter(prefix="/v1", dependencies=[Depends(authorized)])

    @api.get("/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": spec.ENSEMBLE_MODEL, "object": "model", "created": 0,
                                            "owned_by": "w2v-triton"}]}

    @api.post("/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        form = await read_form(request)
        try:
            options = params.parse(form)
            request.state.response_format = options.response_format
            data = await options.upload.read()
            if len(data) > settings.max_upload_mb * 1e6:
                raise APIError(f"the file is over the limit of {settings.max_upload_mb:g} MB", "file", status=413)
        finally:
            await form.close()
        if options.prompt:
            options.notes += prompt_notes(options.prompt, await run_in_threadpool(decoder_config))
        try:
            result = await run_in_threadpool(transcribe, data, options.prompt)
        except RequestRejected as exc:     # bad audio: Triton's preprocessor says what is wrong
            raise APIError(str(exc).removeprefix("server rejected the request: "), "file") from None
        except ServerUnreachable as exc:
            log.warning("Triton unreachable: %s", exc)
            raise APIError(f"the speech recognition server is unavailable: {exc}", status=502, kind=SERVER,
                           headers=retry) from None
        except ClientError as exc:         # Triton failed inside (a model crashed): not the caller's fault
            log.error("Triton failed: %s", exc)
            raise APIError(f"the speech recognition server failed: {exc}", status=502, kind=SERVER) from None
        if result.duration_s:
            metrics.audio.inc(result.duration_s)
        return respond(result, options, settings)

    app.include_router(api)

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
            return JSONResponse(body, 503, headers=retry)
        return JSONResponse(body)

    return app


def prompt_notes(prompt: str, decoder: DecoderConfig | None) -> list[str]:
    """What the caller should know about its prompt on this server."""
    if decoder is None:
        return []
    if decoder.mode != "beam":
        return ["'prompt' is ignored: this server's decoder is greedy and takes no hotwords"]
    words = len(prompt_words(prompt))
    if words > decoder.max_prompt_words:
        return [f"'prompt': only its first {decoder.max_prompt_words} of {words} distinct words are considered"]
    return []


def respond(result: Transcription, options: params.TranscriptionParams, settings: Settings) -> Response:
    """The transcription in the asked response_format, with the notes header."""
    headers = {"X-Gateway-Note": " | ".join(options.notes)} if options.notes else {}
    fmt = options.response_format
    if fmt == "text":
        return PlainTextResponse(result.text, headers=headers)
    if fmt == "json":
        return JSONResponse({"text": result.text}, headers=headers)
    words, segments = formats.segments_of(result.words, settings.segments)
    if fmt == "srt":
        return PlainTextResponse(formats.srt(segments, settings.segments), headers=headers)
    if fmt == "vtt":
        return Response(formats.vtt(segments, settings.segments), media_type="text/vtt", headers=headers)
    asked_words = "word" in options.granularities
    return JSONResponse(formats.verbose_json(result.text, result.duration_s, settings.language, segments,
                                             words if asked_words else None), headers=headers)


app = create_app()
