"""The OpenAI-compatible gateway against a real tritonserver, driven by the official `openai` client.

The gateway forwards the uploaded bytes to the ensemble's AUDIO_FILE input, so every format must
give exactly the transcript of the float32 path fed with the samples that file decodes to.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from client import TranscriptionClient
from w2v_triton.serving import spec
from w2v_triton.serving.audio import decode_audio_bytes

pytestmark = pytest.mark.integration
openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def api(gateway):
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key="not-checked", max_retries=0, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def float32_path(tiny_server, encoded_speech):
    """What the float32 AUDIO input gives for each file's decoded samples: {label: Transcription}."""
    with TranscriptionClient(tiny_server.http_url) as asr:
        return {label: asr.transcribe_full(decode_audio_bytes(data)) for label, data in encoded_speech}


def test_every_format_and_response_format_equals_the_float32_path(api, encoded_speech, float32_path):
    for label, data in encoded_speech:
        expected = float32_path[label]
        assert expected.text, label   # the tiny model emits letters: the comparison is not vacuous
        as_json = api.audio.transcriptions.create(model="asr", file=(label, data))
        assert as_json.text == expected.text, label
        as_text = api.audio.transcriptions.create(model="asr", file=(label, data), response_format="text")
        assert as_text == expected.text, label
        verbose = api.audio.transcriptions.create(model="whisper-1", file=(label, data), response_format="verbose_json",
                                                  timestamp_granularities=["word"])
        assert verbose.text == expected.text and verbose.language == "english"
        assert verbose.duration == pytest.approx(expected.duration_s)
        assert [(w.word, w.start, w.end) for w in verbose.words] == [
            (w["word"], w["start_s"], w["end_s"]) for w in expected.words]


def test_language_is_accepted_and_ignored_with_a_note(api, encoded_speech, float32_path):
    label, data = encoded_speech[1]
    raw = api.audio.transcriptions.with_raw_response.create(model="asr", file=(label, data), language="fr")
    assert raw.parse().text == float32_path[label].text
    assert "'language' is ignored" in raw.headers["x-gateway-note"]
    plain = api.audio.transcriptions.with_raw_response.create(model="asr", file=(label, data))
    assert "x-gateway-note" not in plain.headers


@pytest.mark.parametrize("options, message", [
    ({"response_format": "srt"}, "response_format 'srt' is not supported; use one of json, text, verbose_json"),
    ({"prompt": "hello"}, "'prompt' is not supported"),
    ({"temperature": 0.7}, "'temperature' must be 0"),
    ({"timestamp_granularities": ["segment"], "response_format": "verbose_json"}, "only word timestamps"),
])
def test_unsupported_options_are_a_clear_400(api, encoded_speech, options, message):
    label, data = encoded_speech[1]
    with pytest.raises(openai.BadRequestError) as error:
        api.audio.transcriptions.create(model="asr", file=(label, data), **options)
    assert error.value.status_code == 400 and message in error.value.message


def test_malformed_requests_are_a_clear_400(gateway, encoded_speech):
    label, data = encoded_speech[1]
    url = f"{gateway}/v1/audio/transcriptions"
    cases = [
        ({"data": {"model": "asr", "speed": "2"}, "files": {"file": (label, data)}}, "unsupported field(s): speed", "speed"),
        ({"files": {"model": (None, "asr")}}, "'file' is required", "file"),
        ({"files": {"model": (None, "asr"), "file": (None, "not a file")}}, "'file' is required", "file"),
        ({"files": {"file": (label, data)}}, "'model' is required", "model"),
        ({"data": {"model": "asr"}}, "expected a multipart/form-data body", None),
        ({"json": {"model": "asr"}}, "expected a multipart/form-data body", None),
    ]
    for kwargs, message, param in cases:
        response = requests.post(url, timeout=60, **kwargs)
        assert response.status_code == 400, kwargs
        error = response.json()["error"]
        assert message in error["message"] and error["param"] == param and error["type"] == "invalid_request_error"


@pytest.mark.parametrize("data, message", [
    (bytes(range(256)) * 8, "not a recognised audio file"),
    (b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A mp42isom" + bytes(2000), "unsupported audio format audio/mp4"),
    (b"", "empty"),
])
def test_bad_audio_is_a_400_with_tritons_message(api, tiny_server, data, message):
    with pytest.raises(openai.BadRequestError) as error:
        api.audio.transcriptions.create(model="asr", file=("upload.bin", data))
    assert message in error.value.message
    assert tiny_server.is_ready()


def test_an_upload_declaring_1_hz_is_a_400(api, tiny_server, wav_declaring):
    """The gateway's uploads reach the preprocessor's sample-rate check unchanged (issue 27)."""
    with pytest.raises(openai.BadRequestError) as error:
        api.audio.transcriptions.create(model="asr", file=("speech.wav", wav_declaring(1)))
    assert "sample rate 1 Hz is not accepted: audio files must be recorded at 8000-192000 Hz" in error.value.message


def test_concurrent_requests(gateway, encoded_speech, float32_path):
    def send(item):
        label, data = item
        response = requests.post(f"{gateway}/v1/audio/transcriptions", data={"model": "asr"},
                                 files={"file": (label, data)}, timeout=120)
        return response.json()["text"]

    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(send, encoded_speech))
    assert texts == [float32_path[label].text for label, _ in encoded_speech]


def test_health_models_and_page(gateway):
    health = requests.get(f"{gateway}/health", timeout=30)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    models = requests.get(f"{gateway}/v1/models", timeout=30).json()
    assert [m["id"] for m in models["data"]] == [spec.ENSEMBLE_MODEL]
    page = requests.get(gateway, timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "v1/audio/transcriptions" in page.text and "MediaRecorder" in page.text


def test_unreachable_triton_is_a_502_and_health_says_so(start_gateway, encoded_speech):
    from w2v_triton.serving.tritonserver import free_port

    dead = start_gateway(TRITON_URL=f"127.0.0.1:{free_port()}", GATEWAY_MAX_UPLOAD_MB="0.5")
    health = requests.get(f"{dead}/health", timeout=30)
    assert health.status_code == 503 and "cannot reach a Triton server" in health.json()["detail"]
    label, data = encoded_speech[1]
    assert len(data) < 0.5e6
    with openai.OpenAI(base_url=f"{dead}/v1", api_key="x", max_retries=0) as client:
        with pytest.raises(openai.APIStatusError) as error:
            client.audio.transcriptions.create(model="asr", file=(label, data))
        assert error.value.status_code == 502
        assert "speech recognition server is unavailable: cannot reach a Triton server" in error.value.message
        with pytest.raises(openai.APIStatusError) as error:   # the size checks need no Triton
            client.audio.transcriptions.create(model="asr", file=("big.wav", bytes(530_000)))
        assert error.value.status_code == 413 and "over the limit of 0.5 MB" in error.value.message
        with pytest.raises(openai.APIStatusError) as error:   # refused from its Content-Length
            client.audio.transcriptions.create(model="asr", file=("huge.wav", bytes(5_000_000)))
        assert error.value.status_code == 413 and "files up to 0.5 MB are accepted" in error.value.message
