"""w2v_triton.serving.image: which extras a repository needs, and the load-time import closure the
server image's import check follows (computed from the model.py files, not listed)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from w2v_triton.serving import image

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted((ROOT / "model_repository").glob("*/1/model.py"))


def info(**options) -> dict:
    return {"options": {"platform": "python", "runtime": "onnxruntime", "device": "cpu", "openvino_ir": False,
                        "decoder": {"mode": "greedy", "backend": "flashlight", "lm_path": ""}, **options}}


@pytest.mark.parametrize("options, extras", [
    ({}, {"serve-base", "serve"}),
    ({"device": "gpu"}, {"serve-base", "serve-gpu"}),
    ({"runtime": "torch"}, {"serve-base", "torch"}),
    ({"runtime": "torch", "device": "gpu"}, {"serve-base", "torch"}),
    ({"runtime": "openvino", "openvino_ir": True}, {"serve-base", "openvino"}),
    ({"platform": "onnxruntime_onnx"}, {"serve-base"}),   # Triton's own onnxruntime backend (NGC)
])
def test_required_extras(options, extras):
    assert set(image.required_extras(info(**options))) == extras


def test_every_declared_extra_is_a_pyproject_extra():
    graph = image.declared_extras()
    named = set(image.RUNTIME_EXTRAS["onnxruntime"].values()) | {image.DECODER_EXTRA}
    named |= {e for by_device in image.RUNTIME_EXTRAS.values() for e in by_device.values()}
    named |= {e for extras in image.IMAGE_EXTRAS.values() for e in extras}
    assert named <= set(graph)
    assert image.covered(["serve"], graph) == {"serve", "serve-base"}
    assert image.served_runtimes("cpu", graph) == image.served_runtimes("gpu", graph) == {"onnxruntime"}


@pytest.mark.parametrize("variant, options, ok", [
    ("cpu", {}, True),
    ("cpu", {"decoder": {"mode": "beam", "backend": "flashlight", "lm_path": "lm.bin"}}, True),
    ("cpu", {"decoder": {"mode": "beam", "backend": "pyctcdecode", "lm_path": "lm.arpa"}}, True),
    ("gpu", {"device": "gpu"}, True),
    ("gpu", {}, False),                          # a CPU onnxruntime repository needs the extra serve
    ("cpu", {"device": "gpu"}, False),
    ("cpu", {"runtime": "torch"}, False),
    ("gpu", {"runtime": "openvino"}, False),
])
def test_check_repository(tmp_path, variant, options, ok):
    (tmp_path / image.BUILD_INFO).write_text(json.dumps(info(**options)))
    problem = image.check_repository(tmp_path / image.BUILD_INFO, None, variant)
    assert (problem == "") == ok, problem
    if not ok:
        assert problem.startswith(f"the {variant} server image (extras ") and "\n" not in problem


def test_check_repository_without_or_with_a_broken_build_info(tmp_path):
    assert "is missing: build the repository" in image.check_repository(tmp_path / image.BUILD_INFO, None, "cpu")
    assert "build_info.json" in image.check_repository(None, "not json", "cpu")
    assert "no build options" in image.check_repository(None, "{}", "cpu")


def test_imports_of_skips_type_checking_and_optional_imports():
    source = """
from typing import TYPE_CHECKING
import numpy
if TYPE_CHECKING:
    import torch
try:
    import tensorrt
except ImportError:
    tensorrt = None
def load():
    from flashlight.lib.text.decoder import Trie
    from .arpa import read
"""
    found = [module for module, _ in image.imports_of(source, "w2v_triton.serving.lm")]
    assert found == ["typing", "numpy", "flashlight.lib.text.decoder", "w2v_triton.serving.lm.arpa"]


def test_the_image_closure_is_what_the_onnxruntime_flavours_load():
    closure = image.load_closure(MODELS, {"onnxruntime"})
    for module in ("w2v_triton.serving.acoustic", "w2v_triton.serving.ctc_flashlight", "w2v_triton.serving.streaming",
                   "w2v_triton.serving.lm.arpa", "w2v_triton.serving.audio"):
        assert module in closure.own, module
    assert {"flashlight.lib.text.decoder", "pyctcdecode.decoder", "kenlm", "onnxruntime", "onnx", "soundfile",
            "soxr", "filetype", "numpy"} <= set(closure.external)
    # other runtimes' modules, type-checking imports and the in-process config reader stay out
    assert not {"w2v_triton.serving.acoustic_torch", "w2v_triton.serving.acoustic_openvino",
                "w2v_triton.serving.pipeline"} & set(closure.own)
    assert not {m for m in closure.external if m.split(".")[0] in ("torch", "openvino", "tritonclient", "google")}
    with_torch = image.load_closure(MODELS, {"onnxruntime", "torch"})
    assert "w2v_triton.serving.acoustic_torch" in with_torch.own and "torch" in with_torch.external


def test_check_imports_names_a_module_that_does_not_import(tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "model.py").write_text(
        "import triton_python_backend_utils\nfrom w2v_triton.serving import spec\nimport no_such_package_xyz\n")
    (failure,) = image.check_imports("cpu", tmp_path)
    assert failure.startswith("no_such_package_xyz (imported by ") and "ModuleNotFoundError" in failure
    assert image.check_imports("cpu", tmp_path / "empty") == [f"no model.py files under {tmp_path / 'empty'}/*/1/: "
                                                              "nothing to check"]
