"""Build a servable Triton model repository from a checkpoint (`make build-models`).

Resolves the checkpoint, exports and verifies the ONNX acoustic model (cached), and renders
every config from its template. `--platform onnxruntime_onnx` writes the repository for the
official NGC tritonserver container (Triton's own onnxruntime backend).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from builders.onnx_model import onnx_dir_for
from w2v_triton.checkpoints import REPO_ROOT, CheckpointUnavailable, read_checkpoint_info, resolve_checkpoint
from w2v_triton.onnx_export import build_onnx
from w2v_triton.repository import PLATFORMS, RepositoryOptions, render_repository


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = RepositoryOptions()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="", help="hub id, local dir, random-base, tiny, reference "
                        "(default: facebook/wav2vec2-base-960h, else the committed reference model)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "model_repository")
    parser.add_argument("--platform", choices=PLATFORMS, default=defaults.platform)
    parser.add_argument("--onnx", type=Path, help="use this ONNX file (e.g. a quantized variant)")
    parser.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size)
    parser.add_argument("--queue-delay-us", type=int, default=defaults.queue_delay_us)
    parser.add_argument("--acoustic-instances", type=int, default=defaults.acoustic_instances)
    parser.add_argument("--decoder-instances", type=int, default=defaults.decoder_instances)
    parser.add_argument("--intra-op-threads", type=int, default=defaults.intra_op_threads)
    parser.add_argument("--instance-kind", choices=("KIND_CPU", "KIND_GPU"), default=defaults.instance_kind)
    parser.add_argument("--decoder-mode", choices=("greedy", "beam"), default="greedy")
    parser.add_argument("--beam-width", type=int, default=32)
    parser.add_argument("--lm-dir", type=Path, help="output of `make lm` (lm.arpa|lm.bin + unigrams.txt)")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--beta", type=float, default=1.0)
    return parser.parse_args(argv)


def lm_files(lm_dir: Path | None) -> tuple[list[Path], str, str]:
    """The LM and unigram files to copy next to the decoder, and their names for its config."""
    if lm_dir is None:
        return [], "", ""
    model = next((lm_dir / n for n in ("lm.bin", "lm.arpa") if (lm_dir / n).is_file()), None)
    unigrams = lm_dir / "unigrams.txt"
    if model is None:
        raise FileNotFoundError(f"{lm_dir} holds no lm.bin or lm.arpa: run `make lm` first")
    files = [model] + ([unigrams] if unigrams.is_file() else [])
    return files, model.name, unigrams.name if unigrams.is_file() else ""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        checkpoint = resolve_checkpoint(args.model)
        info = read_checkpoint_info(checkpoint)
        files, lm_name, unigram_name = lm_files(args.lm_dir)
    except (CheckpointUnavailable, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.onnx:
        onnx_path = args.onnx
    else:
        onnx_path, report = build_onnx(checkpoint, onnx_dir_for(checkpoint))
        print(f"ONNX verified against PyTorch: max |logit diff| {report.max_abs_diff_single:.2e} "
              f"(single), {report.max_abs_diff_batched:.2e} (padded batch)")
    options = RepositoryOptions(
        platform=args.platform, max_batch_size=args.max_batch_size, queue_delay_us=args.queue_delay_us,
        acoustic_instances=args.acoustic_instances, decoder_instances=args.decoder_instances,
        intra_op_threads=args.intra_op_threads, instance_kind=args.instance_kind,
        decoder={"mode": args.decoder_mode, "beam_width": str(args.beam_width), "alpha": str(args.alpha),
                 "beta": str(args.beta), "lm_path": lm_name, "unigrams_path": unigram_name})
    output = render_repository(info, onnx_path, args.output, options, files)
    print(f"model repository ready: {output} (checkpoint {checkpoint}, platform {args.platform}, "
          f"decoder {args.decoder_mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
