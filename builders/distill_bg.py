"""A long distillation run in the background: start (or continue) it, or stop it safely.

    python -m builders.distill_bg start --out build/distill/squeeze-long --hours 48 --save-min 10 -- \
        --teacher models/reference --train build/corpus/train.jsonl --dev build/corpus/dev.jsonl \
        --preset squeeze --teacher-cache build/teacher-cache/reference-squeeze --threads 1 --bf16 ...
    python -m builders.distill_bg stop --out build/distill/squeeze-long

`start` runs `python -m builders.distill ARGS --out OUT --resume --max-time-s HOURS*3600
--save-every-min MIN` nice'd (w2v_triton/train/background.py): the same command again continues
the run where it stopped, a larger --hours extends it. `stop` sends SIGTERM: the trainer
checkpoints after its step and exits without exporting. `make distill-bg` / `distill-stop` call it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python builders/distill_bg.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w2v_triton.train.background import BackgroundError, BackgroundRun


def distill_command(out: Path, hours: float, save_min: float, distill_args: list[str]) -> list[str]:
    """builders.distill continuing the run in `out` with a box of `hours` of training; the pass-through
    arguments come last, so they may override."""
    return [sys.executable, "-m", "builders.distill", "--out", str(out), "--resume",
            "--max-time-s", str(int(hours * 3600)), "--save-every-min", f"{save_min:g}", *distill_args]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="action", required=True)
    start = sub.add_parser("start", help="start or continue the run (refused while it runs)")
    start.add_argument("--out", type=Path, required=True, help="the student dir; <out>.train, .log, .pid beside it")
    start.add_argument("--hours", type=float, required=True, help="the run's box of training time in all")
    start.add_argument("--save-min", type=float, default=10.0, help="checkpoint every this many minutes")
    start.add_argument("--nice", type=int, default=19)
    start.add_argument("distill_args", nargs=argparse.REMAINDER, help="-- then builders.distill's arguments")
    stop = sub.add_parser("stop", help="SIGTERM: checkpoint after the current step, exit")
    stop.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    run = BackgroundRun(a.out)
    try:
        if a.action == "stop":
            print(f"SIGTERM sent to PID {run.stop()}; it checkpoints after its step (log {run.log_file})")
            return 0
        if a.hours <= 0:
            ap.error(f"--hours must be > 0, got {a.hours:g}")
        args = a.distill_args[1:] if a.distill_args[:1] == ["--"] else a.distill_args
        pid = run.start(distill_command(a.out, a.hours, a.save_min, args), a.nice)
    except BackgroundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"PID {pid}, log {run.log_file}, trainer state {a.out}.train; stop: make distill-stop (same DISTILL_OUT)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
