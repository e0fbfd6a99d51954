"""gcp/startup.sh, the VM startup script: its command lines, and a real local run.

Locally MODEL_REPOSITORY stands in for the bucket and TRITON_CMD (python -m w2v_triton.serving.serve)
for the container; NO_METADATA=1 keeps the script away from the metadata server.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
GCP = REPO / "gcp"
STARTUP = GCP / "startup.sh"

ARGV_PRINTER = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["ARGV_LOG"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
"""


# iptables: `-C` (is the rule there?) answers no, so the script appends; the rest succeed.
FAKE_IPTABLES = ARGV_PRINTER + """if "-C" in sys.argv:
    sys.exit(1)
"""
# nvidia-smi: prints the driver version in $FAKE_DRIVER (what --query-gpu=driver_version prints).
FAKE_NVIDIA_SMI = ARGV_PRINTER + """print(os.environ.get("FAKE_DRIVER", "580.95.05"))
"""


@pytest.fixture
def fake_bin(tmp_path):
    """A PATH folder whose docker / docker-credential-gcr / cos-extensions / mount / iptables record argv
    (the real iptables would change this machine's firewall)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("docker", ARGV_PRINTER), ("docker-credential-gcr", ARGV_PRINTER),
                       ("cos-extensions", ARGV_PRINTER), ("mount", ARGV_PRINTER), ("triton-fake", ARGV_PRINTER),
                       ("iptables", FAKE_IPTABLES)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    nvidia = tmp_path / "nvidia"
    (nvidia / "bin").mkdir(parents=True)
    (nvidia / "bin" / "nvidia-smi").write_text(FAKE_NVIDIA_SMI)
    (nvidia / "bin" / "nvidia-smi").chmod(0o755)
    log = tmp_path / "argv.jsonl"

    def run(expect_rc: int = 0, **env: str) -> list[list[str]]:
        full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "ARGV_LOG": str(log),
                    "NO_METADATA": "1", "STATE_DIR": str(tmp_path / "state"), "NVIDIA_DIR": str(nvidia), **env}
        result = subprocess.run(["bash", str(STARTUP)], env=full_env, capture_output=True, text=True, timeout=60)
        assert result.returncode == expect_rc, result.stderr
        run.stderr = result.stderr
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
                     TRITON_EXTRA_FLAGS="--log-info=true", QUEUE_METRIC="true")
    assert calls[0] == ["docker-credential-gcr", "configure-docker", "--registries=us-central1-docker.pkg.dev"]
    assert calls[1] == ["docker", "pull", image]
    assert calls[2][:3] == ["docker", "run", "--rm"] and "openssl" in calls[2]  # gRPC backend certificate
    # COS host firewall: each serving port opened (checked first: idempotent across reboots)
    # before the container starts.
    opened = [c for c in calls if c[0] == "iptables" and "-A" in c]
    assert opened == [["iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", port, "-j", "ACCEPT"]
                      for port in ("8000", "8001", "8002")]
    runs = [i for i, c in enumerate(calls) if c[:3] == ["docker", "run", "--detach"]]
    assert len(runs) == 2 and calls.index(opened[-1]) < runs[0]
    assert [c for c in calls if c[:3] == ["docker", "rm", "--force"]] == [
        ["docker", "rm", "--force", "w2v-triton"], ["docker", "rm", "--force", "w2v-triton-metrics"],
        ["docker", "rm", "--force", "w2v-triton-gateway"]]
    run = calls[runs[0]]
    assert {"--network", "host", "--restart", "unless-stopped"} <= set(run)
    assert run[run.index("--stop-timeout") + 1] == "75"
    server = run[run.index(image) + 1:]
    assert server[:3] == ["tritonserver", "--model-repository", "gs://bkt/model_repository"]
    for flag in ("--model-control-mode=none", "--grpc-use-ssl=true", "--log-info=true", "--strict-readiness=true",
                 "--exit-timeout-secs=70"):
        assert flag in server
    assert "--gpus" not in run and not any(c[0] == "cos-extensions" for c in calls)
    exporter = calls[runs[1]]   # the autoscaling signal: queue time from :8002 to Cloud Monitoring
    assert exporter[exporter.index("--name") + 1] == "w2v-triton-metrics"
    assert exporter[exporter.index(image) + 1:] == ["-m", "w2v_triton.serving.queue_metric", "--metrics-url",
                                                     "http://127.0.0.1:8002/metrics"]


GATEWAY_IMAGE = "us-central1-docker.pkg.dev/p/w2v-asr-images/gateway:abc"


def test_vm_runs_the_gateway_beside_the_server_with_keys_from_metadata(fake_bin, tmp_path):
    calls = fake_bin(MODEL_REPOSITORY="gs://bkt/m", IMAGE="r.example/i:t", QUEUE_METRIC="true",
                     GATEWAY_IMAGE=GATEWAY_IMAGE, GATEWAY_API_KEYS="sk-one,sk-two")
    assert ["docker", "pull", GATEWAY_IMAGE] in calls
    opened = [c[c.index("--dport") + 1] for c in calls if c[0] == "iptables" and "-A" in c]
    assert opened == ["8000", "8001", "8002", "8080"]
    runs = [c for c in calls if c[:3] == ["docker", "run", "--detach"]]
    assert [r[r.index("--name") + 1] for r in runs] == ["w2v-triton", "w2v-triton-gateway", "w2v-triton-metrics"]
    gateway = runs[1]
    assert {"--network", "host", "--restart", "unless-stopped"} <= set(gateway)
    assert gateway[gateway.index("--stop-timeout") + 1] == "75"
    envs = [gateway[i + 1] for i, a in enumerate(gateway) if a == "--env"]
    assert envs == ["TRITON_URL=127.0.0.1:8000", "TRITON_GRPC_URL=127.0.0.1:8001",   # /v1/realtime: gRPC
                        "GATEWAY_API_KEYS_FILE=/run/w2v-gateway/keys.txt"]
    assert gateway[gateway.index("--volume") + 1] == f"{tmp_path / 'state' / 'gateway'}:/run/w2v-gateway:ro"
    assert gateway[gateway.index(GATEWAY_IMAGE) + 1:] == ["uvicorn", "gateway.app:app", "--host", "0.0.0.0",
                                                          "--port", "8080", "--timeout-graceful-shutdown", "70"]
    keys = tmp_path / "state" / "gateway" / "keys.txt"
    assert keys.read_text() == "sk-one\nsk-two\n"
    assert keys.stat().st_mode & 0o777 == 0o600
    assert keys.stat().st_uid == 10001 or os.geteuid() != 0   # the image's user (chown needs root)
    exporter = runs[2]   # scrapes the gateway's /metrics beside Triton's
    assert exporter[-2:] == ["--gateway-metrics-url", "http://127.0.0.1:8080/metrics"]


class _FakeGoogle(BaseHTTPRequestHandler):
    """The metadata server's token and Secret Manager's versions/latest:access, as the VM sees them."""
    secret = b"sk-secret-1\nsk-secret-2\n"
    status = 200

    def log_message(self, *args):
        pass

    def _reply(self, code: int, body: dict) -> None:
        data = json.dumps(body, indent=2).encode()   # multi-line, as the API answers
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/computeMetadata/v1/instance/service-accounts/default/token":
            ok = self.headers.get("Metadata-Flavor") == "Google"
            self._reply(200 if ok else 403, {"access_token": "ya29.tok", "expires_in": 3599, "token_type": "Bearer"})
        elif self.path == "/v1/projects/p/secrets/keys/versions/latest:access":
            ok = self.headers.get("Authorization") == "Bearer ya29.tok" and self.status == 200
            self._reply(200 if ok else 403, {"name": "projects/p/secrets/keys/versions/3", "payload": {
                "data": base64.b64encode(self.secret).decode(), "dataCrc32c": "1"}})
        else:
            self._reply(404, {})


@pytest.fixture
def fake_google():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeGoogle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    yield {"METADATA_ROOT": f"{base}/computeMetadata/v1", "SECRET_MANAGER_URL": f"{base}/v1",
           "GATEWAY_KEYS_SECRET": "projects/p/secrets/keys"}
    server.shutdown()
    _FakeGoogle.status = 200


def test_vm_reads_the_gateway_keys_from_secret_manager(fake_bin, fake_google, tmp_path):
    calls = fake_bin(MODEL_REPOSITORY="gs://bkt/m", IMAGE="r.example/i:t", GATEWAY_IMAGE=GATEWAY_IMAGE, **fake_google)
    assert (tmp_path / "state" / "gateway" / "keys.txt").read_bytes() == _FakeGoogle.secret
    assert any(c[:3] == ["docker", "run", "--detach"] and GATEWAY_IMAGE in c for c in calls)


def test_an_unreadable_secret_stops_the_script_before_the_gateway(fake_bin, fake_google):
    _FakeGoogle.status = 403
    calls = fake_bin(expect_rc=22, MODEL_REPOSITORY="gs://bkt/m", IMAGE="r.example/i:t", GATEWAY_IMAGE=GATEWAY_IMAGE,
                     **fake_google)   # curl -f: 22
    assert not any(c[:3] == ["docker", "run", "--detach"] and GATEWAY_IMAGE in c for c in calls)
    assert any(c[:3] == ["docker", "run", "--detach"] and "tritonserver" in c for c in calls)   # Triton still serves


def test_vm_without_the_queue_metric_runs_only_the_server(fake_bin):
    calls = fake_bin(MODEL_REPOSITORY="gs://bkt/m", IMAGE="r.example/i:t", STOP_TIMEOUT="40")
    runs = [c for c in calls if c[:3] == ["docker", "run", "--detach"]]
    assert len(runs) == 1 and runs[0][runs[0].index("--stop-timeout") + 1] == "40"
    assert "--exit-timeout-secs=35" in runs[0]


def test_vm_gpu_installs_the_pinned_driver_and_passes_the_devices(fake_bin):
    calls = fake_bin(MODEL_REPOSITORY="gs://bkt/m", IMAGE="nvcr.io/x/y:1", GPU="true")
    names = [c[0] for c in calls]
    assert names[:5] == ["docker", "cos-extensions", "mount", "mount", "nvidia-smi"]  # no login for nvcr.io
    assert calls[1] == ["cos-extensions", "install", "gpu", "--", "-version=R580"]
    assert calls[4] == ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
    run = [c for c in calls if c[:3] == ["docker", "run", "--detach"]][-1]
    assert "/dev/nvidiactl" in run and "/dev/nvidia-uvm" in run
    assert any(a.endswith("/lib64:/usr/local/nvidia/lib64") for a in run)


@pytest.mark.parametrize("driver, ok", [("580.95.05", True), ("560.35.03", True), ("535.216.03", True),
                                        ("535.54.03", False), ("550.54.15", False), ("470.57.02", True),
                                        ("", False)])
def test_vm_gpu_refuses_a_driver_the_ngc_image_does_not_support(fake_bin, driver, ok):
    calls = fake_bin(expect_rc=0 if ok else 1, MODEL_REPOSITORY="gs://bkt/m", IMAGE="nvcr.io/x/y:1", GPU="true",
                     GPU_DRIVER="R535", FAKE_DRIVER=driver)
    assert calls[1] == ["cos-extensions", "install", "gpu", "--", "-version=R535"]
    started = any(c[:3] == ["docker", "run", "--detach"] for c in calls)
    assert started is ok
    if not ok:
        assert "too old for the NGC 24.10 image" in fake_bin.stderr


def test_bad_stop_timeout_fails(fake_bin):
    fake_bin(expect_rc=2, MODEL_REPOSITORY="gs://bkt/m", IMAGE="r.example/i:t", STOP_TIMEOUT="soon")
    assert "STOP_TIMEOUT" in fake_bin.stderr


def test_missing_repository_setting_fails():
    result = subprocess.run(["bash", str(STARTUP)], env={**os.environ, "NO_METADATA": "1"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "MODEL_REPOSITORY" in result.stderr


# --- a real local run: startup.sh -> python -m w2v_triton.serving.serve -> tritonserver --------------------
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

    from w2v_triton.serving import spec
    from w2v_triton.serving.audio import load_audio
    from w2v_triton.serving.pipeline import ReferencePipeline
    from w2v_triton.serving.tritonserver import Ports

    repository = Path(os.environ.get("W2V_GCP_TEST_REPOSITORY", tiny_repository))
    if not (repository / spec.ACOUSTIC_MODEL / "1" / "model.onnx").is_file():
        pytest.skip(f"{repository} is not built (acoustic_model/1/model.onnx missing): make build-models MODEL=tiny")
    ports = Ports.free()
    env = {**os.environ, "NO_METADATA": "1", "MODEL_REPOSITORY": str(repository),
           "TRITON_CMD": f"{sys.executable} -m w2v_triton.serving.serve --log {tmp_path / 'server.log'}",
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


# --- under a COS-like host firewall: a network namespace whose INPUT policy drops everything ----------
# Container-Optimized OS accepts only SSH (and loopback, ICMP, established connections) by default;
# with `docker run --network host` the startup script must open the serving ports itself.
# The test builds such a host in a network namespace joined to this one by a veth pair, runs
# startup.sh inside it with a fake `docker` whose `run` starts a small stand-in server (health
# endpoint, a slow endpoint, Triton's drain-on-SIGTERM), and checks reachability from outside.
STAND_IN = r'''
import signal, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port = int(sys.argv[1])
state = {"stopping": False}

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def log_message(self, *args):
        pass
    def _reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/v2/health/ready":
            self._reply(503 if state["stopping"] else 200, b"")
        elif self.path.startswith("/slow/"):
            time.sleep(float(self.path.rsplit("/", 1)[1]))
            self._reply(200, b"finished")
        else:
            self._reply(404, b"")

class Server(ThreadingHTTPServer):
    daemon_threads = False   # server_close() joins in-flight requests: drain, like tritonserver
    allow_reuse_address = True

server = Server(("0.0.0.0", port), Handler)

def stop(signum, frame):   # stop accepting, finish what is in flight, exit 0
    state["stopping"] = True
    threading.Thread(target=server.shutdown).start()

signal.signal(signal.SIGTERM, stop)
server.serve_forever()
server.server_close()
'''

FAKE_DOCKER = r'''#!/usr/bin/env python3
"""docker for the namespace test: `run --detach ... tritonserver` starts the stand-in server;
`run --detach ... uvicorn gateway.app:app ...` starts the real gateway with $GATEWAY_PYTHON (the
project's venv), its --env values with the --volume paths mapped back to the host's;
`stop --time T NAME` sends SIGTERM and SIGKILLs after T seconds, as Docker does."""
import json, os, signal, subprocess, sys, time
state = os.environ["FAKE_DOCKER_STATE"]
args = sys.argv[1:]
with open(os.path.join(state, "argv.jsonl"), "a") as log:
    log.write(json.dumps(args) + "\n")
if args[:2] == ["run", "--detach"] and "tritonserver" in args:
    name = args[args.index("--name") + 1]
    server = args[args.index("tritonserver"):]
    port = server[server.index("--http-port") + 1]
    if os.environ.get("REAL_SERVER"):   # the real tritonserver through w2v_triton.serving.serve, same flags
        flags = [a for a in server[1:] if a.startswith("--") and "=" in a]
        cmd = [sys.executable, "-m", "w2v_triton.serving.serve", *server[1:server.index(flags[0])], "--log",
               os.path.join(state, "server.log"), "--", *flags]
    else:
        cmd = [sys.executable, os.environ["STAND_IN"], port]
    with open(os.path.join(state, name + ".out"), "w") as out:
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    with open(os.path.join(state, name + ".pid"), "w") as f:
        f.write(str(proc.pid))
elif args[:2] == ["run", "--detach"] and "gateway.app:app" in args:
    name = args[args.index("--name") + 1]
    volumes = [args[i + 1].split(":")[:2] for i, a in enumerate(args) if a == "--volume"]
    env = dict(os.environ)
    for i, a in enumerate(args):
        if a == "--env":
            key, value = args[i + 1].split("=", 1)
            for host, inside in volumes:
                value = value.replace(inside, host)
            env[key] = value
    cmd = [os.environ["GATEWAY_PYTHON"], "-m", *args[args.index("uvicorn"):]]
    with open(os.path.join(state, name + ".out"), "w") as out:
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=out, stderr=subprocess.STDOUT, env=env)
    with open(os.path.join(state, name + ".pid"), "w") as f:
        f.write(str(proc.pid))
elif args and args[0] == "stop":
    timeout = int(args[args.index("--time") + 1]) if "--time" in args else 10
    pid_file = os.path.join(state, args[-1] + ".pid")
    if not os.path.exists(pid_file):
        sys.exit(0)
    pid = int(open(pid_file).read())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        sys.exit(0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.remove(pid_file)
'''

HOST_IP, NS_IP = "10.231.7.1", "10.231.7.2"


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, check=check)


@pytest.fixture
def cos_like_namespace(tmp_path):
    """A network namespace with COS's default host firewall, reachable at NS_IP over a veth pair."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if not (shutil.which("ip") and shutil.which("iptables")):
        pytest.skip("needs iproute2 and iptables (apt-get install -y iproute2 iptables)")
    name = f"w2vt{os.getpid() % 100000}"
    host_if, ns_if = f"{name}h", f"{name}n"
    if _run("ip", "netns", "add", name, check=False).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    try:
        ns = ["ip", "netns", "exec", name]
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _run("ip", "link", "set", ns_if, "netns", name)
        _run("ip", "addr", "add", f"{HOST_IP}/30", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        _run(*ns, "ip", "addr", "add", f"{NS_IP}/30", "dev", ns_if)
        _run(*ns, "ip", "link", "set", ns_if, "up")
        _run(*ns, "ip", "link", "set", "lo", "up")
        # COS's defaults: established, loopback, ICMP and SSH in; everything else dropped.
        for rule in (["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
                     ["-i", "lo", "-j", "ACCEPT"], ["-p", "icmp", "-j", "ACCEPT"],
                     ["-p", "tcp", "--dport", "22", "-j", "ACCEPT"]):
            if _run(*ns, "iptables", "-w", "-A", "INPUT", *rule, check=False).returncode != 0:
                pytest.skip("iptables does not work in a network namespace here")
        _run(*ns, "iptables", "-w", "-P", "INPUT", "DROP")
        yield ns
    finally:
        for pid_file in (tmp_path / "docker-state").glob("*.pid"):   # our stand-in servers, by PID
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        _run("ip", "link", "del", host_if, check=False)
        _run("ip", "netns", "del", name, check=False)


def _status(url: str, timeout: float = 2) -> int | str:
    """HTTP status, or the connection error's kind (a dropped SYN shows as a timeout)."""
    try:
        return _get(url, timeout=timeout)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        return type(getattr(exc, "reason", exc)).__name__


def _wait_status(url: str, want: int, seconds: float) -> int | str:
    deadline = time.monotonic() + seconds
    status = _status(url)
    while status != want and time.monotonic() < deadline:
        time.sleep(0.2)
        status = _status(url)
    return status


@pytest.mark.timeout(180)
def test_startup_opens_the_cos_host_firewall_and_the_shutdown_script_drains(cos_like_namespace, tmp_path):
    ns = cos_like_namespace
    state = tmp_path / "docker-state"
    state.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    (tmp_path / "stand_in.py").write_text(STAND_IN)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}:/usr/sbin:/sbin", "NO_METADATA": "1",
           "FAKE_DOCKER_STATE": str(state), "STAND_IN": str(tmp_path / "stand_in.py"),
           "STATE_DIR": str(tmp_path / "state"), "MODEL_REPOSITORY": "gs://bkt/model_repository",
           "IMAGE": "registry.example/w2v/triton-server:t-cpu", "GRPC_TLS": "false", "QUEUE_METRIC": "true",
           "TRITON_CONTAINER": "w2v-triton", "GATEWAY_IMAGE": "registry.example/w2v/gateway:t",
           "GATEWAY_API_KEYS": "sk-ns-key", "GATEWAY_PYTHON": sys.executable}
    health = f"http://{NS_IP}:8000/v2/health/ready"
    result = subprocess.run([*ns, "bash", str(STARTUP)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    probe = ("import time, urllib.request as u\nfor _ in range(100):\n    try:\n"
             "        print(u.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=5).status); break\n"
             "    except OSError:\n        time.sleep(0.1)\n")
    inside = subprocess.run([*ns, sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert inside.stdout.strip() == "200", f"the server never came up in the namespace: {inside.stderr}"

    # From outside the namespace, through its firewall:
    assert _wait_status(health, 200, 10) == 200, "startup.sh left the serving port closed in the host firewall"

    # The gateway beside it, through the same firewall, with the keys startup.sh handed it: from
    # outside the namespace a client is not local, so it needs one.
    gateway = f"http://{NS_IP}:8080"
    assert _wait_status(f"{gateway}/metrics", 200, 60) == 200, (state / "w2v-triton-gateway.out").read_text()
    assert _get(f"{gateway}/v1/models") == 401
    with urllib.request.urlopen(urllib.request.Request(f"{gateway}/v1/models", headers={
            "Authorization": "Bearer sk-ns-key"}), timeout=10) as reply:
        assert json.load(reply)["data"][0]["id"] == "asr"

    # ... and only because startup.sh opened them: without its rule a port is dropped again.
    rules = _run(*ns, "iptables", "-w", "-S", "INPUT").stdout
    for port in ("8000", "8001", "8002", "8080"):
        assert f"--dport {port} -j ACCEPT" in rules, rules
    _run(*ns, "iptables", "-w", "-D", "INPUT", "-p", "tcp", "-m", "tcp", "--dport", "8080", "-j", "ACCEPT")
    assert _status(f"{gateway}/metrics", timeout=1.5) in ("TimeoutError", "timeout")
    _run(*ns, "iptables", "-w", "-D", "INPUT", "-p", "tcp", "-m", "tcp", "--dport", "8000", "-j", "ACCEPT")
    assert _status(health, timeout=1.5) in ("TimeoutError", "timeout")   # the SYN is dropped, not refused
    _run(*ns, "iptables", "-w", "-I", "INPUT", "-p", "tcp", "--dport", "8000", "-j", "ACCEPT")
    assert _wait_status(health, 200, 5) == 200

    # SIGTERM via the VM shutdown script: a request in flight finishes, then the server exits.
    shutdown = GCP / "shutdown.sh"
    assert shutdown.is_file(), "no gcp/shutdown.sh"
    reply: dict = {}

    def slow_request():
        with urllib.request.urlopen(f"http://{NS_IP}:8000/slow/2", timeout=30) as r:
            reply.update(status=r.status, body=r.read())

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.5)   # the request is in flight
    stopped = subprocess.run([*ns, "bash", str(shutdown)], env=env, capture_output=True, text=True, timeout=90)
    worker.join(timeout=30)
    assert stopped.returncode == 0, stopped.stderr
    assert reply == {"status": 200, "body": b"finished"}
    assert not list(state.glob("*.pid")), "the server did not exit"
    stops = [json.loads(line) for line in (state / "argv.jsonl").read_text().splitlines()
             if json.loads(line)[0] == "stop"]
    server_stop = [s for s in stops if s[-1] == "w2v-triton"]
    assert server_stop and int(server_stop[0][server_stop[0].index("--time") + 1]) >= 30, stops
    assert [s for s in stops if s[-1] == "w2v-triton-gateway"], stops   # the gateway is stopped too


@pytest.mark.timeout(120)
def test_a_too_short_stop_timeout_cuts_the_request(cos_like_namespace, tmp_path):
    """The drain check above can fail: with STOP_TIMEOUT=0 Docker kills at once and the request dies."""
    ns = cos_like_namespace
    state = tmp_path / "docker-state"
    state.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    (tmp_path / "stand_in.py").write_text(STAND_IN)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}:/usr/sbin:/sbin", "NO_METADATA": "1",
           "FAKE_DOCKER_STATE": str(state), "STAND_IN": str(tmp_path / "stand_in.py"),
           "STATE_DIR": str(tmp_path / "state"), "MODEL_REPOSITORY": "gs://bkt/m", "IMAGE": "r.example/i:t",
           "GRPC_TLS": "false", "TRITON_CONTAINER": "w2v-triton"}
    assert subprocess.run([*ns, "bash", str(STARTUP)], env=env, capture_output=True, timeout=60).returncode == 0
    assert _wait_status(f"http://{NS_IP}:8000/v2/health/ready", 200, 10) == 200
    errors: list = []

    def slow_request():
        try:
            urllib.request.urlopen(f"http://{NS_IP}:8000/slow/3", timeout=30).read()
        except Exception as exc:  # noqa: BLE001 - any failure is the expected outcome
            errors.append(exc)

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.5)
    subprocess.run([*ns, "bash", str(GCP / "shutdown.sh")], env={**env, "STOP_TIMEOUT": "0"},
                   capture_output=True, timeout=60)
    worker.join(timeout=30)
    assert errors, "the request survived a SIGKILL"


@pytest.mark.integration
@pytest.mark.timeout(400)
def test_real_server_in_the_namespace_drains_on_the_shutdown_script(cos_like_namespace, tmp_path, tiny_repository):
    """The same path with the real tritonserver (tiny repository) behind the fake `docker`: reachable
    from outside through the opened firewall, and requests in flight when gcp/shutdown.sh sends
    SIGTERM all complete."""
    import numpy as np
    import tritonclient.http as httpclient

    from w2v_triton.serving import spec

    ns = cos_like_namespace
    state = tmp_path / "docker-state"
    state.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # this interpreter (the project's venv) runs the fake docker, so `-m w2v_triton.serving.serve` imports
    (bin_dir / "docker").write_text(FAKE_DOCKER.replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1))
    (bin_dir / "docker").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}:/usr/sbin:/sbin", "NO_METADATA": "1",
           "FAKE_DOCKER_STATE": str(state), "REAL_SERVER": "1", "STATE_DIR": str(tmp_path / "state"),
           "MODEL_REPOSITORY": str(tiny_repository), "IMAGE": "r.example/i:t", "GRPC_TLS": "false",
           "TRITON_CONTAINER": "w2v-triton"}
    assert subprocess.run([*ns, "bash", str(STARTUP)], env=env, capture_output=True, timeout=60,
                          cwd=REPO).returncode == 0
    status = _wait_status(f"http://{NS_IP}:8000/v2/health/ready", 200, 240)
    assert status == 200, "".join(p.read_text()[-3000:] for p in state.glob("*.out"))

    audio = np.random.default_rng(0).standard_normal((1, 16000 * 120)).astype(np.float32)
    results: list = []

    def infer():
        client = httpclient.InferenceServerClient(f"{NS_IP}:8000", network_timeout=120)
        try:
            inp = httpclient.InferInput(spec.AUDIO, list(audio.shape), "FP32")
            inp.set_data_from_numpy(audio)
            text = client.infer(spec.ENSEMBLE_MODEL, [inp]).as_numpy(spec.TRANSCRIPT)
            results.append(("ok", time.monotonic(), text.shape))
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            results.append(("error", time.monotonic(), repr(exc)))
        finally:
            client.close()

    def succeeded(model: str) -> int:
        """Requests `model` has answered so far (Triton's statistics)."""
        import json as _json
        import urllib.request

        with urllib.request.urlopen(f"http://{NS_IP}:8000/v2/models/{model}/stats", timeout=5) as reply:
            return int(_json.load(reply)["model_stats"][0]["inference_stats"]["success"]["count"])

    workers = [threading.Thread(target=infer) for _ in range(8)]
    for worker in workers:
        worker.start()
    # SIGTERM once all 8 have reached the server (the preprocessor answered them all) and the single
    # acoustic instance still works through them: a fixed sleep let a quiet machine finish first
    deadline = time.monotonic() + 60
    while succeeded(spec.PREPROCESSOR_MODEL) < 8 and time.monotonic() < deadline:
        time.sleep(0.005)
    sigterm_at = time.monotonic()
    stopped = subprocess.run([*ns, "bash", str(GCP / "shutdown.sh")], env=env, capture_output=True, text=True,
                             timeout=120)
    for worker in workers:
        worker.join(timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert [r[0] for r in results] == ["ok"] * 8, results
    after = sum(r[1] > sigterm_at for r in results)
    print(f"{after} of 8 requests finished after SIGTERM")
    assert after, "nothing was in flight at SIGTERM: the test proved nothing"
    assert not list(state.glob("*.pid"))
