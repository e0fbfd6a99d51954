"""FLOPs of an acoustic model per second of audio (evaluation only; serving never imports this).

Counted by `torch.utils.flop_counter.FlopCounterMode` on one forward pass of a fixed-length
input (default 10 s at 16 kHz, batch 1, eval mode, no grad): matmuls, convolutions and
attention, 2 FLOPs per multiply-add. Element-wise work (norms, GELU, softmax) is not counted;
on these models it is a few per cent of the total.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from w2v_triton.serving.spec import SAMPLE_RATE


def module_flops(model: torch.nn.Module, seconds: float = 10.0,
                 sample_rate: int = SAMPLE_RATE) -> tuple[int, dict[str, int]]:
    """(total FLOPs, FLOPs per module name) of one eval-mode forward pass on `seconds` of (random)
    audio, batch 1. Module names are FlopCounterMode's ("Global", then dotted submodule paths)."""
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    was_training = model.training
    model.eval()
    x = torch.randn(1, round(seconds * sample_rate), generator=torch.Generator().manual_seed(0))
    param = next(model.parameters(), None)
    if param is not None:
        x = x.to(device=param.device, dtype=param.dtype)
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    per_module = {name: int(sum(ops.values())) for name, ops in counter.get_flop_counts().items()}
    return int(counter.get_total_flops()), per_module


def count_flops(model: torch.nn.Module, seconds: float = 10.0, sample_rate: int = SAMPLE_RATE) -> int:
    """FLOPs of one eval-mode forward pass on `seconds` of (random) audio, batch 1."""
    return module_flops(model, seconds, sample_rate)[0]


def flops_per_audio_second(model: torch.nn.Module, seconds: float = 10.0, sample_rate: int = SAMPLE_RATE) -> float:
    """FLOPs per second of audio, measured on a `seconds`-long input."""
    return count_flops(model, seconds, sample_rate) / float(seconds)
