"""Wav2Vec2ForCTC with length-aware normalisation: a padded batch gives each row's own logits.

Base checkpoints (`feat_extract_norm="group"`) normalise the first conv layer's output of
every channel over *time*, so zero padding changes every frame of a shorter utterance.
Here that norm's statistics are taken over each row's valid frames only. Every later conv
output frame of a valid position only reads valid inputs (no conv padding), and the
transformer gets an attention mask, so padded and unpadded inputs give the same logits.
This module is what gets exported to ONNX: inputs (audio, lengths), outputs (logits, lengths).
"""
from __future__ import annotations

import torch
from torch import nn
from transformers.models.wav2vec2.modeling_wav2vec2 import (
    Wav2Vec2GroupNormConvLayer,
    Wav2Vec2LayerNormConvLayer,
)


def conv_output_lengths(lengths: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Valid output frames of an unpadded strided conv (floor division, as HF computes it)."""
    return torch.div(lengths - kernel, stride, rounding_mode="floor") + 1


def masked_instance_norm(x: torch.Tensor, lengths: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """GroupNorm with one group per channel, statistics over the first `lengths` frames."""
    mask = (torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]).to(x.dtype)
    mask = mask[:, None, :]
    count = lengths.to(x.dtype)[:, None, None].clamp(min=1)
    mean = (x * mask).sum(-1, keepdim=True) / count
    var = (((x - mean) * mask) ** 2).sum(-1, keepdim=True) / count
    x = (x - mean) / torch.sqrt(var + norm.eps)
    return x * norm.weight[None, :, None] + norm.bias[None, :, None]


class LengthAwareCTC(nn.Module):
    """(audio [B, N], audio_lengths [B]) -> (logits [B, T, V], logit_lengths [B])."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model.eval()
        layers = self.model.wav2vec2.feature_extractor.conv_layers
        if isinstance(layers[0], Wav2Vec2GroupNormConvLayer):
            norm = layers[0].layer_norm
            if norm.num_groups != norm.num_channels:
                raise ValueError("masked front-end supports one group per channel (wav2vec2 layout)")

    def forward(self, audio: torch.Tensor, audio_lengths: torch.Tensor):
        wav2vec2 = self.model.wav2vec2
        lengths = audio_lengths.to(torch.int64)
        hidden = audio[:, None, :]
        for layer in wav2vec2.feature_extractor.conv_layers:
            hidden = layer.conv(hidden)
            lengths = conv_output_lengths(lengths, layer.conv.kernel_size[0], layer.conv.stride[0])
            if isinstance(layer, Wav2Vec2GroupNormConvLayer):
                hidden = masked_instance_norm(hidden, lengths, layer.layer_norm)
            elif isinstance(layer, Wav2Vec2LayerNormConvLayer):
                hidden = layer.layer_norm(hidden.transpose(-2, -1)).transpose(-2, -1)
            hidden = layer.activation(hidden)
        features = hidden.transpose(1, 2)
        hidden, _ = wav2vec2.feature_projection(features)
        frame_mask = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None]
        hidden = hidden * frame_mask[..., None].to(hidden.dtype)
        encoded = wav2vec2.encoder(hidden, attention_mask=frame_mask).last_hidden_state
        if wav2vec2.adapter is not None:
            raise ValueError("checkpoints with an adapter are not supported")
        logits = self.model.lm_head(encoded)
        return logits, lengths
