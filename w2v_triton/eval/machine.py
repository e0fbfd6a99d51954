"""The machine a figure was measured on, named the same way by benchmarks and builders.

Why here: results files are filed under benchmarks/results/<machine name>/, and the builders that
write results (student, distillation reports) name the machine exactly as the benchmarks do.
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path


def gpu_name() -> str:
    """e.g. gpu-nvidia-h200: the first CUDA device, filesystem-safe."""
    import torch

    return "gpu-" + re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-")


def machine_name() -> str:
    """e.g. cpu-2core-intel-xeon-platinum-8481c: cores and CPU model, filesystem-safe."""
    model = platform.processor() or "cpu"
    try:
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = found.group(1) if found else model
    except OSError:
        pass
    model = re.sub(r"\(r\)|\(tm\)|cpu|@.*$", "", model.lower())
    return f"cpu-{os.cpu_count()}core-" + re.sub(r"[^a-z0-9]+", "-", model).strip("-")


def utc_now() -> str:
    """The date results files carry, e.g. 2026-12-06 20:30 UTC."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def load_average(digits: int = 2) -> list[float]:
    """The 1/5/15-minute load averages, rounded: results files carry them because this machine is
    shared and its timings move with what else runs."""
    return [round(x, digits) for x in os.getloadavg()]
