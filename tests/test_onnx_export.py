import pytest
import torch

from w2v_triton.build.checkpoints import load_ctc_model
from w2v_triton.serving.masked_frontend import LengthAwareCTC
from w2v_triton.build.onnx_export import FP32_TOLERANCE, export_onnx, verify_onnx


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
    from w2v_triton.serving.acoustic import length_buckets

    lengths = [16000, 400, 480000, 15000, 500, 470000, 20000]
    buckets = length_buckets(lengths, 1.3)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    for bucket in buckets:
        sizes = [lengths[i] for i in bucket]
        assert max(sizes) <= 1.3 * min(sizes)
    assert [sorted(lengths[i] for i in b) for b in buckets] == [[400, 500], [15000, 16000], [20000], [470000, 480000]]


def test_length_buckets_hold_at_most_max_samples_of_padded_audio():
    """16 requests of 40 s in one dynamic batch were one 640 s call: now each call holds at most
    `max_samples` padded samples, and a row longer than that still runs (alone)."""
    from w2v_triton.serving.acoustic import length_buckets

    lengths = [640_000] * 5 + [100_000, 110_000, 120_000] + [1_000_000]
    buckets = length_buckets(lengths, 1.3, max_samples=1_300_000)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    for bucket in buckets:
        assert len(bucket) == 1 or len(bucket) * max(lengths[i] for i in bucket) <= 1_300_000
    assert sorted(len(b) for b in buckets) == [1, 1, 2, 2, 3]
    assert length_buckets(lengths, 1.3) == length_buckets(lengths, 1.3, max_samples=None)


@pytest.mark.parametrize("kernel,stride", [(10, 5), (3, 2), (2, 2), (7, 3)])
def test_block_matmul_conv_equals_conv1d(kernel, stride):
    from w2v_triton.serving.masked_frontend import BlockMatMulConv1d

    torch.manual_seed(kernel)
    conv = torch.nn.Conv1d(6, 5, kernel, stride, bias=kernel % 2 == 0)
    x = torch.randn(2, 6, 12 * stride)                       # channels-first, a multiple of the stride
    with torch.no_grad():
        expected = conv(x)                                   # [2, 5, valid frames]
        got = BlockMatMulConv1d(conv)(x.transpose(1, 2))     # [2, 12, 5]: valid frames, then padding
    assert got.shape == (2, 12, 5)
    torch.testing.assert_close(got[:, : expected.shape[-1]], expected.transpose(1, 2), atol=1e-5, rtol=0)


def test_block_matmul_conv_rejects_what_it_cannot_express():
    from w2v_triton.serving.masked_frontend import BlockMatMulConv1d

    for conv in (torch.nn.Conv1d(4, 4, 2, 3), torch.nn.Conv1d(4, 4, 3, 1, padding=1), torch.nn.Conv1d(4, 4, 3, 2, groups=2)):
        with pytest.raises(ValueError, match="kernel >= stride"):
            BlockMatMulConv1d(conv)


@pytest.mark.parametrize("name", ["tiny", "reference"])   # group-norm and layer-norm front-ends
def test_matmul_frontend_equals_conv_frontend_in_padded_batches(name):
    model = load_ctc_model(name)
    torch.manual_seed(0)
    lengths = torch.tensor([16000, 9123, 400, 641])
    batch = torch.randn(4, 16000) * (torch.arange(16000)[None, :] < lengths[:, None])
    with torch.no_grad():
        conv_logits, conv_frames = LengthAwareCTC(model)(batch, lengths)
        mm_logits, mm_frames = LengthAwareCTC(model, matmul_frontend=True)(batch, lengths)
        alone = model(batch[2:3, :400]).logits[0]
    assert mm_logits.shape == conv_logits.shape and torch.equal(mm_frames, conv_frames)
    for row, frames in enumerate(conv_frames):
        torch.testing.assert_close(mm_logits[row, :frames], conv_logits[row, :frames], atol=1e-4, rtol=0)
    torch.testing.assert_close(mm_logits[2, : conv_frames[2]], alone, atol=1e-4, rtol=0)


def test_matmul_frontend_onnx_matches_pytorch(tmp_path):
    model = load_ctc_model("tiny")
    report = verify_onnx(model, export_onnx(model, tmp_path / "tiny.mm.onnx", matmul_frontend=True))
    assert report.ok(), report
