"""The OpenAI-compatible gateway against a real tritonserver, driven by the official `openai` client.

The gateway forwards the uploaded bytes to the ensemble's AUDIO_FILE input, so every format must
give exactly the transcript of the float32 path fed with the samples that file decodes to; the
subtitles must be accepted by real subtitle parsers (srt, webvtt-py); every error, the gateway's
own 404/405 included, is OpenAI's error object; the curl calls of docs/gateway.md run as written.
"""
from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from client import TranscriptionClient
from w2v_triton.serving import spec
from w2v_triton.serving.audio import decode_audio_bytes

pytestmark = pytest.mark.integration
openai = pytest.importorskip("openai")
srt = pytest.importorskip("srt")
webvtt = pytest.importorskip("webvtt")

REPO = Path(__file__).resolve().parents[1]
KEY, FILE_KEY = "sk-test-0123456789", "sk-from-file-abcdef"


def assert_openai_error(response: requests.Response, status: int, message: str, param: str | None = None,
                        kind: str = "invalid_request_error", code: str | None = None) -> dict:
    """The status and OpenAI's error object, exactly its four fields."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(response.json()) == {"error"} and set(error) == {"message", "type", "param", "code"}
    assert message in error["message"], error
    assert (error["type"], error["param"], error["code"]) == (kind, param, code), error
    return error


@pytest.fixture(scope="module")
def api(gateway):
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key="not-checked", max_retries=0, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def float32_path(tiny_server, encoded_speech):
    """What the float32 AUDIO input gives for each file's decoded samples: {label: Transcription}."""
    with TranscriptionClient(tiny_server.http_url) as asr:
        return {label: asr.transcribe_full(decode_audio_bytes(data)) for label, data in encoded_speech}


@pytest.fixture(scope="module")
def flac(encoded_speech):
    return next((label, data) for label, data in encoded_speech if label.endswith(".flac"))


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
        assert " ".join(s.text for s in verbose.segments) == expected.text


def seconds(clock: str) -> float:
    """WebVTT's HH:MM:SS.mmm in seconds."""
    hours, minutes, rest = clock.split(":")
    return round(int(hours) * 3600 + int(minutes) * 60 + float(rest), 3)


@pytest.fixture(scope="module")
def short_cues(tiny_server, start_gateway):
    """A gateway whose cues are at most 1.5 s and 24 characters: several per utterance."""
    url = start_gateway(TRITON_URL=tiny_server.http_url, GATEWAY_SEGMENT_MAX_S="1.5",
                        GATEWAY_SEGMENT_MAX_CHARS="24", GATEWAY_SUBTITLE_LINE_CHARS="12")
    with openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=120) as client:
        yield client


def test_the_official_client_gets_subtitles_that_parsers_accept(short_cues, encoded_speech, float32_path):
    for label, data in encoded_speech[:2]:
        expected = float32_path[label]
        verbose = short_cues.audio.transcriptions.create(model="asr", file=(label, data),
                                                         response_format="verbose_json")
        segments = [(round(s.start, 3), round(s.end, 3), s.text) for s in verbose.segments]
        assert len(segments) > 2 and " ".join(s[2] for s in segments) == expected.text
        for start, end, text in segments:   # the limits: a longer cue is a single word
            assert (end - start <= 1.5 and len(text) <= 24) or " " not in text, (start, end, text)

        as_srt = short_cues.audio.transcriptions.create(model="asr", file=(label, data), response_format="srt")
        cues = list(srt.parse(as_srt))
        assert [c.index for c in cues] == list(range(1, len(segments) + 1))
        assert [(round(c.start.total_seconds(), 3), round(c.end.total_seconds(), 3), " ".join(c.content.split()))
                for c in cues] == segments
        assert max(len(line) for c in cues for line in c.content.splitlines()) <= max(12, *(
            len(w) for s in segments for w in s[2].split()))   # lines wrapped at 12 characters

        as_vtt = short_cues.audio.transcriptions.create(model="asr", file=(label, data), response_format="vtt")
        captions = list(webvtt.from_string(as_vtt))
        assert [(seconds(c.start), seconds(c.end), " ".join(c.text.split())) for c in captions] == segments


def test_verbose_json_segments_and_words(api, flac, float32_path):
    label, data = flac
    expected = float32_path[label]
    default = api.audio.transcriptions.create(model="asr", file=(label, data), response_format="verbose_json")
    assert default.words is None and default.segments
    both = api.audio.transcriptions.create(model="asr", file=(label, data), response_format="verbose_json",
                                           timestamp_granularities=["word", "segment"])
    assert [(w.word, w.start) for w in both.words] == [(w["word"], w["start_s"]) for w in expected.words]
    first = both.segments[0]
    assert (first.id, first.seek, first.tokens, first.temperature, first.no_speech_prob) == (0, 0, [], 0.0, 0.0)
    assert first.start == expected.words[0]["start_s"] and both.segments[-1].end == expected.words[-1]["end_s"]
    assert -20.0 < first.avg_logprob < 0.0 and first.compression_ratio > 0.0
    assert [s.model_dump() for s in both.segments] == [s.model_dump() for s in default.segments]


def test_language_is_accepted_and_ignored_with_a_note(api, encoded_speech, float32_path):
    label, data = encoded_speech[1]
    raw = api.audio.transcriptions.with_raw_response.create(model="asr", file=(label, data), language="fr")
    assert raw.parse().text == float32_path[label].text
    assert "'language' is ignored" in raw.headers["x-gateway-note"]
    plain = api.audio.transcriptions.with_raw_response.create(model="asr", file=(label, data))
    assert "x-gateway-note" not in plain.headers


def test_temperature_and_prompt_are_accepted_on_a_greedy_server(api, flac, float32_path):
    label, data = flac
    raw = api.audio.transcriptions.with_raw_response.create(model="asr", file=(label, data), temperature=0.2,
                                                            prompt="Celeste arrived on Monday.")
    assert raw.parse().text == float32_path[label].text
    note = raw.headers["x-gateway-note"]
    assert "'temperature' is ignored: CTC decoding is deterministic" in note
    assert "'prompt' is ignored: this server's decoder is greedy" in note
    zero = api.audio.transcriptions.with_raw_response.create(model="asr", file=(label, data), temperature=0)
    assert "x-gateway-note" not in zero.headers


@pytest.fixture(scope="module")
def beam_gateway(tmp_path_factory, tiny_repository, real_speech, start_gateway):
    """A tiny beam + LM repository (flashlight) served, with a gateway in front: prompts become hotwords."""
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.build.lm_sentences import write_lm_dir
    from w2v_triton.build.repository import RepositoryOptions
    from w2v_triton.serving.ctc_decoding import DecoderConfig
    from w2v_triton.serving.tritonserver import Ports, TritonServer

    lm = write_lm_dir(tmp_path_factory.mktemp("gateway_lm"), [u.text for u in real_speech if u.text])
    options = RepositoryOptions(decoder_instances=1, decoder=DecoderConfig(mode="beam", beam_width=16, alpha=0.8,
                                                                           beta=1.5, max_prompt_words=4))
    repository = build_repository(BuildRequest(model="tiny", output=tmp_path_factory.mktemp("beam_repo"),
                                               options=options, lm_dir=lm,
                                               onnx=tiny_repository / spec.ACOUSTIC_MODEL / "1" / "model.onnx")).path
    server = TritonServer(repository, Ports.free(), log_path=tmp_path_factory.mktemp("beam_log") / "server.log")
    server.start(timeout=180)
    try:
        yield server, start_gateway(TRITON_URL=server.http_url)
    finally:
        server.stop()


def test_the_prompt_boosts_its_out_of_lm_words_on_a_beam_server(beam_gateway, flac):
    """The prompt reaches the decoder unchanged: of its first 4 distinct words, those the LM does not
    know (ZEBRA, QUIXOTIC, JAZZ; THE is in the real-speech LM) become hotwords."""
    server, url = beam_gateway
    label, data = flac
    prompt = "Zebra, quixotic JAZZ; the zebra! and more words"
    with TranscriptionClient(server.http_url) as asr:
        plain = asr.transcribe(data)
        boosted = asr.transcribe(data, ["ZEBRA", "QUIXOTIC", "JAZZ"])
        assert asr.transcribe(data, ["ZEBRA", "QUIXOTIC", "JAZZ", "THE"]) != boosted   # THE would matter
        assert asr.transcribe(data, prompt=prompt) == boosted
    assert boosted != plain   # the hotwords change the tiny model's transcript: the check below can fail
    with openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=120) as client:
        raw = client.audio.transcriptions.with_raw_response.create(model="asr", file=(label, data), prompt=prompt)
        assert raw.parse().text == boosted
        assert "only its first 4 of 7 distinct words are considered" in raw.headers["x-gateway-note"]
        assert client.audio.transcriptions.create(model="asr", file=(label, data)).text == plain


@pytest.mark.parametrize("method, path, kwargs, status, message, param", [
    ("get", "/v1/nope", {}, 404, "Invalid URL (GET /v1/nope)", None),
    ("post", "/nowhere", {}, 404, "Invalid URL (POST /nowhere)", None),
    ("delete", "/v1/audio/transcriptions", {}, 405, "Method DELETE is not allowed on /v1/audio/transcriptions", None),
    ("post", "/v1/models", {}, 405, "allowed: GET", None),
    ("post", "/v1/audio/transcriptions", {"data": {"model": "asr", "response_format": "xml"}, "file": True},
     400, "response_format 'xml' is not supported", "response_format"),
    ("post", "/v1/audio/transcriptions", {"data": {"model": "asr", "temperature": "3"}, "file": True},
     400, "'temperature' must be between 0 and 1", "temperature"),
    ("post", "/v1/audio/transcriptions", {"data": {"model": "asr", "timestamp_granularities[]": "sentence"},
                                          "file": True}, 400, "'sentence' is not supported", "timestamp_granularities[]"),
    ("post", "/v1/audio/transcriptions", {"data": {"model": "asr", "stream": "true"}, "file": True},
     400, "'stream' is not supported", "stream"),
    ("post", "/v1/audio/transcriptions", {"data": {"model": "asr", "speed": "2"}, "file": True},
     400, "unsupported field(s): speed", "speed"),
    ("post", "/v1/audio/transcriptions", {"files": {"model": (None, "asr")}}, 400, "'file' is required", "file"),
    ("post", "/v1/audio/transcriptions", {"files": {"model": (None, "asr"), "file": (None, "not a file")}},
     400, "'file' is required", "file"),
    ("post", "/v1/audio/transcriptions", {"file": True}, 400, "'model' is required", "model"),
    ("post", "/v1/audio/transcriptions", {"data": {"model": "asr"}}, 400, "expected a multipart/form-data body", None),
    ("post", "/v1/audio/transcriptions", {"json": {"model": "asr"}}, 400, "expected a multipart/form-data body", None),
    ("post", "/v1/audio/transcriptions", {"data": {"model": "asr"}, "empty": True}, 400, "audio file is empty", "file"),
])
def test_every_bad_request_is_an_openai_error(gateway, flac, method, path, kwargs, status, message, param):
    kwargs = dict(kwargs)
    if kwargs.pop("file", False):
        kwargs["files"] = {"file": flac}
    if kwargs.pop("empty", False):
        kwargs["files"] = {"file": ("empty.wav", b"")}
    response = getattr(requests, method)(f"{gateway}{path}", timeout=60, **kwargs)
    assert_openai_error(response, status, message, param)
    if status == 405:
        assert response.headers["allow"]


@pytest.mark.parametrize("data, message", [
    (bytes(range(256)) * 8, "not a recognised audio file"),
    (b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A mp42isom" + bytes(2000), "unsupported audio format audio/mp4"),
])
def test_bad_audio_is_a_400_with_tritons_message(api, tiny_server, data, message):
    with pytest.raises(openai.BadRequestError) as error:
        api.audio.transcriptions.create(model="asr", file=("upload.bin", data))
    assert message in error.value.message and error.value.body["param"] == "file"
    assert tiny_server.is_ready()


def test_an_upload_declaring_1_hz_is_a_400(api, tiny_server, wav_declaring):
    """The gateway's uploads reach the preprocessor's sample-rate check unchanged (issue 27)."""
    with pytest.raises(openai.BadRequestError) as error:
        api.audio.transcriptions.create(model="asr", file=("speech.wav", wav_declaring(1)))
    assert "sample rate 1 Hz is not accepted: audio files must be recorded at 8000-192000 Hz" in error.value.message
    assert error.value.body["param"] == "file"


@pytest.fixture(scope="module")
def keyed_gateway(tiny_server, start_gateway, tmp_path_factory):
    key_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    key_file.write_text(f"# one key per line\n\n{FILE_KEY}\n")
    return start_gateway(TRITON_URL=tiny_server.http_url, GATEWAY_API_KEYS=f"{KEY}, sk-other",
                         GATEWAY_API_KEYS_FILE=str(key_file))


def test_api_keys(keyed_gateway, flac):
    label, data = flac
    url = f"{keyed_gateway}/v1/audio/transcriptions"
    form = {"data": {"model": "asr"}, "files": {"file": (label, data)}, "timeout": 60}
    error = assert_openai_error(requests.post(url, **form), 401, "You didn't provide an API key", code="invalid_api_key")
    assert "Authorization: Bearer" in error["message"]
    assert requests.post(url, headers={"Authorization": f"Bearer {KEY}x"}, **form).status_code == 401
    assert_openai_error(requests.get(f"{keyed_gateway}/v1/models", headers={"Authorization": "Basic abc"}, timeout=30),
                        401, "You didn't provide an API key", code="invalid_api_key")
    for key in (KEY, FILE_KEY):   # from the variable and from the file
        with openai.OpenAI(base_url=f"{keyed_gateway}/v1", api_key=key, max_retries=0, timeout=120) as client:
            assert client.audio.transcriptions.create(model="asr", file=(label, data)).text
            assert [m.id for m in client.models.list()] == [spec.ENSEMBLE_MODEL]
    with openai.OpenAI(base_url=f"{keyed_gateway}/v1", api_key="sk-wrong", max_retries=0, timeout=120) as client:
        with pytest.raises(openai.AuthenticationError) as wrong:
            client.audio.transcriptions.create(model="asr", file=(label, data))
        assert wrong.value.status_code == 401 and "Incorrect API key provided" in wrong.value.message
    # health, metrics and the page need no key (health checks and scrapers run beside the gateway)
    for path in ("/health", "/metrics", "/"):
        assert requests.get(f"{keyed_gateway}{path}", timeout=30).status_code == 200, path


def _outside_address() -> str | None:
    """An address of this machine that is not loopback (a client from it is not local)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))   # TEST-NET: no packet is sent for a UDP connect
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_without_keys_only_local_clients_are_served(tiny_server, start_gateway, flac):
    address = _outside_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    url = start_gateway(host="0.0.0.0", TRITON_URL=tiny_server.http_url)
    port = url.rsplit(":", 1)[1]
    form = {"data": {"model": "asr"}, "files": {"file": flac}, "timeout": 60}
    assert requests.post(f"{url}/v1/audio/transcriptions", **form).status_code == 200   # 127.0.0.1: local
    assert_openai_error(requests.post(f"http://{address}:{port}/v1/audio/transcriptions", **form), 401,
                        "has no API keys configured, so it serves only local clients", code="invalid_api_key")
    open_url = start_gateway(host="0.0.0.0", TRITON_URL=tiny_server.http_url, GATEWAY_AUTH="off")
    open_port = open_url.rsplit(":", 1)[1]
    assert requests.post(f"http://{address}:{open_port}/v1/audio/transcriptions", **form).status_code == 200


def _complete(reply: bytes) -> bool:
    """A whole HTTP response: its headers and Content-Length bytes of body."""
    head, sep, body = reply.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    return bool(sep) and length is not None and len(body) >= int(length.group(1))


def test_a_stuck_upload_is_cut_by_the_timeout(tiny_server, start_gateway):
    url = start_gateway(TRITON_URL=tiny_server.http_url, GATEWAY_UPLOAD_TIMEOUT_S="1.5")
    host, port = url.removeprefix("http://").split(":")
    boundary = "b0undary"
    head = (f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; "
            f"boundary={boundary}\r\nContent-Length: 500000\r\n\r\n--{boundary}\r\nContent-Disposition: form-data; "
            'name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF')
    began = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())   # ... and then nothing more
        reply = b""
        while not _complete(reply):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    elapsed = time.monotonic() - began
    status = int(reply.split(b" ", 2)[1])
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert status == 408 and 1.4 < elapsed < 15, (status, elapsed)
    assert body["error"]["code"] == "upload_timeout" and "did not arrive within 1.5 s" in body["error"]["message"]


def test_metrics_count_the_requests(tiny_server, start_gateway, flac, float32_path):
    from prometheus_client.parser import text_string_to_metric_families

    url = start_gateway(TRITON_URL=tiny_server.http_url)   # its own counters
    label, data = flac
    with openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=120) as client:
        for fmt in ("json", "json", "srt"):
            client.audio.transcriptions.create(model="asr", file=(label, data), response_format=fmt)
        with pytest.raises(openai.BadRequestError):
            client.audio.transcriptions.create(model="asr", file=("empty.wav", b""), response_format="vtt")
    assert requests.get(f"{url}/v1/nope", timeout=30).status_code == 404
    text = requests.get(f"{url}/metrics", timeout=30).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    route = ("route", "/v1/audio/transcriptions")

    def count(status: str, fmt: str) -> float:
        return samples.get(("gateway_requests_total", (("format", fmt), route, ("status", status))), 0.0)

    assert (count("200", "json"), count("200", "srt"), count("400", "vtt")) == (2.0, 1.0, 1.0)
    assert samples[("gateway_requests_total", (("format", "-"), ("route", "unmatched"), ("status", "404")))] == 1.0
    assert samples[("gateway_request_duration_seconds_count", (("format", "json"), route))] == 2.0
    assert samples[("gateway_request_duration_seconds_sum", (("format", "json"), route))] > 0.0
    assert samples[("gateway_audio_seconds_total", ())] == pytest.approx(3 * float32_path[label].duration_s)


def test_concurrent_requests(gateway, encoded_speech, float32_path):
    def send(item):
        label, data = item
        response = requests.post(f"{gateway}/v1/audio/transcriptions", data={"model": "asr", "response_format": "srt"},
                                 files={"file": (label, data)}, timeout=120)
        return " ".join(c.content.replace("\n", " ") for c in srt.parse(response.text))

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


def test_unreachable_triton_is_a_502_with_retry_after(start_gateway, encoded_speech):
    from w2v_triton.serving.tritonserver import free_port

    dead = start_gateway(TRITON_URL=f"127.0.0.1:{free_port()}", GATEWAY_MAX_UPLOAD_MB="0.5")
    health = requests.get(f"{dead}/health", timeout=30)
    assert health.status_code == 503 and "cannot reach a Triton server" in health.json()["detail"]
    assert health.headers["retry-after"] == "5"
    label, data = encoded_speech[1]
    assert len(data) < 0.5e6
    with openai.OpenAI(base_url=f"{dead}/v1", api_key="x", max_retries=0) as client:
        with pytest.raises(openai.APIStatusError) as error:
            client.audio.transcriptions.create(model="asr", file=(label, data))
        assert error.value.status_code == 502 and error.value.response.headers["retry-after"] == "5"
        assert "speech recognition server is unavailable: cannot reach a Triton server" in error.value.message
        assert error.value.body["type"] == "server_error"
        with pytest.raises(openai.APIStatusError) as error:   # the size checks need no Triton
            client.audio.transcriptions.create(model="asr", file=("big.wav", bytes(530_000)))
        assert error.value.status_code == 413 and "over the limit of 0.5 MB" in error.value.message
        with pytest.raises(openai.APIStatusError) as error:   # refused from its Content-Length
            client.audio.transcriptions.create(model="asr", file=("huge.wav", bytes(5_000_000)))
        assert error.value.status_code == 413 and "files up to 0.5 MB are accepted" in error.value.message
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    chunked = requests.post(f"{dead}/v1/audio/transcriptions", data=iter([part] + [b"x" * 100_000] * 8), timeout=60,
                            headers={"Content-Type": "multipart/form-data; boundary=b"})   # no Content-Length
    assert_openai_error(chunked, 413, "over the limit of 0.5 MB", "file")


def test_the_curl_calls_of_the_docs_run(keyed_gateway, flac, tmp_path):
    """Every `curl` line in docs/gateway.md's examples block, against a gateway with keys."""
    text = (REPO / "docs" / "gateway.md").read_text()
    block = text.split("<!-- curl examples: tests/test_gateway.py runs them -->", 1)[1].split("```bash", 1)[1]
    calls = [line for line in block.split("```", 1)[0].splitlines() if line.startswith("curl ")]
    assert len(calls) >= 5
    (tmp_path / "speech.flac").write_bytes(flac[1])
    for call in calls:
        command = call.replace("http://127.0.0.1:8080", keyed_gateway)
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                                env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": KEY})
        assert result.returncode == 0, (call, result.stderr)
        out = result.stdout
        fmt = re.search(r"response_format=(\w+)", call)
        if "/metrics" in call:
            assert "gateway_requests_total" in out
        elif fmt and fmt.group(1) == "srt":
            assert list(srt.parse(out)), call
        elif fmt and fmt.group(1) == "vtt":
            assert list(webvtt.from_string(out)), call
        elif fmt and fmt.group(1) == "text":
            assert out.strip(), call
        else:
            assert "text" in json.loads(out) or "data" in json.loads(out), call
        assert shlex.split(call)[0] == "curl"
