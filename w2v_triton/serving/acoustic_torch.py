"""The acoustic model's PyTorch runtime: the checkpoint run as the exported graph is.

Why: a GPU machine may have CUDA PyTorch but no onnxruntime-gpu or TensorRT. This runs the same
length-aware network that is exported to ONNX (masked_frontend.LengthAwareCTC: (audio, lengths)
-> (logits, frames), exact padded batches), so transcripts equal the ONNX runtime's. On a GPU the
encoder runs under float16/bfloat16 autocast; the conv front-end and its masked norms stay in
float32 (their sums over minutes of frames would overflow float16). Imported only when a
repository selects RUNTIME=torch: the onnxruntime path needs neither torch nor transformers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from w2v_triton.serving.devices import DeviceUnavailable
from w2v_triton.serving.typing import AnyArray


def resolve_dtype(torch_dtype: str, device: str) -> torch.dtype:
    """`auto` is float16 on a GPU and float32 on a CPU."""
    if torch_dtype == "auto":
        torch_dtype = "float16" if device == "gpu" else "float32"
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[torch_dtype]


class TorchRunner:
    """(audio [B, N], lengths [B]) -> (logits [B, T, V], frames [B]) with PyTorch on CPU or CUDA."""

    batch_coupled = False   # every row is computed from its own samples only

    def __init__(self, checkpoint: Path, device: str = "cpu", torch_dtype: str = "auto",
                 intra_op_threads: int = 0, device_id: int = 0) -> None:
        from w2v_triton.serving.ctc_model import load_ctc_weights
        from w2v_triton.serving.masked_frontend import LengthAwareCTC

        if device == "gpu" and not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"DEVICE=gpu, but PyTorch {torch.__version__} sees no CUDA device: install a CUDA build of "
                "torch on a machine with an NVIDIA GPU, or build with DEVICE=cpu")
        if intra_op_threads:
            torch.set_num_threads(intra_op_threads)
        self.device = torch.device(f"cuda:{device_id}" if device == "gpu" else "cpu")
        self.dtype = resolve_dtype(torch_dtype, device)
        self.model = LengthAwareCTC(load_ctc_weights(checkpoint)).eval().to(self.device)
        self.provider = f"torch:{self.device}:{str(self.dtype).removeprefix('torch.')}"

    def __call__(self, audio: AnyArray, lengths: AnyArray) -> tuple[AnyArray, AnyArray]:
        audio_t = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).to(self.device)
        lengths_t = torch.from_numpy(lengths.astype(np.int64, copy=False)).to(self.device)
        half = self.dtype != torch.float32
        with torch.inference_mode():
            features, frames = self.model.features(audio_t, lengths_t)        # float32 front-end
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=half):
                logits = self.model.encode(features, frames)
        return logits.float().cpu().numpy(), frames.cpu().numpy()

    def release(self) -> None:
        """Nothing of its own: PyTorch's CPU tensors are malloc's (AcousticModel trims the heap).
        CUDA's caching allocator keeps its blocks (not measured on a GPU yet)."""
