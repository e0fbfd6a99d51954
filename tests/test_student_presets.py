"""Student presets and the narrower transformer (width_pruning): exact reproduction at full width,
sliced tensors, exact parameter counts on base, errors for impossible widths, CLI plumbing, ONNX."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

from w2v_triton.train.distillation.presets import PRESETS, StudentShape, build_shaped_student, get_preset, resolve
from w2v_triton.train.distillation.student import count_params, read_student_info
from w2v_triton.train.distillation.width_pruning import TransformerWidth, prune_width, teacher_width, width_for


def small_config(stable: bool, **kw) -> Wav2Vec2Config:
    """A small model with 4 heads and 4 pos-conv groups; `stable`: the reference model's pre-LN
    layout with a layer-norm front-end, else base's post-LN layout with a group-norm front-end."""
    from w2v_triton.build.checkpoints import tiny_config_kwargs
    args = tiny_config_kwargs()
    args.update(hidden_size=64, num_attention_heads=4, intermediate_size=128, num_hidden_layers=3,
                num_conv_pos_embedding_groups=4, apply_spec_augment=False, layerdrop=0.0, conv_dim=(16,) * 7)
    if stable:
        args.update(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
    args.update(kw)
    return Wav2Vec2Config(**args)


def _teacher(stable: bool, seed: int = 0) -> Wav2Vec2ForCTC:
    torch.manual_seed(seed)
    model = Wav2Vec2ForCTC(small_config(stable)).eval()
    with torch.no_grad():  # non-trivial norms and biases (fresh ones are 1 / 0: a slicing bug could hide)
        for name, p in model.named_parameters():
            if p.dim() == 1 and "masked_spec_embed" not in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _pos_weight(model: Wav2Vec2ForCTC) -> torch.Tensor:
    conv = model.wav2vec2.encoder.pos_conv_embed.conv
    return conv.weight.detach()   # the effective (weight-normed) weight


@pytest.mark.parametrize("stable", [True, False], ids=["pre-LN", "post-LN"])
def test_full_width_reproduces_the_teacher_exactly(stable):
    teacher = _teacher(stable)
    student, kept = prune_width(teacher, teacher_width(teacher.config))
    assert kept["residual_dims"] == list(range(64))
    x = torch.randn(2, 5000)
    with torch.no_grad():
        t, s = teacher(x, output_hidden_states=True), student.eval()(x, output_hidden_states=True)
    torch.testing.assert_close(s.logits, t.logits, rtol=0, atol=0)
    for hs, ht in zip(s.hidden_states, t.hidden_states):
        torch.testing.assert_close(hs, ht, rtol=0, atol=0)


@pytest.mark.parametrize("stable", [True, False], ids=["pre-LN", "post-LN"])
def test_pruned_tensors_are_the_teachers_slices(stable):
    """Every pruned tensor is the teacher's restricted to the kept dims / heads / neurons,
    including the grouped positional conv (same count kept per group, effective weight kept)."""
    teacher = _teacher(stable)
    student, kept = prune_width(teacher, width_for(teacher.config, 32))
    c = student.config
    assert (c.hidden_size, c.num_attention_heads, c.intermediate_size) == (32, 2, 64)
    dims = torch.tensor(kept["residual_dims"])
    assert [int(((dims >= 16 * g) & (dims < 16 * (g + 1))).sum()) for g in range(4)] == [8] * 4
    tb, sb = teacher.wav2vec2, student.wav2vec2
    for i, (tl, sl) in enumerate(zip(tb.encoder.layers, sb.encoder.layers)):
        heads = kept["heads"][i]
        rows = torch.tensor([h * 16 + j for h in heads for j in range(16)])
        for name in ("q_proj", "k_proj", "v_proj"):
            assert torch.equal(getattr(sl.attention, name).weight, getattr(tl.attention, name).weight[rows][:, dims])
            assert torch.equal(getattr(sl.attention, name).bias, getattr(tl.attention, name).bias[rows])
        assert torch.equal(sl.attention.out_proj.weight, tl.attention.out_proj.weight[dims][:, rows])
        n = torch.tensor(kept["ffn_neurons"][i])
        assert torch.equal(sl.feed_forward.intermediate_dense.weight, tl.feed_forward.intermediate_dense.weight[n][:, dims])
        assert torch.equal(sl.feed_forward.output_dense.weight, tl.feed_forward.output_dense.weight[dims][:, n])
        assert torch.equal(sl.layer_norm.weight, tl.layer_norm.weight[dims])
        assert torch.equal(sl.final_layer_norm.bias, tl.final_layer_norm.bias[dims])
    assert torch.equal(sb.encoder.layer_norm.weight, tb.encoder.layer_norm.weight[dims])
    assert torch.equal(sb.feature_projection.projection.weight, tb.feature_projection.projection.weight[dims])
    assert torch.equal(sb.masked_spec_embed, tb.masked_spec_embed[dims])
    assert torch.equal(student.lm_head.weight, teacher.lm_head.weight[:, dims])
    assert torch.equal(student.lm_head.bias, teacher.lm_head.bias)
    # grouped pos conv: output channel dims[j] (group g) reads the kept channels of group g
    tw, sw = _pos_weight(teacher), _pos_weight(student)
    assert sw.shape == (32, 8, tw.shape[2])
    local = dims.reshape(4, 8) - torch.arange(4)[:, None] * 16
    for j, d in enumerate(dims.tolist()):
        torch.testing.assert_close(sw[j], tw[d][local[d // 16]], rtol=1e-6, atol=1e-7)
    assert torch.equal(sb.encoder.pos_conv_embed.conv.bias, tb.encoder.pos_conv_embed.conv.bias[dims])
    with torch.no_grad():
        assert student.eval()(torch.randn(1, 4000)).logits.isfinite().all()


def test_importance_keeps_what_the_teacher_uses():
    """Heads, FFN neurons and residual dimensions the teacher never uses (zeroed weights) are the
    ones dropped."""
    teacher = _teacher(stable=False)
    layer = teacher.wav2vec2.encoder.layers[1]
    with torch.no_grad():
        layer.attention.out_proj.weight[:, 16:32] = 0      # head 1 writes nothing
        layer.feed_forward.output_dense.weight[:, :64] = 0  # neurons 0..63 write nothing
        for name, p in teacher.named_parameters():        # residual dim 5 read and written by nothing
            if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "intermediate_dense.weight",
                              "lm_head.weight")):
                p[:, 5] = 0
            elif name.endswith(("out_proj.weight", "output_dense.weight", "projection.weight")) and p.shape[0] == 64:
                p[5] = 0
            elif name.endswith("layer_norm.weight") and p.shape[0] == 64 and "feature_projection" not in name:
                p[5] = 0
        teacher.wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original1[5] = 0
    _, kept = prune_width(teacher, TransformerWidth(48, 3, 64))
    assert 1 not in kept["heads"][1]
    assert kept["ffn_neurons"][1] == list(range(64, 128))
    assert 5 not in kept["residual_dims"]


# wav2vec2-base-960h architecture (Wav2Vec2Config defaults, vocab 32): exact counts.
BASE_PRESET_PARAMS = {"layers6": 51_869_088, "layers6-prune": 48_523_168,
                      "narrow75": 27_808_096, "narrow": 12_991_264}


def expected_params(layers: int, conv: int, hidden: int, ffn: int, groups: int = 16, kernel: int = 128,
                    vocab: int = 32) -> int:
    """Parameter count of a base-layout Wav2Vec2ForCTC (group-norm front-end without conv bias,
    post-LN encoder), written out by hand as an independent check of the pruned models."""
    front = conv * 10 + 2 * conv + 4 * conv * conv * 3 + 2 * conv * conv * 2
    projection = 2 * conv + conv * hidden + hidden
    pos = hidden * (hidden // groups) * kernel + kernel + hidden
    layer = 4 * (hidden * hidden + hidden) + 4 * hidden + hidden * ffn + ffn + ffn * hidden + hidden
    return front + projection + hidden + pos + 2 * hidden + layers * layer + vocab * hidden + vocab


@pytest.fixture(scope="module")
def base_teacher() -> Wav2Vec2ForCTC:
    torch.manual_seed(0)
    return Wav2Vec2ForCTC(Wav2Vec2Config(vocab_size=32)).eval()


def test_base_preset_parameter_counts(base_teacher):
    shapes = {"layers6": (6, 512, 768, 3072), "layers6-prune": (6, 256, 768, 3072),
              "narrow75": (6, 256, 576, 2304), "narrow": (6, 256, 384, 1536)}
    assert expected_params(12, 512, 768, 3072) == count_params(base_teacher) == 94_396_320
    for name, (layers, conv, hidden, ffn) in shapes.items():
        student, info = build_shaped_student(base_teacher, PRESETS[name], "random-base", name)
        c = student.config
        assert (c.num_hidden_layers, c.hidden_size, c.intermediate_size) == (layers, hidden, ffn), name
        assert list(c.conv_dim) == [conv] * 7 and c.num_attention_heads == hidden // 64, name
        assert count_params(student) == info.student_params == expected_params(layers, conv, hidden, ffn) \
            == BASE_PRESET_PARAMS[name], name
        assert info.kept_layers == [0, 2, 4, 7, 9, 11] and info.preset == name


def test_reference_sized_presets_resolve():
    """Fractions mean the same on the reference size: hidden 256 / 4 heads -> 128 / 2 (narrow),
    192 / 3 (narrow75); conv 256 -> 128."""
    ref = Wav2Vec2Config(hidden_size=256, num_attention_heads=4, intermediate_size=1024, conv_dim=(256,) * 7,
                         do_stable_layer_norm=True, feat_extract_norm="layer", conv_bias=True)
    narrow = resolve(PRESETS["narrow"], ref)
    assert narrow.width == TransformerWidth(128, 2, 512) and narrow.conv_channels == [128] * 7
    assert resolve(PRESETS["narrow75"], ref).width == TransformerWidth(192, 3, 768)
    assert resolve(PRESETS["layers6"], ref).width is None and resolve(PRESETS["layers6"], ref).conv_channels is None
    assert resolve(PRESETS["layers6"], ref).kept_layers == [0, 2, 4, 7, 9, 11]
    # explicit values override the preset's fractions
    shape = PRESETS["narrow"].replace(hidden_size=64, conv_channels=[200], num_layers=4)
    r = resolve(shape, ref)
    assert r.width == TransformerWidth(64, 1, 256) and r.conv_channels == [200] * 7 and len(r.kept_layers) == 4
    assert PRESETS["narrow"].replace(layers=[1, 5]).strategy == "explicit"


@pytest.mark.parametrize("kwargs, message", [
    (dict(hidden_size=40), "multiple of the teacher's head size"),
    (dict(hidden_size=32, num_attention_heads=3), "whole heads"),
    (dict(hidden_size=128), "cannot widen"),
    (dict(intermediate_size=0), "FFN width"),
])
def test_impossible_widths_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        width_for(small_config(False), **kwargs)


def test_width_must_split_evenly_over_pos_conv_groups():
    config = small_config(False, num_conv_pos_embedding_groups=32, hidden_size=256, num_attention_heads=16)
    with pytest.raises(ValueError, match="groups"):
        width_for(config, 48)          # 3 heads of 16, but 1.5 dimensions per group
    assert width_for(config, 64).num_attention_heads == 4


def test_shape_validation():
    with pytest.raises(ValueError, match="width"):
        StudentShape(width=1.5)
    with pytest.raises(ValueError, match="unknown student preset"):
        get_preset("wide")
    with pytest.raises(ValueError, match="squeeze must be >= 1"):
        StudentShape(squeeze=0)


@pytest.mark.parametrize("stable", [False, True])
def test_squeeze_shape_builds_a_sew_student_after_layers_frontend_and_width(stable):
    """squeeze > 1: the shape's layers, conv pruning and width are cut first (the same tensors as
    without the squeeze), then the student becomes a SEWForCTC with that squeeze factor."""
    from transformers import SEWForCTC

    teacher = _teacher(stable)
    for shape in (get_preset("squeeze").replace(num_layers=2),
                  StudentShape(num_layers=2, strategy="even", conv_fraction=0.5, width=0.5, squeeze=2)):
        plain, plain_info = build_shaped_student(teacher, shape.replace(squeeze=1))
        student, info = build_shaped_student(teacher, shape, preset="x")
        assert type(plain) is Wav2Vec2ForCTC and type(student) is SEWForCTC
        c = student.config
        assert (c.squeeze_factor, c.num_hidden_layers, list(c.conv_dim), c.hidden_size, c.intermediate_size) == \
            (2, 2, list(plain.config.conv_dim), plain.config.hidden_size, plain.config.intermediate_size)
        assert info.squeeze_factor == 2 and info.kept_layers == plain_info.kept_layers == [0, 2]
        assert info.residual_dims == plain_info.residual_dims and info.preset == "x"
        assert info.extra["shape"]["squeeze"] == 2 and "sew" in info.extra
        same = [("wav2vec2.feature_extractor.conv_layers.1.conv.weight", "sew.feature_extractor.conv_layers.1.conv.weight"),
                ("wav2vec2.encoder.layers.1.attention.q_proj.weight", "sew.encoder.layers.1.attention.q_proj.weight"),
                ("wav2vec2.encoder.layers.1.feed_forward.output_dense.weight",
                 "sew.encoder.layers.1.feed_forward.output_dense.weight")]
        p, s = plain.state_dict(), student.state_dict()
        for a, b in same:
            assert torch.equal(p[a], s[b]), (a, b)
        out = student(torch.randn(1, 4000), output_hidden_states=True)
        assert out.hidden_states[0].shape[1] == out.logits.shape[1] // 2


# --- command lines ---------------------------------------------------------------------------------

def test_student_cli_preset_exports_to_onnx_with_parity(tmp_path):
    """`builders/student.py --preset narrow` writes a plain Wav2Vec2ForCTC dir that the ONNX
    builders take as it is (export verified against PyTorch; the int8-mm variant too)."""
    from builders.student import main
    from w2v_triton.build.checkpoints import make_offline_checkpoint
    from w2v_triton.build.onnx_export import build_onnx
    from w2v_triton.build.variants import build_variant

    teacher_dir = make_offline_checkpoint("tiny", tmp_path / "teacher")   # hidden 32, 2 heads, 2 layers
    out = tmp_path / "student"
    assert main(["--teacher", str(teacher_dir), "--out", str(out), "--preset", "narrow", "--num-layers", "2"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["hidden_size"], config["num_attention_heads"], config["intermediate_size"]) == (16, 1, 32)
    info = read_student_info(out)
    assert info["preset"] == "narrow" and info["conv_channels"] == [16] * 7 and len(info["residual_dims"]) == 16
    onnx_path, report = build_onnx(out, tmp_path / "onnx")
    assert report.ok()
    assert build_variant(onnx_path, "mm", checkpoint=out).is_file()   # raises if it drifts from PyTorch


def test_student_cli_errors(tmp_path, capsys):
    from builders.student import main
    from w2v_triton.build.checkpoints import make_offline_checkpoint

    teacher_dir = make_offline_checkpoint("tiny", tmp_path / "teacher")
    assert main(["--teacher", str(teacher_dir), "--out", str(tmp_path / "s"), "--num-layers", "1",
                 "--hidden-size", "24"]) == 2
    assert "head size 16" in capsys.readouterr().err
    assert main(["--teacher", str(teacher_dir), "--out", str(tmp_path / "s"), "--preset", "narrow"]) == 2
    assert "num_layers must be in 1..2" in capsys.readouterr().err


def test_list_presets_reports_params_and_flops(tmp_path, capsys):
    from builders.student import main
    from w2v_triton.build.checkpoints import make_offline_checkpoint

    teacher_dir = make_offline_checkpoint("tiny", tmp_path / "teacher")
    out = tmp_path / "presets.json"
    # the tiny teacher has 2 layers: the 6-layer presets cannot be cut from it
    assert main(["--list-presets", "--teacher", str(teacher_dir), "--json", str(out)]) == 2
    big = tmp_path / "teacher12"
    Wav2Vec2ForCTC(small_config(True, num_hidden_layers=12)).save_pretrained(big)
    assert main(["--list-presets", "--teacher", str(big), "--json", str(out), "--flops-seconds", "2"]) == 0
    data = json.loads(out.read_text())
    entry = data["teachers"][str(big)]
    assert set(entry["presets"]) == set(PRESETS)
    flops = {p: e["gflops_per_audio_s"] for p, e in entry["presets"].items()}
    assert entry["gflops_per_audio_s"] > flops["layers6"] > flops["layers6-prune"] > flops["narrow75"] > flops["narrow"] > 0
    assert entry["presets"]["narrow"]["hidden_size"] == 32
    assert data["columns"][0] == "model" and [r[0] for r in data["rows"]] == ["teacher", *PRESETS]
    assert "narrow" in capsys.readouterr().out


def test_flops_counter_counts_matmuls():
    """A linear layer on 10 s of 'audio' frames: 2 x in x out FLOPs per sample, per audio-second."""
    from w2v_triton.eval.flops import count_flops, flops_per_audio_second

    class PerSample(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(1, 3, bias=False)

        def forward(self, x):
            return self.linear(x[..., None])

    assert count_flops(PerSample(), seconds=1.0, sample_rate=100) == 2 * 1 * 3 * 100
    assert flops_per_audio_second(PerSample(), seconds=10.0, sample_rate=100) == 600.0
    with pytest.raises(ValueError):
        count_flops(PerSample(), seconds=0)


def test_distill_cli_preset_plumbing():
    """--preset picks the shape, the hidden-state loss (weight 1) and the 0:0 pair; explicit flags win."""
    from builders.distill import configs_from_args

    common = ["--teacher", "t", "--train", "a.jsonl", "--out", "o"]
    cfg, _, _ = configs_from_args(common + ["--preset", "narrow"])
    assert cfg.shape == PRESETS["narrow"] and cfg.preset == "narrow"
    assert cfg.loss.hidden_weight == 1.0 and cfg.loss.map_encoder_input and cfg.loss.layer_map is None
    cfg, _, _ = configs_from_args(common + ["--preset", "layers6"])
    assert cfg.loss.hidden_weight == 1.0 and not cfg.loss.map_encoder_input
    cfg, _, _ = configs_from_args(common + ["--preset", "narrow", "--hidden-weight", "0", "--layer-map", "6:12",
                                            "--num-layers", "4", "--conv-channels", "64"])
    assert cfg.loss.hidden_weight == 0.0 and cfg.loss.layer_map == [(6, 12)]
    assert cfg.shape.num_layers == 4 and cfg.shape.conv_channels == (64,) and cfg.shape.width == 0.5
    cfg, _, _ = configs_from_args(common)                      # no preset: the old defaults
    assert cfg.shape == StudentShape() and cfg.shape.num_layers == 6 and cfg.shape.strategy == "first"
    assert cfg.loss.hidden_weight == 0.0 and not cfg.loss.map_encoder_input
    with pytest.raises(SystemExit):
        configs_from_args(common + ["--preset", "huge"])
    cfg, _, _ = configs_from_args(common + ["--preset", "squeeze"])    # squeeze preset: pooled-target hidden loss
    assert cfg.shape.squeeze == 2 and cfg.shape.conv_fraction == 0.5 and cfg.loss.map_encoder_input
    cfg, _, _ = configs_from_args(common + ["--preset", "squeeze", "--squeeze-factor", "1"])
    assert cfg.shape.squeeze == 1
    cfg, _, _ = configs_from_args(common + ["--preset", "narrow", "--squeeze-factor", "3"])
    assert cfg.shape.squeeze == 3 and cfg.shape.width == 0.5
    with pytest.raises(SystemExit):
        configs_from_args(common + ["--squeeze-factor", "0"])


@pytest.mark.integration
def test_narrow_student_is_served_end_to_end(tmp_path, served_transcripts):
    """A narrow student is consumed unchanged by `builders/repository.py` (ONNX verified), and a
    real tritonserver serving it returns the in-process pipeline's transcripts."""
    import numpy as np
    from builders.student import main as build_student_cli
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.build.checkpoints import make_offline_checkpoint
    from w2v_triton.serving.pipeline import ReferencePipeline

    teacher_dir = make_offline_checkpoint("tiny", tmp_path / "teacher")
    student_dir = tmp_path / "student"
    assert build_student_cli(["--teacher", str(teacher_dir), "--out", str(student_dir), "--preset", "narrow",
                              "--num-layers", "2"]) == 0
    repo = tmp_path / "repo"
    build_repository(BuildRequest(model=str(student_dir), output=repo))
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (8000, 23456, 40000)]
    expected = [ReferencePipeline(repo).transcribe(c) for c in clips]
    assert all(expected), expected   # random weights still emit letters: the comparison is not vacuous
    assert served_transcripts(repo, clips) == expected
