"""Every error the gateway answers is OpenAI's error object, so clients show its message:

    {"error": {"message": "...", "type": "invalid_request_error" | "server_error", "param": ..., "code": ...}}

That includes what FastAPI/Starlette answer by themselves (unknown path 404, wrong method 405,
validation 422) and an unexpected exception (500).
"""
from __future__ import annotations

import logging
from typing import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger("w2v_triton.gateway")

INVALID = "invalid_request_error"
SERVER = "server_error"


class APIError(Exception):
    """An answer in OpenAI's error shape; 400 invalid_request_error unless told otherwise."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, kind: str = INVALID,
                 code: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.param, self.status, self.kind, self.code = param, status, kind, code
        self.headers = dict(headers or {})


def error_response(status: int, message: str, kind: str = INVALID, param: str | None = None,
                   code: str | None = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status,
                        headers=dict(headers or {}))


def install(app: FastAPI) -> None:
    """Route every kind of failure through `error_response`."""

    @app.exception_handler(APIError)
    async def api_error(_request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, str(exc), exc.kind, exc.param, exc.code, exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 404:   # OpenAI's own wording for an unknown URL
            message = f"Invalid URL ({request.method} {request.url.path})"
        elif exc.status_code == 405:
            message = (f"Method {request.method} is not allowed on {request.url.path}; "
                       f"allowed: {headers.get('allow', headers.get('Allow', '?'))}")
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, message, INVALID if exc.status_code < 500 else SERVER,
                              headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return error_response(422, f"invalid request: {first.get('msg', exc)}", INVALID, param)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error: %s", exc)
        return error_response(500, f"internal error in the gateway ({type(exc).__name__}); see its log", SERVER)
