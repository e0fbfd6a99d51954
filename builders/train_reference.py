"""Train the reference English wav2vec2 CTC model on the synthetic corpus, export and evaluate it.

    python -m builders.train_reference --corpus build/corpus --out build/train-reference \\
        --model-out models/reference --max-steps 2400 --max-time-min 65 --threads 1 --bf16
    python -m builders.train_reference --eval-only --model-out models/reference   # WERs only
    python -m builders.train_reference --export-only ...    # latest checkpoint -> model folder

Rerunning the training command resumes from the latest checkpoint in --out.
`--tiny` trains a minimal model (CI / tests).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from w2v_triton.build.manifest import real_speech_glob
from w2v_triton.eval.tables import eval_table
from w2v_triton.paths import REPO_ROOT
from w2v_triton.serving.spec import BASE_960H_VOCAB

# Model configuration (a name in w2v_triton.train.model) and default hyper-parameters per machine.
PRESETS: dict[str, dict[str, Any]] = {
    # 2-core CPU, hours: the light front-end model, small batches, one bf16 thread.
    "cpu": {"config": "REFERENCE_CONFIG", "lr": 1e-3, "warmup": 400, "batch_seconds": 24.0, "workers": 0},
    # one GPU, minutes: the pilot's model, ~10 minutes of audio per step, loaders on 8 cores.
    "gpu": {"config": "GPU_REFERENCE_CONFIG", "lr": 1e-3, "warmup": 600, "batch_seconds": 600.0, "workers": 8},
}


def resolve_preset(a: argparse.Namespace) -> dict[str, Any]:
    """Fill the hyper-parameters left unset on the command line from the preset; returns it."""
    name = a.preset
    if name == "auto":
        name = "gpu" if torch.cuda.is_available() else "cpu"
    preset = dict(PRESETS[name], name=name)
    for key in ("lr", "warmup", "batch_seconds", "workers"):
        if getattr(a, key) is None:
            setattr(a, key, preset[key])
    return preset


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="build/corpus", help="folder with train/dev/test_*.jsonl")
    p.add_argument("--out", default="build/train-reference", help="checkpoints + training log")
    p.add_argument("--model-out", default="models/reference", help="exported HF model folder")
    p.add_argument("--preset", default="auto", choices=["auto", *PRESETS],
                   help="model size + default hyper-parameters; auto = gpu when CUDA is available")
    p.add_argument("--max-steps", type=int, default=2400)
    p.add_argument("--max-time-min", type=float, default=None, help="stop after this much training time")
    p.add_argument("--anneal-by-time", action="store_true",
                   help="the lr decay ends at --max-time-min even if --max-steps is not reached")
    p.add_argument("--lr", type=float, default=None, help="peak lr (default: the preset's)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: the preset's)")
    p.add_argument("--schedule", default="cosine", choices=["cosine", "linear", "constant"])
    p.add_argument("--batch-seconds", type=float, default=None,
                   help="padded audio seconds per batch (default: the preset's)")
    p.add_argument("--workers", type=int, default=None, help="data-loader processes (default: the preset's)")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-utt-seconds", type=float, default=12.0, help="skip longer training utterances")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="bfloat16 autocast (about 2x faster on this CPU)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--eval-every", type=int, default=300)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--dev-limit", type=int, default=100, help="dev utterances used during training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiny", action="store_true", help="minimal model (tests/CI)")
    p.add_argument("--init-from", default=None,
                   help="start from this HF model folder's weights (e.g. models/reference) instead of "
                        "random init: continues a model across machines/sessions with a fresh optimizer")
    p.add_argument("--no-resume", action="store_true", help="ignore checkpoints in --out")
    p.add_argument("--eval-only", action="store_true", help="evaluate --model-out, write eval_results.json")
    p.add_argument("--export-only", action="store_true", help="export the latest checkpoint, then evaluate")
    p.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    p.add_argument("--real-speech", default=real_speech_glob(REPO_ROOT), help="glob of real-speech manifests ('' = none)")
    p.add_argument("--fp16-export", action="store_true", help="store weights as float16")
    p.add_argument("--max-shard-size", default=None,
                   help='split the exported weights into files of at most this size (e.g. "15MB")')
    p.add_argument("--plot", default=None, help="PNG of the training curves (default <out>/training.png)")
    p.add_argument("--no-progress", action="store_true")
    return p


def _device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    preset = resolve_preset(a)
    torch.set_num_threads(a.threads)
    corpus, out, model_out = Path(a.corpus), Path(a.out), Path(a.model_out)
    progress = not a.no_progress

    from w2v_triton.train import model as model_configs
    from w2v_triton.train.data import ManifestDataset
    from w2v_triton.train.model import build_ctc_model, export_pretrained, parameter_count
    from w2v_triton.train.trainer import TrainConfig, Trainer, plot_log

    if not a.eval_only:
        train_manifest = corpus / "train.jsonl"
        if not train_manifest.is_file():
            print(f"error: {train_manifest} missing; build the corpus first (make corpus)", file=sys.stderr)
            return 2
        vocab = dict(BASE_960H_VOCAB)
        train = ManifestDataset.from_manifest(train_manifest, vocab, max_duration=a.max_utt_seconds)
        dev = ManifestDataset.from_manifest(corpus / "dev.jsonl", vocab, limit=a.dev_limit) \
            if (corpus / "dev.jsonl").is_file() else None
        config_name = "TINY_CONFIG" if a.tiny else preset["config"]
        if a.init_from:
            from transformers import Wav2Vec2ForCTC
            model = Wav2Vec2ForCTC.from_pretrained(a.init_from, dtype=torch.float32)
            config_name = f"from {a.init_from}"
        else:
            model = build_ctc_model(getattr(model_configs, config_name), vocab, seed=a.seed)
        cfg = TrainConfig(out_dir=str(out), max_steps=a.max_steps, lr=a.lr, warmup_steps=a.warmup,
                          schedule=a.schedule, grad_accum=a.grad_accum, bf16=a.bf16,
                          max_batch_seconds=a.batch_seconds, eval_every=a.eval_every,
                          save_every=a.save_every, seed=a.seed, progress=progress,
                          num_workers=a.workers, anneal_by_time=a.anneal_by_time,
                          max_time_s=a.max_time_min * 60 if a.max_time_min else None,
                          extra={"threads": a.threads, "tiny": a.tiny, "corpus": str(corpus),
                                 "preset": preset["name"], "model_config": config_name,
                                 "device": _device_name(),
                                 "train_utterances": len(train),
                                 "train_hours": round(sum(train.durations) / 3600, 3)})
        trainer = Trainer(model, train, cfg, dev_dataset=dev, vocab=vocab)
        if trainer.is_main:
            print(f"model: {parameter_count(model) / 1e6:.2f} M parameters; train: {len(train)} utterances, "
                  f"{sum(train.durations) / 3600:.2f} h; preset {preset['name']} on {_device_name()}", flush=True)
        if not a.export_only:
            from w2v_triton.train.trainer import TrainingInterrupted
            try:
                trainer.train(resume=not a.no_resume)
            except TrainingInterrupted as exc:   # checkpoint saved; nothing exported
                print(f"{exc}; rerun the same command to continue", file=sys.stderr)
                return 128 + exc.signum
        else:
            ckpt = trainer.latest_checkpoint()
            if ckpt is None:
                print(f"error: no checkpoint in {out}", file=sys.stderr)
                return 2
            trainer.load_checkpoint(ckpt)
        if not trainer.is_main:
            return 0
        plot_log(trainer.log_path, a.plot or out / "training.png",
                 title=f"reference wav2vec2 CTC ({parameter_count(model) / 1e6:.1f} M params, "
                       f"{trainer.step} steps, {trainer.train_time / 60:.0f} min on {_device_name()})")
        export_pretrained(model.eval(), model_out, vocab,  # type: ignore[no-untyped-call]  # transformers leaves eval() unannotated
                          dtype=torch.float16 if a.fp16_export else torch.float32,
                          max_shard_size=a.max_shard_size)
        (model_out / "training_summary.json").write_text(json.dumps({
            "steps": trainer.step, "epoch": trainer.epoch, "train_time_s": round(trainer.train_time, 1),
            "audio_hours_seen": round(trainer.audio_seconds / 3600, 3), "threads": a.threads,
            "device": _device_name(), "preset": preset["name"], "model_config": config_name,
            "init_from": a.init_from,
            "parameters": parameter_count(model), "bf16_autocast": a.bf16,
            "train_utterances": len(train), "train_hours": round(sum(train.durations) / 3600, 3),
            "command": " ".join(sys.argv)}, indent=2) + "\n")
        print(f"exported {model_out}", flush=True)
    if a.no_eval:
        return 0
    from w2v_triton.train.evaluate import evaluate_model, rates_only

    results = evaluate_model(model_out, corpus, a.real_speech, progress=progress)
    (model_out / "eval_results.json").write_text(json.dumps(rates_only(results), indent=2) + "\n")
    (out).mkdir(parents=True, exist_ok=True)
    (out / "eval_transcripts.json").write_text(json.dumps(
        {k: v.get("all", []) for k, v in results.items()}, indent=1) + "\n")
    print(eval_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
