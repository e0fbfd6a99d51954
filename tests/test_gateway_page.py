"""The gateway's page in headless Chromium (Debian's `chromium`, driven by Playwright) against a real
tritonserver: an uploaded speech file's transcript appears and equals the float32 path's, words are
highlighted as the audio plays, and a (fake-microphone) recording is transcribed.

Skips when /usr/bin/chromium is missing (`apt-get install chromium`). Set GATEWAY_SCREENSHOT to a
path to keep a screenshot of the page (docs/gateway-page.png is made this way).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from client import TranscriptionClient
from w2v_triton.serving.audio import load_audio

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def playwright():
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as driver:
        yield driver


def _browser(playwright, *extra: str):
    return playwright.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM, headless=True,
                                      args=ARGS + list(extra))


def test_upload_shows_the_float32_transcript_and_follows_the_audio(playwright, gateway, tiny_server, real_speech,
                                                                  tmp_path):
    path = real_speech[3].audio                  # a 13 s LibriSpeech FLAC, uploaded as stored
    with TranscriptionClient(tiny_server.http_url) as asr:
        expected = asr.transcribe_full(load_audio(path))
    assert expected.text and len(expected.words) > 3
    browser = _browser(playwright)
    try:
        page = browser.new_page(viewport={"width": 1000, "height": 760})
        page.goto(gateway)
        page.set_input_files("#file", str(path))
        page.wait_for_selector("#status[data-state=done]", timeout=60_000)
        assert page.inner_text("#text") == expected.text
        chips = page.locator(".word")
        assert chips.count() == len(expected.words)
        assert [float(chips.nth(i).get_attribute("data-start")) for i in range(chips.count())] == [
            w["start_s"] for w in expected.words]
        # Playing position inside word k highlights word k (and only it).
        k = len(expected.words) // 2
        word = expected.words[k]
        page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=30_000)
        page.evaluate(f"document.getElementById('player').currentTime = {(word['start_s'] + word['end_s']) / 2}")
        page.wait_for_selector(".word.active", timeout=10_000)
        active = page.locator(".word.active")
        assert active.count() == 1 and active.locator("span").inner_text() == word["word"]
        shot = Path(os.environ.get("GATEWAY_SCREENSHOT") or tmp_path / "gateway-page.png")
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
    finally:
        browser.close()


def test_bad_file_shows_tritons_error(playwright, gateway, tmp_path):
    bad = tmp_path / "notes.m4a"
    bad.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A mp42isom" + bytes(2000))
    browser = _browser(playwright)
    try:
        page = browser.new_page()
        page.goto(gateway)
        page.set_input_files("#file", str(bad))
        page.wait_for_selector("#status[data-state=error]", timeout=60_000)
        assert "unsupported audio format audio/mp4" in page.inner_text("#status")
    finally:
        browser.close()


def test_recording_from_the_microphone_is_transcribed(playwright, gateway, real_speech, tmp_path):
    """Chromium's fake microphone plays a speech WAV; MediaRecorder's WebM becomes a WAV upload."""
    import soundfile as sf

    speech = tmp_path / "speech.wav"
    sf.write(speech, load_audio(real_speech[3].audio), 16000, subtype="PCM_16")
    browser = _browser(playwright, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                       f"--use-file-for-fake-audio-capture={speech}")
    try:
        page = browser.new_page()
        page.goto(gateway)
        page.click("#record")
        page.wait_for_selector("#status[data-state=recording]", timeout=10_000)
        page.wait_for_timeout(2500)
        page.click("#record")
        page.wait_for_selector("#status[data-state=done], #status[data-state=error]", timeout=60_000)
        assert page.get_attribute("#status", "data-state") == "done", page.inner_text("#status")
        assert "recording.wav" in page.inner_text("#status")
        assert page.inner_text("#text").strip()              # the tiny model's letters
        duration = float(page.inner_text("#meta").split("·")[1].split()[0])
        assert 1.5 < duration < 4.0                           # about the 2.5 s recorded
    finally:
        browser.close()


def test_live_microphone_shows_partials_then_finals(playwright, gateway, real_speech, tmp_path):
    """The Live button streams Chromium's fake microphone (a real utterance, looped) over
    /v1/realtime: grey partials (deltas) appear while it plays, segments turn final when the
    server's VAD closes them, and Stop finishes the open one."""
    import soundfile as sf

    speech = tmp_path / "speech.wav"
    sf.write(speech, load_audio(real_speech[3].audio), 16000, subtype="PCM_16")
    browser = _browser(playwright, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                       f"--use-file-for-fake-audio-capture={speech}", "--autoplay-policy=no-user-gesture-required")
    try:
        page = browser.new_page()
        page.goto(gateway)
        page.click("#live")
        page.wait_for_selector("#status[data-state=recording]", timeout=20_000)
        page.wait_for_function("[...document.querySelectorAll('#segments .partial')]"
                               ".some((e) => e.textContent.trim())", timeout=60_000)   # a partial, live
        page.wait_for_selector("#segments .final", timeout=60_000)                   # a segment closed by the VAD
        assert page.get_attribute("#status", "data-state") == "recording"           # while still listening
        page.click("#live")
        page.wait_for_selector("#status[data-state=done], #status[data-state=error]", timeout=60_000)
        assert page.get_attribute("#status", "data-state") == "done", page.inner_text("#status")
        finals = page.locator("#segments .final")
        assert finals.count() >= 1 and page.locator("#segments .partial").count() == 0
        assert any(finals.nth(i).inner_text().strip() for i in range(finals.count()))
        shot = os.environ.get("GATEWAY_LIVE_SCREENSHOT")
        if shot:
            page.screenshot(path=shot, full_page=True)
    finally:
        browser.close()
