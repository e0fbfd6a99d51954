"""The venv step's PyTorch choice (tools/torch_install.py) and the Make wiring of training outputs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import torch_install  # noqa: E402

CPU = ["--index-url", torch_install.CPU_INDEX, "--extra-index-url", torch_install.PUBLIC_INDEX]


@pytest.mark.parametrize("mode, gpu, system, configured, expected", [
    ("auto", False, "Linux", "2.13.0", CPU),            # fresh Linux machine: PyPI's wheel is CUDA -> CPU index
    ("auto", False, "Linux", None, CPU),                # pip could not tell: still never the CUDA download
    ("auto", False, "Linux", "2.13.0+cpu", []),         # a local wheel / CPU mirror already gives the CPU build
    ("cpu", False, "Linux", "2.13.0+cpu", []),
    ("cpu", True, "Linux", "2.13.0", CPU),              # asked for CPU on a GPU machine
    ("auto", True, "Linux", None, []),                  # nvidia-smi works: the public CUDA build
    ("cuda", False, "Linux", "2.13.0+cpu", []),         # asked for CUDA: as pip is configured
    ("auto", False, "Darwin", "2.13.0", []),            # PyPI's macOS wheel is the CPU build
])
def test_torch_index_choice(mode, gpu, system, configured, expected):
    assert torch_install.pip_index_args(mode, gpu, system, configured) == expected


def test_bad_torch_mode_is_refused():
    with pytest.raises(ValueError, match="TORCH='rocm'"):
        torch_install.pip_index_args("rocm", False, "Linux", None)


def test_torch_pin_comes_from_requirements(tmp_path):
    assert torch_install.torch_requirement(ROOT / "requirements.txt") == "torch==2.13.0"
    (tmp_path / "r.txt").write_text("numpy==1\n# torch==9 in a comment\ntorch == 2.1.0  # pinned\n")
    assert torch_install.torch_requirement(tmp_path / "r.txt") == "torch==2.1.0"
    (tmp_path / "none.txt").write_text("numpy==1\ntorchaudio==2\n")
    with pytest.raises(ValueError, match="no torch==VERSION pin"):
        torch_install.torch_requirement(tmp_path / "none.txt")


def _make_n(*args: str) -> str:
    return subprocess.run(["make", "-n", "-B", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_venv_step_checks_venv_and_installs_the_chosen_torch_first():
    out = _make_n(".venv/.installed", "TORCH=cuda")
    assert "apt-get install python3-venv" in out
    lines = out.splitlines()
    torch_line = next(i for i, line in enumerate(lines) if "tools/torch_install.py --torch cuda" in line)
    assert torch_line < next(i for i, line in enumerate(lines) if "install -q -r requirements.txt" in line)


def test_train_reference_writes_to_build_and_only_promote_touches_the_committed_model():
    train = _make_n("train-reference", "NPROC=1")
    assert "--model-out build/train-reference/model" in train
    assert "--plot build/train-reference/reference-training.png" in train
    assert "models/reference" not in train and "docs/" not in train
    export = _make_n("export-reference")
    assert "models/reference" not in export and "docs/" not in export
    promote = _make_n("promote-reference")
    assert "cp -r build/train-reference/model/. models/reference/" in promote
    assert "docs/reference-training.png" in promote and "docs/reference-training-log.jsonl" in promote
    assert "docs_tables" in promote
