"""How much of the teacher a freshly cut (undistilled) student keeps: dev KL and agreement at step 0.

    python -m benchmarks.student_init --teacher models/reference --dev build/corpus/dev.jsonl \
        --limit 24 --json benchmarks/results/<machine>/tables/student-init.json

For each shape (layers6, and layers6 with the transformer pruned to 3/4 and 1/2 of its width) the
student is built exactly as distillation starts it (`presets.build_shaped_student`) and scored
with the distillation's own dev evaluation (`distillation.task.evaluate`, KL at T=1); the 1/2-width
shape is also scored with random initial weights, the baseline that structured pruning must beat.
The front-end is kept whole so the rows isolate the width pruning.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch


def run(teacher_name: str, dev: str, limit: int) -> dict[str, Any]:
    from w2v_triton.build.checkpoints import read_checkpoint_info
    from w2v_triton.train.distillation.presets import PRESETS, build_shaped_student
    from w2v_triton.train.distillation.student import load_teacher, resolve_teacher
    from w2v_triton.train.distillation.task import evaluate, id_to_token_of
    from w2v_triton.train.distillation.trainer import dev_batches, load_dataset

    teacher_dir = resolve_teacher(teacher_name)
    teacher = load_teacher(teacher_dir).float()
    id_to_token = id_to_token_of(teacher_dir, int(teacher.config.vocab_size))
    vocab = {t: i for i, t in id_to_token.items()}
    dataset = load_dataset(dev, vocab, read_checkpoint_info(Path(teacher_dir)).do_normalize, limit=limit)
    layers6 = PRESETS["layers6"]
    shapes = [("layers6 (copied)", layers6, False), ("layers6, width 3/4 (pruned)", layers6.replace(width=0.75), False),
              ("layers6, width 1/2 (pruned)", layers6.replace(width=0.5), False),
              ("layers6, width 1/2 (random init)", layers6.replace(width=0.5), True)]
    rows = []
    for label, shape, fresh in shapes:
        student, info = build_shaped_student(teacher, shape, teacher_name)
        if fresh:
            torch.manual_seed(0)
            student = type(student)(student.config)
        r = evaluate(student, teacher, dev_batches(dataset, 60.0), id_to_token, 1.0)
        rows.append([label, f"{info.student_params:,}", f"{r['kl']:.3f}", f"{r['wer_student_vs_teacher']:.3f}",
                     f"{r['cer_student_vs_labels']:.3f}"])
        print(" | ".join(rows[-1]), flush=True)
    return {"teacher": teacher_name, "dev": dev, "utterances": limit,
            "teacher_cer_vs_labels": r["cer_teacher_vs_labels"],
            "columns": ["student at step 0", "parameters", "dev KL (T=1) vs teacher", "WER vs teacher",
                        "CER vs labels"], "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="models/reference")
    ap.add_argument("--dev", default="build/corpus/dev.jsonl")
    ap.add_argument("--limit", type=int, default=24, help="first N dev utterances")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = run(args.teacher, args.dev, args.limit)
    if args.json:
        from w2v_triton.eval.machine import machine_name, utc_now

        data = {"machine": machine_name(), "date": utc_now(),
                "command": "python -m benchmarks.student_init " + " ".join(argv if argv is not None else sys.argv[1:]),
                **data}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
