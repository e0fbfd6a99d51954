"""Shared fixtures: a tiny model repository, a real tritonserver, real speech from ../shared.
And CI's rule: under CI=true a skip fails, except the declared ones (README, "Testing")."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from w2v_triton.paths import REPO_ROOT
from w2v_triton.build.manifest import Utterance, read_manifest, shared_speech_manifests


# --- CI never skips in silence -------------------------------------------------------------------
# `make test` installs every component the tests use (the venv's extras, the system packages, real
# speech is beside the clone), so under CI=true a skip is a failure, except for what CI cannot have.
# README "Testing" lists these with the number of skips a CI run has; the run fails when it differs.
LEGITIMATE_SKIPS = (
    (r"tensorrt is (not )?installed", "TensorRT needs an NVIDIA GPU image (and its absence test skips where it is)"),
    (r"this machine has (a GPU onnxruntime|CUDA|a GPU runtime)",
     "checks that DEVICE=gpu fails without a GPU: skipped where there is one"),
)
README = Path(__file__).resolve().parents[1] / "README.md"
EXPECTED_SKIPS = re.compile(r"Expected skips under `CI=true`: \*\*(\d+)\*\*")


def ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def legitimate_skip(reason: str) -> bool:
    return any(re.search(pattern, reason) for pattern, _ in LEGITIMATE_SKIPS)


def expected_ci_skips(readme: Path = README) -> int:
    match = EXPECTED_SKIPS.search(readme.read_text())
    if match is None:
        raise ValueError(f"{readme} has no line 'Expected skips under `CI=true`: **N**' (section Testing)")
    return int(match[1])


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


def _fail_silent_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        if not legitimate_skip(reason):
            report.outcome = "failed"
            report.longrepr = (f"skipped under CI=true, where `make test` installs what this test needs: {reason} "
                               "(a skip CI cannot avoid goes into tests/conftest.py LEGITIMATE_SKIPS and README)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _fail_silent_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    _fail_silent_skip(report)
    return report


def pytest_sessionfinish(session, exitstatus):
    """Under CI=true, after a whole-suite run that passed: the skips must be the README's number."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not ci() or exitstatus != 0 or reporter is None or not whole_suite(session.config, reporter.stats):
        return
    skipped, expected = len(reporter.stats.get("skipped", [])), expected_ci_skips()
    if skipped != expected:
        reporter.write_line(f"error: {skipped} tests skipped under CI=true, README \"Testing\" says {expected}: "
                            "a new skip needs a reason CI cannot avoid (update both), a fixed one its count", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def whole_suite(config: pytest.Config, stats: dict) -> bool:
    """Every test of tests/ ran: no -k/-m selection, no deselection, only tests/ as the path."""
    tests = Path(__file__).resolve().parent
    option = config.option
    if option.keyword or option.markexpr or getattr(option, "lf", False) or stats.get("deselected"):
        return False
    return all(Path(arg).resolve() == tests for arg in config.args)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def real_speech() -> list[Utterance]:
    """All utterances of ../shared/data/speech; the tests that need them skip when absent."""
    manifests = shared_speech_manifests(REPO_ROOT)
    if not manifests:
        pytest.skip("../shared/data/speech is not present")
    return [u for m in manifests for u in read_manifest(m)]


@pytest.fixture(scope="session")
def tiny_repository(tmp_path_factory) -> Path:
    """A complete model repository for the tiny random model (fast to build and serve)."""
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.build.repository import RepositoryOptions

    output = tmp_path_factory.mktemp("tiny_repository")
    return build_repository(BuildRequest(model="tiny", output=output,
                                         options=RepositoryOptions(decoder_instances=2))).path


@pytest.fixture(scope="session")
def build_tiny(tiny_repository) -> Callable[..., Path]:
    """`build_tiny(output, **request)`: build_repository for the tiny model on tiny_repository's verified
    ONNX file (no second export); `request` holds any other BuildRequest field (options, lm_dir, ...)."""
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.serving import spec

    onnx = tiny_repository / spec.ACOUSTIC_MODEL / "1" / "model.onnx"

    def build(output: Path, **request: Any) -> Path:
        return build_repository(BuildRequest(model="tiny", output=output, onnx=onnx, **request)).path
    return build


@pytest.fixture(scope="session")
def tiny_server(tiny_repository, tmp_path_factory):
    """A real tritonserver on free ports serving the tiny repository; killed by PID at the end."""
    from w2v_triton.serving.tritonserver import Ports, TritonServer

    log = tmp_path_factory.mktemp("server_log") / "tritonserver.log"
    server = TritonServer(tiny_repository, Ports.free(), log_path=log)
    server.start(timeout=180)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tiny_fp32(tmp_path_factory) -> Path:
    """A private copy (per test module) of the tiny model's verified fp32 ONNX file: variants and
    OpenVINO IRs are written next to it, not into the shared build folder."""
    import shutil

    from w2v_triton.build.checkpoints import resolve_checkpoint
    from w2v_triton.build.onnx_export import build_onnx
    from w2v_triton.paths import onnx_dir_for

    checkpoint = resolve_checkpoint("tiny")
    source, _ = build_onnx(checkpoint, onnx_dir_for(checkpoint))
    target = tmp_path_factory.mktemp("tiny_fp32") / "model.onnx"
    shutil.copy2(source, target)
    return target


@pytest.fixture
def served_transcripts(tmp_path) -> Callable[[Path, list[np.ndarray]], list[str]]:
    """Start a real tritonserver on `repo`, transcribe `clips` over gRPC, stop it."""
    def run(repo: Path, clips: list[np.ndarray]) -> list[str]:
        from client import TranscriptionClient
        from w2v_triton.serving.tritonserver import Ports, TritonServer

        server = TritonServer(repo, Ports.free(), log_path=tmp_path / "triton.log")
        server.start(timeout=180)
        try:
            with TranscriptionClient(server.grpc_url, "grpc") as asr:
                return [asr.transcribe(c) for c in clips]
        finally:
            server.stop()
    return run


@pytest.fixture
def load_failure(tmp_path) -> Callable[[Path], str]:
    """Start a tritonserver on `repo` that must fail to load; check that it stopped and return the
    first line of the error (what a user reads)."""
    def run(repo: Path) -> str:
        from w2v_triton.serving.tritonserver import Ports, ServerError, TritonServer

        server = TritonServer(repo, Ports.free(), log_path=tmp_path / "server.log")
        with pytest.raises(ServerError, match="failed to load") as failure:
            server.start(timeout=120)
        assert server.process.poll() is not None   # stopped, nothing left running
        return str(failure.value).splitlines()[0]
    return run


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# Formats the AUDIO_FILE input is tested with: (name, soundfile format, subtype, rate, channels).
# Rates and channel counts differ from the service's 16 kHz mono so decoding also down-mixes and
# resamples; Opus is always 48 kHz.
ENCODINGS = [
    ("wav", "WAV", "PCM_16", 44100, 2),
    ("flac", "FLAC", "PCM_16", 16000, 1),
    ("ogg-vorbis", "OGG", "VORBIS", 22050, 2),
    ("ogg-opus", "OGG", "OPUS", 48000, 1),
    ("mp3", "MP3", "MPEG_LAYER_III", 24000, 1),
]


@pytest.fixture(scope="session")
def wav_declaring() -> Callable[..., bytes]:
    """`wav_declaring(rate, samples=bytes(100))`: a mono 8-bit PCM WAV whose header declares `rate`
    (soundfile refuses to write the rates that matter here, e.g. 1 Hz)."""
    import struct

    def make(rate: int, samples: bytes = bytes(100)) -> bytes:
        fmt = struct.pack("<HHIIHH", 1, 1, rate, rate, 1, 8)
        return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(samples)) + b"WAVE"
                + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples)) + samples)
    return make


@pytest.fixture(scope="session")
def encoded_speech(real_speech) -> list[tuple[str, bytes]]:
    """Two real utterances in every format of ENCODINGS: (label, file bytes)."""
    from w2v_triton.serving.audio import encode_audio, load_audio

    picked = [real_speech[3], real_speech[40]]
    return [(f"{u.audio.stem}.{name}", encode_audio(load_audio(u.audio), *rest))
            for u in picked for name, *rest in ENCODINGS]


@pytest.fixture(scope="session")
def start_gateway(tmp_path_factory):
    """Start the HTTP gateway (uvicorn, its own process) on `host` with given environment; returns its
    URL on 127.0.0.1.

    Every gateway started is stopped by PID at the end of the session.
    """
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from w2v_triton.serving.tritonserver import free_port

    started: list[subprocess.Popen] = []

    def start(host: str = "127.0.0.1", **env: str) -> str:
        port = free_port()
        log = tmp_path_factory.mktemp("gateway") / "gateway.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "gateway.app:app", "--host", host, "--port", str(port),
                 "--log-level", "warning"], cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, **env})
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the gateway exited with {process.returncode}:\n{log.read_text()}")
            try:   # /metrics answers without Triton or a key: the gateway itself is up
                with urllib.request.urlopen(f"{url}/metrics", timeout=2):
                    return url
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the gateway did not answer within 60 s:\n{log.read_text()}")

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def gateway(tiny_server, start_gateway) -> str:
    """The URL of a gateway in front of tiny_server (HTTP for files, gRPC for /v1/realtime)."""
    return start_gateway(TRITON_URL=tiny_server.http_url, TRITON_GRPC_URL=tiny_server.grpc_url)
