import numpy as np
import pytest
import torch

from w2v_triton.checkpoints import load_ctc_model
from w2v_triton.masked_frontend import LengthAwareCTC
from w2v_triton.onnx_export import FP32_TOLERANCE, export_onnx, verify_onnx


def test_padded_batch_equals_each_utterance_alone_in_pytorch():
    """The group-norm padding trap is solved in the model itself (masked statistics)."""
    model = load_ctc_model("tiny")
    torch.manual_seed(0)
    utterances = [torch.randn(n) for n in (16000, 9000, 400)]
    batch = torch.zeros(3, 16000)
    for row, u in enumerate(utterances):
        batch[row, : u.numel()] = u
    with torch.no_grad():
        logits, frames = LengthAwareCTC(model)(batch, torch.tensor([u.numel() for u in utterances]))
        for row, u in enumerate(utterances):
            alone = model(u[None]).logits[0]
            assert frames[row] == alone.shape[0]
            torch.testing.assert_close(logits[row, : frames[row]], alone, atol=1e-5, rtol=0)


def test_naive_padding_would_change_the_logits():
    """Guard that the test above is meaningful: plain HF on a zero-padded batch differs."""
    model = load_ctc_model("tiny")
    torch.manual_seed(0)
    short = torch.randn(9000)
    padded = torch.zeros(1, 16000)
    padded[0, :9000] = short
    with torch.no_grad():
        alone = model(short[None]).logits[0]
        naive = model(padded).logits[0, : alone.shape[0]]
    assert (naive - alone).abs().max() > 1e-3


def test_tiny_onnx_matches_pytorch(tmp_path):
    model = load_ctc_model("tiny")
    report = verify_onnx(model, export_onnx(model, tmp_path / "tiny.onnx"))
    assert report.ok(), report


@pytest.mark.slow
def test_random_base_onnx_matches_pytorch(tmp_path):
    """The exact base-960h architecture: max |logit diff| < 1e-4 on 0.025-3 s of audio."""
    model = load_ctc_model("random-base")
    report = verify_onnx(model, export_onnx(model, tmp_path / "base.onnx"))
    print(f"random-base ONNX vs PyTorch: {report}")
    assert report.max_abs_diff_single < FP32_TOLERANCE
    assert report.max_abs_diff_batched < FP32_TOLERANCE


def test_onnx_graph_has_dynamic_batch_and_time(tmp_path):
    import onnx

    graph = onnx.load(str(export_onnx(load_ctc_model("tiny"), tmp_path / "t.onnx"))).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims == {"AUDIO": ["batch", "samples"], "AUDIO_LENGTHS": ["batch"]}
    assert [o.name for o in graph.output] == ["LOGITS", "LOGIT_LENGTHS"]
    assert onnx.load(str(tmp_path / "t.onnx")).opset_import[0].version >= 17


def test_length_buckets_bound_padding_and_keep_every_index():
    from w2v_triton.acoustic import length_buckets

    lengths = [16000, 400, 480000, 15000, 500, 470000, 20000]
    buckets = length_buckets(lengths, 1.3)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    for bucket in buckets:
        sizes = [lengths[i] for i in bucket]
        assert max(sizes) <= 1.3 * min(sizes)
    assert [sorted(lengths[i] for i in b) for b in buckets] == [[400, 500], [15000, 16000], [20000], [470000, 480000]]
