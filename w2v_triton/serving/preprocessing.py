"""Validation and normalisation of raw audio, exactly as Wav2Vec2FeatureExtractor does it.

The Triton `preprocessor` model and the in-process pipeline both call `preprocess` (float32
samples) and `preprocess_file` (the bytes of an encoded file), so a request is accepted,
rejected or normalised identically in both places.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from w2v_triton.serving.audio import AudioError, decode_audio_bytes
from w2v_triton.serving.settings import parse_parameters, to_parameters, unknown_keys
from w2v_triton.serving.spec import MAX_AUDIO_SECONDS, MIN_SAMPLES, NORMALIZE_EPS, SAMPLE_RATE
from w2v_triton.serving.typing import AnyArray


class InvalidAudio(ValueError):
    """Audio the acoustic model cannot take; the message is shown to the caller."""


def validate(audio: AnyArray, max_seconds: float | None = None, min_samples: int = MIN_SAMPLES) -> AnyArray:
    """Return `audio` as 1-D float32 or raise InvalidAudio with a message a user can act on.

    `max_seconds` (the server's `max_audio_seconds`) bounds the length; None: no bound.
    `min_samples` 0 accepts any length, empty too (a chunk of a stream, w2v_triton.serving.streaming).
    """
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
    if max_seconds is not None and audio.size > max_seconds * SAMPLE_RATE:
        raise InvalidAudio(f"audio too long ({audio.size / SAMPLE_RATE:.1f} s; the limit is {max_seconds:g} s)")
    if not np.isfinite(audio).all():
        bad = int((~np.isfinite(audio)).sum())
        raise InvalidAudio(f"audio contains {bad} NaN/Inf samples")
    return audio


def normalize(audio: AnyArray) -> AnyArray:
    """Zero-mean unit-variance per utterance (Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm)."""
    audio = audio.astype(np.float32, copy=False)
    normalized: AnyArray = ((audio - audio.mean()) / np.sqrt(audio.var() + NORMALIZE_EPS)).astype(np.float32)
    return normalized


def preprocess(audio: AnyArray, do_normalize: bool, max_seconds: float | None = None) -> AnyArray:
    """Validate, then normalise when the checkpoint's feature extractor does."""
    audio = validate(audio, max_seconds)
    return normalize(audio) if do_normalize else audio.copy()


def decode_file(data: bytes, max_seconds: float | None = None) -> AnyArray:
    """The float32 mono 16 kHz samples of an encoded file's bytes (InvalidAudio if unusable)."""
    try:
        return decode_audio_bytes(data, max_seconds=max_seconds)
    except AudioError as exc:
        raise InvalidAudio(str(exc)) from None


def preprocess_file(data: bytes, do_normalize: bool, max_seconds: float | None = None) -> AnyArray:
    """Decode an encoded file's bytes, then exactly what `preprocess` does to float32 samples."""
    return preprocess(decode_file(data, max_seconds), do_normalize, max_seconds)


class PreprocessorSettingsError(ValueError):
    """Preprocessor parameters that cannot work; fails the model load with the message."""


@dataclass(frozen=True)
class PreprocessorSettings:
    """What the preprocessor reads from its Triton `parameters`; written by the repository builder
    (`to_parameters`), read by model.py and the in-process pipeline (`from_parameters`)."""

    do_normalize: bool = True                     # the checkpoint's feature extractor normalises
    max_audio_seconds: float = MAX_AUDIO_SECONDS  # longest accepted audio (samples or a decoded file)

    def to_parameters(self) -> dict[str, str]:
        return to_parameters(self)

    @classmethod
    def from_parameters(cls, parameters: dict[str, str]) -> PreprocessorSettings:
        unknown = unknown_keys(parameters, {f.name for f in fields(cls)})
        if unknown:
            raise PreprocessorSettingsError(
                f"unknown preprocessor parameter {unknown[0]!r}: rebuild the repository (`make build-models`)")
        return cls(**parse_parameters(cls, parameters, PreprocessorSettingsError))

    def preprocess(self, audio: AnyArray) -> AnyArray:
        return preprocess(audio, self.do_normalize, self.max_audio_seconds)

    def preprocess_file(self, data: bytes) -> AnyArray:
        return preprocess_file(data, self.do_normalize, self.max_audio_seconds)
