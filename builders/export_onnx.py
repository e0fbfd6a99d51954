"""Export a checkpoint's acoustic model to ONNX and verify it against PyTorch (fp32)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from w2v_triton.build.checkpoints import CheckpointUnavailable, resolve_checkpoint
from w2v_triton.build.onnx_export import FP32_TOLERANCE, build_onnx
from w2v_triton.paths import onnx_dir_for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="", help="hub id, local dir, random-base, tiny, reference")
    parser.add_argument("--out-dir", type=Path, help="default build/onnx/<checkpoint name>")
    parser.add_argument("--force", action="store_true", help="re-export even if up to date")
    parser.add_argument("--allow-weight-mismatch", action="store_true",
                        help="load even when weights are missing or unexpected (README: supported checkpoints)")
    args = parser.parse_args(argv)
    try:
        checkpoint = resolve_checkpoint(args.model)
        onnx_path, report = build_onnx(checkpoint, args.out_dir or onnx_dir_for(checkpoint), args.force,
                                       args.allow_weight_mismatch)
    except CheckpointUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{onnx_path}: opset {report.opset}, max |logit diff| vs PyTorch "
          f"{report.max_abs_diff_single:.2e} single, {report.max_abs_diff_batched:.2e} padded batch "
          f"(lengths {list(report.lengths)}; tolerance {FP32_TOLERANCE:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
