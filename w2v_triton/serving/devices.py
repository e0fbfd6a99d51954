"""Devices the acoustic model runs on, and the one error for a device that is not there.

Why a module of its own: both runtimes (onnxruntime in acoustic.py, PyTorch in acoustic_torch.py)
refuse a GPU that is asked for and absent the same way, and neither imports the other.
"""
from __future__ import annotations

DEVICES = ("cpu", "gpu")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


class DeviceUnavailable(RuntimeError):
    """The device asked for is not there (e.g. DEVICE=gpu without a GPU runtime): the load fails."""


def onnx_providers(device: str, available: list[str], device_id: int = 0) -> list[str | tuple[str, dict[str, str]]]:
    """Execution providers for `device`: CPU, or the GPU providers onnxruntime offers (TensorRT
    first) with CPU after them for the ops they do not cover."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if not gpu:
        raise DeviceUnavailable(
            f"DEVICE=gpu, but onnxruntime here offers only {', '.join(available)}: install onnxruntime-gpu "
            "on a machine with an NVIDIA GPU, build with RUNTIME=torch (CUDA PyTorch), or build with DEVICE=cpu")
    return [(p, {"device_id": str(device_id)}) for p in gpu] + ["CPUExecutionProvider"]
