"""Reading audio files into what the service expects: float32 mono 16 kHz.

Used by the client, the benchmarks, the training corpus and the tests, so that every
path turns a file into samples the same way.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from w2v_triton.spec import SAMPLE_RATE


class AudioError(ValueError):
    """A file is missing, cannot be decoded, or holds no usable audio."""


def to_mono_float32(samples: np.ndarray) -> np.ndarray:
    """Average channels and convert integer PCM to float32 in [-1, 1]."""
    samples = np.asarray(samples)
    if np.issubdtype(samples.dtype, np.integer):
        scale = float(np.iinfo(samples.dtype).max) + 1.0
        samples = samples.astype(np.float32) / scale
    samples = samples.astype(np.float32, copy=False)
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32)
    elif samples.ndim != 1:
        raise AudioError(f"expected 1-D or 2-D (frames, channels) audio, got shape {samples.shape}")
    return samples


def resample(samples: np.ndarray, source_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """High-quality resampling (soxr); a no-op when the rates match."""
    if source_rate == target_rate:
        return samples
    return soxr.resample(samples, source_rate, target_rate).astype(np.float32, copy=False)


def load_audio(path: str | Path, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read any file soundfile can decode (wav/flac/ogg, int or float, any rate/channels)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"{path}: cannot decode audio ({exc})") from exc
    samples = to_mono_float32(samples)
    if samples.size == 0:
        raise AudioError(f"{path}: file holds no audio samples")
    return resample(samples, int(rate), target_rate)
