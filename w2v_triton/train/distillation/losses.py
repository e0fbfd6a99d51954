"""Distillation losses for CTC acoustic models. All of them average over REAL frames only.

Shapes: logits [B, T, V]; hidden states [B, T, D]; frame_mask bool [B, T] (True = real frame).

kd_kl_loss      KL(teacher || student) per frame over the VOCABULARY axis (softmax over V,
                never over time), both softened by temperature T, times T^2 (Hinton et al.
                2015, so gradient magnitudes do not shrink as T grows), summed over V and
                averaged over real frames.
ctc_loss        CTC on transcripts (blank = pad id), per-utterance loss / target length,
                averaged over the labelled utterances of the batch ("mean" reduction).
hidden_loss     DistilHuBERT (Chang et al. 2022): for each (student layer -> teacher layer)
                pair, mean over real frames of  l1_w * mean_d |h_t - f(h_s)|
                + cos_w * c(cos(h_t, f(h_s)))  with c = -log sigmoid(cos) ("logsigmoid",
                the paper's) or 1 - cos ("one_minus"); f is an optional linear prediction head.
DistillLoss     the weighted sum; holds the prediction heads (trainable, not part of the
                saved student).
squeeze_frames  a SEW squeeze student (distillation/squeeze.py) has 1/s of the teacher's frames
                in its transformer: teacher hidden states are averaged over each window of s
                real frames before they are compared (logits stay at the full frame rate).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

COS_MODES = ("logsigmoid", "one_minus")


def frame_mask_from_lengths(lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
    """bool [B, T]: True for frames t < lengths[b]."""
    lengths = lengths.to(torch.long)
    return torch.arange(num_frames, device=lengths.device)[None, :] < lengths[:, None]


def _full_mask(x: torch.Tensor) -> torch.Tensor:
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)


def _masked_frame_mean(per_frame: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """Mean of per_frame [B, T] over frames where frame_mask; padded values never enter.

    torch.where (not multiplication) so NaN/Inf in padded frames cannot leak in.
    """
    m = frame_mask.to(torch.bool)
    total = torch.where(m, per_frame, torch.zeros((), dtype=per_frame.dtype, device=per_frame.device)).sum()
    return total / m.sum().clamp_min(1).to(per_frame.dtype)


def _zero_padded(x: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """Padded frames -> 0 before any math, so nothing there (even NaN) reaches value or grad."""
    return torch.where(frame_mask.to(torch.bool)[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))


def kd_kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               frame_mask: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
    """T^2 * mean over real frames of KL(softmax(teacher/T) || softmax(student/T)) over vocab."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} != teacher "
                         f"{tuple(teacher_logits.shape)} (same front-end => same frames and vocab)")
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    mask = _full_mask(student_logits) if frame_mask is None else frame_mask
    t = float(temperature)
    student_logits = _zero_padded(student_logits.float(), mask)
    teacher_logits = _zero_padded(teacher_logits.detach().float(), mask)
    s_logp = F.log_softmax(student_logits / t, dim=-1)      # vocabulary axis (never time)
    t_logp = F.log_softmax(teacher_logits / t, dim=-1)
    per_frame = (t_logp.exp() * (t_logp - s_logp)).sum(dim=-1)     # [B, T]
    return _masked_frame_mean(per_frame, mask) * (t * t)


def ctc_loss(logits: torch.Tensor, frame_lengths: torch.Tensor, labels: torch.Tensor,
             blank_id: int = 0, labelled: torch.Tensor | None = None,
             zero_infinity: bool = True) -> torch.Tensor:
    """CTC ("mean" reduction: per-utterance loss / target length, mean over utterances).

    labels [B, L] padded with values < 0 (HF's -100). `labelled` bool [B] selects the rows
    that have a transcript (unlabelled rows are skipped); all rows when None.
    Returns 0 (with grad) when no row is labelled.
    """
    if labelled is not None:
        keep = labelled.to(torch.bool)
        if not bool(keep.any()):
            return logits.sum() * 0.0
        logits, frame_lengths, labels = logits[keep], frame_lengths[keep], labels[keep]
    valid = labels >= 0
    target_lengths = valid.sum(-1)
    targets = labels[valid]
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # [T, B, V]
    with torch.backends.cudnn.flags(enabled=False):
        return F.ctc_loss(log_probs, targets, frame_lengths.to(torch.long), target_lengths,
                          blank=blank_id, reduction="mean", zero_infinity=zero_infinity)


def hidden_pair_loss(pred: torch.Tensor, target: torch.Tensor, frame_mask: torch.Tensor | None = None,
                     l1_weight: float = 1.0, cos_weight: float = 1.0,
                     cos_mode: str = "logsigmoid") -> tuple[torch.Tensor, dict[str, float]]:
    """DistilHuBERT loss for one layer pair, averaged over real frames."""
    if cos_mode not in COS_MODES:
        raise ValueError(f"cos_mode must be one of {COS_MODES}")
    mask = _full_mask(pred) if frame_mask is None else frame_mask
    target = _zero_padded(target.detach().float(), mask)
    pred = _zero_padded(pred.float(), mask)
    l1 = (pred - target).abs().mean(dim=-1)                       # [B, T]
    cos = F.cosine_similarity(pred, target, dim=-1, eps=1e-8)     # [B, T]
    cos_term = -F.logsigmoid(cos) if cos_mode == "logsigmoid" else 1.0 - cos
    l1_m = _masked_frame_mean(l1, mask)
    cos_m = _masked_frame_mean(cos_term, mask)
    logs = {"l1": float(l1_m.detach()), "cos": float(_masked_frame_mean(cos, mask).detach())}
    return l1_weight * l1_m + cos_weight * cos_m, logs


def squeeze_frames(hidden: torch.Tensor, frame_mask: torch.Tensor, factor: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Average [B, T, D] over windows of `factor` frames -> ([B, T // factor, D], mask).

    A squeezed frame is real only when its whole window is (the student's pooled frame there
    averages real frames only); padded frames are zeroed first so they never enter a mean.
    """
    if factor < 1:
        raise ValueError(f"squeeze factor must be >= 1, got {factor}")
    if factor == 1:
        return hidden, frame_mask
    frames = hidden.shape[1] // factor
    zeroed = _zero_padded(hidden, frame_mask)[:, : frames * factor]
    pooled = zeroed.reshape(hidden.shape[0], frames, factor, hidden.shape[-1]).mean(dim=2)
    lengths = frame_mask.to(torch.long).sum(-1) // factor
    return pooled, frame_mask_from_lengths(lengths, frames)


def parse_layer_map(text: str | None) -> list[tuple[int, int]] | None:
    """"6:12,3:6" -> [(6, 12), (3, 6)]  (student hidden-state index : teacher index)."""
    if not text:
        return None
    pairs = []
    for item in text.replace(" ", "").split(","):
        if item:
            s, t = item.split(":")
            pairs.append((int(s), int(t)))
    return pairs


def default_layer_map(kept_layers: list[int]) -> list[tuple[int, int]]:
    """Student layer j's output <- the output of the teacher layer it was copied from.

    Indices are HF `hidden_states` indices: 0 = encoder input, i = output of layer i (1-based),
    so student j (1..k) maps to teacher kept[j-1] + 1.
    """
    return [(j + 1, int(t) + 1) for j, t in enumerate(kept_layers)]


@dataclass
class DistillLossConfig:
    """The loss mix; the defaults are the project's recipe (docs/distillation.md), which
    builders/distill.py's flags take as theirs."""
    kl_weight: float = 0.8
    temperature: float = 4.0
    ctc_weight: float = 0.2
    hidden_weight: float = 0.0
    # (student hidden_states index, teacher hidden_states index); None -> default_layer_map
    layer_map: list[tuple[int, int]] | None = None
    prediction_heads: bool = False      # linear head per pair (initialised to identity)
    # with the default map, also pair the encoder inputs (hidden_states 0 -> 0): trains a pruned
    # front-end / narrowed projection directly
    map_encoder_input: bool = False
    l1_weight: float = 1.0
    cos_weight: float = 1.0
    cos_mode: str = "logsigmoid"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_hidden(self) -> bool:
        return self.hidden_weight > 0


class DistillLoss(nn.Module):
    """Weighted KL + CTC + hidden-state loss. Owns the (optional) prediction heads."""

    def __init__(self, cfg: DistillLossConfig, student_dim: int = 0, teacher_dim: int = 0,
                 kept_layers: list[int] | None = None, student_dims: list[int] | None = None,
                 squeeze_factor: int = 1):
        """`student_dims`: for a width-pruned student, the teacher dimension each student
        dimension was cut from; the prediction heads then start as that embedding (student dim
        j -> teacher dim student_dims[j]) instead of the identity on the first dimensions.
        `squeeze_factor` > 1: a SEW student, whose hidden states are compared with the teacher's
        averaged over that many frames."""
        super().__init__()
        if cfg.cos_mode not in COS_MODES:
            raise ValueError(f"cos_mode must be one of {COS_MODES}")
        self.cfg = cfg
        self.squeeze_factor = int(squeeze_factor)   # student transformer frames = teacher frames / this
        self.layer_map: list[tuple[int, int]] = []
        if cfg.needs_hidden:
            if cfg.layer_map:
                self.layer_map = list(cfg.layer_map)
            else:
                self.layer_map = default_layer_map(kept_layers or [])
                if cfg.map_encoder_input and self.layer_map:
                    self.layer_map = [(0, 0), *self.layer_map]
            if not self.layer_map:
                raise ValueError("hidden-state loss needs a layer_map or the student's kept layers")
        self.heads = nn.ModuleDict()
        if student_dims is not None and (len(student_dims) != student_dim
                                         or not all(0 <= d < teacher_dim for d in student_dims)):
            raise ValueError(f"student_dims must be {student_dim} teacher dimensions in 0..{teacher_dim - 1}")
        if cfg.needs_hidden and (cfg.prediction_heads or student_dim != teacher_dim):
            for s, t in self.layer_map:
                head = nn.Linear(student_dim, teacher_dim)
                with torch.no_grad():
                    head.weight.zero_()
                    if student_dims is not None:
                        head.weight[torch.as_tensor(student_dims), torch.arange(student_dim)] = 1.0
                    else:
                        n = min(student_dim, teacher_dim)
                        head.weight[:n, :n] = torch.eye(n)
                    head.bias.zero_()
                self.heads[f"{s}_{t}"] = head

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                frame_mask: torch.Tensor, frame_lengths: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, labelled: torch.Tensor | None = None,
                student_hidden: tuple[torch.Tensor, ...] | None = None,
                teacher_hidden: tuple[torch.Tensor, ...] | None = None,
                blank_id: int = 0) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        total = student_logits.new_zeros((), dtype=torch.float32)
        logs: dict[str, float] = {}
        if cfg.kl_weight > 0:
            kl = kd_kl_loss(student_logits, teacher_logits, frame_mask, cfg.temperature)
            total = total + cfg.kl_weight * kl
            logs["kl"] = float(kl.detach())
        if cfg.ctc_weight > 0 and labels is not None:
            if frame_lengths is None:
                frame_lengths = frame_mask.sum(-1)
            ctc = ctc_loss(student_logits, frame_lengths, labels, blank_id, labelled)
            total = total + cfg.ctc_weight * ctc
            logs["ctc"] = float(ctc.detach())
        if cfg.needs_hidden:
            if student_hidden is None or teacher_hidden is None:
                raise ValueError("hidden-state loss needs student_hidden and teacher_hidden")
            parts = []
            squeezed: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
            for s, t in self.layer_map:
                pred = student_hidden[s]
                key = f"{s}_{t}"
                if key in self.heads:
                    pred = self.heads[key](pred)
                target, mask = teacher_hidden[t], frame_mask
                if self.squeeze_factor > 1:
                    if t not in squeezed:
                        squeezed[t] = squeeze_frames(target, frame_mask, self.squeeze_factor)
                    target, mask = squeezed[t]
                    frames = min(pred.shape[1], target.shape[1])
                    pred, target, mask = pred[:, :frames], target[:, :frames], mask[:, :frames]
                if pred.shape[:2] != target.shape[:2]:
                    raise ValueError(f"hidden pair {s}->{t}: student frames {tuple(pred.shape[:2])} != teacher "
                                     f"{tuple(target.shape[:2])} (squeeze factor {self.squeeze_factor})")
                loss_k, lk = hidden_pair_loss(pred, target, mask,
                                              cfg.l1_weight, cfg.cos_weight, cfg.cos_mode)
                parts.append(loss_k)
                logs[f"hid{s}->{t}_l1"] = lk["l1"]
                logs[f"hid{s}->{t}_cos"] = lk["cos"]
            hid = torch.stack(parts).mean()
            total = total + cfg.hidden_weight * hid
            logs["hidden"] = float(hid.detach())
        logs["loss"] = float(total.detach())
        return total, logs
