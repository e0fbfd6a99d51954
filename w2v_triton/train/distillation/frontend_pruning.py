"""Narrow a wav2vec2 conv front-end by keeping its most important channels (structured pruning).

Why: the seven 512-channel conv layers are about half of a 6-layer base student's compute, and
on a CPU they cap its speed (docs/optimization.md: int8-mm 29.8 -> 46.3 x real time with 256
channels). A narrower front-end cannot copy the teacher's tensors whole; starting it from the
teacher's strongest channels (rather than a fresh init) keeps most of what the teacher computes,
and distillation (`builders/distill.py --conv-channels N`, with a hidden-state loss on the
encoder input, `--layer-map 0:0,...`) recovers the rest.

Importance of output channel c of conv layer i = how strongly it leaves the layer (|gamma_c| of
the layer's norm when it has a per-channel affine norm, else the L2 norm of its filter W_i[c])
x how strongly the next layer reads it (L2 norm of W_{i+1}[:, c, :]; after the last conv layer,
the feature projection's column c scaled by its layer norm's gamma_c). Channels are chosen layer
by layer on the teacher's weights; the kept ones keep their order.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Sequence

import torch
from transformers import Wav2Vec2ForCTC

_CONV = re.compile(r"^\w+\.feature_extractor\.conv_layers\.(?P<i>\d+)\.(?P<part>conv|layer_norm)\.(?P<p>weight|bias)$")
_PROJ_NORM = ("feature_projection.layer_norm.weight", "feature_projection.layer_norm.bias")
_PROJ = "feature_projection.projection.weight"


def _norm_scale(layer: torch.nn.Module) -> torch.Tensor | None:
    """|gamma| of the layer's per-channel affine norm (GroupNorm with one group per channel, or
    LayerNorm over channels); None when the layer has no such norm."""
    norm = getattr(layer, "layer_norm", None)
    if norm is None or getattr(norm, "weight", None) is None:
        return None
    if isinstance(norm, torch.nn.GroupNorm) and norm.num_groups != norm.num_channels:
        return None
    scale: torch.Tensor = norm.weight.detach().abs()
    return scale


def conv_channel_importance(model: Wav2Vec2ForCTC) -> list[torch.Tensor]:
    """One importance score per output channel of every conv layer (see the module docstring)."""
    base = getattr(model, model.base_model_prefix)
    layers = base.feature_extractor.conv_layers
    projection = base.feature_projection
    scores = []
    for i, layer in enumerate(layers):
        weight = layer.conv.weight.detach()                   # [C_out, C_in, k]
        out_strength = _norm_scale(layer)
        if out_strength is None:
            out_strength = weight.flatten(1).norm(dim=1)
        if i + 1 < len(layers):
            read_strength = layers[i + 1].conv.weight.detach().transpose(0, 1).flatten(1).norm(dim=1)
        else:
            read_strength = projection.projection.weight.detach().norm(dim=0)
            if getattr(projection, "layer_norm", None) is not None:   # HuBERT may have none
                read_strength = read_strength * projection.layer_norm.weight.detach().abs()
        scores.append(out_strength * read_strength)
    return scores


def select_channels(model: Wav2Vec2ForCTC, widths: Sequence[int]) -> list[torch.Tensor]:
    """Sorted indices of the `widths[i]` most important channels of each conv layer."""
    scores = conv_channel_importance(model)
    if len(widths) != len(scores):
        raise ValueError(f"{len(widths)} widths for {len(scores)} conv layers")
    kept = []
    for i, (score, width) in enumerate(zip(scores, widths, strict=True)):
        if not 1 <= int(width) <= score.numel():
            raise ValueError(f"conv layer {i}: width {width} must be in 1..{score.numel()} (pruning cannot widen)")
        kept.append(torch.sort(torch.topk(score, int(width)).indices).values)
    return kept


def _sliced(key: str, tensor: torch.Tensor, kept: list[torch.Tensor]) -> torch.Tensor:
    """The teacher tensor `key` restricted to the kept channels (unchanged if it has none)."""
    m = _CONV.match(key)
    if m:
        i = int(m["i"])
        tensor = tensor.index_select(0, kept[i])
        if m["part"] == "conv" and m["p"] == "weight" and i > 0:
            tensor = tensor.index_select(1, kept[i - 1])
        return tensor
    if key.endswith(_PROJ_NORM):
        return tensor.index_select(0, kept[-1])
    if key.endswith(_PROJ):
        return tensor.index_select(1, kept[-1])
    return tensor


def prune_frontend(model: Wav2Vec2ForCTC, widths: int | Sequence[int]) -> tuple[Wav2Vec2ForCTC, list[list[int]]]:
    """A copy of `model` whose conv layers keep `widths` channels each (one int: every layer).
    Returns (pruned model, kept channel indices per layer). Everything else is copied unchanged."""
    n_layers = len(model.config.conv_dim)
    widths = [int(widths)] * n_layers if isinstance(widths, int) else [int(w) for w in widths]
    kept = select_channels(model, widths)
    config = copy.deepcopy(model.config)
    config.conv_dim = list(widths)
    pruned = type(model)(config)
    source = model.state_dict()
    state = {}
    for key, target in pruned.state_dict().items():
        tensor = _sliced(key, source[key], kept)
        if tensor.shape != target.shape:
            raise ValueError(f"{key}: pruned shape {tuple(tensor.shape)} != {tuple(target.shape)}")
        state[key] = tensor.detach().clone()
    pruned.load_state_dict(state, strict=True)
    pruned.train(model.training)
    return pruned, [k.tolist() for k in kept]
