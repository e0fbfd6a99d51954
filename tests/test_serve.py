"""`python -m w2v_triton.serving.serve` (what `make serve` runs): readiness, clean stop, clear failures."""
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from w2v_triton.serving.tritonserver import Ports

pytestmark = pytest.mark.integration


def test_serve_starts_ready_and_stops_cleanly_on_sigterm(tiny_repository, tmp_path):
    ports = Ports.free()
    process = subprocess.Popen(
        [sys.executable, "-m", "w2v_triton.serving.serve", "--model-repository", str(tiny_repository),
         "--http-port", str(ports.http), "--grpc-port", str(ports.grpc), "--metrics-port", str(ports.metrics),
         "--log", str(tmp_path / "server.log")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = process.stdout.readline()
        assert "tritonserver ready" in line, line + process.stdout.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{ports.http}/v2/health/ready", timeout=5) as reply:
            assert reply.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert "tritonserver stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()


def test_serve_without_built_repository_fails_loudly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "w2v_triton.serving.serve", "--model-repository", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "make build-models" in result.stderr


def test_model_load_failure_shows_the_log_instead_of_hanging(tiny_repository, tmp_path):
    import shutil

    from w2v_triton.serving.tritonserver import ServerError, TritonServer

    broken = tmp_path / "repo"
    shutil.copytree(tiny_repository, broken)
    config = broken / "decoder" / "config.pbtxt"
    config.write_text(config.read_text().replace('string_value: "greedy"', 'string_value: "viterbi"'))
    start = time.monotonic()
    with pytest.raises(ServerError, match="viterbi"):
        TritonServer(broken, Ports.free(), log_path=tmp_path / "log").start(timeout=120)
    assert time.monotonic() - start < 100


def test_sigterm_during_startup_is_a_clean_stop(monkeypatch, tmp_path, capsys):
    """A SIGTERM that lands while start() still polls for readiness stops the server on purpose:
    exit 0 and "stopped", not "tritonserver exited" (seen when a client was ready first)."""
    import os

    from w2v_triton.serving import serve
    from w2v_triton.serving.tritonserver import ServerError, TritonServer

    def start(self, timeout):
        os.kill(os.getpid(), signal.SIGTERM)   # runs serve's handler, as the signal would
        raise ServerError("tritonserver exited with 0")

    monkeypatch.setattr(TritonServer, "start", start)
    monkeypatch.setattr(TritonServer, "terminate", lambda self: None)
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert serve.main(["--model-repository", str(tmp_path), "--log", str(tmp_path / "log")]) == 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert "tritonserver stopped" in capsys.readouterr().out


def test_stop_kills_what_outlives_the_server_in_its_group(tmp_path):
    """A python backend stub can outlive a server that exited on its own (seen after a model-load
    failure): stop() kills the rest of the server's process group, not only the server."""
    from w2v_triton.serving.tritonserver import TritonServer

    pid_file = tmp_path / "child.pid"
    server = TritonServer(tmp_path)
    server.process = subprocess.Popen(
        ["sh", "-c", f"sleep 300 & echo $! > {pid_file}; exit 3"], start_new_session=True)
    server.process.wait(10)
    child = int(pid_file.read_text())
    assert _alive(child)
    assert server.stop() == 3
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"   # a zombie has exited
    except FileNotFoundError:
        return False
