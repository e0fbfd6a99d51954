"""Reading audio into what the service expects: float32 mono 16 kHz.

One decoder for files on disk (the client, the benchmarks, the training corpus, the tests) and
for the bytes of an uploaded file (the Triton preprocessor's AUDIO_FILE input, the gateway's
uploads via the ensemble): every path turns a file into samples the same way. Decoding is
libsndfile's (soundfile): WAV, FLAC, OGG Vorbis, OGG Opus, MP3 and its other formats.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from w2v_triton.serving.spec import MAX_FILE_SAMPLE_RATE, MIN_FILE_SAMPLE_RATE, SAMPLE_RATE
from w2v_triton.serving.typing import AnyArray

# What a caller is told the service decodes (libsndfile >= 1.1 reads all of these).
SUPPORTED_FORMATS = "WAV, FLAC, OGG (Vorbis, Opus), MP3, AIFF, CAF, W64"
# The MIME types (as `filetype` names them) of containers libsndfile reads: a file that starts
# like one of these but does not open is broken, not of an unsupported format.
_DECODABLE_MIME = {"audio/x-wav", "audio/x-flac", "audio/ogg", "audio/mpeg", "audio/x-aiff"}
# Bytes of a file's start that identify its container (for the error message of a file
# libsndfile does not recognise: an M4A or WebM upload is told so, random bytes are told that).
_SNIFF_BYTES = 8192
# Seconds of a file decoded at a time: a long file at a high rate is never held whole at its own rate
# (10 min of 192 kHz stereo would be 0.9 GB of float32 before down-mixing and resampling).
_BLOCK_SECONDS = 1.0


class AudioError(ValueError):
    """A file is missing, cannot be decoded, or holds no usable audio."""


class UnsupportedFormat(AudioError):
    """A recognisable file of a format libsndfile does not decode (M4A/AAC, WebM, an image, ...)."""


class AudioTooLong(AudioError):
    """The file decodes to more than the allowed duration."""


class UnsupportedSampleRate(AudioError):
    """The file declares a sample rate no microphone records (outside spec.MIN/MAX_FILE_SAMPLE_RATE)."""


def to_mono_float32(samples: AnyArray) -> AnyArray:
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


def resample(samples: AnyArray, source_rate: int, target_rate: int = SAMPLE_RATE) -> AnyArray:
    """High-quality resampling (soxr); a no-op when the rates match."""
    if source_rate == target_rate:
        return samples
    resampled: AnyArray = soxr.resample(samples, source_rate, target_rate).astype(np.float32, copy=False)
    return resampled


class StreamResampler:
    """Resample a stream fed in pieces (soxr's streaming resampler): the output of all pieces is
    the same whatever their sizes; `last` flushes the filter's tail."""

    def __init__(self, source_rate: int, target_rate: int = SAMPLE_RATE) -> None:
        self.same = source_rate == target_rate
        self._stream = None if self.same else soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32")

    def feed(self, samples: AnyArray, last: bool = False) -> AnyArray:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if self._stream is None:
            return samples
        out: AnyArray = self._stream.resample_chunk(samples, last=last)
        return out


def pcm16_to_float(data: bytes) -> AnyArray:
    """Little-endian 16-bit PCM bytes -> float32 in [-1, 1) (an odd trailing byte is an AudioError)."""
    if len(data) % 2:
        raise AudioError(f"16-bit PCM needs an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def load_audio(path: str | Path, target_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> AnyArray:
    """Read a file from disk (any format, rate and channel count libsndfile reads)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    with path.open("rb") as handle:
        return decode_audio(handle, target_rate, max_seconds, label=str(path))


def decode_audio_bytes(data: bytes, target_rate: int = SAMPLE_RATE, max_seconds: float | None = None,
                       label: str = "audio file") -> AnyArray:
    """Decode the bytes of an encoded file held in memory (an upload, a Triton BYTES tensor)."""
    if len(data) == 0:
        raise AudioError(f"{label} is empty (0 bytes)")
    return decode_audio(io.BytesIO(data), target_rate, max_seconds, label=label)


def decode_audio(source: BinaryIO, target_rate: int = SAMPLE_RATE, max_seconds: float | None = None,
                 label: str = "audio file") -> AnyArray:
    """Decode, down-mix to mono and resample to `target_rate`; the one decoder of the project.

    A file whose header declares a sample rate outside MIN_FILE_SAMPLE_RATE..MAX_FILE_SAMPLE_RATE
    is refused before anything is decoded. With `max_seconds`, a file longer than that is rejected
    from its header when the header states its length, and at most one frame past the limit is ever
    decoded otherwise, so a small file that expands to hours of samples costs no memory. The file
    is decoded, down-mixed and resampled one block at a time (soxr's stream gives exactly the
    one-shot result), so memory holds the 16 kHz output, not the file's samples at its own rate.
    """
    try:
        with sf.SoundFile(source) as sound:
            rate = int(sound.samplerate)
            check_sample_rate(rate, label)
            limit = None if max_seconds is None else int(max_seconds * rate)
            if limit is not None and 0 < sound.frames < 2**62 and sound.frames > limit:
                raise AudioTooLong(_too_long(label, sound.frames / rate, max_seconds))
            blocks, read = _decode_blocks(sound, rate, target_rate, limit)
    except sf.LibsndfileError as exc:
        raise _decode_error(source, label, exc) from None
    except (RuntimeError, TypeError) as exc:   # soundfile raises these for a few broken headers
        raise AudioError(f"{label}: cannot decode audio ({exc})") from None
    if limit is not None and read > limit:
        raise AudioTooLong(_too_long(label, None, max_seconds))
    if read == 0:
        raise AudioError(f"{label}: file holds no audio samples")
    return np.concatenate(blocks) if len(blocks) != 1 else blocks[0]


def check_sample_rate(rate: int, label: str = "audio file") -> None:
    """Refuse a sample rate no microphone records (UnsupportedSampleRate, one line saying the range)."""
    if not MIN_FILE_SAMPLE_RATE <= rate <= MAX_FILE_SAMPLE_RATE:
        raise UnsupportedSampleRate(
            f"{label}: sample rate {rate} Hz is not accepted: audio files must be recorded at "
            f"{MIN_FILE_SAMPLE_RATE}-{MAX_FILE_SAMPLE_RATE} Hz")


def _decode_blocks(sound: sf.SoundFile, rate: int, target_rate: int,
                   limit: int | None) -> tuple[list[AnyArray], int]:
    """The file's samples as mono `target_rate` blocks, read `_BLOCK_SECONDS` at a time, and how
    many frames were read (at most `limit` + 1)."""
    block = max(1, int(_BLOCK_SECONDS * rate))
    resampler = StreamResampler(rate, target_rate)
    out: list[AnyArray] = []
    read = 0
    while limit is None or read <= limit:
        want = block if limit is None else min(block, limit + 1 - read)
        samples = sound.read(frames=want, dtype="float32", always_2d=False)
        read += len(samples)
        last = len(samples) < want or (limit is not None and read > limit)
        mono = to_mono_float32(samples)
        out.append(resampler.feed(mono, last=last))
        if last:
            break
    return out, read


def encode_audio(samples: AnyArray, fmt: str, subtype: str, rate: int = SAMPLE_RATE, channels: int = 1,
                 source_rate: int = SAMPLE_RATE) -> bytes:
    """The bytes of a file holding mono `samples` (at `source_rate`) in another format, rate and
    layout: what a user would upload (tests and benchmarks of the AUDIO_FILE input). A second
    channel is the first at half level, so a down-mix is not a no-op. Opus needs rate 48000."""
    samples = resample(np.asarray(samples, dtype=np.float32), source_rate, rate)
    if channels == 2:
        samples = np.stack([samples, 0.5 * samples], axis=1)
    elif channels != 1:
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _too_long(label: str, seconds: float | None, max_seconds: float | None) -> str:
    length = f"{seconds:.1f} s" if seconds is not None else f"more than {max_seconds:g} s"
    return f"{label}: audio too long ({length}; the limit is {max_seconds:g} s)"


def _decode_error(source: BinaryIO, label: str, exc: sf.LibsndfileError) -> AudioError:
    """Say why libsndfile refused: not audio, a format it does not decode, or a broken file."""
    reason = exc.error_string.strip().rstrip(".")
    if exc.code == 1:   # SF_ERR_UNRECOGNISED_FORMAT: name what the file is, if it is anything
        kind = _sniff(source)
        if kind is not None and kind.split()[0] in _DECODABLE_MIME:
            return AudioError(f"{label}: cannot decode audio: the file is corrupt or truncated "
                              f"(it starts like {kind} but libsndfile cannot open it)")
        if kind is not None:
            return UnsupportedFormat(f"{label}: unsupported audio format {kind}; "
                                     f"this service decodes {SUPPORTED_FORMATS}")
        return AudioError(f"{label}: cannot decode audio: not a recognised audio file "
                          f"(supported: {SUPPORTED_FORMATS})")
    if exc.code == 4:   # SF_ERR_UNSUPPORTED_ENCODING: a known container with a codec it lacks
        return UnsupportedFormat(f"{label}: unsupported audio encoding ({reason}); "
                                 f"this service decodes {SUPPORTED_FORMATS}")
    return AudioError(f"{label}: cannot decode audio: the file is corrupt or truncated ({reason})")


def _sniff(source: BinaryIO) -> str | None:
    """The MIME type of a file's start by its magic bytes (filetype), or None."""
    import filetype

    try:
        source.seek(0)
        kind = filetype.guess(source.read(_SNIFF_BYTES))
    except (OSError, ValueError):
        return None
    return None if kind is None else f"{kind.mime} (.{kind.extension})"
