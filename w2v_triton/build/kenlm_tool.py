"""KenLM's ``build_binary``, compiled from the sources in the ``kenlm`` PyPI sdist.

Why: the ``kenlm`` wheel only has the Python module; ``build_binary`` (ARPA -> mmap-able
binary trie) is a separate C++ program that no registry package ships. The sdist carries
all of its sources (lm/, util/, util/double-conversion/), so ``make lm`` downloads that one
file with pip, compiles it with the system C++ compiler into ``build/kenlm/`` (once; about
1.5 min on 2 cores) and never needs zlib/bz2/xz (our ARPA is plain text).
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from w2v_triton.paths import KENLM_CACHE

log = logging.getLogger(__name__)

KENLM_VERSION = "0.3.0"
CXXFLAGS = ["-O2", "-DNDEBUG", "-DKENLM_MAX_ORDER=6", "-std=c++11", "-w"]
# Quantisation kept by `make lm`: 16-bit probabilities and backoffs stay within 1e-3 log10 of
# the unquantised scores on the shared reference sentences (8 and 12 bits do not); 27% smaller.
QUANTIZE_ARGS = ["-q", "16", "-b", "16", "trie"]


class KenLMToolError(RuntimeError):
    """build_binary cannot be found or built; the message says why."""


def _sources(root: Path) -> list[Path]:
    """Library sources: everything in util/, util/double-conversion/, lm/ but tests and mains."""
    files = []
    for sub in ("util/double-conversion", "util", "lm"):
        files += sorted(p for p in (root / sub).glob("*.cc")
                        if not p.name.endswith(("test.cc", "main.cc")))
    return files


def _download_sdist(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    name = f"kenlm-{KENLM_VERSION}.tar.gz"
    if not (dest / name).is_file():
        cmd = [sys.executable, "-m", "pip", "download", f"kenlm=={KENLM_VERSION}", "--no-binary", "kenlm",
               "--no-deps", "--no-build-isolation", "--quiet", "-d", str(dest)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0 or not (dest / name).is_file():
            raise KenLMToolError(f"cannot download the kenlm {KENLM_VERSION} sdist with pip: {res.stderr[-1500:]}")
    return dest / name


def compile_build_binary(cache: Path = KENLM_CACHE, jobs: int | None = None) -> Path:
    """Compile build_binary into ``cache/kenlm-<version>/bin`` (reused when present)."""
    exe = cache / f"kenlm-{KENLM_VERSION}" / "bin" / "build_binary"
    if exe.is_file():
        return exe
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise KenLMToolError("no C++ compiler (g++) on PATH to build KenLM's build_binary "
                             "(Debian: apt-get install g++)")
    sdist = _download_sdist(cache / "downloads")
    src_root = cache / f"kenlm-{KENLM_VERSION}"
    if not (src_root / "lm" / "build_binary_main.cc").is_file():
        with tarfile.open(sdist) as tar:
            tar.extractall(cache, filter="data")
    objs = src_root / "obj"
    objs.mkdir(exist_ok=True)
    sources = _sources(src_root)

    def compile_one(src: Path) -> Path:
        obj = objs / (str(src.relative_to(src_root)).replace("/", "_") + ".o")
        if not obj.is_file():
            res = subprocess.run([cxx, "-I", str(src_root), *CXXFLAGS, "-c", str(src), "-o", str(obj) + ".tmp"],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise KenLMToolError(f"compiling {src.name} failed: {res.stderr[-1500:]}")
            os.replace(str(obj) + ".tmp", obj)
        return obj

    log.info("compiling KenLM %s build_binary (%d sources) with %s", KENLM_VERSION, len(sources), cxx)
    with ThreadPoolExecutor(jobs or os.cpu_count() or 1) as pool:
        objects = list(pool.map(compile_one, sources))
    exe.parent.mkdir(exist_ok=True)
    res = subprocess.run([cxx, "-I", str(src_root), *CXXFLAGS, str(src_root / "lm" / "build_binary_main.cc"),
                          *map(str, objects), "-o", str(exe) + ".tmp", "-lrt", "-pthread"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise KenLMToolError(f"linking build_binary failed: {res.stderr[-1500:]}")
    os.replace(str(exe) + ".tmp", exe)
    return exe


def find_build_binary(cache: Path = KENLM_CACHE) -> Path:
    """``build_binary`` on PATH, else the one compiled from the kenlm sdist (compiling it once)."""
    on_path = shutil.which("build_binary")
    return Path(on_path) if on_path else compile_build_binary(cache)


def arpa_to_binary(build_binary: Path, arpa: Path, out: Path) -> None:
    """ARPA -> quantised KenLM trie (``QUANTIZE_ARGS``), written via a temporary file."""
    tmp = out.with_name(out.name + ".tmp")
    res = subprocess.run([str(build_binary), *QUANTIZE_ARGS, str(arpa), str(tmp)], capture_output=True, text=True)
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise KenLMToolError(f"build_binary failed ({res.returncode}): {res.stderr[-2000:]}")
    tmp.replace(out)
