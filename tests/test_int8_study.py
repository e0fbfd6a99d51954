"""tools/dev/int8_study.py: its sensitivity groups quantise one part of the graph at a time, and the goal
check (issue 31) holds both bounds."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools" / "dev"))
import int8_study  # noqa: E402


def test_int8_study_groups_quantise_one_part_at_a_time(tiny_fp32, tmp_path):
    """The sensitivity groups of the block-MatMul graph (front-end conv layers but the float first,
    feature projection, each encoder layer's attention and feed-forward, head), and an int8-mm file
    with only one group quantised holds int8 GEMMs there and nowhere else."""
    import onnx

    from w2v_triton.build.checkpoints import resolve_checkpoint
    from w2v_triton.build.variants import INT8_MM_FLOAT_NODES, build_variant, quantize_int8

    mm = build_variant(tiny_fp32, "mm", checkpoint=resolve_checkpoint("tiny"))
    groups = int8_study.matmul_groups(mm)
    assert groups[0] == "/block_convs.1/" and "/block_convs.0/" not in groups
    assert {"/feature_projection/", "/encoder/layers.0/attention/", "/encoder/layers.0/feed_forward/",
            "/lm_head/"} <= set(groups)
    one = "/encoder/layers.0/feed_forward/"
    dst = quantize_int8(mm, tmp_path / "one.onnx", ("MatMul",), per_channel=True,
                        exclude_prefixes=INT8_MM_FLOAT_NODES + tuple(g for g in groups if g != one))
    quantised = [n.name for n in onnx.load(str(dst)).graph.node if n.op_type == "MatMulInteger"]
    assert quantised and all(name.startswith(one) for name in quantised)
    ok = {"wer_vs_fp32": 0.01, "label_wer_move": -0.002}
    assert int8_study.meets_goal(ok) and not int8_study.meets_goal(dict(ok, wer_vs_fp32=0.0101))
    assert not int8_study.meets_goal(dict(ok, label_wer_move=0.0021))
