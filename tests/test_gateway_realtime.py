"""`/v1/realtime` against a real tritonserver + gateway, with real WebSocket clients: the official
`openai` client's realtime connection transcribes real speech (24 kHz pcm16) with speech events,
append-only deltas and one `completed` per segment equal to the in-process recognizer's finals; a
closed socket frees its Triton stream within 1 s; bad events get `error` and the session goes on;
Triton down is an `error`, not a hang."""
from __future__ import annotations

import base64
import json
import time

import numpy as np
import pytest
import soxr
from test_streaming_server import live_streams, wait_for_live

from w2v_triton.serving import spec
from w2v_triton.serving.audio import StreamResampler, load_audio, pcm16_to_float
from w2v_triton.serving.pipeline import model_parameters
from w2v_triton.serving.streaming import build_recognizer, version_dir

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
SR = spec.SAMPLE_RATE
websockets = pytest.importorskip("websockets.sync.client")


@pytest.fixture(scope="module")
def pcm24k(real_speech) -> bytes:
    """Two real utterances with a 1 s pause, as 16-bit PCM at 24 kHz (what a Realtime client sends)."""
    audio = np.concatenate([load_audio(real_speech[3].audio), np.zeros(SR, np.float32),
                            load_audio(real_speech[40].audio)])
    up = soxr.resample(audio, SR, 24_000)
    return (np.clip(up, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()


def expected_finals(tiny_repository, pcm: bytes, chunk_seconds: float = 0.32) -> list[str]:
    """What the gateway sends Triton, recognised in process: the same resampler, the same chunks."""
    audio = StreamResampler(24_000).feed(pcm16_to_float(pcm), last=True)
    recognizer = build_recognizer(model_parameters(tiny_repository, spec.STREAMING_MODEL),
                                  version_dir(tiny_repository), warmup=False)
    return [f["text"] for r in recognizer.recognize(audio, chunk_seconds) for f in r.finals]


def test_openai_client_transcribes_live_with_deltas_and_finals(gateway, tiny_repository, pcm24k):
    from openai import OpenAI

    client = OpenAI(base_url=f"{gateway}/v1", api_key="unused")
    events = []
    with client.realtime.connect(model="asr", extra_query={"intent": "transcription"}) as conn:
        created = conn.recv()
        assert created.type == "session.created" and created.session.type == "transcription"
        conn.session.update(session={"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "asr"}}}})
        assert conn.recv().type == "session.updated"
        step = 4800   # 100 ms of 24 kHz pcm16, as a microphone client sends it
        for k in range(0, len(pcm24k), step):
            conn.input_audio_buffer.append(audio=base64.b64encode(pcm24k[k:k + step]).decode())
        conn.input_audio_buffer.commit()
        expected = expected_finals(tiny_repository, pcm24k)
        while sum(e.type.endswith("transcription.completed") for e in events) < len(expected):
            events.append(conn.recv())
    kinds = [e.type for e in events]
    assert "error" not in kinds, [e for e in events if e.type == "error"]
    completed = [e for e in events if e.type.endswith("transcription.completed")]
    assert [e.transcript for e in completed] == expected and len(expected) >= 2
    started = [e for e in events if e.type == "input_audio_buffer.speech_started"]
    stopped = [e for e in events if e.type == "input_audio_buffer.speech_stopped"]
    committed = [e for e in events if e.type == "input_audio_buffer.committed"]
    assert [e.item_id for e in started] == [e.item_id for e in stopped] == [e.item_id for e in completed] == \
        [e.item_id for e in committed]
    assert all(a.audio_start_ms < b.audio_end_ms for a, b in zip(started, stopped))
    assert [e.previous_item_id for e in committed] == [None] + [e.item_id for e in committed[:-1]]
    first_completed = kinds.index("conversation.item.input_audio_transcription.completed")
    deltas = [e for e in events[:first_completed] if e.type.endswith("transcription.delta")]
    assert deltas and all(e.item_id == completed[0].item_id for e in deltas)   # partials before the final
    # deltas are append-only committed words: they spell a prefix of the live transcript, word by word
    assert "".join(e.delta for e in deltas).split() == "".join(e.delta for e in deltas).split(" ")


def test_closing_the_socket_frees_the_stream_within_a_second(gateway, tiny_server, pcm24k):
    url = gateway.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    with websockets.connect(url) as socket:
        assert json.loads(socket.recv())["type"] == "session.created"
        socket.send(json.dumps({"type": "input_audio_buffer.append",
                                "audio": base64.b64encode(pcm24k[: 48_000 * 2]).decode()}))
        wait_for_live(tiny_server.ports.metrics, 1, within=30)
    freed = wait_for_live(tiny_server.ports.metrics, 0, within=3)
    assert freed < 1.0, f"the stream was freed {freed:.2f} s after the socket closed"


def test_bad_events_get_errors_and_the_session_goes_on(gateway, tiny_server):
    url = gateway.replace("http://", "ws://") + "/v1/realtime"
    with websockets.connect(url) as socket:
        assert json.loads(socket.recv())["type"] == "session.created"
        cases = [("not json", "invalid_json", None),
                 (json.dumps({"type": "response.create"}), "invalid_event", "type"),
                 (json.dumps({"type": "input_audio_buffer.append", "audio": "***"}), "invalid_audio", "audio"),
                 (json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()}),
                  "invalid_audio", "audio"),
                 (json.dumps({"type": "input_audio_buffer.commit"}), "input_audio_buffer_commit_empty", None),
                 (json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
                     "format": {"type": "audio/pcm", "rate": 16000}}}}}), "invalid_value", "session.audio.input.format"),
                 (json.dumps({"type": "session.update", "session": {"audio": {"input": {
                     "turn_detection": {"type": "server_vad", "silence_duration_ms": 2000}}}}}),
                  "invalid_value", "session.audio.input.turn_detection")]
        for raw, code, param in cases:
            socket.send(raw)
            event = json.loads(socket.recv(timeout=30))
            assert event["type"] == "error" and event["error"]["code"] == code, (raw, event)
            assert event["error"]["param"] == param and event["error"]["message"]
        socket.send(json.dumps({"type": "session.update", "session": {"type": "transcription"}}))
        assert json.loads(socket.recv(timeout=30))["type"] == "session.updated"   # still serving
    assert live_streams(tiny_server.ports.metrics) == 0


def test_triton_down_is_an_error_event(start_gateway):
    from w2v_triton.serving.tritonserver import free_port

    dead = start_gateway(TRITON_URL=f"127.0.0.1:{free_port()}", TRITON_GRPC_URL=f"127.0.0.1:{free_port()}")
    with websockets.connect(dead.replace("http://", "ws://") + "/v1/realtime") as socket:
        began = time.monotonic()
        event = json.loads(socket.recv(timeout=60))
        assert event["type"] == "error" and event["error"]["code"] == "server_unavailable"
        assert "unavailable" in event["error"]["message"] and time.monotonic() - began < 30


def test_api_keys_hold_for_the_websocket(start_gateway, tiny_server):
    keyed = start_gateway(TRITON_URL=tiny_server.http_url, TRITON_GRPC_URL=tiny_server.grpc_url,
                          GATEWAY_API_KEYS="secret-1")
    url = keyed.replace("http://", "ws://") + "/v1/realtime"
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        with websockets.connect(url, additional_headers=headers) as socket:
            event = json.loads(socket.recv(timeout=30))
            assert event["type"] == "error" and event["error"]["code"] == "invalid_api_key"
    with websockets.connect(url, additional_headers={"Authorization": "Bearer secret-1"}) as socket:
        assert json.loads(socket.recv(timeout=30))["type"] == "session.created"
