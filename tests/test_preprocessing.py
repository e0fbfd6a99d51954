import numpy as np
import pytest

from w2v_triton.serving.preprocessing import InvalidAudio, normalize, preprocess, validate
from w2v_triton.serving.spec import MIN_SAMPLES


def test_normalize_matches_hf_feature_extractor(rng):
    from transformers import Wav2Vec2FeatureExtractor

    extractor = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False)
    for n in (400, 16000, 48123):
        audio = (rng.standard_normal(n) * 0.3 + 0.05).astype(np.float32)
        expected = extractor(audio, sampling_rate=16000, return_tensors="np").input_values[0]
        np.testing.assert_allclose(normalize(audio), expected, atol=1e-6)


def test_preprocess_without_normalization_returns_audio(rng):
    audio = rng.standard_normal(1000).astype(np.float32)
    np.testing.assert_array_equal(preprocess(audio, do_normalize=False), audio)


@pytest.mark.parametrize("audio, message", [
    (np.zeros(0, np.float32), "empty"),
    (np.zeros(MIN_SAMPLES - 1, np.float32), "too short"),
    (np.array([0.1] * 500 + [np.nan], np.float32), "NaN/Inf"),
    (np.array([0.1] * 500 + [np.inf], np.float32), "NaN/Inf"),
    (np.zeros(1000, np.float64), "float32"),
    (np.zeros(1000, np.int16), "float32"),
    (np.zeros((2, 1000), np.float32), "mono"),
])
def test_bad_audio_is_rejected_with_a_clear_message(audio, message):
    with pytest.raises(InvalidAudio, match=message):
        validate(audio)


def test_single_row_batch_is_accepted():
    assert validate(np.zeros((1, MIN_SAMPLES), np.float32)).shape == (MIN_SAMPLES,)


def test_max_seconds_bounds_samples_and_files():
    import io

    import soundfile as sf

    from w2v_triton.serving.preprocessing import preprocess_file

    audio = np.zeros(32000, np.float32)
    assert preprocess(audio, False, max_seconds=2).size == 32000
    assert preprocess(audio, False).size == 32000           # library callers: no bound by default
    with pytest.raises(InvalidAudio, match=r"too long \(2.0 s; the limit is 1.5 s\)"):
        preprocess(audio, False, max_seconds=1.5)
    buffer = io.BytesIO()
    sf.write(buffer, audio, 16000, format="WAV", subtype="FLOAT")
    np.testing.assert_array_equal(preprocess_file(buffer.getvalue(), False, 2), audio)
    with pytest.raises(InvalidAudio, match="too long"):
        preprocess_file(buffer.getvalue(), False, 1.5)
    with pytest.raises(InvalidAudio, match="not a recognised audio file"):
        preprocess_file(b"hello", False, 2)
