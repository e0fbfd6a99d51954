"""Evaluation of acoustic-model variants and runtimes: agreement with fp32, speed, long audio.

Verification (`agreement`) runs a variant and fp32 on the same audio and counts differing greedy
transcripts, the WER of the variant's transcripts against fp32's, and the largest |logit
difference|; `speed` times runners interleaved; `compare_with_full_pass` measures long-audio
windowing against one full pass. Building the variants is w2v_triton.build.variants.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from w2v_triton.eval.metrics import error_rates
from w2v_triton.serving import spec
from w2v_triton.serving.long_audio import LongAudioConfig, seams, window_starts
from w2v_triton.serving.typing import AnyArray

if TYPE_CHECKING:
    from w2v_triton.serving.acoustic import AcousticModel


# --- running and comparing ------------------------------------------------------------------

class Runner(Protocol):
    """What agreement and speed need of a runtime: AcousticModel's `run`."""

    def run(self, utterances: list[AnyArray]) -> list[AnyArray]: ...


def session(onnx_path: Path, threads: int = 0) -> AcousticModel:
    """A CPU session like AcousticModel's (variants built for GPUs fail here)."""
    from w2v_triton.serving.acoustic import AcousticModel

    return AcousticModel(onnx_path, threads)


def greedy_transcripts(logits: list[AnyArray], vocab: dict[str, int]) -> list[str]:
    from w2v_triton.serving.ctc_decoding import CTCDecoder

    return CTCDecoder(vocab).decode_batch(logits)


@dataclass
class Agreement:
    utterances: int
    audio_seconds: float
    differing_transcripts: int
    wer_vs_fp32: float           # variant transcripts scored against fp32 transcripts
    cer_vs_fp32: float
    max_abs_logit_diff: float
    mean_abs_logit_diff: float
    frame_argmax_agreement: float  # share of frames with the same best token
    examples: list[Any] = field(default_factory=list)  # a few (fp32, variant) differing pairs


def agreement(reference_logits: list[AnyArray], variant_logits: list[AnyArray],
              vocab: dict[str, int], sample_rate_seconds: float = 0.0) -> Agreement:
    ref_text = greedy_transcripts(reference_logits, vocab)
    var_text = greedy_transcripts(variant_logits, vocab)
    differing = [(r, v) for r, v in zip(ref_text, var_text, strict=True) if r != v]
    wer, cer = error_rates(ref_text, var_text)
    diffs = [np.abs(a - b) for a, b in zip(reference_logits, variant_logits, strict=True)]
    frames = sum(d.shape[0] for d in diffs)
    same = sum(int((a.argmax(-1) == b.argmax(-1)).sum()) for a, b in zip(reference_logits, variant_logits, strict=True))
    return Agreement(
        utterances=len(ref_text), audio_seconds=round(sample_rate_seconds, 1),
        differing_transcripts=len(differing), wer_vs_fp32=wer, cer_vs_fp32=cer,
        max_abs_logit_diff=float(max(d.max() for d in diffs)),
        mean_abs_logit_diff=float(sum(d.sum() for d in diffs) / max(1, sum(d.size for d in diffs))),
        frame_argmax_agreement=same / max(1, frames),
        examples=[{"fp32": r[:120], "variant": v[:120]} for r, v in differing[:3]])


def run_each(runner: Runner, utterances: list[AnyArray]) -> list[AnyArray]:
    """Logits of each utterance run alone (batch 1): what a single request gets."""
    return [runner.run([u])[0] for u in utterances]


def speed(runners: dict[str, Runner], clip: AnyArray, repeats: int = 5, warmup: int = 1) -> dict[str, Any]:
    """Audio-seconds per second of each runner on `clip`, median over `repeats` (interleaved,
    so that load from other processes hits every variant alike)."""
    seconds = clip.size / spec.SAMPLE_RATE
    for runner in runners.values():
        for _ in range(warmup):
            runner.run([clip])
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner.run([clip])
            times[name].append(time.perf_counter() - start)
    return {name: {"audio_s_per_s": round(seconds / statistics.median(t), 2),
                   "median_ms": round(1000 * statistics.median(t), 1),
                   "min_ms": round(1000 * min(t), 1), "max_ms": round(1000 * max(t), 1),
                   "repeats": len(t)}
            for name, t in times.items()}


def to_dict(value: Any) -> dict[str, Any]:
    return asdict(value)


# --- PyTorch paths (bf16 autocast on AVX512-BF16/AMX CPUs): the acoustic model's torch runtime --

def torch_runner(checkpoint: Path, dtype: str = "fp32") -> AcousticModel:
    """The checkpoint in PyTorch (AcousticModel's torch runtime) on the CPU, fp32 or bf16 autocast."""
    from w2v_triton.serving.acoustic import AcousticModel

    dtypes = {"fp32": "float32", "bf16": "bfloat16"}
    if dtype not in dtypes:
        raise ValueError(f"dtype {dtype!r}: expected one of {list(dtypes)}")
    return AcousticModel(checkpoint, runtime="torch", torch_dtype=dtypes[dtype])


# --- OpenVINO: a second CPU runtime for the same length-aware graph (w2v_triton.serving.acoustic_openvino) --

def openvino_runner(model_path: Path, variant: str, threads: int = 0) -> AcousticModel:
    """One OpenVINO variant (ov-fp32 / ov-bf16: the fp32 ONNX; ov-int8: its IR): AcousticModel's
    openvino runtime, as served with RUNTIME=openvino."""
    from w2v_triton.build.variants import OPENVINO_PRECISION
    from w2v_triton.serving.acoustic import AcousticModel

    if variant not in OPENVINO_PRECISION:
        raise ValueError(f"variant {variant!r}: expected one of {list(OPENVINO_PRECISION)}")
    return AcousticModel(model_path, threads, runtime="openvino", openvino_precision=OPENVINO_PRECISION[variant])


def runner_for(path: Path, variant: str, threads: int = 0) -> Runner:
    """The in-process runner of a built variant: OpenVINO for ov-*, else onnxruntime (`session`)."""
    if variant.startswith("ov-"):
        return openvino_runner(path, variant, threads)
    return session(path, threads)


# --- long audio: windowed vs one full pass ------------------------------------------------------

def compare_with_full_pass(onnx_path: Path, audio: AnyArray, vocab: dict[str, int],
                           config: LongAudioConfig | None = None, threads: int = 1) -> dict[str, Any]:
    """Windowed vs one full pass on one long utterance: frame agreement, |logit diff| by distance
    from the nearest seam, and the CER/WER of the windowed greedy transcript against the full one."""
    from w2v_triton.serving.acoustic import AcousticModel

    config = config or LongAudioConfig()
    full = AcousticModel(onnx_path, threads, LongAudioConfig(max_single_seconds=1e9)).run([audio])[0]
    windowed_config = replace(config, max_single_seconds=config.window_seconds)
    chunked = AcousticModel(onnx_path, threads, windowed_config).run([audio])[0]
    starts = window_starts(audio.size, windowed_config)
    cuts = np.array([lo for lo, _ in seams(starts, audio.size, windowed_config)[1:]] or [10**9])
    distance = np.abs(np.arange(full.shape[0])[:, None] - cuts[None]).min(1)
    diff = np.abs(full - chunked)
    same = full.argmax(-1) == chunked.argmax(-1)
    bands = {}
    for lo, hi in ((0, 10), (10, 25), (25, 50), (50, 75), (75, 10**9)):
        sel = (distance >= lo) & (distance < hi)
        if sel.any():
            bands[f"{lo}-{hi if hi < 10**9 else 'inf'}"] = {
                "frames": int(sel.sum()), "mean_abs_diff": float(diff[sel].mean()),
                "max_abs_diff": float(diff[sel].max()), "argmax_agreement": float(same[sel].mean())}
    reference, hypothesis = greedy_transcripts([full, chunked], vocab)
    wer, cer = error_rates([reference], [hypothesis])
    return {"seconds": round(audio.size / spec.SAMPLE_RATE, 1), "windows": len(starts),
            "window_s": config.window_seconds, "overlap_s": config.overlap_seconds,
            "frames": int(full.shape[0]), "argmax_agreement": float(same.mean()),
            "max_abs_diff": float(diff.max()), "logit_std": float(full.std()),
            "cer_vs_full": cer, "wer_vs_full": wer, "full_chars": len(reference), "by_seam_distance": bands}


def cpu_features() -> dict[str, Any]:
    """The CPU model and the flags that matter for int8/bf16 kernels (Linux /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
    import os
    return {"model": model, "logical_cpus": os.cpu_count(), "flags": {f: f in flags for f in wanted}}
