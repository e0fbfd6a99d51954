"""Build a student from a wav2vec2 CTC teacher (kept layers, pruned front-end, narrower transformer).

    python builders/student.py --teacher models/reference --out models/student6 \
        --num-layers 6 --strategy even          # or: --layers 0,2,4,7,9,11
    python builders/student.py --teacher random-base --out build/s6-c256 --num-layers 6 \
        --conv-channels 256                     # also narrow the conv front-end (then distil it)
    python builders/student.py --teacher models/reference --out build/s6-sq2 --num-layers 6 \
        --strategy even --squeeze-factor 2      # SEW squeeze: half the frames into the transformer
    python builders/student.py --teacher models/reference --out build/narrow --preset narrow
    python builders/student.py --list-presets --teacher models/reference --teacher random-base \
        --json presets.json                     # parameters and FLOPs per audio-second of each preset

Explicit flags override a preset's fields (`w2v_triton/train/distillation/presets.py`).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from w2v_triton.eval.tables import markdown_table
from w2v_triton.train.distillation.presets import add_shape_arguments, shape_from_args

log = logging.getLogger(__name__)


def describe_presets(teachers: list[str], seconds: float = 10.0) -> dict[str, Any]:
    """Each preset's concrete shape, parameters and FLOPs per audio-second for each teacher."""
    from w2v_triton.train.distillation.presets import PRESETS, build_shaped_student, shape_dict
    from w2v_triton.train.distillation.student import count_params, load_teacher, resolve_teacher
    from w2v_triton.eval.flops import flops_per_audio_second

    out: dict[str, Any] = {"flops_input_seconds": seconds, "teachers": {}, "presets": {}}
    for name in teachers:
        teacher = load_teacher(resolve_teacher(name))
        c = teacher.config
        entry: dict[str, Any] = {
            "params": count_params(teacher), "gflops_per_audio_s": flops_per_audio_second(teacher, seconds) / 1e9,
            "layers": int(c.num_hidden_layers), "conv_channels": [int(x) for x in c.conv_dim],
            "hidden_size": int(c.hidden_size), "attention_heads": int(c.num_attention_heads),
            "intermediate_size": int(c.intermediate_size), "presets": {}}
        for preset, shape in PRESETS.items():
            student, info = build_shaped_student(teacher, shape, name, preset)
            sc = student.config
            entry["presets"][preset] = {
                "params": info.student_params,
                "gflops_per_audio_s": flops_per_audio_second(student, seconds) / 1e9,
                "kept_layers": info.kept_layers, "conv_channels": [int(x) for x in sc.conv_dim],
                "hidden_size": int(sc.hidden_size), "attention_heads": int(sc.num_attention_heads),
                "intermediate_size": int(sc.intermediate_size), "squeeze": int(info.squeeze_factor)}
            out["presets"][preset] = {"description": shape.description, "shape": shape_dict(shape)}
            log.info("%s %s: %d params", name, preset, info.student_params)
        out["teachers"][name] = entry
    out["columns"], out["rows"] = preset_table(out)
    return out


def _shape_text(e: dict[str, Any]) -> str:
    conv = e["conv_channels"]
    conv_text = str(conv[0]) if len(set(conv)) == 1 else ",".join(map(str, conv))
    n_layers = len(e["kept_layers"]) if "kept_layers" in e else e["layers"]
    text = f"{n_layers} L, conv {conv_text}, {e['hidden_size']}/{e['attention_heads']}h/{e['intermediate_size']}"
    return text + (f", squeeze {e['squeeze']}" if e.get("squeeze", 1) > 1 else "")


def preset_table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Rows: the teacher, then each preset; per teacher: shape, parameters, GFLOPs per audio-second."""
    names = list(data["teachers"])
    columns = ["model"]
    for n in names:
        columns += [f"{n}: layers, conv, hidden/heads/FFN", f"{n}: parameters", f"{n}: GFLOPs per audio-s"]
    rows = []
    for label, get in [("teacher", lambda t: t)] + [
            (p, (lambda t, p=p: t["presets"][p])) for p in data["presets"]]:
        row = [label]
        for n in names:
            e = get(data["teachers"][n])
            row += [_shape_text(e), f"{e['params']:,}", f"{e['gflops_per_audio_s']:.2f}"]
        rows.append(row)
    return columns, rows


def main(argv: list[str] | None = None) -> int:
    from w2v_triton.build.checkpoints import CheckpointUnavailable
    from w2v_triton.train.distillation.presets import build_shaped_student
    from w2v_triton.train.distillation.student import load_teacher, resolve_teacher, save_student

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", action="append", default=None,
                    help="Wav2Vec2ForCTC hub id, local HF dir or project name (repeat with --list-presets)")
    ap.add_argument("--out", default=None, help="output HF dir")
    add_shape_arguments(ap, "")
    ap.add_argument("--list-presets", action="store_true",
                    help="print every preset's shape, parameters and FLOPs per audio-second for each --teacher")
    ap.add_argument("--json", default=None, help="with --list-presets: also write the figures to this JSON file")
    ap.add_argument("--flops-seconds", type=float, default=10.0, help="input length the FLOPs are counted on")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.teacher:
        ap.error("give --teacher")

    if args.list_presets:
        try:
            data = describe_presets(args.teacher, args.flops_seconds)
        except (CheckpointUnavailable, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(markdown_table(data["columns"], data["rows"]))
        if args.json:
            from w2v_triton.eval.machine import machine_name, utc_now

            data = {"machine": machine_name(), "date": utc_now(),
                    "command": "python -m builders.student --list-presets "
                               + " ".join(f"--teacher {t}" for t in args.teacher), **data}
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
            print(f"-> {args.json}")
        return 0

    if len(args.teacher) != 1:
        ap.error("give one --teacher to build a student")
    if not args.out:
        ap.error("give --out")
    if args.preset is None and args.layers is None and args.num_layers is None:
        ap.error("give --preset, --num-layers or --layers")
    try:
        shape = shape_from_args(args)
        teacher_dir = resolve_teacher(args.teacher[0])
        teacher = load_teacher(teacher_dir)
        student, info = build_shaped_student(teacher, shape, teacher_name=args.teacher[0], preset=args.preset)
    except (CheckpointUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    save_student(student, info, args.out, processor_source=teacher_dir)
    summary = {k: v for k, v in asdict(info).items() if k != "residual_dims"}
    print(json.dumps(summary, indent=2))
    print(f"teacher params: {info.teacher_params:,}  student params: {info.student_params:,}  -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
