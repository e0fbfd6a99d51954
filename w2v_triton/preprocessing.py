"""Validation and normalisation of raw audio, exactly as Wav2Vec2FeatureExtractor does it.

The Triton `preprocessor` model and the in-process pipeline both call `preprocess`, so a
request is accepted, rejected or normalised identically in both places.
"""
from __future__ import annotations

import numpy as np

from w2v_triton.spec import MIN_SAMPLES, NORMALIZE_EPS, SAMPLE_RATE


class InvalidAudio(ValueError):
    """Audio the acoustic model cannot take; the message is shown to the caller."""


def validate(audio: np.ndarray, max_seconds: float = 0.0, min_samples: int = MIN_SAMPLES) -> np.ndarray:
    """Return `audio` as 1-D float32 or raise InvalidAudio with a message a user can act on.
    `max_seconds` > 0 refuses longer audio (a repository whose acoustic model cannot window it);
    `min_samples` 0 accepts any length, empty too (a chunk of a stream, w2v_triton.streaming)."""
    audio = np.asarray(audio)
    if audio.dtype != np.float32:
        raise InvalidAudio(f"audio must be float32 samples in [-1, 1], got {audio.dtype}")
    if audio.ndim == 2 and audio.shape[0] == 1:
        audio = audio[0]
    if audio.ndim != 1:
        raise InvalidAudio(f"audio must be one mono channel, got shape {list(audio.shape)}")
    if audio.size == 0 and min_samples > 0:
        raise InvalidAudio("audio is empty")
    if audio.size < min_samples:
        raise InvalidAudio(
            f"audio too short: {audio.size} samples, need at least {min_samples} "
            f"({min_samples / 16:.0f} ms at 16 kHz)"
        )
    if max_seconds and audio.size > max_seconds * SAMPLE_RATE:
        raise InvalidAudio(
            f"audio too long: {audio.size / SAMPLE_RATE:.1f} s, this server takes at most {max_seconds:g} s "
            "(its acoustic model runs in Triton's native onnxruntime backend, which cannot window long "
            "audio; a repository built with PLATFORM=python can)")
    if not np.isfinite(audio).all():
        bad = int((~np.isfinite(audio)).sum())
        raise InvalidAudio(f"audio contains {bad} NaN/Inf samples")
    return audio


def normalize(audio: np.ndarray) -> np.ndarray:
    """Zero-mean unit-variance per utterance (Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm)."""
    audio = audio.astype(np.float32, copy=False)
    return ((audio - audio.mean()) / np.sqrt(audio.var() + NORMALIZE_EPS)).astype(np.float32)


def preprocess(audio: np.ndarray, do_normalize: bool, max_seconds: float = 0.0) -> np.ndarray:
    """Validate, then normalise when the checkpoint's feature extractor does."""
    audio = validate(audio, max_seconds)
    return normalize(audio) if do_normalize else audio.copy()
