"""`make docs-plots`: the training curves in docs/ re-drawn from their committed JSONL logs.

Why a module: the figures are data (PLOTS: log, image, title), like the tables benchmarks/docs_tables.py
renders; the curve itself is w2v_triton.train.trainer.plot_log, the one that draws training runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from w2v_triton.paths import REPO_ROOT

# (JSONL log, PNG, title), paths relative to the checkout
PLOTS = (
    ("docs/reference-training-log.jsonl", "docs/reference-training.png",
     "reference model, GPU run (docs/reference-training-log.jsonl)"),
    ("docs/reference-training-cpu-log.jsonl", "docs/reference-training-cpu.png",
     "reference model, CPU run (docs/reference-training-cpu-log.jsonl)"),
)


def main(argv: list[str] | None = None) -> int:
    from w2v_triton.train.trainer import plot_log

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="the checkout whose docs are re-drawn")
    args = parser.parse_args(argv)
    for log, png, title in PLOTS:
        plot_log(args.root / log, args.root / png, title)
        print(f"{png} <- {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
