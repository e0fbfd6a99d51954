"""SEW squeeze students (distillation/squeeze.py): which teacher tensors go where, the upsampling
starts as 'repeat each frame', pruning and layer strategies compose, hidden-state targets are
squeezed like the student's frames, and the CLI writes a checkpoint transformers loads as SEW."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from transformers import SEWForCTC, Wav2Vec2Config, Wav2Vec2ForCTC

from w2v_triton.build.checkpoints import load_ctc_model, make_offline_checkpoint, tiny_config_kwargs
from w2v_triton.train.distillation.losses import DistillLoss, DistillLossConfig, squeeze_frames
from w2v_triton.train.distillation.squeeze import build_squeeze_student, sew_config, to_sew
from w2v_triton.serving.masked_frontend import LengthAwareCTC
from w2v_triton.build.onnx_export import FP32_TOLERANCE, build_onnx, hf_reference, whole_window_samples


def _teacher(stable: bool, layers: int = 3, **overrides) -> Wav2Vec2ForCTC:
    kwargs = tiny_config_kwargs() | dict(num_hidden_layers=layers, mask_time_prob=0.0) | overrides
    if stable:
        kwargs |= dict(do_stable_layer_norm=True, feat_extract_norm="layer", conv_bias=True)
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(Wav2Vec2Config(**kwargs)).eval()
    with torch.no_grad():   # non-trivial norms, so that a wrong mapping shows
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(torch.randn_like(p) * 0.1 + (1.0 if name.endswith("weight") else 0.0))
    return model


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a, b)


def test_squeeze_frames_averages_whole_windows_of_real_frames():
    hidden = torch.arange(2 * 7 * 3, dtype=torch.float32).reshape(2, 7, 3)
    mask = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])
    hidden[1, 5:] = float("nan")                                    # padding never enters a mean
    pooled, pooled_mask = squeeze_frames(hidden, mask, 2)
    assert pooled.shape == (2, 3, 3)
    assert pooled_mask.tolist() == [[True, True, True], [True, True, False]]
    assert torch.equal(pooled[0, 1], hidden[0, 2:4].mean(0))
    assert torch.equal(pooled[1, 1], hidden[1, 2:4].mean(0)) and not torch.isnan(pooled).any()
    same, same_mask = squeeze_frames(hidden, mask, 1)
    assert same is hidden and same_mask is mask
    with pytest.raises(ValueError, match="squeeze factor must be >= 1"):
        squeeze_frames(hidden, mask, 0)


def test_hidden_loss_compares_the_student_with_the_squeezed_teacher():
    torch.manual_seed(0)
    teacher_hidden = tuple(torch.randn(2, 9, 4) for _ in range(3))
    mask = torch.tensor([[True] * 9, [True] * 6 + [False] * 3])
    cfg = DistillLossConfig(kl_weight=0.0, hidden_weight=1.0, layer_map=[(0, 0), (1, 2)])
    loss = DistillLoss(cfg, 4, 4, squeeze_factor=2)
    exact = tuple(squeeze_frames(h, mask, 2)[0] for h in (teacher_hidden[0], teacher_hidden[2]))
    logits = torch.zeros(2, 9, 5)
    total, logs = loss(logits, logits, mask, student_hidden=exact, teacher_hidden=teacher_hidden)
    assert logs["hid0->0_l1"] == pytest.approx(0.0, abs=1e-6) and logs["hid1->2_cos"] == pytest.approx(1.0, abs=1e-5)
    # padded squeezed frames of the student do not count
    shifted = (exact[0], exact[1].clone())
    shifted[1][1, 3:] += 100.0
    _, logs = loss(logits, logits, mask, student_hidden=shifted, teacher_hidden=teacher_hidden)
    assert logs["hid1->2_l1"] == pytest.approx(0.0, abs=1e-6)
    unsqueezed = DistillLoss(cfg, 4, 4)            # a student at the teacher's frame rate: refused
    with pytest.raises(ValueError, match="student frames"):
        unsqueezed(logits, logits, mask, student_hidden=exact, teacher_hidden=teacher_hidden)


def test_post_ln_teacher_weights_are_copied_by_name():
    teacher = _teacher(stable=False, hidden_size=48, conv_dim=(32,) * 7)   # conv 32 -> hidden 48: projection
    student, notes = to_sew(teacher, 2)
    assert isinstance(student, SEWForCTC) and student.config.squeeze_factor == 2
    t, s = teacher.state_dict(), student.state_dict()
    for key in ("feature_extractor.conv_layers.0.conv.weight", "feature_extractor.conv_layers.0.layer_norm.weight",
                "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
                "encoder.pos_conv_embed.conv.parametrizations.weight.original1", "encoder.pos_conv_embed.conv.bias",
                "encoder.layer_norm.weight", "encoder.layers.2.attention.q_proj.weight",
                "encoder.layers.1.feed_forward.output_dense.bias", "encoder.layers.1.layer_norm.bias",
                "encoder.layers.2.final_layer_norm.weight"):
        assert _same(s[f"sew.{key}"], t[f"wav2vec2.{key}"]), key
    assert _same(s["sew.layer_norm.weight"], t["wav2vec2.feature_projection.layer_norm.weight"])
    assert _same(s["sew.feature_projection.weight"], t["wav2vec2.feature_projection.projection.weight"])
    assert _same(s["lm_head.weight"], t["lm_head.weight"])
    assert student.sew.encoder.pos_conv_embed.conv.stride == (2,)
    assert notes["approximations"] == []


def test_upsampling_starts_as_repeating_each_squeezed_frame():
    teacher = _teacher(stable=False)
    student, _ = to_sew(teacher, 3)
    torch.manual_seed(1)
    final_norm = student.sew.encoder.layers[-1].final_layer_norm
    with torch.no_grad():
        squeezed = final_norm(torch.randn(2, 5, 32))                  # what the last layer emits
        upsampled = student.lm_head(student.sew.encoder.upsample(squeezed))
        repeated = teacher.lm_head(squeezed).repeat_interleave(3, dim=1)
    assert upsampled.shape == (2, 15, teacher.config.vocab_size)
    assert torch.allclose(upsampled, repeated, atol=2e-3), (upsampled - repeated).abs().max()


def test_pre_ln_teacher_gives_each_sub_layer_the_norm_its_input_had():
    teacher = _teacher(stable=True, layers=4)
    student, info = build_squeeze_student(teacher, 2, "explicit", [1, 3], squeeze_factor=2)
    t, s = teacher.state_dict(), student.state_dict()
    pairs = {"encoder.layer_norm": "encoder.layers.1.layer_norm",
             "encoder.layers.0.layer_norm": "encoder.layers.1.final_layer_norm",
             "encoder.layers.0.final_layer_norm": "encoder.layers.3.layer_norm",
             "encoder.layers.1.layer_norm": "encoder.layers.3.final_layer_norm",
             "encoder.layers.1.final_layer_norm": "encoder.layer_norm"}
    for mine, theirs in pairs.items():
        for part in ("weight", "bias"):
            assert _same(s[f"sew.{mine}.{part}"], t[f"wav2vec2.{theirs}.{part}"]), (mine, theirs)
    assert _same(s["sew.encoder.layers.1.attention.k_proj.weight"], t["wav2vec2.encoder.layers.3.attention.k_proj.weight"])
    assert info.kept_layers == [1, 3] and info.squeeze_factor == 2 and info.student_layers == 2
    notes = info.extra["sew"]
    assert any("projection Linear dropped" in a for a in notes["approximations"])   # conv 32 == hidden 32
    assert any("post-LN" in a for a in notes["approximations"])
    copied, _ = to_sew(teacher, 2, norm_init="copy")
    assert _same(copied.state_dict()["sew.encoder.layers.0.layer_norm.weight"],
                 t["wav2vec2.encoder.layers.0.layer_norm.weight"])
    with pytest.raises(ValueError, match="norm_init"):
        to_sew(teacher, 2, norm_init="other")


def test_conv_pruning_composes_and_keeps_the_projection():
    teacher = _teacher(stable=True)
    student, info = build_squeeze_student(teacher, 2, "even", squeeze_factor=2, conv_channels=16)
    assert list(student.config.conv_dim) == [16] * 7 and info.conv_channels == [16] * 7
    assert student.sew.project_features and student.sew.feature_projection.weight.shape == (32, 16)
    assert not any("projection" in a for a in info.extra["sew"]["approximations"])
    audio = torch.randn(2, 8000)
    with torch.no_grad():
        logits = student(audio).logits
    assert logits.shape == teacher(audio).logits.shape and torch.isfinite(logits).all()


def test_bad_squeeze_factor_and_adapter_are_refused():
    with pytest.raises(ValueError, match="squeeze_factor must be >= 2"):
        sew_config(_teacher(stable=False).config, 1)
    adapter = Wav2Vec2Config(**tiny_config_kwargs(), add_adapter=True)
    with pytest.raises(ValueError, match="adapter"):
        sew_config(adapter, 2)


def test_cli_writes_a_sew_checkpoint_that_loads_with_its_own_class(tmp_path):
    teacher = make_offline_checkpoint("tiny-large", tmp_path / "teacher")
    out = tmp_path / "student"
    cmd = [sys.executable, "-m", "builders.student", "--teacher", str(teacher), "--out", str(out),
           "--num-layers", "1", "--squeeze-factor", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    model = load_ctc_model(out)
    assert type(model) is SEWForCTC and json.loads((out / "config.json").read_text())["model_type"] == "sew"
    info = json.loads((out / "student_info.json").read_text())
    assert info["squeeze_factor"] == 2 and info["student_layers"] == 1
    assert (out / "vocab.json").read_bytes() == (teacher / "vocab.json").read_bytes()
    # no feature projection (conv width == hidden), pre-LN teacher: exports with exact parity too
    _, report = build_onnx(out, tmp_path / "onnx")
    assert report.ok(), report
    bad = subprocess.run(cmd[:-1] + ["0"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--squeeze-factor must be >= 1" in bad.stderr and "Traceback" not in bad.stderr


def test_length_aware_sew_counts_whole_windows_and_pads_exactly(tmp_path):
    """Only (T // s) * s frames are logits (the rest would average padding into a window); a
    padded batch equals single passes on them, with either front-end; a clip shorter than one
    window runs and has no frames; HF with the matching attention mask gives the same logits."""
    model = load_ctc_model(make_offline_checkpoint("tiny-sew", tmp_path / "sew"))
    lengths = [400, 8000, 16000, 16320, 48000]           # 1, 24, 49, 50, 149 conv frames
    torch.manual_seed(0)
    clips = [torch.randn(n) for n in lengths]
    batch = torch.zeros(len(clips), max(lengths))
    for row, clip in enumerate(clips):
        batch[row, : clip.numel()] = clip
    for matmul in (False, True):
        wrapper = LengthAwareCTC(model, matmul_frontend=matmul)
        with torch.no_grad():
            logits, frames = wrapper(batch, torch.tensor(lengths))
            assert frames.tolist() == [0, 24, 48, 50, 148]
            for row, clip in enumerate(clips):
                single, single_frames = wrapper(clip[None], torch.tensor([clip.numel()]))
                n = int(single_frames[0])
                assert n == int(frames[row]) and single.shape[1] >= n
                assert torch.allclose(single[0, :n], logits[row, :n], atol=FP32_TOLERANCE)
                if n:
                    reference = torch.from_numpy(hf_reference(model, clip.numpy()))
                    assert torch.allclose(single[0, :n], reference[:n], atol=FP32_TOLERANCE)
    assert whole_window_samples(model, 16000) == 320 * 47 + 400 and whole_window_samples(model, 8000) == 8000
    assert whole_window_samples(model, 400) == 0


def test_flop_count_splits_front_end_and_transformer():
    """benchmarks/flops.py: the squeeze leaves the front-end's FLOPs alone and cuts the transformer's."""
    from benchmarks.flops import count_flops
    from w2v_triton.train.distillation.student import build_student

    teacher = _teacher(stable=True, layers=2)
    layers_only, _ = build_student(teacher, 2, "first")
    squeezed, _ = build_squeeze_student(teacher, 2, "first", squeeze_factor=2)
    plain, squeeze = count_flops(layers_only, 2.0), count_flops(squeezed, 2.0)
    assert plain["feature_extractor"] == squeeze["feature_extractor"] > 0
    assert 0 < squeeze["encoder"] < 0.6 * plain["encoder"]
    assert plain["total"] == pytest.approx(sum(v for k, v in plain.items() if k != "total"))


def test_evaluation_and_distillation_count_whole_windows_only(tmp_path):
    """The held-out evaluator (training.evaluate) and the distillation losses read the same
    (T // s) * s logit frames as the served model; other families keep every frame."""
    from w2v_triton.train.distillation.task import frame_lengths_of
    from w2v_triton.train.evaluate import _model_output_lengths

    sew = load_ctc_model(make_offline_checkpoint("tiny-sew", tmp_path / "sew"))
    plain = _teacher(stable=False)
    mask = (torch.arange(16320)[None] < torch.tensor([[16000], [16320]])).long()   # 49 and 50 frames
    batch = {"input_values": torch.zeros(2, 16320), "attention_mask": mask}
    assert _model_output_lengths(sew, mask).tolist() == [48, 50] == frame_lengths_of(sew, batch).tolist()
    assert _model_output_lengths(plain, mask).tolist() == [49, 50] == frame_lengths_of(plain, batch).tolist()
