"""FLOPs per audio second of a teacher and its students (torch.utils.flop_counter.FlopCounterMode).

    python -m benchmarks.flops --out benchmarks/results/cpu-2core-amd-epyc/flops-squeeze

For each teacher (models/reference and the base-960h architecture, random weights: FLOPs do not
depend on the values) it counts one 10 s clip through the HF model (batch 1, eval, fp32): the
teacher, the 6-layer `even` student and the SEW squeeze student (same layers, squeeze factor 2),
split into conv front-end, transformer (encoder: positional conv, layers, and for SEW the
pooling and upsampling) and CTC head. FlopCounterMode counts matmuls and convolutions (2 x
multiply-adds), not element-wise operations. Writes <out>.json (a `table` for the docs), .md, .png.
"""
from __future__ import annotations

from typing import Any
import argparse
import json
import sys
from pathlib import Path

import torch

from w2v_triton.eval.machine import utc_now
from w2v_triton.eval.tables import markdown_table

SECONDS = 10.0
TEACHERS = {"reference": "reference", "base": "random-base"}
PARTS = ("feature_extractor", "encoder", "lm_head")


def count_flops(model: torch.nn.Module, seconds: float = SECONDS, sample_rate: int = 16000) -> dict[str, float]:
    """FLOPs of one forward pass on `seconds` of audio: total and per part (PARTS + projection)."""
    from w2v_triton.eval.flops import module_flops

    total_flops, per_module = module_flops(model, seconds, sample_rate)
    total = float(total_flops)
    parts: dict[str, float] = {"total": total}
    for part in PARTS:
        found = [name for name in per_module if name.split(".")[-1] == part and name.count(".") <= 2]
        parts[part] = float(per_module[found[0]]) if found else 0.0
    parts["other"] = total - sum(parts[p] for p in PARTS)
    return parts


def candidates(teacher_name: str) -> list[tuple[str, torch.nn.Module, dict[str, Any]]]:
    from w2v_triton.train.distillation.squeeze import build_squeeze_student
    from w2v_triton.train.distillation.student import build_student, load_teacher

    teacher = load_teacher(teacher_name)
    student, _ = build_student(teacher, 6, "even")
    squeezed, _ = build_squeeze_student(teacher, 6, "even", squeeze_factor=2)
    return [("teacher (12 layers)", teacher, {"layers": 12, "squeeze": 1}),
            ("6 layers (even)", student, {"layers": 6, "squeeze": 1}),
            ("6 layers (even) + squeeze 2 (SEW)", squeezed, {"layers": 6, "squeeze": 2})]


def measure(seconds: float = SECONDS) -> list[dict[str, Any]]:
    rows = []
    for size, name in TEACHERS.items():
        for label, model, shape in candidates(name):
            flops = count_flops(model, seconds)
            params = sum(p.numel() for p in model.parameters())
            rows.append({"size": size, "model": label, **shape, "params": params,
                         **{f"gflops_per_audio_s_{k}": v / seconds / 1e9 for k, v in flops.items()}})
    for row in rows:
        base = next(r for r in rows if r["size"] == row["size"] and r["layers"] == 6 and r["squeeze"] == 1)
        row["vs_layers_only"] = row["gflops_per_audio_s_total"] / base["gflops_per_audio_s_total"]
    return rows


def as_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    columns = ["size", "model", "parameters", "GFLOP / audio-s", "front-end", "transformer", "head",
               "vs 6 layers"]
    body = [[r["size"], r["model"], f"{r['params'] / 1e6:.2f} M", f"{r['gflops_per_audio_s_total']:.2f}",
             f"{r['gflops_per_audio_s_feature_extractor']:.2f}", f"{r['gflops_per_audio_s_encoder']:.2f}",
             f"{r['gflops_per_audio_s_lm_head']:.3f}", f"{r['vs_layers_only']:.2f}x"] for r in rows]
    return columns, body


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TEACHERS), figsize=(11, 3.8))
    for ax, size in zip(axes, TEACHERS):
        mine = [r for r in rows if r["size"] == size]
        labels = [r["model"].replace(" + ", "\n+ ") for r in mine]
        bottom = [0.0] * len(mine)
        for part, colour in (("feature_extractor", "#4c72b0"), ("encoder", "#dd8452"), ("lm_head", "#55a868"),
                             ("other", "#999999")):
            values = [r[f"gflops_per_audio_s_{part}"] for r in mine]
            ax.bar(labels, values, bottom=bottom, color=colour, label=part)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_title(f"{size} size")
        ax.set_ylabel("GFLOP per audio second")
        ax.tick_params(axis="x", labelsize=7)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="results path without extension")
    ap.add_argument("--machine", default="cpu-2core-amd-epyc")
    ap.add_argument("--seconds", type=float, default=SECONDS)
    args = ap.parse_args(argv)
    rows = measure(args.seconds)
    columns, body = as_table(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    date = utc_now()
    command = f"python -m benchmarks.flops --out {args.out}"
    data = {"machine": args.machine, "date": date, "command": command,
            "note": f"FlopCounterMode, one {args.seconds:g} s clip, batch 1, fp32 HF forward; matmul + conv FLOPs",
            "columns": columns, "rows": body, "raw": rows}
    out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    out.with_suffix(".md").write_text(f"# FLOPs per audio second ({date}, {args.machine})\n\n`{command}`\n\n"
                                      + markdown_table(columns, body) + "\n")
    plot(rows, out.with_suffix(".png"))
    print(markdown_table(columns, body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
