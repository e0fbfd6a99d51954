"""Distil a wav2vec2 CTC teacher into a shallower student on JSONL manifests.

    python builders/distill.py --teacher models/reference --train build/corpus/train.jsonl \
        --dev build/corpus/dev.jsonl --out build/distill/student6 --num-layers 6 --strategy first \
        --kl-weight 0.8 --temperature 4 --ctc-weight 0.2
    python -m torch.distributed.run --standalone --nproc_per_node 2 builders/distill.py ...   (DDP)

Rows without "text" are distilled with the KD terms only. The output is an HF dir (with the
teacher's processor files): `make build-models MODEL=<out>` serves it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python builders/distill.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    from w2v_triton.train.distillation.losses import COS_MODES, DistillLossConfig
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    io = ap.add_argument_group("data / models")
    io.add_argument("--teacher", required=True, help="hub id, local HF dir, or reference/random-base/tiny")
    io.add_argument("--train", required=True, help="JSONL manifest {audio, duration[, text]}")
    io.add_argument("--dev", default=None, help="JSONL manifest for dev WER")
    io.add_argument("--out", required=True, help="student HF dir written at the end")
    io.add_argument("--work-dir", default=None, help="checkpoints + train_log.jsonl (default <out>.train)")
    io.add_argument("--limit-train", type=int, default=None)
    io.add_argument("--limit-dev", type=int, default=None)
    io.add_argument("--max-duration", type=float, default=None, help="skip longer utterances (s)")
    st = ap.add_argument_group("student")
    from w2v_triton.train.distillation.presets import add_shape_arguments
    add_shape_arguments(st, " (default 6)")
    st.add_argument("--student-init", default=None, help="start from this student dir instead")
    io.add_argument("--teacher-cache", default=None, metavar="DIR",
                    help="keep the teacher's outputs per training utterance here (float16), so epochs after "
                         "the first skip its forward pass; not with --augment")
    st.add_argument("--no-spec-augment", action="store_true", help="no SpecAugment on the student")
    st.add_argument("--augment", type=float, default=0.0, metavar="STRENGTH",
                    help="re-augment the training audio on the fly (noise, reverb, speed, band limit: "
                         "w2v_triton/train/augment.py) at this strength; teacher and student hear the "
                         "same audio (default 0: as stored)")
    lo = ap.add_argument_group("losses")
    lo.add_argument("--kl-weight", type=float, default=DistillLossConfig.kl_weight)
    lo.add_argument("--temperature", type=float, default=DistillLossConfig.temperature)
    lo.add_argument("--ctc-weight", type=float, default=DistillLossConfig.ctc_weight, help="applies to labelled rows only")
    lo.add_argument("--hidden-weight", type=float, default=None,
                    help="hidden-state loss weight (default: 1 with --preset, else 0)")
    lo.add_argument("--layer-map", default=None,
                    help="student:teacher hidden_states indices, e.g. 3:6,6:12 (default: each student "
                         "layer -> the teacher layer it was copied from; with a preset that prunes the "
                         "front-end or the width, also 0:0, the encoder inputs)")
    lo.add_argument("--map-encoder-input", action="store_true",
                    help="add the pair 0:0 (encoder inputs) to the default layer map")
    lo.add_argument("--prediction-heads", action="store_true", help="linear head per hidden pair")
    lo.add_argument("--l1-weight", type=float, default=DistillLossConfig.l1_weight)
    lo.add_argument("--cos-weight", type=float, default=DistillLossConfig.cos_weight)
    lo.add_argument("--cos-mode", choices=COS_MODES, default=DistillLossConfig.cos_mode)
    tr = ap.add_argument_group("training (w2v_triton.train.Trainer)")
    tr.add_argument("--max-steps", type=int, default=2000)
    tr.add_argument("--lr", type=float, default=2e-4)
    tr.add_argument("--warmup-steps", type=int, default=100)
    tr.add_argument("--schedule", default="cosine", choices=("cosine", "linear", "constant"))
    tr.add_argument("--decay-fraction", type=float, default=1.0,
                    help="the decay takes this last part of each schedule segment, the peak lr before it "
                         "(0.2: constant-then-decay, for runs that are continued; default 1: the whole run)")
    tr.add_argument("--weight-decay", type=float, default=0.01)
    tr.add_argument("--grad-clip", type=float, default=1.0)
    tr.add_argument("--grad-accum", type=int, default=1)
    tr.add_argument("--max-batch-seconds", type=float, default=60.0)
    tr.add_argument("--max-batch-size", type=int, default=None)
    tr.add_argument("--eval-every", type=int, default=250)
    tr.add_argument("--eval-max-batch-seconds", type=float, default=120.0)
    tr.add_argument("--save-every", type=int, default=250)
    tr.add_argument("--save-every-min", type=float, default=None,
                    help="also checkpoint every this many minutes of wall time (SIGTERM/SIGINT always do)")
    tr.add_argument("--log-every", type=int, default=10)
    tr.add_argument("--max-time-s", type=float, default=None, help="stop (and export) after this much training")
    tr.add_argument("--anneal-by-time", action="store_true",
                    help="the lr decay ends at --max-time-s even if --max-steps is not reached "
                         "(runs of equal time end annealed whatever their speed)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--bf16", action="store_true")
    tr.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    tr.add_argument("--resume", action="store_true",
                    help="continue from the latest checkpoint in the work dir; a larger --max-time-s / "
                         "--max-steps extends the run (docs/distillation.md, Long runs)")
    tr.add_argument("--resume-from", default=None, metavar="CHECKPOINT",
                    help="continue from this checkpoint dir instead (e.g. <work dir>/checkpoints/"
                         "decay-start-*: the peak of a constant-then-decay run, before its decay)")
    tr.add_argument("--no-eval-at-start", action="store_true", help="skip the step-0 dev evaluation")
    tr.add_argument("--no-progress", action="store_true")
    return ap


def configs_from_args(argv: list[str] | None = None) -> tuple[Any, Any, argparse.Namespace]:
    """(DistillConfig, TrainConfig, parsed args) for a command line (argparse exits on bad flags)."""
    from w2v_triton.train.distillation.losses import DistillLossConfig, parse_layer_map
    from w2v_triton.train.distillation.presets import PRESET_HIDDEN_WEIGHT, encoder_input_pair, shape_from_args
    from w2v_triton.train.distillation.trainer import DistillConfig
    from w2v_triton.train.trainer import TrainConfig

    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        shape = shape_from_args(args)
    except ValueError as exc:
        ap.error(str(exc))
    hidden_weight = args.hidden_weight if args.hidden_weight is not None else (
        PRESET_HIDDEN_WEIGHT if args.preset else 0.0)
    loss = DistillLossConfig(
        kl_weight=args.kl_weight, temperature=args.temperature, ctc_weight=args.ctc_weight,
        hidden_weight=hidden_weight, layer_map=parse_layer_map(args.layer_map),
        map_encoder_input=args.map_encoder_input or bool(args.preset and encoder_input_pair(shape)),
        prediction_heads=args.prediction_heads, l1_weight=args.l1_weight, cos_weight=args.cos_weight,
        cos_mode=args.cos_mode)
    cfg = DistillConfig(
        teacher=args.teacher, train=args.train, dev=args.dev, out=args.out, work_dir=args.work_dir,
        shape=shape, preset=args.preset, student_init=args.student_init,
        spec_augment=not args.no_spec_augment, augment_strength=args.augment, teacher_cache=args.teacher_cache,
        limit_train=args.limit_train, limit_dev=args.limit_dev, max_duration=args.max_duration,
        threads=args.threads, eval_at_start=not args.no_eval_at_start, loss=loss)
    train_cfg = TrainConfig(
        max_steps=args.max_steps, lr=args.lr, warmup_steps=args.warmup_steps, schedule=args.schedule,
        weight_decay=args.weight_decay, grad_clip=args.grad_clip, grad_accum=args.grad_accum,
        max_batch_seconds=args.max_batch_seconds, max_batch_size=args.max_batch_size,
        eval_every=args.eval_every, eval_max_batch_seconds=args.eval_max_batch_seconds,
        save_every=args.save_every, save_every_min=args.save_every_min, log_every=args.log_every,
        max_time_s=args.max_time_s, anneal_by_time=args.anneal_by_time, decay_fraction=args.decay_fraction,
        seed=args.seed, bf16=args.bf16, progress=not args.no_progress)
    return cfg, train_cfg, args


def main(argv: list[str] | None = None) -> int:
    from w2v_triton.train.distillation.trainer import run_distillation

    cfg, train_cfg, args = configs_from_args(argv)
    from w2v_triton.build.checkpoints import CheckpointUnavailable
    from w2v_triton.train.trainer import TrainingInterrupted
    if args.resume_from and not (Path(args.resume_from) / "trainer_state.pt").is_file():
        print(f"error: --resume-from {args.resume_from}: no trainer_state.pt there", file=sys.stderr)
        return 2
    try:
        res = run_distillation(cfg, train_cfg, resume=args.resume_from or (True if args.resume else None))
    except (CheckpointUnavailable, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingInterrupted as exc:   # checkpoint saved; nothing exported
        print(f"{exc}; continue with --resume (same arguments)", file=sys.stderr)
        return 128 + exc.signum
    tr = res["trainer"]
    if tr.is_main:
        print(json.dumps({"out": res["out"], "step": tr.step, "last": res["last"],
                          "dev_start": res["dev_start"], "dev": res["dev"]},
                         indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
