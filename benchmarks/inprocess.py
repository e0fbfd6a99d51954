"""In-process speed of one acoustic-model candidate, in a fresh process (so peak RSS is its own).

    python -m benchmarks.inprocess --kind hf-pytorch --model build/checkpoints/random-base --clips c.npz
    python -m benchmarks.inprocess --kind onnx --model build/onnx/random-base/model.onnx --clips c.npz

Prints one JSON object: audio-seconds per second, p50/p99 latency per clip, peak RSS.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from w2v_triton.serving import spec
from w2v_triton.serving.typing import FloatArray


def onnx_variant(path: str) -> str:
    """What an ONNX file holds, from the builders' naming: model.onnx -> fp32, model.int8-mm.onnx -> int8-mm."""
    parts = Path(path).name.split(".")
    return parts[1] if len(parts) == 3 and parts[2] == "onnx" else "fp32"


Runner = Callable[[FloatArray], FloatArray]
"""One clip in, its logits out."""


def load_runner(kind: str, model: str, threads: int, device: str = "cpu", dtype: str = "fp32") -> Runner:
    """A function clip -> logits for the candidate; both paths see the normalised clip.
    `device`/`dtype` apply to hf-pytorch (e.g. cuda + fp16 for the GPU figures); the logits come
    back to the host as float32, so a GPU timing includes the copy and the synchronisation."""
    if kind == "hf-pytorch":
        import json

        import torch
        import transformers

        from w2v_triton.build.checkpoints import resolve_checkpoint
        from w2v_triton.serving.ctc_model import ctc_class_name

        torch.set_num_threads(threads)
        torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        # the checkpoint's own family class (a SEW student is not a Wav2Vec2ForCTC), HF's default attention
        local = resolve_checkpoint(model)
        family = getattr(transformers, ctc_class_name(json.loads((local / "config.json").read_text()), local))
        net = family.from_pretrained(str(local)).eval().to(device, torch_dtype)

        def run(clip: FloatArray) -> FloatArray:
            with torch.inference_mode():
                x = torch.from_numpy(clip)[None].to(device, torch_dtype)
                logits: FloatArray = net(x).logits[0].float().cpu().numpy()
                return logits
        return run
    if device != "cpu" or dtype != "fp32":
        raise ValueError("--device/--dtype apply to --kind hf-pytorch only")
    if kind == "onnx":
        from w2v_triton.serving.acoustic import AcousticModel

        acoustic = AcousticModel(model, intra_op_threads=threads)
        return lambda clip: acoustic.run([clip])[0]
    raise ValueError(f"unknown kind {kind}")


def measure(run: Runner, clips: list[FloatArray], repeats: int) -> dict[str, Any]:
    run(clips[0])  # warm-up: allocation, graph optimisation, thread pools
    latencies = []
    for _ in range(repeats):
        for clip in clips:
            start = time.perf_counter()
            run(clip)
            latencies.append(time.perf_counter() - start)
    audio_seconds = repeats * sum(c.size for c in clips) / spec.SAMPLE_RATE
    return {
        "audio_seconds_per_second": audio_seconds / sum(latencies),
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
        "clips": len(clips), "repeats": repeats,
        "clip_seconds": float(np.mean([c.size for c in clips]) / spec.SAMPLE_RATE),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=("hf-pytorch", "onnx"), required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--clips", required=True, help=".npz of normalised float32 clips")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="hf-pytorch: torch device, e.g. cuda")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"), help="hf-pytorch weights")
    args = parser.parse_args(argv)
    with np.load(args.clips) as data:
        clips = [data[k] for k in sorted(data.files)]
    result = measure(load_runner(args.kind, args.model, args.threads, args.device, args.dtype),
                     clips, args.repeats)
    if args.device.startswith("cuda"):
        import torch
        result["gpu"] = torch.cuda.get_device_name(0)
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    dtype = args.dtype if args.kind == "hf-pytorch" else onnx_variant(args.model)
    print(json.dumps({"kind": args.kind, "model": args.model, "threads": args.threads,
                      "device": args.device, "dtype": dtype, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
