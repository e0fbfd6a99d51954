"""Numpy-only audio augmentation for the synthetic corpus (deterministic from a Generator)."""
from __future__ import annotations

from typing import Any

import numpy as np
import soxr

from w2v_triton.serving.spec import SAMPLE_RATE
from w2v_triton.serving.typing import AnyArray


def speed_perturb(x: AnyArray, factor: float) -> AnyArray:
    """Play `factor` times faster (tempo and pitch change together, as in Kaldi speed perturb)."""
    if abs(factor - 1.0) < 1e-3:
        return x
    resampled: AnyArray = soxr.resample(x, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)
    return resampled


def _fft_filter(x: AnyArray, low_hz: float | None, high_hz: float | None) -> AnyArray:
    n = len(x)
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    gain = np.ones_like(freqs)
    if high_hz is not None:       # low-pass with a half-octave raised-cosine roll-off
        edge = np.clip((freqs - high_hz) / (0.4 * high_hz), 0, 1)
        gain *= 0.5 * (1 + np.cos(np.pi * edge))
    if low_hz is not None:        # high-pass
        edge = np.clip((low_hz - freqs) / (0.5 * low_hz), 0, 1)
        gain *= 0.5 * (1 + np.cos(np.pi * edge))
    return np.fft.irfft(spec * gain, n).astype(np.float32)


def band_limit(x: AnyArray, rng: np.random.Generator) -> AnyArray:
    """Telephone-ish / cheap-microphone band limiting."""
    high = float(rng.uniform(3000, 7000))
    low = float(rng.uniform(80, 400)) if rng.random() < 0.5 else None
    return _fft_filter(x, low, high)


def reverb(x: AnyArray, rng: np.random.Generator) -> AnyArray:
    """Convolve with a synthetic room impulse response (exponentially decaying noise)."""
    rt60 = float(rng.uniform(0.1, 0.6))
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n).astype(np.float32) * np.exp(-6.9 * t / rt60).astype(np.float32)
    ir[0] = 1.0 / float(rng.uniform(0.3, 1.0))  # direct path, direct-to-reverberant ratio varies
    ir /= np.sqrt((ir ** 2).sum())
    size = len(x) + n - 1
    nfft = 1 << (size - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(ir, nfft), nfft)[: len(x)]
    return y.astype(np.float32)


def add_noise(x: AnyArray, rng: np.random.Generator, snr_db: float) -> AnyArray:
    """White, pink-ish or brown-ish noise at `snr_db` relative to the speech power."""
    kind = rng.integers(3)
    noise = rng.standard_normal(len(x)).astype(np.float32)
    if kind == 1:
        noise = _fft_filter(noise, None, float(rng.uniform(500, 4000)))
    elif kind == 2:
        noise = np.cumsum(noise).astype(np.float32)
        noise -= np.convolve(noise, np.ones(400) / 400, mode="same").astype(np.float32)
    p_sig = float(np.mean(x ** 2)) + 1e-10
    p_noise = float(np.mean(noise ** 2)) + 1e-10
    noisy: AnyArray = (x + noise * np.sqrt(p_sig / (p_noise * 10 ** (snr_db / 10)))).astype(np.float32)
    return noisy


def augment(x: AnyArray, rng: np.random.Generator, strength: float = 1.0) -> tuple[AnyArray, dict[str, Any]]:
    """Random chain: pad silence, speed, band-limit, reverb, noise, gain. Returns (audio, record)."""
    rec: dict[str, Any] = {}
    lead, trail = rng.uniform(0.0, 0.3, size=2)
    x = np.concatenate([np.zeros(int(lead * SAMPLE_RATE), np.float32), x,
                        np.zeros(int(trail * SAMPLE_RATE), np.float32)])
    if rng.random() < 0.5 * strength:
        rec["speed"] = round(float(rng.uniform(0.9, 1.1)), 3)
        x = speed_perturb(x, rec["speed"])
    if rng.random() < 0.25 * strength:
        rec["band_limit"] = True
        x = band_limit(x, rng)
    if rng.random() < 0.3 * strength:
        rec["reverb"] = True
        x = reverb(x, rng)
    if rng.random() < 0.7 * strength:
        rec["snr_db"] = float(rng.choice([5, 10, 15, 20, 30]))
        x = add_noise(x, rng, rec["snr_db"])
    peak = float(np.abs(x).max()) + 1e-9
    rec["gain_db"] = round(float(rng.uniform(-25, -1)), 1)
    x = x / peak * 10 ** (rec["gain_db"] / 20)
    return np.clip(x, -1.0, 1.0).astype(np.float32), rec
