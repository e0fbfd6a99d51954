import numpy as np
import pytest
import soundfile as sf

from w2v_triton.audio import AudioError, load_audio


@pytest.mark.parametrize("fmt, subtype, rate, channels", [
    ("WAV", "PCM_16", 44100, 2), ("WAV", "FLOAT", 16000, 1), ("FLAC", "PCM_24", 8000, 1),
    ("OGG", "VORBIS", 22050, 2),
])
def test_any_format_rate_and_channels_become_mono_16k(tmp_path, fmt, subtype, rate, channels):
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(path, data, rate, format=fmt, subtype=subtype)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - 16000) <= 16
    assert 0.3 < np.abs(audio).max() <= 0.6  # same loudness, int PCM scaled to [-1, 1]


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "nothing.wav")


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(AudioError, match="cannot decode"):
        load_audio(path)


def test_empty_audio_file(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="no audio"):
        load_audio(path)
