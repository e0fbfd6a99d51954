"""Build a shallower student from a wav2vec2 CTC teacher (copying kept layers).

    python builders/student.py --teacher models/reference --out models/student6 \
        --num-layers 6 --strategy even          # or: --layers 0,2,4,7,9,11
    python builders/student.py --teacher random-base --out build/s6-c256 --num-layers 6 \
        --conv-channels 256                     # also narrow the conv front-end (then distil it)
    python builders/student.py --teacher models/reference --out build/s6-sq2 --num-layers 6 \
        --strategy even --squeeze-factor 2      # SEW squeeze: half the frames into the transformer
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from w2v_triton.distillation.student import parse_conv_channels, parse_layers


def main(argv: list[str] | None = None) -> int:
    from w2v_triton.distillation.student import (STRATEGIES, build_student, load_teacher,
                                                 resolve_teacher, save_student)

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", required=True, help="Wav2Vec2ForCTC hub id or local HF dir")
    ap.add_argument("--out", required=True, help="output HF dir")
    ap.add_argument("--num-layers", type=int, default=None, help="student transformer layers")
    ap.add_argument("--strategy", choices=STRATEGIES, default=None,
                    help="first | last | even | explicit (default: explicit if --layers else first)")
    ap.add_argument("--layers", default=None, help="explicit 0-based teacher layers, e.g. 0,2,4,7,9,11")
    ap.add_argument("--conv-channels", default=None,
                    help="narrow the conv front-end to this many channels (or one width per conv layer, "
                         "comma-separated), keeping the teacher's most important ones; distil afterwards")
    ap.add_argument("--squeeze-factor", type=int, default=1,
                    help="> 1: a SEW squeeze student (SEWForCTC) whose transformer sees 1/N of the frames; "
                         "distil afterwards (docs/distillation.md, Squeeze)")
    args = ap.parse_args(argv)

    layers = parse_layers(args.layers)
    strategy = args.strategy or ("explicit" if layers else "first")
    if layers is None and args.num_layers is None:
        ap.error("give --num-layers or --layers")
    from w2v_triton.checkpoints import CheckpointUnavailable
    try:
        teacher_dir = resolve_teacher(args.teacher)
        teacher = load_teacher(teacher_dir)
        if args.squeeze_factor > 1:
            from w2v_triton.distillation.squeeze import build_squeeze_student

            student, info = build_squeeze_student(teacher, args.num_layers, strategy, layers, args.teacher,
                                                  squeeze_factor=args.squeeze_factor,
                                                  conv_channels=parse_conv_channels(args.conv_channels))
        elif args.squeeze_factor < 1:
            raise ValueError(f"--squeeze-factor must be >= 1, got {args.squeeze_factor}")
        else:
            student, info = build_student(teacher, args.num_layers, strategy, layers, teacher_name=args.teacher,
                                          conv_channels=parse_conv_channels(args.conv_channels))
    except (CheckpointUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    save_student(student, info, args.out, processor_source=teacher_dir)
    print(json.dumps(asdict(info), indent=2))
    print(f"teacher params: {info.teacher_params:,}  student params: {info.student_params:,}  -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
