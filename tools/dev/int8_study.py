"""Where int8's disagreement with fp32 comes from: per-part sensitivity and static quantisation.

    python tools/dev/int8_study.py --onnx-dir build/onnx/reference --manifest build/corpus/test_seen.jsonl \\
        --calibration build/corpus/dev.jsonl --out benchmarks/results/cpu-2core-amd-epyc/int8-study-reference.json

Starts from the block-MatMul graph (`model.mm.onnx`, `builders/variants.py --variants mm`) and
builds, next to the shipped int8-mm variant: int8-mm with one group of MatMuls kept in float
(last projection, feature projection, front-end, first/last encoder layers, whole encoder), and
static (calibrated, QDQ) int8 with MinMax and Percentile ranges from --calibration audio (cut into
3 s windows: onnxruntime's histogram calibrators need equal shapes). For each: greedy transcripts
vs fp32 on --manifest (differing count, WER vs fp32, WER vs the labels) and in-process speed on a
10 s clip (2 threads, median of 5). One-off study: the variants that pay are in builders/variants.py.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from w2v_triton.eval import evaluation; from w2v_triton.serving import spec
from w2v_triton.serving.audio import load_audio
from w2v_triton.serving.preprocessing import normalize
from w2v_triton.build.manifest import read_rows as read_manifest
from w2v_triton.eval.metrics import error_rates
from w2v_triton.build.variants import INT8_MM_FLOAT_NODES, quantize_int8

FLOAT_GROUPS = {
    "int8-mm (shipped)": (),
    "+ float lm_head": ("/lm_head/",),
    "+ float feature projection": ("/feature_projection/",),
    "+ float front-end 1-2": ("/block_convs.1/", "/block_convs.2/"),
    "+ float front-end 1-6": tuple(f"/block_convs.{i}/" for i in range(1, 7)),
    "+ float encoder layers 0-1": ("/encoder/layers.0/", "/encoder/layers.1/"),
    "+ float encoder layers 10-11": ("/encoder/layers.10/", "/encoder/layers.11/"),
    "+ float encoder (all)": ("/encoder/",),
}


def quantize_static_mm(src: Path, dst: Path, windows: list[np.ndarray], method: str) -> Path:
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Windows(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{spec.AUDIO: w[None], spec.AUDIO_LENGTHS: np.array([w.size], np.int64)}
                               for w in windows])

        def get_next(self):
            return next(self.items, None)

    excluded = [n.name for n in onnx.load(str(src), load_external_data=False).graph.node
                if n.name.startswith(INT8_MM_FLOAT_NODES)]
    quantize_static(str(src), str(dst), Windows(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
                    nodes_to_exclude=excluded, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=getattr(CalibrationMethod, method),
                    extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return dst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx-dir", type=Path, required=True, help="holds model.onnx and model.mm.onnx")
    p.add_argument("--manifest", required=True)
    p.add_argument("--calibration", required=True, help="manifest of calibration audio (not the test set)")
    p.add_argument("--calibration-windows", type=int, default=32)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    for name in ("model.onnx", "model.mm.onnx"):
        if not (a.onnx_dir / name).is_file():
            print(f"error: {a.onnx_dir / name} missing (builders/variants.py --variants mm)", file=sys.stderr)
            return 2
    rows = read_manifest(a.manifest)
    audio = [normalize(load_audio(r["audio"])) for r in rows]
    refs = [r["text"] for r in rows]
    clip = np.concatenate(audio)[: 10 * spec.SAMPLE_RATE]
    vocab = dict(spec.BASE_960H_VOCAB)

    def measure(path: Path) -> tuple[list[np.ndarray], list[str], float]:
        """Logits (each utterance alone), greedy transcripts, 2-thread speed: as builders/variants.py."""
        runner = evaluation.session(path, 2)
        logits = evaluation.run_each(runner, audio)
        speed = evaluation.speed({"v": runner}, clip)["v"]["audio_s_per_s"]
        return logits, evaluation.greedy_transcripts(logits, vocab), speed

    base_logits, base, base_speed = measure(a.onnx_dir / "model.onnx")
    results = {"fp32": {"wer_vs_labels": round(error_rates(refs, base)[0], 4),
                        "x_realtime": round(base_speed, 1)}}
    pool = np.concatenate([load_audio(r["audio"]) for r in read_manifest(a.calibration)])
    n = 3 * spec.SAMPLE_RATE
    windows = [normalize(pool[i:i + n]) for i in range(0, pool.size - n, n)][: a.calibration_windows]
    with tempfile.TemporaryDirectory() as tmp:
        builds = {name: (lambda dst, e=extra: quantize_int8(a.onnx_dir / "model.mm.onnx", dst, ("MatMul",),
                                                            per_channel=True,
                                                            exclude_prefixes=INT8_MM_FLOAT_NODES + e))
                  for name, extra in FLOAT_GROUPS.items()}
        for method in ("MinMax", "Percentile"):
            builds[f"static int8 ({method})"] = (
                lambda dst, m=method: quantize_static_mm(a.onnx_dir / "model.mm.onnx", dst, windows, m))
        for i, (name, build) in enumerate(builds.items()):
            logits, hyps, speed = measure(build(Path(tmp) / f"v{i}.onnx"))
            agreement = evaluation.agreement(base_logits, logits, vocab)
            results[name] = {"differing": agreement.differing_transcripts, "n": len(refs),
                             "wer_vs_fp32": round(agreement.wer_vs_fp32, 4),
                             "wer_vs_labels": round(error_rates(refs, hyps)[0], 4),
                             "x_realtime": round(speed, 1)}
            print(f"{name:32s} {results[name]}", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"onnx_dir": str(a.onnx_dir), "manifest": a.manifest,
                                 "calibration": a.calibration, "date_utc": time.strftime("%Y-%m-%d %H:%M",
                                                                                        time.gmtime()),
                                 "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
