"""The gateway's pieces without a server: settings, the prompt notes, the key check, subtitle
clocks and the segment fields (tests/test_gateway.py drives them against a real one)."""
from __future__ import annotations

import pytest

from gateway import formats
from gateway.app import prompt_notes
from gateway.auth import KeyCheck
from gateway.errors import APIError
from gateway.settings import Settings, SettingsError
from w2v_triton.serving.ctc_decoding import DecoderConfig
from w2v_triton.serving.ctc_output import WordTime
from w2v_triton.serving.segments import SegmentRule, segment_words


def test_settings_from_the_environment():
    settings = Settings.from_env({"TRITON_URL": "10.0.0.5:8000", "GATEWAY_MAX_UPLOAD_MB": "0.5",
                                  "GATEWAY_API_KEYS": " a, b ,,", "GATEWAY_SEGMENT_MAX_S": "3",
                                  "GATEWAY_RETRY_AFTER_S": "9", "GATEWAY_LANGUAGE": ""})
    assert (settings.triton_url, settings.max_upload_mb, settings.api_keys) == ("10.0.0.5:8000", 0.5, ("a", "b"))
    assert settings.segments == SegmentRule(max_seconds=3.0) and settings.retry_after_s == 9
    assert settings.language == "english"   # an empty variable keeps the default
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize("env, message", [
    ({"TRITON_PROTOCOL": "udp"}, "TRITON_PROTOCOL='udp'"),
    ({"GATEWAY_AUTH": "maybe"}, "GATEWAY_AUTH='maybe'"),
    ({"GATEWAY_UPLOAD_TIMEOUT_S": "0"}, "GATEWAY_UPLOAD_TIMEOUT_S must be positive"),
    ({"GATEWAY_MAX_UPLOAD_MB": "lots"}, "GATEWAY_MAX_UPLOAD_MB='lots': expected a number"),
    ({"GATEWAY_SEGMENT_MAX_CHARS": "0"}, "GATEWAY_SEGMENT_MAX_CHARS: segment rule needs positive limits"),
    ({"GATEWAY_API_KEYS_FILE": "/nonexistent/keys"}, "GATEWAY_API_KEYS_FILE=/nonexistent/keys"),
])
def test_settings_that_cannot_work_name_their_variable(env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env).keys()


def test_keys_from_a_file(tmp_path):
    path = tmp_path / "keys"
    path.write_text("# comment\nk1\n\n  k2  \nk1\n")
    assert Settings(api_keys=("k0", "k1"), api_keys_file=str(path)).keys() == ("k0", "k1", "k2")


def test_prompt_notes():
    beam = DecoderConfig(mode="beam", max_prompt_words=3)
    assert prompt_notes("Celeste, Kubernetes", beam) == []
    assert prompt_notes("one two three four, one", beam) == [
        "'prompt': only its first 3 of 4 distinct words are considered"]
    assert prompt_notes("Celeste", DecoderConfig()) == [
        "'prompt' is ignored: this server's decoder is greedy and takes no hotwords"]
    assert prompt_notes("Celeste", None) == []   # Triton could not say: sent without a note


def _refused(check: KeyCheck, authorization: str | None, host: str | None) -> str | None:
    try:
        check.check(authorization, host)
    except APIError as exc:
        assert exc.status == 401 and exc.code == "invalid_api_key" and exc.headers == {"WWW-Authenticate": "Bearer"}
        return str(exc)
    return None


def test_key_check():
    keyed = KeyCheck(("sk-1", "sk-2"), "auto")
    assert _refused(keyed, "Bearer sk-2", "203.0.113.9") is None
    assert _refused(keyed, "bearer  sk-1 ", "127.0.0.1") is None
    assert "Incorrect API key" in _refused(keyed, "Bearer sk-3", "127.0.0.1")   # keys apply to local clients too
    assert "didn't provide an API key" in _refused(keyed, None, "127.0.0.1")
    assert "didn't provide an API key" in _refused(keyed, "Basic c2stMQ==", "127.0.0.1")
    open_locally = KeyCheck((), "auto")
    assert _refused(open_locally, None, "127.0.0.1") is None and _refused(open_locally, None, "::1") is None
    assert "serves only local clients" in _refused(open_locally, "Bearer x", "10.1.2.3")
    assert "serves only local clients" in _refused(open_locally, None, "testclient")
    assert _refused(KeyCheck((), "off"), None, "10.1.2.3") is None


def test_subtitle_clocks_and_lines():
    words = [WordTime("HELLO", 0.0, 0.5, -0.1), WordTime("WORLD", 0.52, 1.0, -0.3),
             WordTime("AGAIN", 3661.5, 3662.0, 0.0)]
    rule = SegmentRule(line_chars=6)
    segments = segment_words(words, rule)
    assert formats.srt(segments, rule) == ("1\n00:00:00,000 --> 00:00:01,000\nHELLO\nWORLD\n\n"
                                           "2\n01:01:01,500 --> 01:01:02,000\nAGAIN\n\n")
    assert formats.vtt(segments, rule) == ("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHELLO\nWORLD\n\n"
                                           "01:01:01.500 --> 01:01:02.000\nAGAIN\n\n")
    assert formats.srt([], rule) == "" and formats.vtt([], rule) == "WEBVTT\n\n"


def test_verbose_json_segment_fields():
    words = formats.words_of([{"word": "HI", "start_s": 0.1, "end_s": 0.3, "logprob": -0.5},
                              {"word": "THERE", "start_s": 0.4, "end_s": 0.8, "logprob": -0.2}])
    body = formats.verbose_json("HI THERE", 1.0, "english", segment_words(words), None)
    (segment,) = body["segments"]
    assert segment == {"id": 0, "seek": 0, "start": 0.1, "end": 0.8, "text": "HI THERE", "tokens": [],
                       "temperature": 0.0, "avg_logprob": pytest.approx((-0.5 * 10 + -0.2 * 20) / 30, abs=1e-4),
                       "compression_ratio": round(formats.compression_ratio("HI THERE"), 4), "no_speech_prob": 0.0}
    assert "words" not in body
    assert formats.verbose_json("HI THERE", 1.0, "english", [], words)["words"][1] == {
        "word": "THERE", "start": 0.4, "end": 0.8}
    assert formats.compression_ratio("") == 0.0
    assert formats.compression_ratio("LA " * 100) > 2.4 > formats.compression_ratio("THE QUICK BROWN FOX")
