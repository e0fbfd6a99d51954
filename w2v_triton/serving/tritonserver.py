"""Start the real tritonserver that ships in the nvidia-pytriton wheel (or a kit), correctly set up.

The wheel's python backend lacks its stub, the stub ignores PYTHONPATH and finds the
interpreter through PATH, and a wrong LD_LIBRARY_PATH makes model loading hang instead
of failing (README, "Running Triton here"). This module hides all of that behind
`TritonServer`, used by `make serve`, the tests, the benchmarks and the GCP startup script.
Where no wheel can be installed (a lent GPU machine without a registry), W2V_TRITON_HOME names an
unpacked kit with the same layout (`make gpu-kit`, docs/gpu.md).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from w2v_triton.paths import SERVER_LOG, TRITON_BACKENDS, TRITON_LIBS

# A folder with the wheel's server layout (pytriton/tritonserver/, nvidia_pytriton.libs/) and
# bin/perf_analyzer, used instead of the installed wheels: an unpacked GPU kit (docs/gpu.md).
TRITON_HOME_ENV = "W2V_TRITON_HOME"


class ServerError(RuntimeError):
    """The server did not become ready or exited; the message includes its log tail."""


@dataclass(frozen=True)
class TritonInstall:
    """Where tritonserver, its libraries and perf_analyzer are, and where this process may write
    the backend directory and the library links for them (beside the install they belong to, so
    a kit and the wheel never overwrite each other's)."""

    server_dir: Path       # pytriton/tritonserver: bin/, backends/python/, python_backend_stubs/
    libs: Path             # nvidia_pytriton.libs: libtritonserver, libcudart, libb64, ...
    perf_analyzer: Path
    backend_root: Path     # written: python/ with the stub for this interpreter
    links: Path            # written: symlinks under the names perf_analyzer and the stub look for

    @classmethod
    def find(cls) -> "TritonInstall":
        """The kit named by W2V_TRITON_HOME when set (never a silent fallback to the wheel),
        else the nvidia-pytriton and tritonclient wheels installed beside this interpreter."""
        home = os.environ.get(TRITON_HOME_ENV)
        if home:
            root = Path(home).resolve()
            install = cls(root / "pytriton" / "tritonserver", root / "nvidia_pytriton.libs",
                          root / "bin" / "perf_analyzer", root / "triton_backends", root / "triton_libs")
            where = f"{TRITON_HOME_ENV}={home}"
        else:
            try:
                import pytriton
            except ImportError:
                raise ServerError(f"no tritonserver: install nvidia-pytriton (make venv) or set "
                                  f"{TRITON_HOME_ENV} to an unpacked kit") from None
            server_dir = Path(pytriton.__file__).resolve().parent / "tritonserver"
            install = cls(server_dir, server_dir.parent.parent / "nvidia_pytriton.libs",
                          Path(sys.executable).parent / "perf_analyzer", TRITON_BACKENDS, TRITON_LIBS)
            where = "the nvidia-pytriton wheel"
        if not install.server_binary.is_file():
            raise ServerError(f"no tritonserver binary under {install.server_dir} ({where})")
        return install

    @property
    def server_binary(self) -> Path:
        return self.server_dir / "bin" / "tritonserver"

    def stub(self, version: str = f"{sys.version_info.major}.{sys.version_info.minor}") -> Path:
        """The python backend stub built for CPython `version` (the wheel ships one per version)."""
        return self.server_dir / "python_backend_stubs" / version / "triton_python_backend_stub"


def prepare_backend_dir(install: TritonInstall | None = None) -> Path:
    """Copy the python backend and the stub for this interpreter into one backend directory."""
    install = install or TritonInstall.find()
    python_dir = install.backend_root / "python"
    stub = install.stub()
    if not stub.is_file():
        raise ServerError(f"{install.server_dir} has no python backend stub for Python {sys.version.split()[0]}")
    python_dir.mkdir(parents=True, exist_ok=True)
    sources = [p for p in (install.server_dir / "backends" / "python").iterdir() if p.is_file()] + [stub]
    for source in sources:
        _install_file(source, python_dir / source.name)
    return install.backend_root


def _install_file(source: Path, target: Path) -> None:
    """Copy unless identical; replace by rename so a running server's stub is never written to."""
    if target.is_file() and target.stat().st_size == source.stat().st_size \
            and target.stat().st_mtime_ns == source.stat().st_mtime_ns:
        return
    partial = target.with_name(target.name + ".partial")
    shutil.copy2(source, partial)
    os.replace(partial, target)


# the names perf_analyzer (built outside the wheel) asks for -> the wheel's renamed copies
LIBRARY_LINKS = (("libb64-*.so.0d", "libb64.so.0d"), ("libcudart-*.so.12*", "libcudart.so.12"))


def library_dir(install: TritonInstall | None = None) -> Path:
    """A folder of symlinks under the names perf_analyzer and the stub look for."""
    install = install or TritonInstall.find()
    install.links.mkdir(parents=True, exist_ok=True)
    for pattern, name in LIBRARY_LINKS:
        matches = sorted(install.libs.glob(pattern))
        link = install.links / name
        if matches and not (link.is_symlink() and link.resolve() == matches[0].resolve()):
            partial = link.with_name(name + ".partial")
            partial.unlink(missing_ok=True)
            partial.symlink_to(matches[0])
            os.replace(partial, link)
    return install.links


def server_environment(install: TritonInstall | None = None, python_env: Path | None = None) -> dict[str, str]:
    """PATH with this venv's python first (or python_env's: a venv of the same Python version);
    LD_LIBRARY_PATH with libpython and the server's libs."""
    install = install or TritonInstall.find()
    env = dict(os.environ)
    venv_bin = str(Path(python_env) / "bin" if python_env else Path(sys.executable).parent)
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    ld_paths = [sysconfig.get_config_var("LIBDIR"), str(install.libs), str(library_dir(install))]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in ld_paths + [env.get("LD_LIBRARY_PATH", "")] if p)
    return env


def missing_libraries(install: TritonInstall | None = None) -> dict[str, list[str]]:
    """Shared libraries that the server, the python backend, this interpreter's stub (libpython
    among them) and perf_analyzer cannot find in the server's environment: {file: [names]}.
    Checked before a start because a missing one can make a model load hang, not fail."""
    install = install or TritonInstall.find()
    if shutil.which("ldd") is None:
        raise ServerError("ldd not found: the server's libraries cannot be checked (Debian/Ubuntu: libc-bin)")
    env = server_environment(install)
    files = [install.server_binary, install.server_dir / "backends" / "python" / "libtriton_python.so",
             install.stub(), install.perf_analyzer]
    missing: dict[str, list[str]] = {}
    for path in files:
        if not path.is_file():
            missing[str(path)] = ["(the file itself)"]
            continue
        result = subprocess.run(["ldd", str(path)], env=env, capture_output=True, text=True, check=False)
        lost = [line.split()[0] for line in result.stdout.splitlines() if "not found" in line]
        if lost:
            missing[str(path)] = lost
    return missing


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Ports:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002

    @classmethod
    def free(cls) -> "Ports":
        return cls(free_port(), free_port(), free_port())


def server_command(repository: Path, ports: Ports, extra: Sequence[str] = (),
                   install: TritonInstall | None = None) -> list[str]:
    install = install or TritonInstall.find()
    return [
        str(install.server_binary),
        f"--model-repository={Path(repository).resolve()}",
        f"--backend-directory={prepare_backend_dir(install)}",
        f"--http-port={ports.http}", f"--grpc-port={ports.grpc}", f"--metrics-port={ports.metrics}",
        "--exit-timeout-secs=10", "--log-verbose=0", *extra,
    ]


def check_repository(repository: Path) -> None:
    """Fail before starting when the repository was never built (clearer than a load error)."""
    from w2v_triton.serving import spec
    from w2v_triton.serving.acoustic import ONNX_FILE, OPENVINO_IR_FILE, TORCH_CHECKPOINT_DIR

    if not (Path(repository) / spec.ENSEMBLE_MODEL / "config.pbtxt").is_file():
        raise ServerError(f"{repository} has no rendered configs: run `make build-models` first")
    am_dir = Path(repository) / spec.ACOUSTIC_MODEL / "1"
    if not any((am_dir / name).exists() for name in (ONNX_FILE, TORCH_CHECKPOINT_DIR, OPENVINO_IR_FILE)):
        raise ServerError(f"{am_dir / ONNX_FILE} is missing: run `make build-models` first")


def load_failure(log: str) -> str:
    """The one line that says why a model failed to load (Triton logs the reason on the line
    "failed to load '<model>' version N: <reason>"), else a generic one."""
    import re

    for line in log.splitlines():
        match = re.search(r"failed to load '([^']+)' version \d+: (.*?)\"?$", line)
        if match:
            return f"a model failed to load: {match[1]}: {match[2]}"
    return "a model failed to load"


class TritonServer:
    """A tritonserver child process: start, wait for readiness (with a timeout), stop by PID."""

    def __init__(self, repository: Path, ports: Ports | None = None, log_path: Path | None = None,
                 extra_args: Sequence[str] = (), python_env: Path | None = None) -> None:
        """python_env: the venv the python models run in (default: this interpreter's); the
        image-environment test serves from a venv installed like the server image."""
        self.repository = Path(repository)
        self.python_env = python_env
        self.ports = ports or Ports()
        self.log_path = log_path or SERVER_LOG
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.ports.grpc}"

    def start(self, timeout: float = 120.0) -> "TritonServer":
        check_repository(self.repository)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        install = TritonInstall.find()
        self.process = subprocess.Popen(
            server_command(self.repository, self.ports, self.extra_args, install),
            env=server_environment(install, self.python_env),
            # in another env, the models import its installed package, not a source tree here
            cwd=self.python_env or None,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.wait_ready(timeout)
        return self

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as reply:
                status: int = reply.status
                return status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.process is not None, "wait_ready() runs after start()"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"tritonserver exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.is_ready():
                return
            log = self.log_tail(200)
            if "failed to load" in log or "UNAVAILABLE" in log:
                self.stop()
                raise ServerError(f"{load_failure(self.log_tail(400))}\n{self.log_tail()}")
            time.sleep(0.25)
        self.stop()
        raise ServerError(f"tritonserver not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def terminate(self) -> None:
        """Send SIGTERM to our own server's process group (the python stubs too); no wait."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM our own server, wait for a clean exit, SIGKILL after `timeout`."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
