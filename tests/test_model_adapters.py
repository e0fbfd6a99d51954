"""The three model.py adapters without a server (tests/pb_utils_stub.py stands in for Triton's
python backend module): request regrouping, per-request errors, optional inputs."""
from __future__ import annotations

import numpy as np
import pytest

from pb_utils_stub import InferenceRequest, load_model
from w2v_triton.serving import spec
from w2v_triton.serving.pipeline import ReferencePipeline


@pytest.fixture(scope="module")
def models(tiny_repository):
    return {name: load_model(tiny_repository, name)
            for name in (spec.PREPROCESSOR_MODEL, spec.ACOUSTIC_MODEL, spec.DECODER_MODEL)}


def test_acoustic_model_regroups_a_ragged_dynamic_batch_per_request(models, tiny_repository, rng):
    """Triton hands over several requests (ragged: each its own length); each gets back exactly
    its own rows' logits, as if it had run alone."""
    a, b, c = (rng.standard_normal(n).astype(np.float32) for n in (16000, 4000, 9000))
    requests = [InferenceRequest({spec.AUDIO: a[None], spec.AUDIO_LENGTHS: np.array([[a.size]])}),
                InferenceRequest({spec.AUDIO: np.stack([np.pad(b, (0, c.size - b.size)), c]),
                                  spec.AUDIO_LENGTHS: np.array([[b.size], [c.size]])})]
    responses = models[spec.ACOUSTIC_MODEL].execute(requests)
    alone = ReferencePipeline(tiny_repository).acoustic.run([a, b, c])
    assert [r.outputs[spec.LOGIT_LENGTHS].reshape(-1).tolist() for r in responses] == [
        [alone[0].shape[0]], [alone[1].shape[0], alone[2].shape[0]]]
    np.testing.assert_allclose(responses[0].outputs[spec.LOGITS][0], alone[0], atol=1e-5)
    second = responses[1].outputs[spec.LOGITS]
    assert second.shape[1] == max(alone[1].shape[0], alone[2].shape[0])   # padded to its own longest row
    np.testing.assert_allclose(second[0, : alone[1].shape[0]], alone[1], atol=1e-5)
    np.testing.assert_allclose(second[1], alone[2], atol=1e-5)


def test_preprocessor_rejects_one_request_and_serves_the_others(models):
    good = np.random.default_rng(0).standard_normal((1, 8000)).astype(np.float32)
    bad = np.full((1, 8000), np.nan, np.float32)
    short = np.zeros((1, 100), np.float32)
    responses = models[spec.PREPROCESSOR_MODEL].execute(
        [InferenceRequest({spec.AUDIO: good}), InferenceRequest({spec.AUDIO: bad}),
         InferenceRequest({spec.AUDIO: short})])
    assert not responses[0].has_error()
    assert responses[0].outputs[spec.AUDIO_LENGTHS].tolist() == [[8000]]
    assert abs(float(responses[0].outputs[spec.NORMALIZED_AUDIO].std()) - 1) < 1e-3
    assert "NaN/Inf" in str(responses[1].error) and responses[1].error.code == responses[1].error.INVALID_ARG
    assert "too short" in str(responses[2].error)


def test_decoder_sends_timestamps_only_when_asked_and_broadcasts_one_hotword_row(models, tiny_repository):
    logits = np.random.default_rng(1).standard_normal((2, 30, 32)).astype(np.float32)
    lengths = np.array([[30], [20]])
    plain, timed = models[spec.DECODER_MODEL].execute([
        InferenceRequest({spec.LOGITS: logits, spec.LOGIT_LENGTHS: lengths}),
        InferenceRequest({spec.LOGITS: logits, spec.LOGIT_LENGTHS: lengths,
                          spec.HOTWORDS: np.array([[b"HELLO"]], dtype=object)},
                         requested_outputs=(spec.TRANSCRIPT, spec.WORD_TIMESTAMPS)),
    ])
    pipeline = ReferencePipeline(tiny_repository)
    expected = pipeline.decoder.decode_batch([logits[0, :30], logits[1, :20]])
    assert [t[0].decode() for t in plain.outputs[spec.TRANSCRIPT]] == expected
    assert spec.WORD_TIMESTAMPS not in plain.outputs
    assert timed.outputs[spec.WORD_TIMESTAMPS].shape == (2, 1)   # one hotword row served both rows
