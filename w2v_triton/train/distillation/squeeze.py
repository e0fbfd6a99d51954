"""A SEW-style squeeze student: fewer frames into the transformer, built from a wav2vec2 teacher.

SEW (Wu et al. 2021, "Performance-Efficiency Trade-offs in Unsupervised Pre-training for Speech
Recognition") average-pools the frame sequence by `squeeze_factor` s before the transformer
(the positional conv runs with stride s on the full-rate features and is added to the pooled
ones) and turns every squeezed frame back into s frames before the CTC head (`SEWUpsampling`:
Linear(H, s*H) + activation, reshaped to s frames). The transformer's cost per audio second
falls by ~s (attention by ~s^2); logits stay at the teacher's 20 ms frame rate, so KL and CTC
compare frame by frame. The student is transformers' own `SEWForCTC` (model_type "sew"), an
ordinary HF checkpoint any transformers install loads.

How the teacher's weights map (`to_sew`), after layer selection and optional conv pruning by
`student.build_student` (so strategies and `--conv-channels` compose):

* copied exactly: conv front-end, the feature projection's layer norm (-> `sew.layer_norm`),
  its Linear (-> `sew.feature_projection`, which SEW only has when conv width != hidden size),
  masked-spec embedding, positional conv (same kernel, groups and weight-norm tensors; stride s
  makes squeezed frame j the teacher's positional embedding of frame s*j), attention and
  feed-forward weights of the kept layers, the CTC head.
* SEW's encoder layers are post-LN (x = LN(x + attn(x)); x = LN(x + ff(x))). A post-LN
  wav2vec2 teacher (base) has exactly that layout: norms are copied by name. A pre-LN teacher
  (`do_stable_layer_norm`, e.g. large/XLS-R and models/reference) normalises each sub-layer's
  *input* instead; `norm_init="shift"` (default) gives every student sub-layer the norm whose
  output the teacher's same sub-layer reads: encoder input norm <- kept layer 0's attention
  norm, layer j's mid norm <- its feed-forward norm, layer j's output norm <- the next kept
  layer's attention norm (the last one: the teacher's final encoder norm, which feeds the CTC
  head). The residual stream itself differs (normalised in the student), so distillation has
  to adapt it; `norm_init="copy"` copies by name instead (for comparison).
* upsampling: starts as "repeat each squeezed frame s times": each of the s chunks of the
  projection is the identity, its bias a per-channel offset c large enough that the GELU is
  ~linear (gelu(h + c) ~ h + c), and the CTC head's bias absorbs -W c.
* not representable when conv width == hidden size (SEW then has no feature projection): the
  teacher's projection Linear is dropped; recorded in the student's info as an approximation.
"""
from __future__ import annotations

import logging
from typing import Any, cast

import torch
from transformers import SEWConfig, SEWForCTC, Wav2Vec2ForCTC

from w2v_triton.train.distillation.student import StudentInfo, build_student, copy_weights, count_params
from w2v_triton.train.distillation.width_pruning import TransformerWidth

logger = logging.getLogger(__name__)

NORM_INITS = ("shift", "copy")
# SEWConfig fields taken verbatim from the teacher's (wav2vec2 / HuBERT) config.
_SHARED_CONFIG = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_dropout", "final_dropout", "layerdrop",
    "initializer_range", "layer_norm_eps", "feat_extract_norm", "feat_extract_activation", "conv_dim",
    "conv_stride", "conv_kernel", "conv_bias", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups",
    "apply_spec_augment", "mask_time_prob", "mask_time_length", "mask_time_min_masks", "mask_feature_prob",
    "mask_feature_length", "mask_feature_min_masks", "ctc_loss_reduction", "ctc_zero_infinity",
    "pad_token_id", "bos_token_id", "eos_token_id")
# Upsampling offset: gelu(y) = y * Phi(y) is within 3e-5 * y of y for y >= 4.
_GELU_LINEAR_FROM = 4.0
_Z_BOUND = 5.0      # |normalised activation| assumed below this for the offset (rarer ones saturate less)


def sew_config(source: Any, squeeze_factor: int) -> SEWConfig:
    """SEWConfig with the source wav2vec2/HuBERT config's sizes, front-end and training settings."""
    if int(squeeze_factor) < 2:
        raise ValueError(f"squeeze_factor must be >= 2, got {squeeze_factor}")
    fields = {k: getattr(source, k) for k in _SHARED_CONFIG if hasattr(source, k)}
    fields["conv_dim"], fields["conv_stride"], fields["conv_kernel"] = (
        list(fields["conv_dim"]), list(fields["conv_stride"]), list(fields["conv_kernel"]))
    if getattr(source, "add_adapter", False):
        raise ValueError("teachers with an adapter (add_adapter=True) cannot become SEW students")
    return SEWConfig(**fields, squeeze_factor=int(squeeze_factor))


def _norm_sources(prefix: str, num_layers: int, stable: bool, norm_init: str) -> dict[str, str]:
    """SEW norm key -> source (layer-selected wav2vec2 student) norm key, without .weight/.bias."""
    enc = f"{prefix}.encoder"
    mapping = {}
    if not stable or norm_init == "copy":
        mapping["sew.encoder.layer_norm"] = f"{enc}.layer_norm"
        for j in range(num_layers):
            for name in ("layer_norm", "final_layer_norm"):
                mapping[f"sew.encoder.layers.{j}.{name}"] = f"{enc}.layers.{j}.{name}"
        return mapping
    mapping["sew.encoder.layer_norm"] = f"{enc}.layers.0.layer_norm"
    for j in range(num_layers):
        mapping[f"sew.encoder.layers.{j}.layer_norm"] = f"{enc}.layers.{j}.final_layer_norm"
        following = f"{enc}.layers.{j + 1}.layer_norm" if j + 1 < num_layers else f"{enc}.layer_norm"
        mapping[f"sew.encoder.layers.{j}.final_layer_norm"] = following
    return mapping


def _source_key(key: str, prefix: str, norms: dict[str, str]) -> str | None:
    """The source tensor a SEW tensor is copied from (None: initialised here)."""
    for target, source in norms.items():
        if key.startswith(target + ".") and key.count(".") == target.count(".") + 1:
            return source + key[len(target):]
    if key.startswith("sew.encoder.upsample."):
        return None
    if key.startswith("sew.layer_norm."):
        return f"{prefix}.feature_projection.layer_norm." + key.rsplit(".", 1)[1]
    if key.startswith("sew.feature_projection."):
        return f"{prefix}.feature_projection.projection." + key.rsplit(".", 1)[1]
    if key.startswith("sew."):
        return prefix + key[len("sew"):]
    return key   # lm_head.*


def _init_repeat_upsampling(model: SEWForCTC) -> list[float]:
    """Upsampling = repeat each squeezed frame s times (up to the GELU's tiny non-linearity)."""
    up = model.sew.encoder.upsample
    hidden, s = int(model.config.hidden_size), int(model.config.squeeze_factor)
    encoder = model.sew.encoder
    final = cast(torch.nn.LayerNorm, encoder.layers[-1].final_layer_norm if len(encoder.layers) else encoder.layer_norm)
    with torch.no_grad():
        gamma, beta = final.weight.detach().abs(), final.bias.detach()
        offset = _GELU_LINEAR_FROM + _Z_BOUND * gamma - beta.clamp(max=0)   # h + c >= 4 for |z| <= 5
        offset = torch.maximum(offset, torch.full_like(offset, _GELU_LINEAR_FROM) - beta)
        up.projection.weight.copy_(torch.eye(hidden).repeat(s, 1))
        up.projection.bias.copy_(offset.repeat(s))
        model.lm_head.bias.sub_(model.lm_head.weight @ offset)
    return [float(offset.min()), float(offset.max())]


def to_sew(source: Wav2Vec2ForCTC, squeeze_factor: int = 2, norm_init: str = "shift") -> tuple[SEWForCTC, dict[str, Any]]:
    """A SEWForCTC with `source`'s weights (see the module docstring). Returns (model, notes)."""
    if norm_init not in NORM_INITS:
        raise ValueError(f"norm_init must be one of {NORM_INITS}, got {norm_init!r}")
    config = sew_config(source.config, squeeze_factor)
    model = SEWForCTC(config)
    prefix = str(source.base_model_prefix)
    stable = bool(getattr(source.config, "do_stable_layer_norm", False))
    norms = _norm_sources(prefix, int(config.num_hidden_layers), stable, norm_init)
    fresh = copy_weights(model, source.state_dict(), lambda key: _source_key(key, prefix, norms))
    offsets = _init_repeat_upsampling(model)
    approximations = []
    if not model.sew.project_features:
        approximations.append("feature projection Linear dropped (conv width == hidden size: SEW has none)")
    if stable:
        approximations.append(f"pre-LN teacher layers run post-LN (norm_init={norm_init})")
    model.train(source.training)
    notes = {"squeeze_factor": int(squeeze_factor), "norm_init": norm_init, "stable_teacher": stable,
             "upsample_offset_range": offsets, "approximations": approximations,
             **({"freshly_initialised": [k for k in fresh if not k.startswith("sew.encoder.upsample.")]}
                if any(not k.startswith("sew.encoder.upsample.") for k in fresh) else {})}
    for text in approximations:
        logger.info("squeeze student: %s", text)
    return model, notes


def build_squeeze_student(teacher: Wav2Vec2ForCTC, num_layers: int | None = None, strategy: str = "first",
                          layers: list[int] | None = None, teacher_name: str = "", squeeze_factor: int = 2,
                          conv_channels: int | list[int] | None = None,
                          norm_init: str = "shift",
                          width: TransformerWidth | None = None) -> tuple[SEWForCTC, StudentInfo]:
    """Layer selection (+ conv pruning, + transformer narrowing) as `build_student`, then the
    SEW squeeze (`to_sew`)."""
    selected, info = build_student(teacher, num_layers, strategy, layers, teacher_name, conv_channels=conv_channels,
                                   width=width)
    student, notes = to_sew(selected, squeeze_factor, norm_init)
    info.student_params = count_params(student)
    info.squeeze_factor = int(squeeze_factor)
    info.extra = {**info.extra, "sew": notes}
    return student, info
