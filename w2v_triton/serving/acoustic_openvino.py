"""The acoustic model's OpenVINO runtime: the same length-aware graph, compiled by OpenVINO's CPU plugin.

Why: on this project's AVX512-BF16 CPU, OpenVINO runs the base-size student's transformer faster
than onnxruntime int8-mm, in bf16 (inference precision hint) or as an NNCF-calibrated int8 IR
(docs/optimization.md, "OpenVINO"). It reads the exported fp32 `model.onnx` (f32 or bf16) or an
IR (`model.xml` + `model.bin`, e.g. the ov-int8 variant); inputs and outputs are the spec's
(AUDIO, AUDIO_LENGTHS) -> (LOGITS, LOGIT_LENGTHS), both axes dynamic. Imported only when a
repository selects RUNTIME=openvino.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from w2v_triton.serving import spec
from w2v_triton.serving.batch_coupling import batch_coupled
from w2v_triton.serving.typing import AnyArray

PRECISIONS = ("f32", "bf16")       # INFERENCE_PRECISION_HINT; an int8 IR runs its quantised ops in int8


class OpenVinoUnavailable(RuntimeError):
    """RUNTIME=openvino where the openvino package is not installed."""


class OpenVinoRunner:
    """(audio [B, N], lengths [B]) -> (logits [B, T, V], frames [B]) with OpenVINO on the CPU."""

    def __init__(self, model_path: Path, precision: str = "f32", intra_op_threads: int = 0) -> None:
        model_path = Path(model_path)
        if precision not in PRECISIONS:
            raise ValueError(f"openvino precision {precision!r}: expected one of {PRECISIONS}")
        if model_path.suffix == ".xml" and not model_path.with_suffix(".bin").is_file():
            raise FileNotFoundError(f"OpenVINO IR weights {model_path.with_suffix('.bin')} are missing next to "
                                    f"{model_path.name}: rebuild the repository (`make build-models RUNTIME=openvino`)")
        try:
            import openvino as ov
        except ImportError:
            raise OpenVinoUnavailable("RUNTIME=openvino, but the openvino package is not installed "
                                      "(the extra openvino: make venv)") from None
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
                                  "NUM_STREAMS": 1,
                                  # like onnxruntime's threads: not pinned to cores that Triton's other
                                  # models (preprocessor, decoder, other instances) share
                                  "ENABLE_CPU_PINNING": False}
        if intra_op_threads:
            config["INFERENCE_NUM_THREADS"] = intra_op_threads
        self.compiled = ov.Core().compile_model(str(model_path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.logits, self.frames = self.compiled.output(spec.LOGITS), self.compiled.output(spec.LOGIT_LENGTHS)
        self.provider = f"openvino:CPU:{self.compiled.get_property('INFERENCE_PRECISION_HINT')}"
        # an IR (float, or NNCF's static int8) computes each row from its own samples; an ONNX file may
        # be an onnxruntime dynamic-int8 variant, whose rows depend on the batch: ask the file
        self.batch_coupled = model_path.suffix == ".onnx" and batch_coupled(model_path)

    def __call__(self, audio: AnyArray, lengths: AnyArray) -> tuple[AnyArray, AnyArray]:
        out = self.request.infer({spec.AUDIO: audio.astype(np.float32, copy=False),
                                  spec.AUDIO_LENGTHS: lengths.astype(np.int64, copy=False)})
        # the request reuses its output buffers on the next call: copy
        return np.array(out[self.logits], copy=True), np.array(out[self.frames], copy=True)

    def release(self) -> None:
        """Free the intermediate buffers the CPU plugin keeps for the largest shape it has run."""
        self.compiled.release_memory()
