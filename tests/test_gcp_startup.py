"""gcp/startup.sh, the VM startup script: its command lines, and a real local run.

Locally MODEL_REPOSITORY stands in for the bucket and TRITON_CMD (python -m w2v_triton.serve)
for the container; NO_METADATA=1 keeps the script away from the metadata server.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
STARTUP = REPO / "gcp" / "startup.sh"

ARGV_PRINTER = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["ARGV_LOG"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
"""


@pytest.fixture
def fake_bin(tmp_path):
    """A PATH folder whose docker / docker-credential-gcr / cos-extensions / mount record argv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "docker-credential-gcr", "cos-extensions", "mount", "triton-fake"):
        (bin_dir / name).write_text(ARGV_PRINTER)
        (bin_dir / name).chmod(0o755)
    nvidia = tmp_path / "nvidia"
    (nvidia / "bin").mkdir(parents=True)
    (nvidia / "bin" / "nvidia-smi").write_text(ARGV_PRINTER)
    (nvidia / "bin" / "nvidia-smi").chmod(0o755)
    log = tmp_path / "argv.jsonl"

    def run(**env: str) -> list[list[str]]:
        full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "ARGV_LOG": str(log),
                    "NO_METADATA": "1", "STATE_DIR": str(tmp_path / "state"), "NVIDIA_DIR": str(nvidia), **env}
        result = subprocess.run(["bash", str(STARTUP)], env=full_env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    run.bin_dir = bin_dir
    return run


def test_local_command_line(fake_bin):
    (argv,) = fake_bin(MODEL_REPOSITORY="/models", TRITON_CMD=f"{fake_bin.bin_dir}/triton-fake --log x.log",
                       TRITON_FLAGS_SEPARATOR="--", HTTP_PORT="18000", GRPC_PORT="18001", METRICS_PORT="18002")
    assert argv[:10] == ["triton-fake", "--log", "x.log", "--model-repository", "/models",
                         "--http-port", "18000", "--grpc-port", "18001", "--metrics-port"]
    assert argv[10:12] == ["18002", "--"]
    assert "--model-control-mode=none" in argv[12:]
    assert not [a for a in argv if "ssl" in a]  # GRPC_TLS defaults to false off the VM


def test_vm_command_line_runs_the_container_on_the_bucket(fake_bin):
    image = "us-central1-docker.pkg.dev/p/w2v-asr-images/triton-server:abc-cpu"
    calls = fake_bin(MODEL_REPOSITORY="gs://bkt/model_repository", IMAGE=image, GRPC_TLS="true",
                     TRITON_EXTRA_FLAGS="--log-info=true")
    assert calls[0] == ["docker-credential-gcr", "configure-docker", "--registries=us-central1-docker.pkg.dev"]
    assert calls[1] == ["docker", "pull", image]
    assert calls[2][:3] == ["docker", "run", "--rm"] and "openssl" in calls[2]  # gRPC backend certificate
    assert calls[3][:3] == ["docker", "rm", "--force"]
    run = calls[4]
    assert run[:3] == ["docker", "run", "--detach"]
    assert {"--network", "host", "--restart", "unless-stopped"} <= set(run)
    server = run[run.index(image) + 1:]
    assert server[:3] == ["tritonserver", "--model-repository", "gs://bkt/model_repository"]
    for flag in ("--model-control-mode=none", "--grpc-use-ssl=true", "--log-info=true", "--strict-readiness=true"):
        assert flag in server
    assert "--gpus" not in run and not any(c[0] == "cos-extensions" for c in calls)


def test_vm_gpu_installs_the_driver_and_passes_the_devices(fake_bin):
    calls = fake_bin(MODEL_REPOSITORY="gs://bkt/m", IMAGE="nvcr.io/x/y:1", GPU="true")
    names = [c[0] for c in calls]
    assert names[:4] == ["docker", "cos-extensions", "mount", "mount"]  # no registry login for nvcr.io
    assert calls[1] == ["cos-extensions", "install", "gpu"]
    run = calls[-1]
    assert "/dev/nvidiactl" in run and "/dev/nvidia-uvm" in run
    assert any(a.endswith("/lib64:/usr/local/nvidia/lib64") for a in run)


def test_missing_repository_setting_fails():
    result = subprocess.run(["bash", str(STARTUP)], env={**os.environ, "NO_METADATA": "1"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "MODEL_REPOSITORY" in result.stderr


# --- a real local run: startup.sh -> python -m w2v_triton.serve -> tritonserver --------------------
def _get(url: str, method: str = "GET", timeout: float = 5) -> int:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.integration
@pytest.mark.timeout(400)
def test_startup_serves_the_repository_locally(tiny_repository, real_speech, tmp_path):
    """Run the startup script as the VM would (bucket -> folder, container -> serve module, gRPC
    with the self-signed TLS the load balancer's HTTP2 backend uses), wait for readiness,
    transcribe real speech over HTTP and over gRPC+TLS, check model control is off, stop it."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    from w2v_triton import spec
    from w2v_triton.audio import load_audio
    from w2v_triton.pipeline import ReferencePipeline
    from w2v_triton.tritonserver import Ports

    repository = Path(os.environ.get("W2V_GCP_TEST_REPOSITORY", tiny_repository))
    if not (repository / spec.ACOUSTIC_MODEL / "1" / "model.onnx").is_file():
        pytest.skip(f"{repository} is not built (acoustic_model/1/model.onnx missing): make build-models MODEL=tiny")
    ports = Ports.free()
    env = {**os.environ, "NO_METADATA": "1", "MODEL_REPOSITORY": str(repository),
           "TRITON_CMD": f"{sys.executable} -m w2v_triton.serve --log {tmp_path / 'server.log'}",
           "TRITON_FLAGS_SEPARATOR": "--", "HTTP_PORT": str(ports.http), "GRPC_PORT": str(ports.grpc),
           "METRICS_PORT": str(ports.metrics), "GRPC_TLS": "true", "STATE_DIR": str(tmp_path / "state")}
    process = subprocess.Popen(["bash", str(STARTUP)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=REPO)
    base = f"http://127.0.0.1:{ports.http}"
    try:
        deadline = time.monotonic() + 240
        while _get_quiet(f"{base}/v2/health/ready") != 200:
            assert process.poll() is None, f"startup.sh exited {process.returncode}:\n{process.stdout.read()}"
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.5)

        utterance = min((u for u in real_speech if u.duration >= 1.0), key=lambda u: u.duration)
        audio = load_audio(utterance.audio)
        client = httpclient.InferenceServerClient(f"127.0.0.1:{ports.http}")
        try:
            inp = httpclient.InferInput(spec.AUDIO, [1, audio.size], "FP32")
            inp.set_data_from_numpy(audio[np.newaxis, :].astype(np.float32))
            result = client.infer(spec.ENSEMBLE_MODEL, [inp],
                                  outputs=[httpclient.InferRequestedOutput(spec.TRANSCRIPT)])
            transcript = result.as_numpy(spec.TRANSCRIPT)
        finally:
            client.close()
        assert transcript.shape == (1, 1)
        text = transcript[0, 0].decode()
        assert text == ReferencePipeline(repository).transcribe(audio)

        # gRPC only over TLS, with the certificate startup.sh made (what the LB's HTTP2 backend meets).
        cert = (tmp_path / "state" / "tls" / "server.crt").read_bytes()
        with grpcclient.InferenceServerClient(
                f"127.0.0.1:{ports.grpc}", ssl=True, root_certificates=str(tmp_path / "state" / "tls" / "server.crt"),
                channel_args=[("grpc.ssl_target_name_override", "w2v-triton-backend")]) as grpc:
            inp = grpcclient.InferInput(spec.AUDIO, [1, audio.size], "FP32")
            inp.set_data_from_numpy(audio[np.newaxis, :].astype(np.float32))
            served = grpc.infer(spec.ENSEMBLE_MODEL, [inp]).as_numpy(spec.TRANSCRIPT)[0, 0].decode()
        assert cert.startswith(b"-----BEGIN CERTIFICATE-----") and served == text
        with grpcclient.InferenceServerClient(f"127.0.0.1:{ports.grpc}") as plain:
            from tritonclient.utils import InferenceServerException
            with pytest.raises(InferenceServerException):
                plain.is_server_ready(client_timeout=5)

        # --model-control-mode=none: the repository API cannot unload the served model.
        assert _get(f"{base}/v2/repository/models/{spec.ENSEMBLE_MODEL}/unload", method="POST") >= 400
        assert _get(f"{base}/v2/models/{spec.ENSEMBLE_MODEL}/ready") == 200

        process.send_signal(signal.SIGTERM)  # startup.sh exec'd the server wrapper: this PID is it
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _get_quiet(url: str) -> int:
    try:
        return _get(url, timeout=2)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0
