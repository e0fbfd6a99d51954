import numpy as np
import pytest
import soundfile as sf

from w2v_triton.serving.audio import AudioError, load_audio


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


def test_bytes_decode_exactly_like_the_file(tmp_path):
    """load_audio (a path) and decode_audio_bytes (an upload) share one decoder."""
    import io

    from w2v_triton.serving.audio import decode_audio_bytes

    rate, t = 22050, np.arange(22050) / 22050
    data = np.stack([0.5 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 500 * t)], axis=1)
    for fmt, subtype in [("WAV", "PCM_16"), ("FLAC", "PCM_24"), ("OGG", "VORBIS"), ("OGG", "OPUS"),
                         ("MP3", "MPEG_LAYER_III")]:
        buffer = io.BytesIO()
        written_rate = 48000 if subtype == "OPUS" else rate   # Opus runs at 48 kHz
        sf.write(buffer, data, written_rate, format=fmt, subtype=subtype)
        path = tmp_path / f"tone.{subtype.lower()}"
        path.write_bytes(buffer.getvalue())
        from_bytes = decode_audio_bytes(buffer.getvalue())
        np.testing.assert_array_equal(from_bytes, load_audio(path))
        assert from_bytes.dtype == np.float32 and from_bytes.ndim == 1
        assert abs(from_bytes.size - 16000 * rate / written_rate) < 0.05 * 16000   # mp3 pads a little


@pytest.mark.parametrize("data, error, message", [
    (b"", "AudioError", "empty"),
    (b"\x89PNG\r\n\x1a\n" + bytes(200), "UnsupportedFormat", "unsupported audio format image/png"),
    (b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A mp42isom" + bytes(200), "UnsupportedFormat", "audio/mp4"),
    (bytes(range(256)) * 4, "AudioError", "not a recognised audio file"),
    (b"ID3" + bytes(range(256)) * 4, "AudioError", "corrupt or truncated"),
])
def test_bad_bytes_get_a_message_that_says_what_is_wrong(data, error, message):
    import w2v_triton.serving.audio as audio

    with pytest.raises(audio.AudioError, match=message) as caught:
        audio.decode_audio_bytes(data)
    assert type(caught.value).__name__ == error


def test_too_long_is_refused_from_the_header(tmp_path):
    import io

    from w2v_triton.serving.audio import AudioTooLong, decode_audio_bytes

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(3 * 8000, np.int16), 8000, format="FLAC")
    assert decode_audio_bytes(buffer.getvalue(), max_seconds=3).size == 3 * 16000
    with pytest.raises(AudioTooLong, match=r"too long \(3.0 s; the limit is 2.5 s\)"):
        decode_audio_bytes(buffer.getvalue(), max_seconds=2.5)
    path = tmp_path / "long.flac"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(AudioTooLong):
        load_audio(path, max_seconds=2.5)


def test_encode_audio_round_trips():
    from w2v_triton.serving.audio import decode_audio_bytes, encode_audio

    samples = (0.5 * np.sin(np.arange(16000) / 7)).astype(np.float32)
    flac = decode_audio_bytes(encode_audio(samples, "FLAC", "PCM_24"))
    np.testing.assert_allclose(flac, samples, atol=1e-6)            # lossless, same rate
    stereo = decode_audio_bytes(encode_audio(samples, "WAV", "FLOAT", rate=16000, channels=2))
    np.testing.assert_allclose(stereo, 0.75 * samples, atol=1e-6)   # (x + x/2) / 2
    opus = decode_audio_bytes(encode_audio(samples, "OGG", "OPUS", rate=48000))
    assert abs(opus.size - samples.size) < 400


@pytest.mark.parametrize("rate", [1, 4000, 7999, 192001, 384000])
def test_a_sample_rate_no_microphone_records_is_refused(rate, wav_declaring, tmp_path):
    """A 100-byte WAV declaring 1 Hz was accepted as 100 s of audio and resampled (issue 27); the
    client's files (load_audio) and uploads (decode_audio_bytes) share the check."""
    from w2v_triton.serving.audio import UnsupportedSampleRate, decode_audio_bytes

    message = rf"sample rate {rate} Hz is not accepted: audio files must be recorded at 8000-192000 Hz"
    with pytest.raises(UnsupportedSampleRate, match=message):
        decode_audio_bytes(wav_declaring(rate), label="speech.wav")
    (tmp_path / "speech.wav").write_bytes(wav_declaring(rate))
    with pytest.raises(UnsupportedSampleRate, match=message):
        load_audio(tmp_path / "speech.wav")


@pytest.mark.parametrize("rate", [8000, 192000])
def test_the_rates_at_the_limits_are_accepted(rate, wav_declaring):
    from w2v_triton.serving.audio import decode_audio_bytes

    audio = decode_audio_bytes(wav_declaring(rate, (bytes(range(256)) * (rate // 256 + 1))[:rate]))   # 1 s
    assert audio.dtype == np.float32 and abs(audio.size - 16000) <= 16


def test_a_long_file_at_a_high_rate_is_never_held_at_its_own_rate():
    """60 s of 192 kHz stereo is 92 MB of float32 at its own rate, 3.8 MB at 16 kHz mono: decoding
    a block at a time keeps the peak near the output (tracemalloc sees numpy's buffers)."""
    import io
    import tracemalloc

    from w2v_triton.serving.audio import decode_audio_bytes

    rate, seconds = 192_000, 60
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", rate, 2, format="FLAC", subtype="PCM_16") as out:
        tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
        for _ in range(seconds):                    # a FLAC of a steady tone stays small
            out.write(np.stack([tone, tone], axis=1))
    data = buffer.getvalue()
    tracemalloc.start()
    try:
        audio = decode_audio_bytes(data, max_seconds=600)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert audio.size == seconds * 16000
    assert peak < 3 * audio.nbytes, f"decoding peaked at {peak / 2**20:.0f} MiB for {audio.nbytes / 2**20:.1f} MiB of output"
