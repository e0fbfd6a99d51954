"""Narrow a wav2vec2 transformer (hidden size, attention heads, FFN width) by structured pruning.

Why: after layer dropping and front-end pruning the transformer's matmuls are what is left of a
student's compute, and they scale with width squared. A narrower student cannot copy the
teacher's tensors whole; starting from the teacher's most important heads, FFN neurons and
residual-stream dimensions keeps much of what it computes, and distillation (with a prediction
head per hidden-state pair, `losses.DistillLoss`) recovers the rest.

What is kept (importance from the teacher's weights only, no data):
- residual-stream dimensions: ONE subset used everywhere the stream is read or written — the
  feature projection's output rows, the positional conv embedding (in and out channels), every
  layer's q/k/v input columns and out_proj output rows, every layer norm, the FFN's input
  columns and output rows, the encoder layer norm, masked_spec_embed and the CTC head's input
  columns. Importance of dimension d = sum over those tensors of the share of the tensor's
  energy (squared L2 norm of row/column d) it carries (each tensor normalised to sum 1, so big
  matrices do not drown the norms). The positional conv is grouped (`groups` G, channel c in
  group c // (H/G) reads only its own group), so the same number of dimensions, H'/G, is kept
  in every group, and G stays;
- attention heads (per layer): importance of head h = ||W_v rows of h|| x ||W_out columns of
  h|| (what the head can write into the stream); head_dim is unchanged, so the student has
  hidden'/head_dim heads and the attention scaling stays exact;
- FFN neurons (per layer): ||W_in row n|| x ||W_out column n||.

Kept indices keep their order. Keeping everything reproduces the teacher bit for bit (tested);
with dimensions dropped the layer norms' statistics change, so the result must be distilled.
"""
from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from typing import Any

import torch
from transformers import Wav2Vec2ForCTC

log = logging.getLogger(__name__)

_LAYER = re.compile(r"^(?P<pre>.*\.encoder\.layers\.)(?P<i>\d+)\.(?P<rest>.+)$")
_POS_G = ("pos_conv_embed.conv.parametrizations.weight.original0", "pos_conv_embed.conv.weight_g")
# top-level vectors along the residual stream (matched by name: a size test would also catch,
# e.g., the CTC head's bias when the vocabulary happens to be as large as the hidden size)
_STREAM_VECTORS = ("masked_spec_embed", "feature_projection.projection.bias", "pos_conv_embed.conv.bias",
                   "encoder.layer_norm.weight", "encoder.layer_norm.bias")
_POS_V = ("pos_conv_embed.conv.parametrizations.weight.original1", "pos_conv_embed.conv.weight_v")


@dataclass(frozen=True)
class TransformerWidth:
    """A student transformer's width; head_dim (hidden / heads) must equal the teacher's."""
    hidden_size: int
    num_attention_heads: int
    intermediate_size: int


def teacher_width(config: Any) -> TransformerWidth:
    return TransformerWidth(int(config.hidden_size), int(config.num_attention_heads), int(config.intermediate_size))


def width_for(config: Any, hidden_size: int | None = None, num_attention_heads: int | None = None,
              intermediate_size: int | None = None) -> TransformerWidth:
    """Check and complete a requested width against the teacher `config`: heads default to
    hidden / the teacher's head_dim; FFN defaults to the teacher's FFN scaled like hidden.
    Raises ValueError for widths structured pruning cannot produce."""
    t = teacher_width(config)
    head_dim, rem = divmod(t.hidden_size, t.num_attention_heads)
    if rem:
        raise ValueError(f"teacher hidden {t.hidden_size} is not divisible by its {t.num_attention_heads} heads")
    hidden = t.hidden_size if hidden_size is None else int(hidden_size)
    if num_attention_heads is None:
        if hidden % head_dim:
            raise ValueError(f"hidden size {hidden} is not a multiple of the teacher's head size {head_dim} "
                             f"({t.hidden_size} / {t.num_attention_heads} heads): whole heads are kept")
        heads = hidden // head_dim
    else:
        heads = int(num_attention_heads)
    ffn = (t.intermediate_size * hidden // t.hidden_size) if intermediate_size is None else int(intermediate_size)
    if not 1 <= hidden <= t.hidden_size:
        raise ValueError(f"hidden size must be in 1..{t.hidden_size} (pruning cannot widen), got {hidden}")
    if not 1 <= heads <= t.num_attention_heads:
        raise ValueError(f"attention heads must be in 1..{t.num_attention_heads}, got {heads}")
    if heads * head_dim != hidden:
        raise ValueError(f"{heads} heads x head size {head_dim} = {heads * head_dim} != hidden size {hidden}: "
                         f"whole heads are kept, so hidden must be heads x {head_dim}")
    if not 1 <= ffn <= t.intermediate_size:
        raise ValueError(f"FFN width must be in 1..{t.intermediate_size}, got {ffn}")
    groups = int(getattr(config, "num_conv_pos_embedding_groups", 1) or 1)
    if hidden % groups:
        raise ValueError(f"hidden size {hidden} is not divisible by the positional conv's {groups} groups "
                         f"(the same number of dimensions is kept in every group)")
    return TransformerWidth(hidden, heads, ffn)


def _energy(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Share of the squared L2 norm carried by each index along `dim` (sums to 1)."""
    x = t.detach().float()
    e = x.pow(2).sum(dim=[d for d in range(x.dim()) if d != dim]) if x.dim() > 1 else x.pow(2)
    return e / e.sum().clamp_min(1e-30)


def _pos_conv_weight(state: dict[str, torch.Tensor]) -> tuple[str | None, torch.Tensor | None]:
    for key, t in state.items():
        if key.endswith(_POS_V) or key.endswith("pos_conv_embed.conv.weight"):
            return key, t
    return None, None


def residual_importance(model: Wav2Vec2ForCTC) -> torch.Tensor:
    """One score per residual-stream dimension (see the module docstring)."""
    H = int(model.config.hidden_size)
    score = torch.zeros(H)
    for key, t in model.state_dict().items():
        if not t.is_floating_point():
            continue
        if key.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "intermediate_dense.weight",
                         "lm_head.weight")):
            score += _energy(t, 1)                           # reads the stream: columns
        elif key.endswith(("out_proj.weight", "output_dense.weight", "feature_projection.projection.weight")):
            score += _energy(t, 0)                           # writes the stream: rows
        elif key.endswith(("layer_norm.weight", "final_layer_norm.weight")) and t.dim() == 1 and t.numel() == H \
                and ".feature_extractor." not in key and "feature_projection" not in key:
            score += _energy(t, 0)
    _, pos = _pos_conv_weight(model.state_dict())
    if pos is not None:
        score += _energy(pos, 0)                             # output channels (grouped input: see prune)
    return score


def select_residual_dims(model: Wav2Vec2ForCTC, hidden: int) -> torch.Tensor:
    """The `hidden` most important residual dimensions, the same count in every pos-conv group."""
    H = int(model.config.hidden_size)
    groups = int(getattr(model.config, "num_conv_pos_embedding_groups", 1) or 1)
    per_group, new_per_group = H // groups, hidden // groups
    score = residual_importance(model)
    kept = []
    for g in range(groups):
        local = score[g * per_group:(g + 1) * per_group]
        kept.append(torch.topk(local, new_per_group).indices + g * per_group)
    return torch.sort(torch.cat(kept)).values


def select_heads(layer: Any, heads: int, head_dim: int) -> torch.Tensor:
    attn = layer.attention
    n = attn.v_proj.weight.shape[0] // head_dim
    v = attn.v_proj.weight.detach().float().reshape(n, head_dim, -1).pow(2).sum(dim=(1, 2)).sqrt()
    o = attn.out_proj.weight.detach().float().reshape(-1, n, head_dim).pow(2).sum(dim=(0, 2)).sqrt()
    return torch.sort(torch.topk(v * o, heads).indices).values


def select_neurons(layer: Any, width: int) -> torch.Tensor:
    ff = layer.feed_forward
    score = ff.intermediate_dense.weight.detach().float().norm(dim=1) * ff.output_dense.weight.detach().float().norm(dim=0)
    return torch.sort(torch.topk(score, width).indices).values


def _head_rows(heads: torch.Tensor, head_dim: int) -> torch.Tensor:
    return (heads[:, None] * head_dim + torch.arange(head_dim)[None, :]).reshape(-1)


def prune_width(model: Wav2Vec2ForCTC, width: TransformerWidth) -> tuple[Wav2Vec2ForCTC, dict[str, Any]]:
    """A copy of `model` whose transformer has `width` (see `width_for`), initialised from the
    teacher's most important dimensions, heads and neurons. Returns (pruned, kept indices:
    {"residual_dims": [...], "heads": [[...] per layer], "ffn_neurons": [[...] per layer]})."""
    cfg = model.config
    width = width_for(cfg, width.hidden_size, width.num_attention_heads, width.intermediate_size)
    if getattr(cfg, "add_adapter", False):
        raise ValueError("width pruning does not handle an adapter after the encoder (add_adapter=True)")
    head_dim = int(cfg.hidden_size) // int(cfg.num_attention_heads)
    base = getattr(model, model.base_model_prefix)
    dims = select_residual_dims(model, width.hidden_size)
    heads = [select_heads(layer, width.num_attention_heads, head_dim) for layer in base.encoder.layers]
    neurons = [select_neurons(layer, width.intermediate_size) for layer in base.encoder.layers]

    config = copy.deepcopy(cfg)
    config.hidden_size = width.hidden_size
    config.num_attention_heads = width.num_attention_heads
    config.intermediate_size = width.intermediate_size
    if getattr(config, "output_hidden_size", None) == cfg.hidden_size:
        config.output_hidden_size = width.hidden_size
    pruned = type(model)(config)
    H = int(cfg.hidden_size)
    groups = int(getattr(cfg, "num_conv_pos_embedding_groups", 1) or 1)
    # input channels of the grouped pos conv: within-group positions of the kept dims (the
    # same count in every group; group g keeps dims[g*k:(g+1)*k], all inside group g)
    k = width.hidden_size // groups
    in_group = (dims.reshape(groups, k) - (torch.arange(groups) * (H // groups))[:, None])

    source = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for key, target in pruned.state_dict().items():
        t = source[key]
        m = _LAYER.match(key)
        if m is not None:
            i, rest = int(m["i"]), m["rest"]
            rows = _head_rows(heads[i], head_dim)
            if rest.startswith("attention.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                t = t.index_select(0, rows)
                if rest.endswith("weight"):
                    t = t.index_select(1, dims)
            elif rest == "attention.out_proj.weight":
                t = t.index_select(0, dims).index_select(1, rows)
            elif rest == "feed_forward.intermediate_dense.weight":
                t = t.index_select(0, neurons[i]).index_select(1, dims)
            elif rest == "feed_forward.intermediate_dense.bias":
                t = t.index_select(0, neurons[i])
            elif rest == "feed_forward.output_dense.weight":
                t = t.index_select(0, dims).index_select(1, neurons[i])
            elif t.dim() == 1 and t.shape[0] == H:      # out_proj/output_dense bias, layer norms
                t = t.index_select(0, dims)
        elif key.endswith(_POS_V) or key.endswith("pos_conv_embed.conv.weight"):
            t = _slice_pos_conv(t, dims, in_group)
        elif key.endswith(_POS_G):
            # weight norm over (out, in) per tap: rescale g so the kept slice of the effective
            # weight g * v / ||v|| is unchanged (ratio exactly 1 when everything is kept)
            v_key = next(key[:-len(g)] + v for g, v in zip(_POS_G, _POS_V, strict=True) if key.endswith(g))
            v = source[v_key]
            v_kept = _slice_pos_conv(v, dims, in_group)
            t = t * (v_kept.norm(dim=(0, 1), keepdim=True) / v.norm(dim=(0, 1), keepdim=True))
        elif key.endswith("feature_projection.projection.weight"):
            t = t.index_select(0, dims)
        elif key == "lm_head.weight":
            t = t.index_select(1, dims)
        elif key.endswith(_STREAM_VECTORS):
            t = t.index_select(0, dims)
        if t.shape != target.shape:
            raise ValueError(f"{key}: pruned shape {tuple(t.shape)} != {tuple(target.shape)}")
        state[key] = t.detach().clone().to(target.dtype)
    pruned.load_state_dict(state, strict=True)
    pruned.train(model.training)
    kept = {"residual_dims": dims.tolist(), "heads": [h.tolist() for h in heads],
            "ffn_neurons": [n.tolist() for n in neurons]}
    log.info("width %d/%d heads %d/%d ffn %d/%d", width.hidden_size, H, width.num_attention_heads,
             cfg.num_attention_heads, width.intermediate_size, cfg.intermediate_size)
    return pruned, kept


def _slice_pos_conv(w: torch.Tensor, dims: torch.Tensor, in_group: torch.Tensor) -> torch.Tensor:
    """Grouped conv weight [H, H/G, K] -> [H', H'/G, K]: output channels `dims`; output channel
    in group g reads the kept within-group positions of group g."""
    w = w.index_select(0, dims)                                  # [H', H/G, K]
    groups, k = in_group.shape
    w = w.reshape(groups, k, w.shape[1], w.shape[2])             # kept dims are grouped in order
    idx = in_group[:, None, :, None].expand(groups, k, k, w.shape[3])
    return torch.gather(w, 2, idx).reshape(groups * k, k, w.shape[3])
