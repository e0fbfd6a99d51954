"""A CTC model with length-aware normalisation: a padded batch gives each row's own logits.

Works for every family in checkpoints.CTC_FAMILIES (wav2vec2 base/large/XLS-R, HuBERT, WavLM,
data2vec-audio, SEW): their front-ends are the same conv stack (group norm on the first layer, layer
norm on every layer, or none) and their encoders take an attention mask.
Base checkpoints (`feat_extract_norm="group"`) normalise the first conv layer's output of
every channel over *time*, so zero padding changes every frame of a shorter utterance.
Here that norm's statistics are taken over each row's valid frames only. Every later conv
output frame of a valid position only reads valid inputs (no conv padding), and the
transformer gets an attention mask, so padded and unpadded inputs give the same logits.
data2vec-audio's positional embedding is a stack of padded convs: between them the padded frames
are zeroed again, as they are in a single unpadded pass. WavLM's relative position bias depends
only on distances, so it needs nothing.
SEW (squeeze students, `sew`) has a layer norm (+ a Linear when the conv width differs from the
hidden size) instead of wav2vec2's FeatureProjection module, and average-pools s frames before its
transformer: a window holding the last real frame and a padded one would average padding in, so
only whole windows count. The frames past (T // s) * s are zeroed (as padding is) and the logit
lengths say (T // s) * s: a single pass and a padded batch then agree exactly, and the decoder
never reads the constant frames SEW's upsampling pads the end with.
This module is what gets exported to ONNX: inputs (audio, lengths), outputs (logits, lengths).

Two equivalent front-ends (`matmul_frontend`):
  False  the checkpoint's Conv1d layers, channels-first (fastest in fp32 with onnxruntime).
  True   each strided conv as block MatMuls on channels-last frames (`BlockMatMulConv1d`):
         the same function, but every front-end weight is now a MatMul weight, which
         onnxruntime's dynamic int8 quantiser turns into VNNI integer GEMMs (its ConvInteger
         is slower than the fp32 Conv). Audio is zero-padded to a multiple of the total stride
         so that every layer's input length is a multiple of its stride; the extra frames are
         padding like any other and are excluded by the lengths.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn


def conv_output_lengths(lengths: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Valid output frames of an unpadded strided conv (floor division, as HF computes it)."""
    return torch.div(lengths - kernel, stride, rounding_mode="floor") + 1


def masked_instance_norm(x: torch.Tensor, lengths: torch.Tensor, norm: nn.GroupNorm,
                         channels_last: bool = False) -> torch.Tensor:
    """GroupNorm with one group per channel, statistics over the first `lengths` frames.

    Channels-first x is [B, C, T]; channels-last x is [B, T, C], whose sums over time are
    taken as mask [B, 1, T] @ x (a GEMV: a reduction over the middle axis is slow in onnxruntime).
    """
    time_axis = 1 if channels_last else -1
    valid = torch.arange(x.shape[time_axis], device=x.device)[None, :] < lengths[:, None]
    mask = valid.to(x.dtype)[:, None, :]                           # [B, 1, T]
    count = lengths.to(x.dtype)[:, None, None].clamp(min=1)
    if channels_last:
        mean = (mask @ x) / count                                   # [B, 1, C]
        var = (mask @ ((x - mean) ** 2)) / count
        x = (x - mean) / torch.sqrt(var + norm.eps)
        return x * norm.weight + norm.bias
    mean = (x * mask).sum(-1, keepdim=True) / count
    var = (((x - mean) * mask) ** 2).sum(-1, keepdim=True) / count
    x = (x - mean) / torch.sqrt(var + norm.eps)
    return x * norm.weight[None, :, None] + norm.bias[None, :, None]


class BlockMatMulConv1d(nn.Module):
    """An unpadded Conv1d (kernel k >= stride s) on channels-last input [B, T, C], T % s == 0.

    The input is viewed as blocks of s frames ([B, T/s, s*C], no copy). Output frame t reads
    taps j*s .. j*s+s-1 from block t+j, so y = sum_j shift_j(blocks[..., :width_j] @ W_j):
    one MatMul per block of taps (k=3, s=2: a [2C, C'] and a [C, C'] weight). Output length is
    T/s; frames past the conv's valid length read padding and are excluded by the lengths.
    """

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        (kernel,), (stride,) = conv.kernel_size, conv.stride
        if conv.groups != 1 or conv.dilation[0] != 1 or conv.padding[0] != 0 or kernel < stride:
            raise ValueError(f"BlockMatMulConv1d needs an unpadded, ungrouped conv with kernel >= stride: {conv}")
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        taps = conv.weight.detach().permute(2, 1, 0)               # [k, C, C']
        self.weights = nn.ParameterList(
            nn.Parameter(taps[j: j + stride].reshape(-1, conv.out_channels).clone())
            for j in range(0, kernel, stride))
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, channels = x.shape
        stride = self.stride[0]
        blocks = x.reshape(batch, frames // stride, stride * channels)
        y = blocks @ self.weights[0]
        for shift, weight in enumerate(self.weights[1:], start=1):
            width = weight.shape[0]
            part = blocks if width == blocks.shape[-1] else blocks[..., :width]
            y = y + F.pad((part @ weight)[:, shift:], (0, 0, 0, shift))
        out: torch.Tensor = y if self.bias is None else y + self.bias
        return out


def squeeze_factor(model: nn.Module) -> int:
    """Frames averaged into one transformer frame: SEW's squeeze_factor, 1 for other families."""
    config = getattr(model, "config", None)
    return int(getattr(config, "squeeze_factor", 1) or 1) if getattr(config, "model_type", "") == "sew" else 1


def conv_norm(layer: nn.Module) -> nn.GroupNorm | nn.LayerNorm | None:
    """The norm of a front-end conv layer (any family): GroupNorm over time, LayerNorm over
    channels, or None."""
    norm = getattr(layer, "layer_norm", None)
    return norm if isinstance(norm, (nn.GroupNorm, nn.LayerNorm)) else None


class _MaskedConvStack(nn.Module):
    """data2vec-audio's positional conv stack with the padded frames zeroed after every layer
    (a single unpadded pass sees zeros there: the convs' own padding)."""

    def __init__(self, stack: nn.Module, frame_mask: torch.Tensor) -> None:
        super().__init__()
        self.stack = stack
        self.mask = frame_mask.to(torch.float32)[:, None, :]           # [B, 1, T]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = hidden.transpose(1, 2)
        for layer in cast(nn.ModuleList, self.stack.layers):
            hidden = layer(hidden) * self.mask.to(hidden.dtype)
        return hidden.transpose(1, 2)


class LengthAwareCTC(nn.Module):
    """(audio [B, N], audio_lengths [B]) -> (logits [B, T, V], logit_lengths [B])."""

    def __init__(self, model: nn.Module, matmul_frontend: bool = False) -> None:
        super().__init__()
        self.model = model.eval()
        self.matmul_frontend = matmul_frontend
        prefix = cast(str, self.model.base_model_prefix)   # a transformers model: wav2vec2, hubert, ...
        self.base: Any = getattr(self.model, prefix)   # family-specific attributes
        if getattr(self.base, "adapter", None) is not None:
            raise ValueError("checkpoints with an adapter (add_adapter=True) are not supported")
        layers = self.base.feature_extractor.conv_layers
        for layer in layers:
            norm = conv_norm(layer)
            if isinstance(norm, nn.GroupNorm) and norm.num_groups != norm.num_channels:
                raise ValueError("masked front-end supports one group per channel (wav2vec2 layout)")
        self.block_convs = nn.ModuleList(BlockMatMulConv1d(layer.conv) for layer in layers) if matmul_frontend else None
        self.total_stride = math.prod(layer.conv.stride[0] for layer in layers)
        self.squeeze = squeeze_factor(self.model)

    def features(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Conv front-end: audio [B, N] -> (features [B, T, C], valid frames [B])."""
        layers = self.base.feature_extractor.conv_layers
        if self.matmul_frontend:
            samples = audio.shape[1]
            padded = (samples + self.total_stride - 1) // self.total_stride * self.total_stride
            hidden = F.pad(audio, (0, padded - samples))[:, :, None]
            convs: Iterable[Any] = cast(nn.ModuleList, self.block_convs)   # built when matmul_frontend
        else:
            hidden = audio[:, None, :]
            convs = [layer.conv for layer in layers]
        for layer, conv in zip(layers, convs, strict=True):
            hidden = conv(hidden)
            lengths = conv_output_lengths(lengths, conv.kernel_size[0], conv.stride[0])
            norm = conv_norm(layer)
            if isinstance(norm, nn.GroupNorm):
                hidden = masked_instance_norm(hidden, lengths, norm, self.matmul_frontend)
            elif isinstance(norm, nn.LayerNorm):
                hidden = norm(hidden) if self.matmul_frontend else norm(hidden.transpose(-2, -1)).transpose(-2, -1)
            hidden = layer.activation(hidden)
        if self.matmul_frontend:
            hidden = hidden[:, : lengths.max()]     # drop the frames that only exist in the padding
        if self.squeeze > 1:   # SEW: only whole squeeze windows are valid frames
            lengths = torch.div(lengths, self.squeeze, rounding_mode="floor") * self.squeeze
        if self.matmul_frontend:
            return hidden, lengths
        return hidden.transpose(1, 2), lengths

    def forward(self, audio: torch.Tensor, audio_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, lengths = self.features(audio, audio_lengths.to(torch.int64))
        return self.encode(features, lengths), lengths

    def encode(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Front-end features [B, T, C] and valid frames [B] -> logits [B, T, V]."""
        if self.squeeze > 1:   # SEW: layer norm, then a Linear only when widths differ
            hidden = self.base.layer_norm(features)
            if self.base.project_features:
                hidden = self.base.feature_projection(hidden)
        else:
            projected = self.base.feature_projection(features)     # HuBERT: a tensor; others: (hidden, normed)
            hidden = projected[0] if isinstance(projected, tuple) else projected
        frames = hidden.shape[1]
        if self.squeeze > 1:   # s - 1 more padded frames: a clip shorter than one window still runs
            hidden = F.pad(hidden, (0, 0, 0, self.squeeze - 1))
        frame_mask = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None]
        hidden = hidden * frame_mask[..., None].to(hidden.dtype)
        encoder = self.base.encoder
        stacked = getattr(encoder.pos_conv_embed, "layers", None) is not None
        original = encoder.pos_conv_embed
        if stacked:   # data2vec-audio: re-zero the padding between its positional convs
            encoder.pos_conv_embed = _MaskedConvStack(original, frame_mask)
        try:
            encoded = encoder(hidden, attention_mask=frame_mask).last_hidden_state
        finally:
            encoder.pos_conv_embed = original
        lm_head = cast(nn.Module, self.model.lm_head)
        logits: torch.Tensor = lm_head(encoded[:, :frames])
        return logits
