"""Curves and a held-out error table for distillation runs (docs/distillation.md).

    python builders/distill_report.py --run a=build/distill/a --run b=build/distill/b \
        --teacher models/reference --png docs/distillation-curves.png

`--run NAME=STUDENT_DIR` reads STUDENT_DIR.train/train_log.jsonl (the trainer's default work
dir) and STUDENT_DIR/eval_results.json (`builders/train_reference.py --eval-only --model-out
STUDENT_DIR`); the teacher row comes from its own eval_results.json. With `--transcripts
NAME=eval_transcripts.json` for the teacher ("teacher=...") and students, students' transcripts
are also scored against the teacher's.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from w2v_triton.train.distillation.report import error_rows, error_table, plot_runs, teacher_agreement_table

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", required=True, help="NAME=STUDENT_DIR (repeatable)")
    ap.add_argument("--teacher", type=Path, help="teacher HF dir with eval_results.json")
    ap.add_argument("--png", type=Path, required=True)
    ap.add_argument("--title", default="distillation runs")
    ap.add_argument("--transcripts", action="append", default=[],
                    help="NAME=eval_transcripts.json (teacher=... plus students; repeatable)")
    ap.add_argument("--json", type=Path, help="also write the error table as a docs table (columns, rows, "
                                              "machine, date, command) to this file")
    args = ap.parse_args(argv)
    runs = dict(item.split("=", 1) for item in args.run)
    logs = {name: Path(f"{path}.train") / "train_log.jsonl" for name, path in runs.items()}
    missing = [str(p) for p in logs.values() if not p.is_file()]
    if missing:
        print(f"error: no training log: {', '.join(missing)}", file=sys.stderr)
        return 2
    plot_runs(logs, args.png, args.title)
    models = ({"teacher": args.teacher} if args.teacher else {}) | {n: Path(p) for n, p in runs.items()}
    evaluated = {n: p for n, p in models.items() if (p / "eval_results.json").is_file()}
    relative_to = "teacher" if "teacher" in evaluated else None
    if evaluated:
        print(error_table(evaluated, relative_to=relative_to))
    if evaluated and args.json:
        from w2v_triton.eval.machine import machine_name, utc_now

        columns, rows = error_rows(evaluated, relative_to=relative_to)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "machine": machine_name(), "date": utc_now(),
            "command": "python -m builders.distill_report " + " ".join(argv if argv is not None else sys.argv[1:]),
            "columns": columns, "rows": rows}, indent=1) + "\n")
        print(f"table: {args.json}")
    transcripts = dict(item.split("=", 1) for item in args.transcripts)
    if "teacher" in transcripts and len(transcripts) > 1:
        teacher = transcripts.pop("teacher")
        print()
        print(teacher_agreement_table(Path(teacher), {n: Path(p) for n, p in transcripts.items()}))
    print(f"curves: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
