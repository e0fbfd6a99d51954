"""How much a call of the device tool sends: the working tree plus the carried folders (64 MiB at most).

    python3 tools/gpu/gpu_travel.py --carry .devcarry            # here, before the call: fails when over
    python3 tools/gpu/gpu_travel.py --carry .devcarry --root .   # on the device machine: what arrived

In a git checkout the tree is what the tool sends (w2v_triton.build.gpu_kit.travelling_bytes: tracked
files, untracked files git does not ignore, shared/; carried folders are git-ignored, so counted once,
as carry); elsewhere (the copy on the device machine, which has no .git) every file under --root but
the carried ones. Prints one line; exit 1 when the total is over --limit-mib. Imports only the
standard library and the checkout's package: it runs on the GPU image's Python too.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the checkout's w2v_triton, installed or not
from w2v_triton.build.gpu_kit import travelling_bytes  # noqa: E402

LIMIT_MIB = 64.0


def _walk(path: Path, skip: tuple[Path, ...] = ()) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()
               and not any(s == p or s in p.parents for s in skip))


def tree_bytes(root: Path, carried: list[Path]) -> int:
    """Bytes of the files the tool sends from `root`, carried paths aside."""
    if (root / ".git").exists():
        return sum(travelling_bytes(root).values())
    return _walk(root.resolve(), tuple(c.resolve() for c in carried))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("."))
    p.add_argument("--carry", type=Path, action="append", default=[], help="a carried path (repeatable)")
    p.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    a = p.parse_args(argv)
    missing = [str(c) for c in a.carry if not c.exists()]
    if missing:
        print(f"travel: carried path(s) missing: {', '.join(missing)}", file=sys.stderr)
        return 2
    tree = tree_bytes(a.root, a.carry) / 2**20
    carry = sum(_walk(c) for c in a.carry) / 2**20
    total = tree + carry
    verdict = "ok" if total <= a.limit_mib else "OVER"
    print(f"travel: tree {tree:.1f} MiB + carry {carry:.1f} MiB = {total:.1f} MiB of {a.limit_mib:g} MiB "
          f"({verdict}; {a.limit_mib - total:+.1f} MiB)")
    return 0 if total <= a.limit_mib else 1


if __name__ == "__main__":
    sys.exit(main())
