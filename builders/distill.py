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

if __package__ in (None, ""):  # `python builders/distill.py` from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_parser() -> argparse.ArgumentParser:
    from w2v_triton.distillation.losses import COS_MODES
    from w2v_triton.distillation.student import STRATEGIES

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
    st.add_argument("--num-layers", type=int, default=6)
    st.add_argument("--strategy", choices=STRATEGIES, default="first")
    st.add_argument("--layers", default=None, help="explicit 0-based teacher layers (implies --strategy explicit)")
    st.add_argument("--conv-channels", default=None,
                    help="narrow the student's conv front-end to this many channels (or one width per "
                         "layer, comma-separated), keeping the teacher's most important ones")
    st.add_argument("--squeeze-factor", type=int, default=1,
                    help="> 1: a SEW squeeze student (SEWForCTC): the transformer sees 1/N of the frames, "
                         "upsampled back before the CTC head; hidden-state targets are the teacher's "
                         "states averaged over N frames")
    st.add_argument("--student-init", default=None, help="start from this student dir instead")
    st.add_argument("--no-spec-augment", action="store_true", help="no SpecAugment on the student")
    lo = ap.add_argument_group("losses")
    lo.add_argument("--kl-weight", type=float, default=0.8)
    lo.add_argument("--temperature", type=float, default=4.0)
    lo.add_argument("--ctc-weight", type=float, default=0.2, help="applies to labelled rows only")
    lo.add_argument("--hidden-weight", type=float, default=0.0)
    lo.add_argument("--layer-map", default=None,
                    help="student:teacher hidden_states indices, e.g. 3:6,6:12 (default: each student "
                         "layer -> the teacher layer it was copied from)")
    lo.add_argument("--prediction-heads", action="store_true", help="linear head per hidden pair")
    lo.add_argument("--l1-weight", type=float, default=1.0)
    lo.add_argument("--cos-weight", type=float, default=1.0)
    lo.add_argument("--cos-mode", choices=COS_MODES, default="logsigmoid")
    tr = ap.add_argument_group("training (w2v_triton.training.Trainer)")
    tr.add_argument("--max-steps", type=int, default=2000)
    tr.add_argument("--lr", type=float, default=2e-4)
    tr.add_argument("--warmup-steps", type=int, default=100)
    tr.add_argument("--schedule", default="cosine", choices=("cosine", "linear", "constant"))
    tr.add_argument("--weight-decay", type=float, default=0.01)
    tr.add_argument("--grad-clip", type=float, default=1.0)
    tr.add_argument("--grad-accum", type=int, default=1)
    tr.add_argument("--max-batch-seconds", type=float, default=60.0)
    tr.add_argument("--max-batch-size", type=int, default=None)
    tr.add_argument("--eval-every", type=int, default=250)
    tr.add_argument("--eval-max-batch-seconds", type=float, default=120.0)
    tr.add_argument("--save-every", type=int, default=250)
    tr.add_argument("--log-every", type=int, default=10)
    tr.add_argument("--max-time-s", type=float, default=None, help="stop (and export) after this much training")
    tr.add_argument("--anneal-by-time", action="store_true",
                    help="the lr decay ends at --max-time-s even if --max-steps is not reached "
                         "(runs of equal time end annealed whatever their speed)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--bf16", action="store_true")
    tr.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    tr.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the work dir")
    tr.add_argument("--no-eval-at-start", action="store_true", help="skip the step-0 dev evaluation")
    tr.add_argument("--no-progress", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    from w2v_triton.distillation.student import parse_conv_channels
    from w2v_triton.distillation.losses import DistillLossConfig, parse_layer_map
    from w2v_triton.distillation.trainer import DistillConfig, run_distillation
    from w2v_triton.training.trainer import TrainConfig

    args = build_parser().parse_args(argv)
    layers = [int(x) for x in args.layers.split(",") if x.strip()] if args.layers else None
    loss = DistillLossConfig(
        kl_weight=args.kl_weight, temperature=args.temperature, ctc_weight=args.ctc_weight,
        hidden_weight=args.hidden_weight, layer_map=parse_layer_map(args.layer_map),
        prediction_heads=args.prediction_heads, l1_weight=args.l1_weight, cos_weight=args.cos_weight,
        cos_mode=args.cos_mode)
    cfg = DistillConfig(
        teacher=args.teacher, train=args.train, dev=args.dev, out=args.out, work_dir=args.work_dir,
        num_layers=None if layers else args.num_layers, strategy="explicit" if layers else args.strategy,
        layers=layers, conv_channels=parse_conv_channels(args.conv_channels), student_init=args.student_init,
        squeeze_factor=args.squeeze_factor,
        spec_augment=not args.no_spec_augment,
        limit_train=args.limit_train, limit_dev=args.limit_dev, max_duration=args.max_duration,
        threads=args.threads, eval_at_start=not args.no_eval_at_start, loss=loss)
    train_cfg = TrainConfig(
        max_steps=args.max_steps, lr=args.lr, warmup_steps=args.warmup_steps, schedule=args.schedule,
        weight_decay=args.weight_decay, grad_clip=args.grad_clip, grad_accum=args.grad_accum,
        max_batch_seconds=args.max_batch_seconds, max_batch_size=args.max_batch_size,
        eval_every=args.eval_every, eval_max_batch_seconds=args.eval_max_batch_seconds,
        save_every=args.save_every, log_every=args.log_every, max_time_s=args.max_time_s,
        anneal_by_time=args.anneal_by_time,
        seed=args.seed, bf16=args.bf16, progress=not args.no_progress)
    from w2v_triton.checkpoints import CheckpointUnavailable
    try:
        res = run_distillation(cfg, train_cfg, resume=True if args.resume else None)
    except (CheckpointUnavailable, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tr = res["trainer"]
    if tr.is_main:
        print(json.dumps({"out": res["out"], "step": tr.step, "last": res["last"],
                          "dev_start": res["dev_start"], "dev": res["dev"]},
                         indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
