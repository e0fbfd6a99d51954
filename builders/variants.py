"""Build faster variants of a checkpoint's ONNX acoustic model and verify them against fp32.

    python builders/variants.py --model random-base --variants ort-extended int8 fp16
    python builders/variants.py --model build/checkpoints/random-base-student6 --torch-bf16 \
        --threads 1 2 --repeats 7 --report build/variants/student6.json
    python builders/variants.py --model reference --variants int8-mm ov-fp32 ov-bf16 ov-int8

OpenVINO variants (ov-*) run in OpenVINO's CPU plugin instead of onnxruntime; ov-int8 is calibrated
on `--calibration` (default: the synthetic corpus dev set).

Each variant is written next to the fp32 file (build/onnx/<ckpt>/model.<variant>.onnx) and can
be served with `builders/repository.py --model <ckpt> --onnx <that file>`. The report (JSON)
holds, per variant: greedy-transcript agreement with fp32 on real speech (../shared/data/speech,
when present), max |logit diff|, and in-process speed (audio seconds per second, 10 s clip,
batch 1, median of repeats) at each thread count.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from w2v_triton.eval import evaluation; from w2v_triton.serving import spec; from w2v_triton.build import variants
from w2v_triton.build.builder import DEFAULT_CALIBRATION, DEFAULT_CALIBRATION_SIZE
from w2v_triton.build.checkpoints import CheckpointUnavailable, read_checkpoint_info, resolve_checkpoint
from w2v_triton.paths import REPO_ROOT


def speech_rows(manifests: list[Path] | None = None) -> list:
    """Manifest rows of `manifests` (default: the real speech in ../shared/data/speech; [] if absent)."""
    from w2v_triton.build.manifest import read_manifest, shared_speech_manifests

    return [u for m in (manifests or shared_speech_manifests(REPO_ROOT)) for u in read_manifest(m)]


def subset_rows(limit: int | None, manifests: list[Path] | None = None) -> list:
    """`speech_rows(manifests)`, or `limit` of them spread over all sources."""
    rows = speech_rows(manifests)
    if limit:
        step = max(1, len(rows) // limit)
        rows = rows[::step][:limit]
    return rows


def load_speech(limit: int | None, do_normalize: bool, manifests: list[Path] | None = None) -> list[np.ndarray]:
    """Utterances of `subset_rows(limit, manifests)`, preprocessed as the service does."""
    from w2v_triton.serving.audio import load_audio
    from w2v_triton.serving.preprocessing import preprocess

    return [preprocess(load_audio(u.audio), do_normalize) for u in subset_rows(limit, manifests)]


def label_wer(logits: list[np.ndarray], texts: list[str], vocab: dict[str, int]) -> dict[str, float] | None:
    """Greedy WER/CER against the manifest transcripts (None when any utterance has none): an int8
    variant that flips near-tie letters of a weak model may still leave its accuracy unchanged."""
    from w2v_triton.eval.metrics import error_rates

    if not texts or not all(t.strip() for t in texts):
        return None
    wer, cer = error_rates(texts, evaluation.greedy_transcripts(logits, vocab))
    return {"wer": wer, "cer": cer}


def long_speech(seconds: float, do_normalize: bool) -> np.ndarray:
    """Consecutive LibriSpeech test-other utterances up to `seconds`, normalised as one recording."""
    from w2v_triton.serving.audio import load_audio
    from w2v_triton.serving.preprocessing import preprocess

    rows = speech_rows()
    rows = [u for u in rows if "librispeech_test_other" in str(u.audio)] or rows
    parts, total = [], 0
    for u in rows:
        parts.append(load_audio(u.audio))
        total += parts[-1].size
        if total >= seconds * spec.SAMPLE_RATE:
            break
    return preprocess(np.concatenate(parts), do_normalize)


def speed_clip(speech: list[np.ndarray], seconds: float = 10.0) -> np.ndarray:
    """`seconds` of real speech (utterances concatenated), or noise when none is present."""
    n = int(seconds * spec.SAMPLE_RATE)
    if speech:
        joined = np.concatenate(speech)
        if joined.size >= n:
            return np.ascontiguousarray(joined[:n])
    return np.random.default_rng(0).standard_normal(n).astype(np.float32)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="random-base, tiny, reference, hub id or HF dir")
    ap.add_argument("--variants", nargs="+", default=list(variants.ONNX_VARIANTS) + ["trt"],
                    choices=variants.VARIANTS)
    ap.add_argument("--calibration", type=Path, default=DEFAULT_CALIBRATION,
                    help="ov-int8: calibration audio (a JSONL manifest)")
    ap.add_argument("--calibration-size", type=int, default=DEFAULT_CALIBRATION_SIZE, help="ov-int8: calibrate on this many utterances")
    ap.add_argument("--no-agreement", action="store_true", help="time only (e.g. a model with random weights)")
    ap.add_argument("--no-speed", action="store_true", help="verify only")
    ap.add_argument("--force", action="store_true", help="rebuild variants even if up to date")
    ap.add_argument("--build-only", action="store_true", help="build, do not verify or time")
    ap.add_argument("--print-path", action="store_true",
                    help="with --build-only: print only the built files' paths (for make)")
    ap.add_argument("--limit", type=int, default=0, help="verify on this many utterances (0 = all)")
    ap.add_argument("--manifest", type=Path, action="append",
                    help="verify on this JSONL manifest instead of ../shared/data/speech (repeatable), e.g. "
                         "a synthetic test split on which a weak model is confident")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clip-seconds", type=float, default=10.0)
    ap.add_argument("--torch-bf16", action="store_true", help="also measure PyTorch fp32 / bf16 autocast")
    ap.add_argument("--long-audio-seconds", type=float, default=0,
                    help="also compare windowed vs full-pass fp32 logits on this much real speech")
    ap.add_argument("--report", type=Path, help="default build/onnx/<ckpt>/variants_report.json")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from w2v_triton.paths import onnx_dir_for
    from w2v_triton.build.onnx_export import build_onnx

    args = parse_args(argv)
    if args.print_path:
        args.build_only = True
    say = (lambda *a, **k: print(*a, file=sys.stderr, **k)) if args.print_path else print
    try:
        checkpoint = resolve_checkpoint(args.model)
        info = read_checkpoint_info(checkpoint)
    except CheckpointUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fp32, _ = build_onnx(checkpoint, onnx_dir_for(checkpoint))
    report: dict = {"checkpoint": str(checkpoint), "fp32": str(fp32), "cpu": evaluation.cpu_features(),
                    "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "variants": {}}
    paths: dict[str, Path] = {"fp32": fp32}
    calibration = None
    if "ov-int8" in args.variants:
        try:
            calibration = variants.calibration_audio(args.calibration, args.calibration_size, info.do_normalize)
        except FileNotFoundError as exc:
            print(f"error: ov-int8: {exc}", file=sys.stderr)
            return 2
        report["calibration"] = {"manifest": str(args.calibration), "utterances": len(calibration)}
    for name in args.variants:
        start = time.perf_counter()
        try:
            path = variants.build_variant(fp32, name, args.force, checkpoint, calibration)
        except variants.VariantUnavailable as exc:
            say(f"{name}: skipped ({exc})")
            report["variants"][name] = {"skipped": str(exc)}
            continue
        paths[name] = path
        report["variants"][name] = {"file": str(path), "bytes": path.stat().st_size,
                                    "build_s": round(time.perf_counter() - start, 1)}
        if path.suffix == ".onnx":
            report["variants"][name]["op_domains"] = variants.op_domains(path)
        if path.suffix == ".xml":
            report["variants"][name]["bytes"] += path.with_suffix(".bin").stat().st_size
        say(f"{name}: {path} ({report['variants'][name]['bytes'] / 2**20:.1f} MiB)")
    if args.print_path:
        print(" ".join(str(p) for n, p in paths.items() if n != "fp32"))
    if args.build_only:
        return 0 if len(paths) > 1 or not args.variants else 3

    try:
        speech = load_speech(args.limit or None, info.do_normalize, args.manifest)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    runnable = {n: p for n, p in paths.items() if p.suffix == ".onnx" or n in variants.OPENVINO_VARIANTS}
    if args.no_agreement:
        pass
    elif speech:
        seconds = sum(u.size for u in speech) / spec.SAMPLE_RATE
        reference = evaluation.run_each(evaluation.session(fp32, 0), speech)
        texts = [" ".join(u.text.upper().split()) for u in subset_rows(args.limit or None, args.manifest)]
        report["speech"] = {"utterances": len(speech), "audio_seconds": round(seconds, 1),
                            "manifests": [str(m) for m in args.manifest] if args.manifest else "../shared/data/speech",
                            "fp32_vs_labels": label_wer(reference, texts, info.vocab)}
        others = {n: p for n, p in runnable.items() if n != "fp32"}
        for name, path in others.items():
            start = time.perf_counter()
            variant_logits = evaluation.run_each(evaluation.runner_for(path, name), speech)
            result = evaluation.agreement(reference, variant_logits, info.vocab, seconds)
            report["variants"][name]["agreement"] = evaluation.to_dict(result)
            report["variants"][name]["agreement"]["vs_labels"] = label_wer(variant_logits, texts, info.vocab)
            print(f"{name}: {result.differing_transcripts}/{result.utterances} transcripts differ, "
                  f"WER vs fp32 {100 * result.wer_vs_fp32:.2f}%, max |dlogit| {result.max_abs_logit_diff:.2e} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        if args.torch_bf16:
            for dtype in ("fp32", "bf16"):
                runner = evaluation.torch_runner(checkpoint, dtype)
                result = evaluation.agreement(reference, evaluation.run_each(runner, speech), info.vocab, seconds)
                report["variants"].setdefault(f"torch-{dtype}", {})["agreement"] = evaluation.to_dict(result)
                print(f"torch-{dtype}: {result.differing_transcripts}/{result.utterances} differ, "
                      f"WER vs fp32 {100 * result.wer_vs_fp32:.2f}%, max |dlogit| {result.max_abs_logit_diff:.2e}",
                      flush=True)
    else:
        print("no speech to verify on (../shared/data/speech absent): agreement not measured")

    if args.long_audio_seconds and speech:
        from w2v_triton.eval.evaluation import compare_with_full_pass

        long_clip = long_speech(args.long_audio_seconds, info.do_normalize)
        report["long_audio"] = compare_with_full_pass(fp32, long_clip, info.vocab)
        print(f"long audio {report['long_audio']['seconds']} s: argmax agreement "
              f"{report['long_audio']['argmax_agreement']:.4f}, CER vs full {report['long_audio']['cer_vs_full']:.4f}",
              flush=True)

    clip = speed_clip(speech, args.clip_seconds)
    report["speed"] = {"clip_seconds": args.clip_seconds, "batch": 1, "repeats": args.repeats, "by_threads": {}}
    for threads in [] if args.no_speed else args.threads:
        runners = {n: evaluation.runner_for(p, n, threads) for n, p in runnable.items()}
        if args.torch_bf16:
            import torch
            torch.set_num_threads(threads)
            runners.update({f"torch-{d}": evaluation.torch_runner(checkpoint, d) for d in ("fp32", "bf16")})
        result = evaluation.speed(runners, clip, args.repeats)
        report["speed"]["by_threads"][str(threads)] = result
        print(f"threads={threads}: " + ", ".join(f"{n} {r['audio_s_per_s']}x" for n, r in result.items()),
              flush=True)
        del runners
    out = args.report or fp32.parent / "variants_report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
