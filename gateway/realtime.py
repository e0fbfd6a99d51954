"""`/v1/realtime`: OpenAI Realtime-style transcription sessions over a WebSocket (docs/gateway.md).

One WebSocket = one session = Triton `streaming_asr` streams over gRPC (the gateway's HTTP
setting stays for files). The client sends, as in OpenAI's Realtime API (transcription intent):
`session.update`, `input_audio_buffer.append` (base64 16-bit PCM, 24 kHz mono: resampled here to
16 kHz with soxr's streaming resampler and sent in `GATEWAY_REALTIME_CHUNK_SECONDS` chunks),
`input_audio_buffer.commit` (ends the current Triton stream: its open segment's final follows)
and `input_audio_buffer.clear`. The server answers `session.created` / `session.updated`, and
from the streaming model's VAD and decoder: `input_audio_buffer.speech_started` /
`.speech_stopped` / `.committed`, `conversation.item.input_audio_transcription.delta` (committed
words only: append-only) and `.completed` (the segment's final: the acoustic model re-run over
that segment), and `error` (the session stays open; a failed Triton stream is dropped and the
next audio opens a new one). Turn detection is the server's (its values are read from the
model's config and reported); a session cannot change them. Closing the socket sends END at
once, so Triton frees the stream (tests: within 1 s).

Settings: gateway/settings.py (TRITON_GRPC_URL, GATEWAY_REALTIME_CHUNK_SECONDS, TRITON_TIMEOUT_S);
API keys as for every /v1 route (gateway/auth.py), from the handshake's Authorization header: a
refused key gets an `error` event and the socket closes (1008).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import secrets
from typing import Any

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from client import ClientError, LiveStream, StreamUpdate, TranscriptionClient
from gateway.auth import KeyCheck
from gateway.errors import APIError
from gateway.settings import Settings
from w2v_triton.serving import spec
from w2v_triton.serving.audio import AudioError, StreamResampler, pcm16_to_float
from w2v_triton.serving.streaming import StreamingConfig
from w2v_triton.serving.typing import FloatArray

log = logging.getLogger("w2v_triton.gateway.realtime")
INPUT_RATE = 24_000          # OpenAI's Realtime API: pcm16 at 24 kHz mono


class SessionError(Exception):
    """A client event this session refuses: an `error` event, the session stays open."""

    def __init__(self, message: str, code: str, param: str | None = None, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.code, self.param, self.kind = code, param, kind


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def turn_detection(config: StreamingConfig) -> dict[str, Any] | None:
    """The server's VAD settings in the Realtime API's words (None: no VAD)."""
    if config.vad == "none":
        return None
    return {"type": "server_vad", "threshold": config.vad_threshold,
            "prefix_padding_ms": round(1000 * config.speech_pad_seconds),
            "silence_duration_ms": round(1000 * config.min_silence_seconds),
            "create_response": False, "interrupt_response": False}


class Session:
    """One WebSocket's transcription session (see the module docstring)."""

    def __init__(self, socket: WebSocket, settings: Settings, config: StreamingConfig) -> None:
        self.socket, self.settings, self.config = socket, settings, config
        self.loop = asyncio.get_running_loop()
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.session: dict[str, Any] = {   # the JSON document session.updated sends
            "type": "transcription", "id": _id("sess"), "object": "realtime.transcription_session",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": INPUT_RATE},
                                "transcription": {"model": spec.STREAMING_MODEL, "language": None, "prompt": ""},
                                "turn_detection": turn_detection(config), "noise_reduction": None}},
            "include": None}
        self.client: TranscriptionClient | None = None
        self.live: LiveStream | None = None
        self._reset_input()
        self.chunk = max(1, int(settings.realtime_chunk_seconds * spec.SAMPLE_RATE))
        self.offset_ms = 0.0                       # session audio sent on earlier Triton streams
        self.stream_samples = 0                    # 16 kHz samples sent on the current stream
        self.items: dict[int, str] = {}            # segment of the current stream -> item id
        self.previous_item: str | None = None
        self.failed = False                        # the current stream failed in Triton: open another

    def _reset_input(self) -> None:
        """An empty input buffer: nothing pending, nothing appended, a fresh resampler."""
        self.resampler = StreamResampler(INPUT_RATE)
        self.pending: FloatArray = np.zeros(0, np.float32)   # 16 kHz samples not yet sent
        self.appended = 0                                    # 24 kHz samples appended since the last commit

    # -- out ----------------------------------------------------------------------------------
    def emit(self, event: dict[str, Any]) -> None:
        """Queue a server event (any thread)."""
        self.loop.call_soon_threadsafe(self.outbox.put_nowait, {"event_id": _id("event"), **event})

    async def sender(self) -> None:
        while (event := await self.outbox.get()) is not None:
            await self.socket.send_json(event)

    def error(self, exc: SessionError, event_id: str | None = None) -> None:
        self.emit({"type": "error", "error": {"type": exc.kind, "code": exc.code, "message": str(exc),
                                             "param": exc.param, "event_id": event_id}})

    # -- Triton stream ---------------------------------------------------------------------------
    def _open(self) -> LiveStream:
        """The current Triton stream (opened at the first audio after a commit), on the session's
        one gRPC connection (made at the first stream; a new one after a failed open)."""
        if self.live is None:
            if self.client is None:
                self.client = TranscriptionClient(self.settings.triton_grpc_url, "grpc", self.settings.triton_timeout_s)
            try:
                self.live = self.client.open_stream(on_update=self._on_update)
            except ClientError as exc:
                self._drop(disconnect=True)
                raise SessionError(f"the speech recognition server is unavailable: {exc}", "server_unavailable",
                                   kind="server_error") from None
            self.items = {}
        return self.live

    def _drop(self, disconnect: bool = False) -> None:
        """End the current Triton stream (END when not sent yet: the server frees it at once);
        its responses are in when this returns, so the session clock moves on after them.
        `disconnect`: close the session's gRPC connection too."""
        live, self.live = self.live, None
        if live is not None:
            live.close()
        if disconnect and self.client is not None:
            self.client.close()
            self.client = None
        self.offset_ms += 1000 * self.stream_samples / spec.SAMPLE_RATE
        self.stream_samples = 0

    def _on_update(self, update: StreamUpdate | ClientError) -> None:
        """gRPC's thread: the model's events become Realtime events."""
        if isinstance(update, ClientError):
            self.failed = True
            self.error(SessionError(str(update), "transcription_failed", kind="server_error"))
            return
        for event in update.events:
            segment = event["segment"]
            item = self.items.setdefault(segment, _id("item"))
            if event["type"] == "speech_started":
                self.emit({"type": "input_audio_buffer.speech_started", "item_id": item,
                           "audio_start_ms": round(self.offset_ms + 1000 * event["start_s"])})
            elif event["type"] == "delta":
                self.emit({"type": "conversation.item.input_audio_transcription.delta", "item_id": item,
                           "content_index": 0, "delta": event["text"]})
            elif event["type"] == "speech_stopped":
                self.emit({"type": "input_audio_buffer.speech_stopped", "item_id": item,
                           "audio_end_ms": round(self.offset_ms + 1000 * event["end_s"])})
                self.emit({"type": "input_audio_buffer.committed", "item_id": item,
                           "previous_item_id": self.previous_item})
                self.previous_item = item
            elif event["type"] == "final":
                self.emit({"type": "conversation.item.input_audio_transcription.completed", "item_id": item,
                           "content_index": 0, "transcript": event["text"],
                           "usage": {"type": "duration", "seconds": round(event["end_s"] - event["start_s"], 3)}})

    def _send(self, samples: FloatArray, end: bool = False) -> None:
        live = self._open()
        live.send(samples, end=end)
        self.stream_samples += samples.size

    # -- in -----------------------------------------------------------------------------------
    async def handle(self, raw: str) -> None:
        event_id = None
        try:
            try:
                event = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise SessionError(f"not JSON: {exc}", "invalid_json") from None
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise SessionError("an event is a JSON object with a 'type'", "invalid_event", "type")
            event_id = event.get("event_id")
            kind = event["type"]
            if kind == "session.update":
                self.update_session(event.get("session"))
            elif kind == "input_audio_buffer.append":
                if self.failed:   # a stream that failed in Triton: a new one on a new connection
                    self.failed = False
                    await run_in_threadpool(self._drop, True)
                self.append(event.get("audio"))
            elif kind == "input_audio_buffer.commit":
                await self.commit()
            elif kind == "input_audio_buffer.clear":
                await run_in_threadpool(self._drop)
                self._reset_input()
                self.emit({"type": "input_audio_buffer.cleared"})
            else:
                raise SessionError(f"unsupported event type {kind!r}: this transcription session takes "
                                   "session.update and input_audio_buffer.append/commit/clear", "invalid_event", "type")
        except SessionError as exc:
            self.error(exc, event_id)

    def update_session(self, session: Any) -> None:
        if not isinstance(session, dict):
            raise SessionError("session.update needs a 'session' object", "invalid_value", "session")
        if session.get("type", "transcription") != "transcription":
            raise SessionError("this endpoint serves transcription sessions only (session.type 'transcription')",
                               "invalid_value", "session.type")
        wanted = (session.get("audio") or {}).get("input") or {}
        current = self.session["audio"]["input"]
        fmt = wanted.get("format")
        if fmt is not None and (fmt.get("type") != "audio/pcm" or fmt.get("rate", INPUT_RATE) != INPUT_RATE):
            raise SessionError(f"unsupported audio format {fmt}: send 16-bit PCM at 24 kHz mono "
                               "({'type': 'audio/pcm', 'rate': 24000})", "invalid_value", "session.audio.input.format")
        turn = wanted.get("turn_detection", current["turn_detection"])
        server = current["turn_detection"]
        if turn != server and not (isinstance(turn, dict) and server is not None and all(
                turn.get(k, v) == v for k, v in server.items())):
            raise SessionError(f"turn detection is the server's and cannot change per session: {server}",
                               "invalid_value", "session.audio.input.turn_detection")
        if "transcription" in wanted and isinstance(wanted["transcription"], dict):
            current["transcription"] = {**current["transcription"], **wanted["transcription"]}
        self.emit({"type": "session.updated", "session": self.session})

    def append(self, audio: Any) -> None:
        if not isinstance(audio, str):
            raise SessionError("input_audio_buffer.append needs 'audio': base64 16-bit PCM", "invalid_value", "audio")
        try:
            samples = pcm16_to_float(base64.b64decode(audio, validate=True))
        except (binascii.Error, ValueError, AudioError) as exc:
            raise SessionError(f"audio is not base64 16-bit PCM: {exc}", "invalid_audio", "audio") from None
        self.appended += samples.size
        self.pending = np.concatenate([self.pending, self.resampler.feed(samples)])
        while self.pending.size >= self.chunk:
            piece, self.pending = self.pending[: self.chunk], self.pending[self.chunk:]
            self._send(piece)

    async def commit(self) -> None:
        """End the current Triton stream: its open segment's final follows (as `completed`)."""
        if not self.appended:
            raise SessionError("the input audio buffer is empty: append audio before committing",
                               "input_audio_buffer_commit_empty")
        tail = np.concatenate([self.pending, self.resampler.feed(np.zeros(0, np.float32), last=True)])
        live = self._open()
        if live.sent or tail.size:
            self._send(tail, end=True)
        self._reset_input()
        await run_in_threadpool(self._drop)   # waits for the END's response: its events are emitted first

    async def close(self) -> None:
        await run_in_threadpool(self._drop, True)
        self.outbox.put_nowait(None)


def streaming_config(settings: Settings) -> StreamingConfig:
    """The streaming model's settings as the server renders them (its VAD values are reported)."""
    with TranscriptionClient(settings.triton_grpc_url, "grpc", settings.triton_timeout_s) as triton:
        return StreamingConfig.from_parameters(triton.model_parameters(spec.STREAMING_MODEL))


def _event_error(kind: str, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "event_id": _id("event"),
            "error": {"type": kind, "code": code, "param": None, "event_id": None, "message": message}}


def realtime_router(settings: Settings, keys: KeyCheck) -> APIRouter:
    router = APIRouter()

    @router.websocket("/v1/realtime")
    async def realtime(socket: WebSocket) -> None:
        await socket.accept()
        try:
            keys.check_connection(socket)
        except APIError as exc:
            await socket.send_json(_event_error("invalid_request_error", "invalid_api_key", str(exc)))
            await socket.close(code=1008)
            return
        intent = socket.query_params.get("intent", "transcription")
        try:
            config = await run_in_threadpool(streaming_config, settings)
        except Exception as exc:   # Triton unreachable or no streaming model: say so, then close
            await socket.send_json(_event_error(
                "server_error", "server_unavailable",
                f"the speech recognition server is unavailable at {settings.triton_grpc_url}: {exc}"))
            await socket.close(code=1011)
            return
        session = Session(socket, settings, config)
        sender = asyncio.create_task(session.sender())
        if intent != "transcription":
            session.error(SessionError(f"intent {intent!r}: this endpoint serves transcription sessions "
                                       "(?intent=transcription)", "invalid_value", "intent"))
        session.emit({"type": "session.created", "session": session.session})
        try:
            while True:
                await session.handle(await socket.receive_text())
        except WebSocketDisconnect:
            pass
        finally:
            await session.close()
            sender.cancel()

    return router
