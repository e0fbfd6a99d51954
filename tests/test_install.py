"""The venv step's PyTorch choice (tools/dev/torch_install.py) and the Make wiring of training outputs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "dev"))
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
    assert torch_install.torch_requirement(ROOT / "requirements" / "venv-py311.txt") == "torch==2.13.0"
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
    torch_line = next(i for i, line in enumerate(lines) if "tools/dev/torch_install.py --torch cuda" in line)
    assert "--requirements requirements/venv-py311.txt" in lines[torch_line]
    extras = next(i for i, line in enumerate(lines) if 'install -q -c requirements/venv-py311.txt -e ".[dev]"' in line)
    assert torch_line < extras


def test_train_reference_writes_to_build_and_only_promote_touches_the_committed_model():
    train = _make_n("train-reference", "NPROC=1")
    assert "--model-out build/train-reference/model" in train
    assert "--plot build/train-reference/reference-training.png" in train
    assert "models/reference" not in train and "docs/" not in train
    export = _make_n("export-reference")
    assert "models/reference" not in export and "docs/" not in export
    promote = _make_n("promote-reference")
    # the gate (tests/test_promotion.py) replaces models/reference and copies the docs plot and log
    assert "builders.promote_reference --candidate build/train-reference/model" in promote
    assert "--reference models/reference" in promote and "--plot build/train-reference/reference-training.png" in promote
    assert "--train-log build/train-reference/train_log.jsonl" in promote
    assert "docs_tables" in promote


# --- system packages: one helper for corpus-deps, test-deps, browser-deps and make test ----------
HELPER = ROOT / "tools" / "dev" / "system_deps.sh"


def _helper(tmp_path, *specs: str, uid: int, apt_installs: bool = True) -> subprocess.CompletedProcess:
    """Run tools/dev/system_deps.sh with a fake `id` (root or not) and a fake apt-get that 'installs'
    a command by creating it (or does nothing)."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    create = f'for p in "$@"; do [ "${{p#-}}" = "$p" ] && printf "#!/bin/sh\\n" > "{fake}/$p" && chmod +x "{fake}/$p"; done'
    (fake / "apt-get").write_text(f'#!/bin/bash\necho "apt-get $*" >> "{tmp_path}/apt.log"\n'
                                  f'[ "$1" = install ] && {create if apt_installs else "true"}\nexit 0\n')
    for tool in ("id", "apt-get"):
        (fake / tool).chmod(0o755)
    return subprocess.run(["bash", str(HELPER), "demo deps", *specs], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}, timeout=60)


def test_system_deps_present(tmp_path):
    result = _helper(tmp_path, "bash=bash", f"{tmp_path}=whatever", uid=1000)
    assert result.returncode == 0 and result.stdout.strip() == "demo deps: present"


def test_system_deps_missing_without_root_prints_the_one_command(tmp_path):
    result = _helper(tmp_path, "no-such-tool-a=pkg-a", "bash=bash", "/no/such/dir=pkg-b,pkg-c", uid=1000)
    assert result.returncode == 1 and not (tmp_path / "apt.log").exists()
    assert result.stderr.strip() == "demo deps: missing pkg-a pkg-b pkg-c; install with: sudo apt-get install -y pkg-a pkg-b pkg-c"


def test_system_deps_as_root_installs_and_checks_again(tmp_path):
    result = _helper(tmp_path, "no-such-tool-a=no-such-tool-a", uid=0)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "apt.log").read_text().splitlines()[-1].endswith("install -y -qq no-such-tool-a")
    (tmp_path / "again").mkdir()
    failed = _helper(tmp_path / "again", "no-such-tool-b=pkg-b", uid=0, apt_installs=False)
    assert failed.returncode == 1 and "still missing after apt-get install: pkg-b" in failed.stderr


def test_make_test_installs_what_the_tests_use_and_ci_runs_it():
    out = _make_n("test")
    lines = out.splitlines()
    deps = next(i for i, line in enumerate(lines) if "tools/dev/system_deps.sh" in line and "system deps" in line)
    assert deps < next(i for i, line in enumerate(lines) if "-m pytest" in line)
    for spec in ("espeak-ng=espeak-ng", "ip=iproute2", "iptables=iptables", "chromium=chromium"):
        assert spec in lines[deps]
    for target in ("corpus-deps", "test-deps", "browser-deps"):
        assert "tools/dev/system_deps.sh" in _make_n(target)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci and "make test" in ci and "||" not in ci


# --- CI=true: a skip fails unless declared; the count must be the README's --------------------------
def _ci_run(tmp_path, body: str, expected: int) -> subprocess.CompletedProcess:
    (tmp_path / "tests").mkdir(exist_ok=True)
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "tests" / "conftest.py")
    (tmp_path / "README.md").write_text(f"## Testing\nExpected skips under `CI=true`: **{expected}**\n")
    (tmp_path / "tests" / "test_demo.py").write_text("import pytest\n\n" + body)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "CI": "true"})


LEGIT = 'def test_trt():\n    pytest.skip("tensorrt is not installed (needs an NVIDIA GPU image)")\n\ndef test_ok():\n    pass\n'


def test_ci_counts_the_legitimate_skips_against_the_readme(tmp_path):
    assert _ci_run(tmp_path, LEGIT, expected=1).returncode == 0
    wrong = _ci_run(tmp_path, LEGIT, expected=0)
    assert wrong.returncode == 1 and "1 tests skipped under CI=true, README \"Testing\" says 0" in wrong.stdout


def test_ci_fails_a_skip_of_what_ci_installs(tmp_path):
    body = LEGIT + '\ndef test_corpus():\n    pytest.skip("espeak-ng not installed (make corpus-deps)")\n'
    result = _ci_run(tmp_path, body, expected=1)
    assert result.returncode == 1 and "FAILED tests/test_demo.py::test_corpus" in result.stdout
    assert "skipped under CI=true" in result.stdout


def test_readme_declares_the_ci_skips():
    import conftest

    readme = (ROOT / "README.md").read_text()
    testing = readme[readme.index("## Testing"):]
    assert conftest.expected_ci_skips() >= 0
    for pattern, why in conftest.LEGITIMATE_SKIPS:
        escaped = pattern.replace("|", "\\|")   # a table cell
        assert f"`{escaped}`" in testing and why in testing, pattern
