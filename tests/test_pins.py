"""requirements/*.txt are generated from pyproject.toml (tools/dev/pins.py, `make pins`) and current.

Regenerating asks PyPI through uv (uv's cache makes a rerun quick); it is deterministic: uv sees
only releases before tools/dev/pins.py EXCLUDE_NEWER and keeps the committed versions while they satisfy
pyproject.toml, so only a change of pyproject.toml (or a hand edit that breaks it) makes a file stale.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "dev"))
import pins  # noqa: E402

from w2v_triton.serving import image  # noqa: E402

pytestmark = pytest.mark.slow


def test_generated_pins_are_current():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "dev" / "pins.py"), "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr


def test_a_pins_file_missing_a_declared_package_is_stale(tmp_path):
    target = image.server_pins("cpu", image.IMAGE_PYTHON)
    (tmp_path / image.PINS_DIR).mkdir()
    lines = (ROOT / target).read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("flashlight-text==")]
    assert len(kept) == len(lines) - 1
    (tmp_path / target).write_text("".join(kept))
    shutil.copy(ROOT / target, tmp_path / image.PINS_DIR / "hand-kept.txt")
    assert pins.stale(tmp_path, only=(target,)) == [target, f"{image.PINS_DIR}/hand-kept.txt (no target generates it)"]


def test_every_install_has_its_target():
    """The venv, both image variants (3.10, and 3.11 for tests/test_image_env.py), the client and the
    gateway images."""
    paths = {t.path for t in pins.TARGETS}
    assert paths == {"requirements/venv-py311.txt", "requirements/server-cpu-py310.txt",
                     "requirements/server-gpu-py310.txt", "requirements/server-cpu-py311.txt",
                     "requirements/client-py310.txt", "requirements/gateway-py311.txt"}
    assert all((ROOT / p).is_file() for p in paths)
    assert "-c $(VENV_PINS) -e \".[dev]\"" in (ROOT / "Makefile").read_text()


def test_the_venv_pins_torch_but_not_its_cuda_build():
    venv = (ROOT / "requirements" / "venv-py311.txt").read_text()
    names = {line.split("==")[0] for line in venv.splitlines() if "==" in line and not line.startswith(" ")}
    assert "torch" in names and "nvidia-pytriton" in names
    assert not {n for n in names if n.startswith(("nvidia-cu", "nvidia-nccl", "cuda-")) or n == "triton"}
