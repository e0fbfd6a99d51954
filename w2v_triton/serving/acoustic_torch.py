"""The acoustic model's PyTorch runtime: the checkpoint run as the exported graph is.

Why: a GPU machine may have CUDA PyTorch but no onnxruntime-gpu or TensorRT. This runs the same
length-aware network that is exported to ONNX (masked_frontend.LengthAwareCTC: (audio, lengths)
-> (logits, frames), exact padded batches), so transcripts equal the ONNX runtime's. On a GPU the
encoder runs under float16/bfloat16 autocast; the conv front-end and its masked norms stay in
float32 (their sums over minutes of frames would overflow float16). Imported only when a
repository selects RUNTIME=torch: the onnxruntime path needs neither torch nor transformers.

`compile_mode` runs the network through torch.compile (`reduce-overhead`: CUDA graphs as well), for
GPUs where per-kernel launch overhead, not arithmetic, bounds small batches. A compiled model pays
for every new input shape (a recompile, a graph recording), so its batches are padded to a few
shapes (`quantize_batch`), which the length-aware network keeps exact.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from w2v_triton.serving.devices import DeviceUnavailable
from w2v_triton.serving.typing import AnyArray

SHAPE_QUANTUM_SAMPLES = 16_000   # compiled runs: audio padded to whole seconds, batches to powers of two


def resolve_dtype(torch_dtype: str, device: str) -> torch.dtype:
    """`auto` is float16 on a GPU and float32 on a CPU."""
    if torch_dtype == "auto":
        torch_dtype = "float16" if device == "gpu" else "float32"
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[torch_dtype]


def quantize_batch(audio: AnyArray, lengths: AnyArray, quantum: int = SHAPE_QUANTUM_SAMPLES
                   ) -> tuple[AnyArray, AnyArray]:
    """[B, N] -> [the next power of two >= max(B, 2), the next multiple of `quantum` >= N]: extra
    samples are zero padding (outside every row's length, so the masked front-end ignores them),
    extra rows repeat row 0 (real audio, no empty rows) and are dropped by the caller. Never one
    row: dynamo specialises a dimension of size 1, which would cost a second compile."""
    rows = max(2, 1 << (len(audio) - 1).bit_length())
    samples = -(-audio.shape[1] // quantum) * quantum
    padded = np.zeros((rows, samples), dtype=np.float32)
    padded[: len(audio), : audio.shape[1]] = audio
    padded[len(audio):, : audio.shape[1]] = audio[0]
    return padded, np.concatenate([lengths, np.repeat(lengths[:1], rows - len(audio))])


class TorchRunner:
    """(audio [B, N], lengths [B]) -> (logits [B, T, V], frames [B]) with PyTorch on CPU or CUDA."""

    batch_coupled = False   # every row is computed from its own samples only

    def __init__(self, checkpoint: Path, device: str = "cpu", torch_dtype: str = "auto",
                 intra_op_threads: int = 0, device_id: int = 0, compile_mode: str = "") -> None:
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
        self.compile_mode = compile_mode
        self.network = torch.compile(self._forward, mode=compile_mode, dynamic=True) if compile_mode \
            else self._forward
        self.provider = f"torch:{self.device}:{str(self.dtype).removeprefix('torch.')}" + \
            (f":compiled-{compile_mode}" if compile_mode else "")

    def _forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, frames = self.model.features(audio, lengths)        # float32 front-end
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            logits = self.model.encode(features, frames)
        return logits.float(), frames

    def __call__(self, audio: AnyArray, lengths: AnyArray) -> tuple[AnyArray, AnyArray]:
        rows = len(audio)
        if self.compile_mode:
            audio, lengths = quantize_batch(audio, lengths)
        audio_t = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).to(self.device)
        lengths_t = torch.from_numpy(lengths.astype(np.int64, copy=False)).to(self.device)
        with torch.inference_mode():
            logits, frames = self.network(audio_t, lengths_t)
            # copied out at once: a CUDA graph's outputs are overwritten by its next replay
            return logits[:rows].cpu().numpy(), frames[:rows].cpu().numpy()

    def release(self) -> None:
        """Nothing of its own: PyTorch's CPU tensors are malloc's (AcousticModel trims the heap).
        CUDA's caching allocator keeps its blocks (not measured on a GPU yet)."""
