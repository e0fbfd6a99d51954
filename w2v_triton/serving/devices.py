"""Devices the acoustic model runs on, and the one error for a device that is not there.

Why a module of its own: both runtimes (onnxruntime in acoustic.py, PyTorch in acoustic_torch.py)
refuse a GPU that is asked for and absent the same way, and neither imports the other. The CPU's
int8 instructions are here too: the int8 builder and the acoustic model both ask.
"""
from __future__ import annotations

from pathlib import Path

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


# x86 flags with an int8 dot product that accumulates in 32 bits (AVX512-VNNI, AVX-VNNI, AMX)
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The first CPU's feature flags; None where /proc/cpuinfo has none (not Linux x86)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return None


def int8_saturates(flags: frozenset[str] | None = None) -> bool:
    """True on an x86 CPU without VNNI: there onnxruntime's u8 x s8 kernels multiply-add pairs into
    16 bits (vpmaddubsw), which saturates with full 8-bit weights; 7-bit weights (`reduce_range`)
    avoid it. Measured on an AVX2-only EPYC (2026-12-07): the tiny model's int8 logits moved 0.045
    from fp32 with 8-bit weights, 0.008 with 7-bit (0.006 with 8-bit on AVX512-VNNI)."""
    flags = cpu_flags() if flags is None else flags
    return flags is not None and "avx2" in flags and not flags & VNNI_FLAGS
