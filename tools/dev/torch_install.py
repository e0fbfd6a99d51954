"""Install the pinned PyTorch into the venv: the CPU build unless CUDA is asked for or present.

On Linux the public index's `torch==X` is the CUDA build (gigabytes of NVIDIA wheels); the CPU
build lives on PyTorch's own index as `X+cpu`. So, with `--torch auto` (the Makefile's default,
`make venv TORCH=cpu|cuda|auto`):
  * CUDA when asked (`cuda`), or when `auto` and `nvidia-smi` runs;
  * otherwise ask pip (a dry run: metadata only, nothing downloaded) which wheel its configured
    indexes and find-links would pick; if that is already a `+cpu` build (a local wheel
    directory, a mirror of the CPU index) or the platform is not Linux (PyPI's wheel is the CPU
    build there), install it as configured; else install from the CPU index.
Standard library only: it runs before anything else is installed.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PUBLIC_INDEX = "https://pypi.org/simple"
MODES = ("auto", "cpu", "cuda")


def torch_requirement(requirements: Path) -> str:
    """The `torch==...` line of the venv's pins (requirements/venv-py311.txt, generated from
    pyproject.toml by `make pins`: the one place the version is pinned)."""
    for line in requirements.read_text().splitlines():
        if re.match(r"torch\s*==", line.strip()):
            return re.sub(r"\s+", "", line.split("#")[0])
    raise ValueError(f"{requirements}: no torch==VERSION pin")


def pip_index_args(mode: str, has_gpu: bool, system: str, configured_version: str | None) -> list[str]:
    """Extra `pip install` arguments for torch; [] = install as pip is configured.

    configured_version: the version pip would pick as configured (e.g. "2.13.0+cpu"), or None
    when that could not be found out."""
    if mode not in MODES:
        raise ValueError(f"TORCH={mode!r}: expected one of {', '.join(MODES)}")
    if mode == "cuda" or (mode == "auto" and has_gpu):
        return []  # the public index's Linux wheel is the CUDA build
    if system != "Linux" or (configured_version or "").endswith("+cpu"):
        return []
    return ["--index-url", CPU_INDEX, "--extra-index-url", PUBLIC_INDEX]


def nvidia_gpu_present() -> bool:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def configured_version(requirement: str) -> str | None:
    """The torch version pip would install as configured (dry run with a report)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
                                 "--quiet", "--report", str(report), requirement], capture_output=True, text=True)
        if result.returncode != 0 or not report.is_file():
            return None
        installs = json.loads(report.read_text()).get("install", [])
        return installs[0]["metadata"]["version"] if installs else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch", default="auto", choices=MODES, help="which build (auto: CUDA if nvidia-smi runs)")
    parser.add_argument("--requirements", type=Path, default=Path(__file__).resolve().parents[2] / "requirements" / "venv-py311.txt")
    parser.add_argument("--dry-run", action="store_true", help="print the pip command, do not run it")
    args = parser.parse_args(argv)
    requirement = torch_requirement(args.requirements)
    has_gpu = args.torch == "auto" and nvidia_gpu_present()
    picked = None if args.torch == "cuda" or has_gpu else configured_version(requirement)
    extra = pip_index_args(args.torch, has_gpu, platform.system(), picked)
    command = [sys.executable, "-m", "pip", "install", "-q", requirement, *extra]
    build = "CUDA" if args.torch == "cuda" or has_gpu else "CPU"
    print(f"torch: {requirement}, {build} build" + (f" from {CPU_INDEX}" if extra else " as pip is configured"
                                                     + (f" ({picked})" if picked else "")))
    if args.dry_run:
        print(" ".join(command))
        return 0
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
