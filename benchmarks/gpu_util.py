"""GPU utilisation while one measurement runs: nvidia-smi sampled in the background.

Why: Triton's per-model times say where a request waits; the GPU's busy fraction says whether the
acoustic model's GPU is the limit (near 100 %) or is starved by the CPU-side models and the
python-backend hops (far below), which is the question a served figure far below the raw
acoustic model's asks (docs/gpu.md). Where nvidia-smi is absent the sampler records nothing.
"""
from __future__ import annotations

import shutil
import subprocess
from types import TracebackType

QUERY = "utilization.gpu,memory.used"


class GpuSampler:
    """`with GpuSampler() as gpu: ...` then `gpu.summary()`: mean / max utilisation (%) and the
    peak memory used (MiB) of GPU `index` over the block, or None without nvidia-smi or samples."""

    def __init__(self, interval_ms: int = 200, index: int = 0, binary: str = "nvidia-smi") -> None:
        self.command = [binary, f"--query-gpu={QUERY}", "--format=csv,noheader,nounits",
                        f"--loop-ms={interval_ms}", f"--id={index}"]
        self.available = shutil.which(binary) is not None
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def __enter__(self) -> "GpuSampler":
        if self.available:
            self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                            text=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.process is not None:
            self.process.terminate()
            output, _ = self.process.communicate(timeout=10)
            self.lines = output.splitlines()

    def summary(self) -> dict[str, float | int] | None:
        samples = []
        for line in self.lines:
            try:
                util, memory = (float(v) for v in line.split(","))
            except ValueError:      # a partial last line, "[N/A]"
                continue
            samples.append((util, memory))
        if not samples:
            return None
        utils = [u for u, _ in samples]
        return {"gpu_util_mean": round(sum(utils) / len(utils), 1), "gpu_util_max": max(utils),
                "gpu_mem_used_mib_max": max(m for _, m in samples), "gpu_samples": len(samples)}
