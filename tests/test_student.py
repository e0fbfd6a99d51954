"""Student construction: layer selection, exact parameter counts, copied weights, HF dir output."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2Processor

from w2v_triton.train.distillation.student import (build_student, count_params, read_student_info,
                                             select_layers)

# wav2vec2-base-960h architecture (Wav2Vec2Config defaults, vocab 32): exact counts.
BASE_TEACHER_PARAMS = 94_396_320
BASE_STUDENT6_PARAMS = 51_869_088


def tiny_config(**kw) -> Wav2Vec2Config:
    from w2v_triton.build.checkpoints import tiny_config_kwargs
    args = tiny_config_kwargs()
    args.update(num_hidden_layers=4, apply_spec_augment=False, layerdrop=0.0)
    args.update(kw)
    return Wav2Vec2Config(**args)


@pytest.fixture(scope="module")
def base_teacher() -> Wav2Vec2ForCTC:
    torch.manual_seed(0)
    return Wav2Vec2ForCTC(Wav2Vec2Config(vocab_size=32)).eval()


def test_select_layers_strategies():
    assert select_layers(12, 6, "first") == [0, 1, 2, 3, 4, 5]
    assert select_layers(12, 6, "last") == [6, 7, 8, 9, 10, 11]
    assert select_layers(12, 6, "even") == [0, 2, 4, 7, 9, 11]
    assert select_layers(12, 4, "even") == [0, 4, 7, 11]
    assert select_layers(12, 1, "even") == [0]
    assert select_layers(12, 12, "even") == list(range(12))
    assert select_layers(12, None, "explicit", [1, 3, 5]) == [1, 3, 5]
    for bad in ([3, 1], [1, 1], [12], [-1]):
        with pytest.raises(ValueError):
            select_layers(12, None, "explicit", bad)
    with pytest.raises(ValueError):
        select_layers(12, 13, "first")
    with pytest.raises(ValueError):
        select_layers(12, 2, "explicit", [1, 2, 3])
    with pytest.raises(ValueError):
        select_layers(12, 6, "nope")


@pytest.mark.parametrize("strategy", ["first", "even"])
def test_base_960h_student_param_count_and_weights(base_teacher, strategy):
    student, info = build_student(base_teacher, 6, strategy)
    print(f"\nteacher params {count_params(base_teacher):,}; 6-layer {strategy} student "
          f"params {count_params(student):,}; kept {info.kept_layers}")
    assert count_params(base_teacher) == BASE_TEACHER_PARAMS == info.teacher_params
    assert count_params(student) == BASE_STUDENT6_PARAMS == info.student_params
    assert round(BASE_TEACHER_PARAMS / 1e6, 1) == 94.4 and round(BASE_STUDENT6_PARAMS / 1e6, 1) == 51.9
    assert student.config.num_hidden_layers == 6
    t_state, s_state = base_teacher.state_dict(), student.state_dict()
    for key, value in s_state.items():
        if ".encoder.layers." in key:
            idx = int(key.split(".encoder.layers.")[1].split(".")[0])
            rest = key.split(".encoder.layers.")[1].split(".", 1)[1]
            src = f"wav2vec2.encoder.layers.{info.kept_layers[idx]}.{rest}"
        else:
            src = key  # front-end, projection, pos-conv, encoder layer norm, CTC head
        assert torch.equal(value, t_state[src]), key
        assert value.data_ptr() != t_state[src].data_ptr()  # a copy, not shared storage
    assert {k for k in s_state if ".encoder.layers." not in k} == \
           {k for k in t_state if ".encoder.layers." not in k}


def test_first_k_student_reproduces_teacher_hidden_state():
    """A first-k student computes exactly the teacher's k-th layer output (eval mode)."""
    torch.manual_seed(1)
    teacher = Wav2Vec2ForCTC(tiny_config()).eval()
    x = torch.randn(2, 4000)
    with torch.no_grad():
        t_out = teacher(x, output_hidden_states=True)
        student, _ = build_student(teacher, 2, "first")
        s_out = student.eval()(x, output_hidden_states=True)
        full, _ = build_student(teacher, None, "explicit", [0, 1, 2, 3])
        f_out = full.eval()(x)
    torch.testing.assert_close(s_out.hidden_states[-1], t_out.hidden_states[2], rtol=0, atol=0)
    torch.testing.assert_close(f_out.logits, t_out.logits, rtol=0, atol=0)


def test_cli_writes_hf_dir_with_processor(tmp_path):
    from builders.student import main
    from w2v_triton.build.checkpoints import make_offline_checkpoint

    teacher_dir = make_offline_checkpoint("tiny", tmp_path / "teacher")
    out = tmp_path / "student"
    assert main(["--teacher", str(teacher_dir), "--out", str(out), "--layers", "1"]) == 0
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    processor_files = {f.name for f in teacher_dir.iterdir()} - {"config.json", "model.safetensors"}
    assert "vocab.json" in processor_files
    for name in processor_files:  # byte-identical processor files (vocab, tokenizer, extractor)
        assert (out / name).read_bytes() == (teacher_dir / name).read_bytes(), name
    info = read_student_info(out)
    assert info["kept_layers"] == [1] and info["strategy"] == "explicit"
    student = Wav2Vec2ForCTC.from_pretrained(str(out))
    teacher = Wav2Vec2ForCTC.from_pretrained(str(teacher_dir))
    assert student.config.num_hidden_layers == 1
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1
    torch.testing.assert_close(student.wav2vec2.encoder.layers[0].attention.q_proj.weight,
                               teacher.wav2vec2.encoder.layers[1].attention.q_proj.weight)
    torch.testing.assert_close(student.lm_head.weight, teacher.lm_head.weight)
    Wav2Vec2Processor.from_pretrained(str(out))  # the processor loads from the student dir


# --- narrowing the conv front-end (frontend_pruning) -----------------------------------------

BASE_STUDENT6_CONV256_PARAMS = 48_523_168   # docs/optimization.md, "narrower front-end" table


def test_base_student_with_narrow_front_end(base_teacher):
    student, info = build_student(base_teacher, 6, "even", conv_channels=256)
    assert count_params(student) == BASE_STUDENT6_CONV256_PARAMS == info.student_params
    assert list(student.config.conv_dim) == [256] * 7 == info.conv_channels
    assert list(base_teacher.config.conv_dim) == [512] * 7  # the teacher is not modified
    # everything after the front-end is the unpruned student's
    full, _ = build_student(base_teacher, 6, "even")
    narrow_state, full_state = student.state_dict(), full.state_dict()
    for key in full_state:
        if "feature_extractor" not in key and "feature_projection" not in key:
            assert torch.equal(narrow_state[key], full_state[key]), key


def _with_dead_channels(model: Wav2Vec2ForCTC, dead: dict[int, torch.Tensor]) -> Wav2Vec2ForCTC:
    """Zero what conv layer i+1 reads from the channels `dead[i]` of layer i: they cannot matter."""
    layers = model.wav2vec2.feature_extractor.conv_layers
    with torch.no_grad():
        for i, channels in dead.items():
            layers[i + 1].conv.weight[:, channels, :] = 0.0
    return model


def test_pruning_drops_exactly_the_channels_nothing_reads():
    """Group-norm front-end (base's: per-channel norm in layer 0, no norm after): channels whose
    outgoing weights are zero have importance 0, are the ones dropped, and dropping them leaves
    the logits unchanged. The last conv layer keeps its width (the projection's layer norm
    normalises over all of its channels, so dropping any of them is never exact)."""
    torch.manual_seed(3)
    teacher = Wav2Vec2ForCTC(tiny_config(conv_dim=(32,) * 7, conv_bias=False)).eval()
    dead = {i: torch.randperm(32)[:16] for i in range(6)}
    teacher = _with_dead_channels(teacher, dead)
    from w2v_triton.train.distillation.frontend_pruning import prune_frontend

    pruned, kept = prune_frontend(teacher, [16] * 6 + [32])
    for i in range(6):
        assert sorted(set(range(32)) - set(kept[i])) == sorted(dead[i].tolist()), i
    assert kept[6] == list(range(32))
    x = torch.randn(2, 6000)
    with torch.no_grad():
        torch.testing.assert_close(pruned.eval()(x).logits, teacher(x).logits, rtol=1e-5, atol=1e-5)


def test_pruning_a_layer_norm_front_end_keeps_the_strongest_channels():
    """Layer-norm front-end (the reference model's): the kept channels carry the teacher's
    weights (sliced on both conv axes), the model runs, and widening is refused."""
    from w2v_triton.train.distillation.frontend_pruning import conv_channel_importance, prune_frontend

    torch.manual_seed(4)
    teacher = Wav2Vec2ForCTC(tiny_config(conv_dim=(24,) * 7, feat_extract_norm="layer",
                                         do_stable_layer_norm=True, conv_bias=True)).eval()
    pruned, kept = prune_frontend(teacher, 8)
    scores = conv_channel_importance(teacher)
    for i, layer in enumerate(pruned.wav2vec2.feature_extractor.conv_layers):
        assert set(kept[i]) == set(torch.topk(scores[i], 8).indices.tolist())
        src = teacher.wav2vec2.feature_extractor.conv_layers[i]
        expected = src.conv.weight[kept[i]]
        if i > 0:
            expected = expected[:, kept[i - 1]]
        assert torch.equal(layer.conv.weight, expected)
        assert torch.equal(layer.conv.bias, src.conv.bias[kept[i]])
        assert torch.equal(layer.layer_norm.weight, src.layer_norm.weight[kept[i]])
    assert torch.equal(pruned.wav2vec2.feature_projection.projection.weight,
                       teacher.wav2vec2.feature_projection.projection.weight[:, kept[-1]])
    with torch.no_grad():
        assert pruned.eval()(torch.randn(1, 4000)).logits.isfinite().all()
    with pytest.raises(ValueError, match="cannot widen"):
        prune_frontend(teacher, 25)
    with pytest.raises(ValueError, match="widths"):
        prune_frontend(teacher, [8, 8])


def test_cli_narrows_front_end_and_the_result_exports_to_onnx(tmp_path):
    """builders/student.py --conv-channels writes a student that the ONNX builders take as it is
    (export verified against PyTorch, both the Conv and the block-MatMul front-end)."""
    from builders.student import main
    from w2v_triton.build.checkpoints import make_offline_checkpoint
    from w2v_triton.build.onnx_export import build_onnx
    from w2v_triton.build.variants import build_variant

    teacher_dir = make_offline_checkpoint("tiny", tmp_path / "teacher")
    out = tmp_path / "student"
    assert main(["--teacher", str(teacher_dir), "--out", str(out), "--num-layers", "1",
                 "--conv-channels", "16"]) == 0
    assert read_student_info(out)["conv_channels"] == [16] * 7
    onnx_path, report = build_onnx(out, tmp_path / "onnx")
    assert report.ok()
    assert build_variant(onnx_path, "mm", checkpoint=out).is_file()  # raises if it drifts from PyTorch
