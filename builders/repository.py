"""Build a servable Triton model repository from a checkpoint (`make build-models`).

Resolves the checkpoint, exports and verifies the ONNX acoustic model (cached), and renders
every config from its template. `--platform onnxruntime_onnx` writes the repository for the
official NGC tritonserver container (Triton's own onnxruntime backend).

Decoder values tuned by `builders/tune_lm.py` live in `<output>/decoder/tuning.json`; a rebuild
into the same output with the same checkpoint and LM uses them for every value not given on
the command line (--beam-width/--alpha/--beta), so rebuilding keeps the tuning.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from w2v_triton.serving.acoustic import DEVICES, RUNTIMES, TORCH_COMPILE_MODES, TORCH_DTYPES
from w2v_triton.build.checkpoints import REPO_ROOT, CheckpointUnavailable, read_checkpoint_info, resolve_checkpoint
from w2v_triton.serving.ctc_decoding import BACKENDS, DecoderConfig
from w2v_triton.build.tuning import TUNED_KEYS, TUNING_FILE, load_tuning
from w2v_triton.build.onnx_export import build_onnx
from w2v_triton.paths import lm_files, onnx_dir_for
from w2v_triton.build.repository import PLATFORMS, PROFILE_FIELDS, PROFILES, RepositoryOptions, render_repository
from w2v_triton.build.variants import (ONNX_VARIANTS, OPENVINO_PRECISION, OPENVINO_VARIANTS, build_variant,
                                 calibration_audio)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = RepositoryOptions()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="", help="hub id, local dir, random-base, tiny, reference "
                        "(default: facebook/wav2vec2-base-960h, else the committed reference model)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "model_repository")
    parser.add_argument("--platform", choices=PLATFORMS, default=defaults.platform)
    parser.add_argument("--onnx", type=Path, help="use this ONNX file (e.g. a quantized variant)")
    parser.add_argument("--allow-weight-mismatch", action="store_true",
                        help="load even when weights are missing or unexpected (README: supported checkpoints)")
    parser.add_argument("--variant", default="fp32", choices=("fp32",) + ONNX_VARIANTS + OPENVINO_VARIANTS,
                        help="serve an optimized variant of the exported model (docs/optimization.md); "
                             "ov-* need --runtime openvino")
    parser.add_argument("--calibration", type=Path, default=REPO_ROOT / "build" / "corpus" / "dev.jsonl",
                        help="--variant ov-int8: calibration audio, a JSONL manifest (default: the corpus dev set)")
    parser.add_argument("--calibration-size", type=int, default=64)
    parser.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size)
    parser.add_argument("--profile", choices=tuple(PROFILES), default=defaults.profile,
                        help="serving profile: latency (one request soonest: one acoustic instance on all "
                             "cores) or throughput (one 1-thread acoustic instance per core); the five "
                             "flags below override its values (default %(default)s)")
    # None: the profile's value (w2v_triton.build.repository.PROFILES)
    parser.add_argument("--queue-delay-us", type=int, default=None)
    parser.add_argument("--preprocessor-instances", type=int, default=None)
    parser.add_argument("--acoustic-instances", type=int, default=None)
    parser.add_argument("--decoder-instances", type=int, default=None)
    parser.add_argument("--intra-op-threads", type=int, default=None)
    parser.add_argument("--device", choices=DEVICES, default=defaults.device,
                        help="cpu, or gpu: KIND_GPU acoustic instances on a GPU runtime (TensorRT/CUDA "
                             "onnxruntime, or CUDA PyTorch with --runtime torch); the model load fails "
                             "where no GPU runtime exists (default %(default)s)")
    parser.add_argument("--runtime", choices=RUNTIMES, default=defaults.runtime,
                        help="what runs the acoustic model in the python platform: onnxruntime (the "
                             "exported ONNX file or --variant), torch (the checkpoint in PyTorch) or openvino "
                             "(CPU: the ONNX file, or --variant ov-fp32|ov-bf16|ov-int8)")
    parser.add_argument("--torch-dtype", choices=TORCH_DTYPES, default=defaults.torch_dtype,
                        help="runtime torch: auto = float16 on a GPU, float32 on a CPU")
    parser.add_argument("--torch-compile", choices=TORCH_COMPILE_MODES, default=defaults.torch_compile,
                        metavar="MODE", help="runtime torch: run the network through torch.compile in this mode "
                        "(reduce-overhead: CUDA graphs too; batches padded to whole seconds and powers of two)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="do not run warm-up requests before the acoustic model reports ready")
    parser.add_argument("--max-audio-seconds", type=float, default=defaults.max_audio_seconds,
                        help="longest audio the preprocessor accepts (float32 samples or a decoded AUDIO_FILE)")
    parser.add_argument("--decoder-mode", choices=("greedy", "beam"), default="greedy")
    parser.add_argument("--decoder-backend", choices=BACKENDS, default=DecoderConfig.backend,
                        help="beam search engine (default %(default)s; hotword requests always use pyctcdecode)")
    parser.add_argument("--beam-width", type=int, default=None, help="default 32, or the tuned value")
    parser.add_argument("--beam-prune-logp", type=float, default=None,
                        help="drop beams this far below the best (default -10, or the tuned value)")
    parser.add_argument("--token-min-logp", type=float, default=None,
                        help="pyctcdecode: skip tokens below this log-prob (default -5, or the tuned value)")
    parser.add_argument("--lm-dir", type=Path, help="output of `make lm` (lm.arpa|lm.bin + unigrams.txt)")
    parser.add_argument("--alpha", type=float, default=None, help="LM weight (default 0.5, or the tuned value)")
    parser.add_argument("--beta", type=float, default=None, help="word bonus (default 1.0, or the tuned value)")
    parser.add_argument("--hotword-weight", type=float, default=DecoderConfig.hotword_weight,
                        help="score bonus of request HOTWORDS in beam search (default %(default)s)")
    parser.add_argument("--stream", action="append", default=[], metavar="KEY=VALUE",
                        help="a streaming_asr setting (w2v_triton.serving.streaming.StreamingConfig), e.g. "
                             "idle_seconds=30, left_context_seconds=4; repeatable")
    return parser.parse_args(argv)


def decoder_config(args: argparse.Namespace, checkpoint: Path, files: list[Path], lm_name: str,
                   unigram_name: str) -> DecoderConfig:
    """Command line first, then the values tuned for this checkpoint + LM (<output>/decoder/tuning.json,
    `make tune-lm`), then DecoderConfig's defaults."""
    tuned = load_tuning(args.output / "decoder", checkpoint, files[0] if files else None)
    values = {}
    for key in TUNED_KEYS:
        given = getattr(args, key)
        if given is not None:
            values[key] = given
        elif key in tuned:
            values[key] = tuned[key]
    used = {k: tuned[k] for k in tuned if getattr(args, k, None) is None}
    if used:
        print(f"decoder: using tuned {used} from {args.output / 'decoder' / TUNING_FILE}")
    config = replace(DecoderConfig(), mode=args.decoder_mode, lm_path=lm_name, unigrams_path=unigram_name,
                     hotword_weight=args.hotword_weight, backend=args.decoder_backend, **values)
    config.validate(check_files=False)
    return config


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        checkpoint = resolve_checkpoint(args.model)
        info = read_checkpoint_info(checkpoint)
        files, lm_name, unigram_name = lm_files(args.lm_dir)
        if files and args.decoder_mode != "beam":
            raise FileNotFoundError("--lm-dir needs --decoder-mode beam (greedy decoding uses no LM)")
        if not args.onnx:
            onnx_path, report = build_onnx(checkpoint, onnx_dir_for(checkpoint),
                                           allow_weight_mismatch=args.allow_weight_mismatch)
    except (CheckpointUnavailable, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    openvino = args.runtime == "openvino"
    if args.variant in OPENVINO_VARIANTS and not openvino:
        print(f"error: --variant {args.variant} runs in OpenVINO: add --runtime openvino (RUNTIME=openvino)",
              file=sys.stderr)
        return 2
    if openvino and args.variant not in ("fp32",) + OPENVINO_VARIANTS:
        print(f"error: --runtime openvino serves fp32 or {', '.join(OPENVINO_VARIANTS)}, not {args.variant} "
              "(an onnxruntime variant)", file=sys.stderr)
        return 2
    if args.onnx:
        onnx_path = args.onnx
    else:
        print(f"ONNX verified against PyTorch: max |logit diff| {report.max_abs_diff_single:.2e} "
              f"(single), {report.max_abs_diff_batched:.2e} (padded batch)")
        if args.variant != "fp32":
            try:
                calibration = (calibration_audio(args.calibration, args.calibration_size, info.do_normalize)
                               if args.variant == "ov-int8" else None)
            except FileNotFoundError as exc:
                print(f"error: --variant ov-int8: {exc}", file=sys.stderr)
                return 2
            onnx_path = build_variant(onnx_path, args.variant, checkpoint=checkpoint, calibration=calibration)
            print(f"serving variant {args.variant}: {onnx_path}")
    try:
        if args.runtime == "torch" and (args.variant != "fp32" or args.onnx):
            raise ValueError("--runtime torch runs the checkpoint itself: --variant/--onnx are ONNX files")
        overrides = {k: getattr(args, k) for k in PROFILE_FIELDS if getattr(args, k) is not None}
        options = RepositoryOptions.for_profile(
            args.profile, **overrides, platform=args.platform, max_batch_size=args.max_batch_size,
            device=args.device, runtime=args.runtime,
            torch_dtype=args.torch_dtype, torch_compile=args.torch_compile, warmup=args.warmup,
            openvino_precision=OPENVINO_PRECISION.get(args.variant, "f32") if openvino else "f32",
            openvino_ir=openvino and Path(onnx_path).suffix == ".xml", max_audio_seconds=args.max_audio_seconds,
            decoder=decoder_config(args, checkpoint, files, lm_name, unigram_name),
            streaming=dict(item.split("=", 1) for item in args.stream if "=" in item))
        if any("=" not in item for item in args.stream):
            raise ValueError(f"--stream takes KEY=VALUE, got {args.stream}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = render_repository(info, onnx_path, args.output, options, files)
    overridden = options.profile_overrides()
    print(f"model repository ready: {output} (checkpoint {checkpoint}, platform {args.platform}, "
          f"acoustic model {options.runtime} on {options.device}, decoder {args.decoder_mode}, "
          f"profile {options.profile}{f' with {overridden}' if overridden else ''}: "
          f"{options.acoustic_instances} acoustic instance(s) x {options.intra_op_threads or 'all'} thread(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
