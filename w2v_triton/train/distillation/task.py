"""The distillation task: frozen teacher + trainable (student, loss heads), trainer-agnostic.

`DistillModel` is the module the trainer optimises, checkpoints and wraps in DDP: the student
plus the loss' prediction heads. Its forward computes the whole loss, so DDP sees every
trainable parameter used inside its forward. The teacher is NOT a submodule: it is frozen,
kept in eval mode, never in the optimiser, the checkpoint or DDP.

Batches are dicts: `input_values` float [B, N] (zero padded), `attention_mask` [B, N]
(1 = real sample; optional) or `input_lengths`/`audio_lengths` [B], and optionally `labels`
[B, L] padded with -100 (+ optional `labelled` bool [B] for mixed labelled/unlabelled batches).
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from transformers import Wav2Vec2ForCTC

from w2v_triton.serving.masked_frontend import squeeze_factor
from w2v_triton.train.distillation.losses import DistillLoss, DistillLossConfig, frame_mask_from_lengths
from w2v_triton.train.distillation.teacher_cache import TeacherCache, utterance_key


def audio_lengths_of(batch: dict[str, Any]) -> torch.Tensor:
    for key in ("input_lengths", "audio_lengths", "lengths"):
        if batch.get(key) is not None:
            return cast(torch.Tensor, batch[key].to(torch.long))
    if batch.get("attention_mask") is not None:
        return cast(torch.Tensor, batch["attention_mask"].sum(-1).to(torch.long))
    x = batch["input_values"]
    return torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)


def attention_mask_of(batch: dict[str, Any]) -> torch.Tensor | None:
    """The sample-level attention mask, or one built from lengths (None if nothing is padded)."""
    if batch.get("attention_mask") is not None:
        return cast(torch.Tensor, batch["attention_mask"])
    x = batch["input_values"]
    lengths = audio_lengths_of(batch)
    if bool((lengths == x.shape[1]).all()):
        return None
    return (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).long()


def frame_lengths_of(model: Wav2Vec2ForCTC, batch: dict[str, Any]) -> torch.Tensor:
    """Real logit frames per row. A squeeze model's last (T mod s) frames are padding its
    upsampling fills with a constant, not predictions: only (T // s) * s count."""
    lengths = model._get_feat_extract_output_lengths(cast(torch.LongTensor, audio_lengths_of(batch)))
    factor = squeeze_factor(model)
    lengths = cast(torch.Tensor, lengths).to(torch.long)
    return lengths // factor * factor if factor > 1 else lengths


def ctc_forward(model: Wav2Vec2ForCTC, batch: dict[str, Any], hidden: bool) -> Any:
    return model(batch["input_values"], attention_mask=attention_mask_of(batch),
                 output_hidden_states=hidden, return_dict=True)


class DistillModel(nn.Module):
    """student + loss heads; forward(batch, teacher_logits, teacher_hidden) -> (loss, logs)."""

    def __init__(self, student: Wav2Vec2ForCTC, loss: DistillLoss):
        super().__init__()
        self.student = student
        self.loss = loss

    def forward(self, batch: dict[str, Any], teacher_logits: torch.Tensor,
                teacher_hidden: tuple[torch.Tensor, ...] | None = None) -> Any:
        out = ctc_forward(self.student, batch, self.loss.cfg.needs_hidden)
        frame_lengths = frame_lengths_of(self.student, batch)
        mask = frame_mask_from_lengths(frame_lengths, out.logits.shape[1])
        return self.loss(out.logits, teacher_logits, mask, frame_lengths,
                         labels=batch.get("labels"), labelled=batch.get("labelled"),
                         student_hidden=out.hidden_states if self.loss.cfg.needs_hidden else None,
                         teacher_hidden=teacher_hidden,
                         blank_id=int(self.student.config.pad_token_id or 0))


def freeze(teacher: Wav2Vec2ForCTC) -> Wav2Vec2ForCTC:
    teacher.eval()  # type: ignore[no-untyped-call]  # transformers leaves eval() unannotated
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def unwrap(model: nn.Module) -> nn.Module:
    """DDP / torch.compile wrappers -> the DistillModel."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)


class DistillTask:
    """Holds the frozen teacher; `compute_loss(model, batch) -> (loss, logs)` for the trainer.
    With a `TeacherCache`, the teacher's targets come from it where it has them (batches then
    need `audio`: the rows' audio paths, which `kd_collate` passes on)."""

    def __init__(self, teacher: Wav2Vec2ForCTC, loss_cfg: DistillLossConfig, cache: TeacherCache | None = None):
        self.teacher = freeze(teacher)
        self.loss_cfg = loss_cfg
        self.cache = cache
        self._keys: dict[str, str] = {}

    def _key(self, audio: str) -> str:
        """An utterance's cache key, hashed once per path (a step would otherwise resolve, stat and
        hash every row again)."""
        if audio not in self._keys:
            self._keys[audio] = utterance_key(audio)
        return self._keys[audio]

    def teacher_forward(self, batch: dict[str, Any]) -> Any:
        device = batch["input_values"].device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        # stays in eval mode even if someone called .train() on everything
        self.teacher.eval()  # type: ignore[no-untyped-call]  # transformers leaves eval() unannotated
        with torch.no_grad():
            return ctc_forward(self.teacher, batch, self.loss_cfg.needs_hidden)

    def compute_loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        if self.cache is None:
            t_out = self.teacher_forward(batch)
            t_logits, t_hidden = t_out.logits, t_out.hidden_states if self.loss_cfg.needs_hidden else None
        else:
            keys = [self._key(a) for a in batch["audio"]]
            misses = self.cache.misses
            logits, hidden = self.cache.targets(keys, frame_lengths_of(self.teacher, batch),
                                                lambda: self.teacher_forward(batch))
            device = batch["input_values"].device
            t_logits = logits.to(device)
            t_hidden = {t: h.to(device) for t, h in hidden.items()} if self.loss_cfg.needs_hidden else None
        loss, logs = model(batch, t_logits, t_hidden)
        if self.cache is not None:
            logs = dict(logs, teacher_cache_hit=float(self.cache.misses == misses))
        return loss, logs


def make_distill_model(student: Wav2Vec2ForCTC, teacher: Wav2Vec2ForCTC, loss_cfg: DistillLossConfig,
                       kept_layers: list[int] | None, residual_dims: list[int] | None = None) -> DistillModel:
    """`residual_dims`: a width-pruned student's kept teacher dimensions (initialise the heads)."""
    loss = DistillLoss(loss_cfg, student.config.hidden_size, teacher.config.hidden_size, kept_layers,
                       student_dims=residual_dims, squeeze_factor=squeeze_factor(student))
    return DistillModel(student, loss)


# --- evaluation ----------------------------------------------------------------------

def greedy_decode(logits: torch.Tensor, frame_lengths: torch.Tensor, id_to_token: dict[int, str]) -> list[str]:
    """Best-path CTC transcripts of a batch (the project's decoder, training.evaluate.greedy_decode)."""
    from w2v_triton.train.evaluate import greedy_decode as decode_one

    vocab = {token: i for i, token in id_to_token.items()}
    rows = logits.float().cpu().numpy()
    return [decode_one(row[: int(n)], vocab) for row, n in zip(rows, frame_lengths.cpu().tolist(), strict=True)]


def corpus_wer(refs: list[str], hyps: list[str], unit: str = "word") -> float:
    """Word (or character) error rate over a corpus (metrics.error_rates: empty references are
    skipped); NaN when no utterance has a reference (unlabelled dev data: not measured)."""
    from w2v_triton.eval.metrics import error_rates

    if not any(r.strip() for r in refs):
        return float("nan")
    wer, cer = error_rates(refs, hyps)
    return wer if unit == "word" else cer


@torch.no_grad()
def evaluate(student: Wav2Vec2ForCTC, teacher: Wav2Vec2ForCTC, batches: Any, id_to_token: dict[int, str],
             temperature: float = 1.0) -> dict[str, Any]:
    """Dev metrics: WER vs labels (student and teacher), WER vs the teacher's transcripts, KL.

    Each batch needs `input_values` (+ mask/lengths) and, for WER vs labels, `texts` (list of
    reference strings) or `text`.
    """
    from w2v_triton.train.distillation.losses import kd_kl_loss

    was_training = student.training
    student.eval()  # type: ignore[no-untyped-call]  # transformers leaves eval() unannotated
    teacher.eval()  # type: ignore[no-untyped-call]
    refs, s_hyps, t_hyps, kls, frames = [], [], [], 0.0, 0
    for batch in batches:
        s_logits = ctc_forward(student, batch, False).logits
        t_logits = ctc_forward(teacher, batch, False).logits
        fl, t_fl = frame_lengths_of(student, batch), frame_lengths_of(teacher, batch)
        mask = frame_mask_from_lengths(fl, s_logits.shape[1])
        n = int(mask.sum())
        kls += float(kd_kl_loss(s_logits, t_logits, mask, temperature)) * n
        frames += n
        s_hyps += greedy_decode(s_logits, fl, id_to_token)
        t_hyps += greedy_decode(t_logits, t_fl, id_to_token)
        texts = batch.get("texts", batch.get("text"))
        refs += list(texts) if texts is not None else [""] * len(fl)
    student.train(was_training)
    return {
        "wer_student_vs_labels": corpus_wer(refs, s_hyps),
        "wer_teacher_vs_labels": corpus_wer(refs, t_hyps),
        "wer_student_vs_teacher": corpus_wer(t_hyps, s_hyps),
        "cer_student_vs_labels": corpus_wer(refs, s_hyps, "char"),
        "cer_teacher_vs_labels": corpus_wer(refs, t_hyps, "char"),
        "kl": kls / max(frames, 1),
        "utterances": len(s_hyps),
        "labelled_utterances": sum(1 for r in refs if r.strip()),
        "examples": [{"ref": r, "teacher": t, "student": h}
                     for r, t, h in list(zip(refs, t_hyps, s_hyps, strict=True))[:3]],
    }


def id_to_token_of(model_dir: str | Path | None, vocab_size: int) -> dict[int, str]:
    """Vocabulary of a checkpoint dir (vocab.json), else the base-960h vocabulary."""
    if model_dir is not None and (Path(model_dir) / "vocab.json").is_file():
        vocab = json.loads((Path(model_dir) / "vocab.json").read_text())
    else:
        from w2v_triton.serving.spec import BASE_960H_VOCAB as vocab
    inv = {int(i): t for t, i in vocab.items()}
    if len(inv) != vocab_size:
        raise ValueError(f"vocab has {len(inv)} tokens, model has {vocab_size} outputs")
    return inv


def loss_config_dict(cfg: DistillLossConfig) -> dict[str, Any]:
    return asdict(cfg)
