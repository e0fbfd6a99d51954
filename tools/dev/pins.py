"""Generate the pinned requirement files under requirements/ from pyproject.toml (`make pins`).

pyproject.toml declares the dependencies once, by role (extras); every install uses one of these
files as pip constraints: the venv (`make venv`: extra dev, Python 3.11), the server image
(w2v_triton.serving.image: serve / serve-gpu, Python 3.10 of the NGC 24.10 image; 3.11 for the
image-environment test), the client image (client, Python 3.10) and the gateway image (gateway,
Python 3.11). uv resolves for an interpreter
that need not be installed (`--python-version`), for manylinux_2_35 x86-64 (Ubuntu 22.04 in the NGC
images; Debian 12 here), from wheels only but for the packages that have none (SOURCE_ONLY).

Deterministic: uv sees only releases uploaded before EXCLUDE_NEWER, and keeps the versions already
in a file while they satisfy pyproject.toml (uv's preferences). So regenerating gives the same files
until pyproject.toml changes; `--check` regenerates into a temporary folder and names the files that
differ (tests/test_pins.py). To take newer releases: move EXCLUDE_NEWER, then `make pins PINS_ARGS=--upgrade`.

torch: the venv's torch is the CPU build, installed first by tools/dev/torch_install.py (the Linux
wheel on PyPI is the CUDA build). Its pin is the venv file's `torch==` line, and the venv file leaves
out what only the CUDA build needs: the packages PyPI's Linux torch pulls in and its Windows (CPU)
torch does not, computed from PyPI's metadata for the pinned version.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from w2v_triton.serving.image import IMAGE_EXTRAS, IMAGE_PYTHON, PINS_DIR, pins_file  # noqa: E402

EXCLUDE_NEWER = "2026-12-06T00:00:00Z"
PLATFORM = "x86_64-manylinux_2_35"
SOURCE_ONLY = ("kenlm", "srt")   # no wheel on PyPI: built at install (pip caches the wheel)
CPU_TORCH_PLATFORM = "x86_64-pc-windows-msvc"   # PyPI's torch there is the CPU build
COMMAND = "make pins"


@dataclass(frozen=True)
class Target:
    name: str                 # requirements/<name>-py<XY>.txt
    extras: tuple[str, ...]
    python: str
    cpu_torch: bool = False   # leave out the CUDA build's own packages (the venv installs CPU torch)

    @property
    def path(self) -> str:
        return pins_file(self.name, self.python)


TARGETS = (
    Target("venv", ("dev",), "3.11", cpu_torch=True),
    *(Target(f"server-{variant}", extras, IMAGE_PYTHON) for variant, extras in IMAGE_EXTRAS.items()),
    Target("server-cpu", IMAGE_EXTRAS["cpu"], "3.11"),    # the image-environment test's venv
    Target("client", ("client",), IMAGE_PYTHON),
    Target("gateway", ("gateway",), "3.11"),            # docker/Dockerfile.gateway (python:3.11-slim)
)


class PinsError(RuntimeError):
    pass


def uv_binary() -> str:
    from uv import find_uv_bin

    return str(find_uv_bin())


def uv_compile(uv: str, sources: list[str], python: str, output: Path, extras: tuple[str, ...] = (),
               platform: str = PLATFORM, excludes: Path | None = None, upgrade: bool = False,
               annotation: str = "split") -> str:
    """One `uv pip compile` (cwd: the project root, so annotations name pyproject.toml); returns the file."""
    command = [uv, "pip", "compile", *sources, "--output-file", str(output), "--python-version", python,
               "--python-platform", platform, "--exclude-newer", EXCLUDE_NEWER, "--only-binary", ":all:",
               *[a for p in SOURCE_ONLY for a in ("--no-binary", p)], "--no-python-downloads",
               "--custom-compile-command", COMMAND, "--annotation-style", annotation, "--quiet"]
    command += [a for e in extras for a in ("--extra", e)]
    if excludes is not None:
        command += ["--excludes", str(excludes)]
    if upgrade:
        command.append("--upgrade")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise PinsError(f"uv pip compile for {output.name} failed:\n{result.stderr.strip()}")
    return output.read_text()


def parse(text: str) -> dict[str, tuple[str, set[str]]]:
    """name -> (version, the packages it is there for) of a file written with --annotation-style line."""
    pins = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)\s*(?:#\s*via\s+(.*))?$", line)
        if match:
            vias = {v.strip().split(" ")[0] for v in (match[3] or "").split(",") if v.strip()}
            pins[match[1].lower()] = (match[2], vias)
    return pins


def cuda_only(uv: str, target: Target, seed: Path | None, work: Path, upgrade: bool) -> list[str]:
    """What PyPI's Linux torch needs and its CPU build does not, for the torch the target resolves to.
    Refused when anything but torch's CUDA packages needs one of them (leaving it out would drop it)."""
    full = work / f"{target.name}-full.txt"
    if seed is not None and seed.is_file():
        shutil.copy(seed, full)   # the same preferences as the real run
    pins = parse(uv_compile(uv, ["pyproject.toml"], target.python, full, target.extras,
                            upgrade=upgrade, annotation="line"))
    if "torch" not in pins:
        raise PinsError(f"{target.name}: cpu_torch, but the extras {target.extras} resolve no torch")
    requirement = work / "torch.in"
    requirement.write_text(f"torch=={pins['torch'][0]}\n")
    linux = parse(uv_compile(uv, [str(requirement)], target.python, work / "linux.txt", annotation="line"))
    cpu = parse(uv_compile(uv, [str(requirement)], target.python, work / "cpu.txt",
                           platform=CPU_TORCH_PLATFORM, annotation="line"))
    cuda = sorted(set(linux) - set(cpu))
    for name in cuda:
        others = pins.get(name, ("", set()))[1] - set(cuda) - {"torch"}
        if others:
            raise PinsError(f"{target.name}: {name} is one of torch's CUDA packages, but {sorted(others)} "
                            "need it too: the venv cannot leave it out")
    return cuda


def generate(out_dir: Path, upgrade: bool = False, only: tuple[str, ...] = ()) -> list[Path]:
    """Write every target's file into out_dir (existing files there are the preferences)."""
    uv = uv_binary()
    written = []
    for target in TARGETS:
        if only and target.path not in only:
            continue
        output = out_dir / target.path
        output.parent.mkdir(parents=True, exist_ok=True)
        excludes = None
        with tempfile.TemporaryDirectory() as tmp:
            if target.cpu_torch:
                excludes = Path(tmp) / "cuda-only.txt"
                excludes.write_text("".join(f"{n}\n" for n in cuda_only(uv, target, output, Path(tmp), upgrade)))
            uv_compile(uv, ["pyproject.toml"], target.python, output, target.extras, excludes=excludes,
                       upgrade=upgrade)
        print(f"{target.path}: {len(parse(output.read_text()))} packages ({', '.join(target.extras)}, "
              f"Python {target.python}{', CPU torch' if target.cpu_torch else ''})")
        written.append(output)
    return written


def stale(root: Path = ROOT, only: tuple[str, ...] = ()) -> list[str]:
    """The files under root/requirements that differ from a regeneration from this pyproject.toml (in a
    temporary copy: nothing under root changes). `only`: these targets' files (default: all)."""
    targets = [t for t in TARGETS if not only or t.path in only]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for target in targets:
            if (root / target.path).is_file():
                (out / target.path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(root / target.path, out / target.path)
        generate(out, only=tuple(t.path for t in targets))
        differ = [t.path for t in targets
                  if not (root / t.path).is_file() or (root / t.path).read_text() != (out / t.path).read_text()]
    known = {t.path for t in TARGETS}
    extra = sorted(str(p.relative_to(root)) for p in (root / PINS_DIR).glob("*.txt")
                   if str(p.relative_to(root)) not in known)
    return differ + [f"{p} (no target generates it)" for p in extra]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="regenerate into a temporary folder; exit 1 naming stale files")
    parser.add_argument("--upgrade", action="store_true", help="ignore the current versions (newest before EXCLUDE_NEWER)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            differ = stale()
            for path in differ:
                print(f"stale: {path}: run `make pins` and commit requirements/", file=sys.stderr)
            return 1 if differ else 0
        generate(ROOT, upgrade=args.upgrade)
    except PinsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
