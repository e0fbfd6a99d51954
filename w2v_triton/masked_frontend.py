"""Wav2Vec2ForCTC with length-aware normalisation: a padded batch gives each row's own logits.

Base checkpoints (`feat_extract_norm="group"`) normalise the first conv layer's output of
every channel over *time*, so zero padding changes every frame of a shorter utterance.
Here that norm's statistics are taken over each row's valid frames only. Every later conv
output frame of a valid position only reads valid inputs (no conv padding), and the
transformer gets an attention mask, so padded and unpadded inputs give the same logits.
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

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.wav2vec2.modeling_wav2vec2 import (
    Wav2Vec2GroupNormConvLayer,
    Wav2Vec2LayerNormConvLayer,
)


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
        return y if self.bias is None else y + self.bias


class LengthAwareCTC(nn.Module):
    """(audio [B, N], audio_lengths [B]) -> (logits [B, T, V], logit_lengths [B])."""

    def __init__(self, model, matmul_frontend: bool = False) -> None:
        super().__init__()
        self.model = model.eval()
        self.matmul_frontend = matmul_frontend
        layers = self.model.wav2vec2.feature_extractor.conv_layers
        if isinstance(layers[0], Wav2Vec2GroupNormConvLayer):
            norm = layers[0].layer_norm
            if norm.num_groups != norm.num_channels:
                raise ValueError("masked front-end supports one group per channel (wav2vec2 layout)")
        self.block_convs = nn.ModuleList(BlockMatMulConv1d(layer.conv) for layer in layers) if matmul_frontend else None
        self.total_stride = math.prod(layer.conv.stride[0] for layer in layers)

    def features(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Conv front-end: audio [B, N] -> (features [B, T, C], valid frames [B])."""
        layers = self.model.wav2vec2.feature_extractor.conv_layers
        if self.matmul_frontend:
            samples = audio.shape[1]
            padded = (samples + self.total_stride - 1) // self.total_stride * self.total_stride
            hidden, convs = F.pad(audio, (0, padded - samples))[:, :, None], self.block_convs
        else:
            hidden, convs = audio[:, None, :], [layer.conv for layer in layers]
        for layer, conv in zip(layers, convs):
            hidden = conv(hidden)
            lengths = conv_output_lengths(lengths, conv.kernel_size[0], conv.stride[0])
            if isinstance(layer, Wav2Vec2GroupNormConvLayer):
                hidden = masked_instance_norm(hidden, lengths, layer.layer_norm, self.matmul_frontend)
            elif isinstance(layer, Wav2Vec2LayerNormConvLayer):
                if self.matmul_frontend:
                    hidden = layer.layer_norm(hidden)
                else:
                    hidden = layer.layer_norm(hidden.transpose(-2, -1)).transpose(-2, -1)
            hidden = layer.activation(hidden)
        if self.matmul_frontend:
            return hidden[:, : lengths.max()], lengths     # drop the frames that only exist in the padding
        return hidden.transpose(1, 2), lengths

    def forward(self, audio: torch.Tensor, audio_lengths: torch.Tensor):
        wav2vec2 = self.model.wav2vec2
        features, lengths = self.features(audio, audio_lengths.to(torch.int64))
        hidden, _ = wav2vec2.feature_projection(features)
        frame_mask = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None]
        hidden = hidden * frame_mask[..., None].to(hidden.dtype)
        encoded = wav2vec2.encoder(hidden, attention_mask=frame_mask).last_hidden_state
        if wav2vec2.adapter is not None:
            raise ValueError("checkpoints with an adapter are not supported")
        logits = self.model.lm_head(encoded)
        return logits, lengths
