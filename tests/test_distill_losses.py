"""KD losses. The KL tests check properties that ONLY a vocabulary-axis softmax satisfies;
`test_properties_reject_time_axis_softmax` proves it by running them on a time-axis version."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

from w2v_triton.train.distillation.losses import (DistillLoss, DistillLossConfig, ctc_loss,
                                            default_layer_map, frame_mask_from_lengths,
                                            hidden_pair_loss, kd_kl_loss, parse_layer_map)

B, T, V = 3, 7, 5
LENGTHS = torch.tensor([7, 4, 2])


def _logits(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, V, generator=g) * 3


def _kl_time_axis(student, teacher, frame_mask=None, temperature=1.0):
    """The WRONG loss (softmax over time): used only to prove the tests would catch it."""
    t = temperature
    s = F.log_softmax(student / t, dim=1)
    q = F.log_softmax(teacher / t, dim=1)
    per = (q.exp() * (q - s)).sum(-1)
    m = torch.ones(per.shape, dtype=torch.bool) if frame_mask is None else frame_mask
    return (per * m).sum() / m.sum() * t * t


def _reference_kl(student, teacher, lengths, temperature):
    """Per-frame KL over the vocabulary computed with numpy, averaged over real frames."""
    s, q = student.double().numpy() / temperature, teacher.double().numpy() / temperature
    vals = []
    for b in range(s.shape[0]):
        for t in range(int(lengths[b])):
            ps = np.exp(s[b, t] - s[b, t].max()); ps /= ps.sum()
            pt = np.exp(q[b, t] - q[b, t].max()); pt /= pt.sum()
            vals.append(float((pt * (np.log(pt) - np.log(ps))).sum()))
    return float(np.mean(vals)) * temperature ** 2


# --- properties (each returns True when it holds) ----------------------------------
def prop_zero_when_equal(loss_fn) -> bool:
    x = _logits(0)
    mask = frame_mask_from_lengths(LENGTHS, T)
    return abs(float(loss_fn(x, x.clone(), mask, 2.0))) < 1e-6


def prop_per_frame_shift_invariance(loss_fn) -> bool:
    s, t = _logits(1), _logits(2)
    mask = frame_mask_from_lengths(LENGTHS, T)
    shift = torch.randn(B, T, 1) * 10  # one constant per frame, across the vocabulary
    a, b = loss_fn(s, t, mask, 2.0), loss_fn(s + shift, t - 3 * shift, mask, 2.0)
    return abs(float(a) - float(b)) < 1e-4


def prop_padded_frames_ignored(loss_fn) -> bool:
    s, t = _logits(3), _logits(4)
    mask = frame_mask_from_lengths(LENGTHS, T)
    s2, t2 = s.clone(), t.clone()
    s2[1, 4:] = torch.randn(3, V) * 50
    t2[2, 2:] = torch.randn(5, V) * 50
    return abs(float(loss_fn(s, t, mask, 2.0)) - float(loss_fn(s2, t2, mask, 2.0))) < 1e-5


def prop_matches_reference(loss_fn) -> bool:
    s, t = _logits(5), _logits(6)
    mask = frame_mask_from_lengths(LENGTHS, T)
    return all(math.isclose(float(loss_fn(s, t, mask, temp)), _reference_kl(s, t, LENGTHS, temp),
                            rel_tol=1e-4, abs_tol=1e-6) for temp in (1.0, 4.0))


PROPS = [prop_per_frame_shift_invariance, prop_padded_frames_ignored, prop_matches_reference]


@pytest.mark.parametrize("prop", [prop_zero_when_equal] + PROPS)
def test_kl_properties(prop):
    assert prop(kd_kl_loss)


def test_properties_reject_time_axis_softmax():
    for prop in PROPS:
        assert not prop(_kl_time_axis), f"{prop.__name__} does not catch a time-axis softmax"


def test_kl_temperature_scaling_and_gradient():
    s, t = _logits(7).requires_grad_(), _logits(8)
    loss = kd_kl_loss(s, t, None, 4.0)
    assert float(loss.detach()) > 0
    # T^2 scaling: equals 16 * the un-scaled per-frame mean KL of the softened distributions
    plain = kd_kl_loss(s / 4.0, t / 4.0, None, 1.0)
    assert math.isclose(float(loss), 16 * float(plain), rel_tol=1e-5)
    loss.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_kl_padded_nan_and_grad_excluded():
    s, t = _logits(9), _logits(10)
    mask = frame_mask_from_lengths(LENGTHS, T)
    ref = kd_kl_loss(s, t, mask, 1.0)
    s2 = s.clone(); s2[2, 5:] = float("nan")
    s2.requires_grad_()
    out = kd_kl_loss(s2, t, mask, 1.0)
    assert math.isclose(float(out), float(ref), rel_tol=1e-6)
    out.backward()
    assert torch.all(s2.grad[2, 2:] == 0) and torch.all(s2.grad[1, 4:] == 0)


def test_kl_shape_mismatch_raises():
    with pytest.raises(ValueError):
        kd_kl_loss(torch.zeros(1, 4, 5), torch.zeros(1, 5, 5))


def test_ctc_matches_hf_model_loss():
    cfg = Wav2Vec2Config(vocab_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, conv_dim=(8,) * 7, num_conv_pos_embeddings=8,
                         num_conv_pos_embedding_groups=2, ctc_loss_reduction="mean",
                         ctc_zero_infinity=True, apply_spec_augment=False, pad_token_id=0)
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(cfg).eval()
    x = torch.randn(2, 6400)
    attn = torch.ones(2, 6400, dtype=torch.long); attn[1, 4000:] = 0
    labels = torch.tensor([[3, 4, 5, 5, 6], [2, 7, -100, -100, -100]])
    out = model(x, attention_mask=attn, labels=labels)
    frame_lengths = model._get_feat_extract_output_lengths(attn.sum(-1))
    ours = ctc_loss(out.logits, frame_lengths, labels, blank_id=0)
    torch.testing.assert_close(ours, out.loss)


def test_ctc_skips_unlabelled_rows():
    logits = _logits(11)
    labels = torch.tensor([[1, 2, -100], [3, -100, -100], [1, 1, 2]])
    lengths = LENGTHS
    only_first = ctc_loss(logits[:1], lengths[:1], labels[:1], 0)
    masked = ctc_loss(logits, lengths, labels, 0, labelled=torch.tensor([True, False, False]))
    torch.testing.assert_close(masked, only_first)
    none = ctc_loss(logits, lengths, labels, 0, labelled=torch.zeros(3, dtype=torch.bool))
    assert float(none) == 0.0


def test_hidden_pair_loss_and_padding():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(B, T, 6, generator=g)
    mask = frame_mask_from_lengths(LENGTHS, T)
    same, logs = hidden_pair_loss(h, h.clone(), mask, cos_mode="one_minus")
    assert abs(float(same)) < 1e-6 and math.isclose(logs["cos"], 1.0, rel_tol=1e-6)
    same_ls, _ = hidden_pair_loss(h, h.clone(), mask, cos_mode="logsigmoid")
    assert math.isclose(float(same_ls), -math.log(1 / (1 + math.exp(-1))), rel_tol=1e-5)
    target = torch.randn(B, T, 6, generator=g)
    a, _ = hidden_pair_loss(h, target, mask, l1_weight=1.0, cos_weight=0.0)
    l1_ref = torch.cat([(h[b, :n] - target[b, :n]).abs().mean(-1) for b, n in enumerate(LENGTHS)]).mean()
    torch.testing.assert_close(a, l1_ref)
    h2 = h.clone(); h2[1, 4:] = 1e4
    b_, _ = hidden_pair_loss(h2, target, mask)
    a_, _ = hidden_pair_loss(h, target, mask)
    torch.testing.assert_close(a_, b_)


def test_distill_loss_weights_heads_and_map():
    assert parse_layer_map("6:12, 3:6") == [(6, 12), (3, 6)]
    assert default_layer_map([0, 2, 4, 7, 9, 11]) == [(1, 1), (2, 3), (3, 5), (4, 8), (5, 10), (6, 12)]
    s, t = _logits(12), _logits(13)
    mask = frame_mask_from_lengths(LENGTHS, T)
    labels = torch.tensor([[1, 2, -100], [3, -100, -100], [1, -100, -100]])
    hs = tuple(torch.randn(B, T, 4) for _ in range(3))
    ht = tuple(torch.randn(B, T, 4) for _ in range(5))
    cfg = DistillLossConfig(kl_weight=0.8, temperature=4.0, ctc_weight=0.2, hidden_weight=0.5,
                            layer_map=[(1, 2), (2, 4)], prediction_heads=True)
    loss_fn = DistillLoss(cfg, 4, 4)
    assert set(loss_fn.heads) == {"1_2", "2_4"}
    total, logs = loss_fn(s, t, mask, LENGTHS, labels, None, hs, ht)
    kl = kd_kl_loss(s, t, mask, 4.0)
    ctc = ctc_loss(s, LENGTHS, labels, 0)
    hid = (hidden_pair_loss(hs[1], ht[2], mask)[0] + hidden_pair_loss(hs[2], ht[4], mask)[0]) / 2
    torch.testing.assert_close(total, 0.8 * kl + 0.2 * ctc + 0.5 * hid)  # heads start as identity
    assert {"kl", "ctc", "hidden", "loss"} <= set(logs)
    total.backward()
    assert loss_fn.heads["1_2"].weight.grad is not None
    # KD only (no labels): CTC term absent
    total2, logs2 = loss_fn(s, t, mask, LENGTHS, None, None, hs, ht)
    assert "ctc" not in logs2
    torch.testing.assert_close(total2, 0.8 * kl + 0.5 * hid)
