"""Screenshot of the gateway's page with a real transcript (docs/gateway-page.png).

Serves REPOSITORY with tritonserver, starts the gateway in front of it, uploads AUDIO in headless
Chromium (Debian's, driven by Playwright), moves the player into the middle of the transcript so
a word is highlighted, and saves the page:

    python tools/dev/gateway_screenshot.py --repository build/repos/reference --audio speech.mp3 \
        --out docs/gateway-page.png
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from w2v_triton.paths import REPO_ROOT
from w2v_triton.serving.tritonserver import Ports, TritonServer, free_port

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--audio", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "gateway-page.png")
    parser.add_argument("--word", type=int, default=None, help="index of the word to highlight (default: middle)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = TritonServer(args.repository, Ports.free(), log_path=Path(tmp) / "triton.log")
        server.start(timeout=300)
        port = free_port()
        gateway = subprocess.Popen([sys.executable, "-m", "uvicorn", "gateway.app:app", "--port", str(port),
                                    "--log-level", "warning"], cwd=REPO_ROOT,
                                   env={**os.environ, "TRITON_URL": server.http_url})
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{url}/health", timeout=2)
                    break
                except OSError:
                    time.sleep(0.2)
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
                page = browser.new_page(viewport={"width": 1000, "height": 600}, device_scale_factor=1)
                page.goto(url)
                page.set_input_files("#file", str(args.audio))
                page.wait_for_selector("#status[data-state=done]", timeout=120_000)
                page.wait_for_function("document.getElementById('player').readyState >= 1")
                count = page.locator(".word").count()
                chip = page.locator(".word").nth(count // 2 if args.word is None else args.word)
                middle = (float(chip.get_attribute("data-start")) + float(chip.get_attribute("data-end"))) / 2
                page.evaluate(f"document.getElementById('player').currentTime = {middle}")
                page.wait_for_selector(".word.active")
                page.screenshot(path=str(args.out), full_page=True)
                print(f"{args.out}: {page.inner_text('#text')!r}")
                browser.close()
        finally:
            gateway.terminate()
            gateway.wait(timeout=15)
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
