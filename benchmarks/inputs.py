"""perf_analyzer `--input-data` JSON files: a fixed 0.5 s clip (the seed shape) and real speech.

perf_analyzer's own random FP32 data contains NaN/Inf, which the preprocessor rightly
rejects, so every run here feeds real or well-formed samples. Audio travels as base64 of
little-endian float32, which keeps the JSON small.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from w2v_triton.build.manifest import Utterance
from w2v_triton.serving import spec
from w2v_triton.serving.audio import load_audio
from w2v_triton.serving.typing import FloatArray


def _entry(audio: FloatArray, with_lengths: bool = False) -> dict[str, Any]:
    data = np.ascontiguousarray(audio, dtype="<f4")
    entry = {spec.AUDIO: {"b64": base64.b64encode(data.tobytes()).decode("ascii"), "shape": [data.size]}}
    if with_lengths:   # the acoustic model's own inputs (what the preprocessor sends it)
        entry[spec.AUDIO_LENGTHS] = {"content": [data.size], "shape": [1]}
    return entry


def write_input_data(path: Path, clips: list[FloatArray], with_lengths: bool = False) -> dict[str, Any]:
    """Write the JSON; return what a report needs (entries, mean seconds per request).
    `with_lengths`: inputs of the acoustic model itself (AUDIO + AUDIO_LENGTHS), for its raw figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": [_entry(c, with_lengths) for c in clips]}))
    seconds = [c.size / spec.SAMPLE_RATE for c in clips]
    return {"path": str(path), "entries": len(clips), "mean_seconds": float(np.mean(seconds)),
            "total_seconds": float(np.sum(seconds))}


def seed_clip(samples: int = 8000, seed: int = 0) -> FloatArray:
    """A well-formed clip of the seed's shape (AUDIO:8000 = 0.5 s): speech-level noise."""
    return (np.random.default_rng(seed).standard_normal(samples) * 0.1).astype(np.float32)


def real_clips(utterances: list[Utterance], max_clips: int = 40) -> list[FloatArray]:
    """Real utterances spread across all sources (every k-th), loaded at 16 kHz."""
    step = max(1, len(utterances) // max_clips)
    return [load_audio(u.audio) for u in utterances[::step][:max_clips]]


def fixed_length_clips(utterances: list[Utterance], seconds: float, count: int) -> list[FloatArray]:
    """Clips of exactly `seconds` cut from concatenated real speech (for audio-s/s figures)."""
    need = int(seconds * spec.SAMPLE_RATE)
    pool = np.concatenate([load_audio(u.audio) for u in utterances[: max(count * 4, 8)]])
    while pool.size < need * count:
        pool = np.concatenate([pool, pool])
    return [pool[i * need:(i + 1) * need].copy() for i in range(count)]
