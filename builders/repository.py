"""Build a servable Triton model repository from a checkpoint (`make build-models`).

A thin command line over `w2v_triton.build.builder.build_repository`: resolves the checkpoint,
exports and verifies the ONNX acoustic model (cached), and renders every config from its template. `--platform onnxruntime_onnx` writes the repository for the
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

from w2v_triton.build.builder import (
    DEFAULT_CALIBRATION,
    DEFAULT_CALIBRATION_SIZE,
    VARIANT_CHOICES,
    BuildError,
    BuildRequest,
    build_repository,
)
from w2v_triton.build.repository import PLATFORMS, PROFILE_FIELDS, PROFILES, RepositoryOptions
from w2v_triton.build.tuning import TUNED_KEYS, TUNING_FILE
from w2v_triton.paths import DEFAULT_REPOSITORY
from w2v_triton.serving.acoustic import RUNTIMES, TORCH_COMPILE_MODES, TORCH_DTYPES
from w2v_triton.serving.ctc_decoding import BACKENDS, DecoderConfig
from w2v_triton.serving.devices import DEVICES


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = RepositoryOptions()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="", help="hub id, local dir, random-base, tiny, reference "
                        "(default: facebook/wav2vec2-base-960h, else the committed reference model)")
    parser.add_argument("--output", type=Path, default=DEFAULT_REPOSITORY)
    parser.add_argument("--platform", choices=PLATFORMS, default=defaults.platform)
    parser.add_argument("--onnx", type=Path, help="use this ONNX file (e.g. a quantized variant)")
    parser.add_argument("--allow-weight-mismatch", action="store_true",
                        help="load even when weights are missing or unexpected (README: supported checkpoints)")
    parser.add_argument("--variant", default="fp32", choices=VARIANT_CHOICES,
                        help="serve an optimized variant of the exported model (docs/optimization.md); "
                             "ov-* need --runtime openvino")
    parser.add_argument("--calibration", type=Path, default=DEFAULT_CALIBRATION,
                        help="--variant ov-int8: calibration audio, a JSONL manifest (default: the corpus dev set)")
    parser.add_argument("--calibration-size", type=int, default=DEFAULT_CALIBRATION_SIZE)
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
    parser.add_argument("--release-memory", action=argparse.BooleanOptionalAction, default=defaults.release_memory,
                        help="the acoustic models give their working memory back after every request; "
                             "--no-release-memory keeps the largest working set ever needed (default %(default)s; "
                             "docs/optimization.md, Memory)")
    parser.add_argument("--cpu-arena", action=argparse.BooleanOptionalAction, default=defaults.cpu_arena,
                        help="onnxruntime's CPU memory arena; --no-cpu-arena allocates with malloc (default %(default)s)")
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


def build_request(args: argparse.Namespace) -> BuildRequest:
    """The command line as a typed request: decoder values given here win; those left out come from
    `<output>/decoder/tuning.json` when it was tuned for this checkpoint and LM, else the defaults."""
    if any("=" not in item for item in args.stream):
        raise BuildError(f"--stream takes KEY=VALUE, got {args.stream}")
    given = {key: getattr(args, key) for key in TUNED_KEYS if getattr(args, key) is not None}
    decoder = replace(DecoderConfig(), mode=args.decoder_mode, hotword_weight=args.hotword_weight,
                      backend=args.decoder_backend, **given)
    overrides = {k: getattr(args, k) for k in PROFILE_FIELDS if getattr(args, k) is not None}
    try:
        options = RepositoryOptions.for_profile(
            args.profile, **overrides, platform=args.platform, max_batch_size=args.max_batch_size,
            device=args.device, runtime=args.runtime, torch_dtype=args.torch_dtype,
            torch_compile=args.torch_compile, warmup=args.warmup, cpu_arena=args.cpu_arena,
            release_memory=args.release_memory, max_audio_seconds=args.max_audio_seconds, decoder=decoder,
            streaming=dict(item.split("=", 1) for item in args.stream))
    except ValueError as exc:
        raise BuildError(str(exc)) from exc
    return BuildRequest(model=args.model, output=args.output, options=options, variant=args.variant,
                        onnx=args.onnx, lm_dir=args.lm_dir, calibration=args.calibration,
                        calibration_size=args.calibration_size, allow_weight_mismatch=args.allow_weight_mismatch,
                        tuned_fields=tuple(k for k in TUNED_KEYS if k not in given))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        built = build_repository(build_request(args))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if built.export_report is not None:
        report = built.export_report
        print(f"ONNX verified against PyTorch: max |logit diff| {report.max_abs_diff_single:.2e} "
              f"(single), {report.max_abs_diff_batched:.2e} (padded batch)")
    if args.variant != "fp32":
        print(f"serving variant {args.variant}: {built.served_file}")
    if built.tuned:
        print(f"decoder: using tuned {built.tuned} from {args.output / 'decoder' / TUNING_FILE}")
    print(built.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
