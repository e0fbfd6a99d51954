"""Greedy CTC decoding and WER/CER over a dataset (dev during training, test splits after)."""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable, Mapping

import torch
from torch.utils.data import DataLoader

from w2v_triton.eval.metrics import error_rates
from w2v_triton.train.data import BucketBatchSampler, ManifestDataset, collate
from w2v_triton.serving.typing import AnyArray


_DECODERS: dict[tuple[tuple[str, int], ...], Callable[[AnyArray], str]] = {}


def greedy_decode(logits: AnyArray, vocab: Mapping[str, int]) -> str:
    """Greedy text of one utterance's [frames, vocab] logits, via the project's CTC decoder
    (the one Triton serves), cached per vocabulary."""
    key = tuple(sorted(vocab.items()))
    if key not in _DECODERS:
        from w2v_triton.serving.ctc_decoding import CTCDecoder

        _DECODERS[key] = CTCDecoder(dict(vocab)).decode
    return _DECODERS[key](logits)


def _model_output_lengths(model: torch.nn.Module, attention_mask: torch.Tensor) -> torch.Tensor:
    from w2v_triton.serving.masked_frontend import squeeze_factor

    base: Any = model.module if hasattr(model, "module") else model
    lengths: torch.Tensor = base._get_feat_extract_output_lengths(attention_mask.sum(-1)).long()
    factor = squeeze_factor(base)   # SEW: only whole squeeze windows are predictions (masked_frontend)
    return lengths // factor * factor


@torch.no_grad()
def transcribe_batch(model: torch.nn.Module, batch: dict[str, Any], vocab: Mapping[str, int], bf16: bool = False) -> list[str]:
    """Greedy transcripts of a collated batch, on whatever device the model lives on."""
    device = next(model.parameters()).device
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    mask = batch["attention_mask"].to(device)
    with ctx:
        logits = model(input_values=batch["input_values"].to(device), attention_mask=mask).logits
    logits = logits.float().cpu().numpy()
    lengths = _model_output_lengths(model, mask).cpu()
    return [greedy_decode(logits[i, : int(lengths[i])], vocab) for i in range(len(logits))]


def evaluate(model: torch.nn.Module, dataset: ManifestDataset, vocab: Mapping[str, int], max_batch_seconds: float = 60.0,
             bf16: bool = False, progress: bool = False, desc: str = "eval") -> dict[str, Any]:
    """Greedy WER/CER of `model` on `dataset` (a ManifestDataset). Returns rates + examples."""
    was_training = model.training
    model.eval()
    sampler = BucketBatchSampler(dataset.durations, max_batch_seconds, shuffle=False)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
    refs: list[str] = []
    hyps: list[str] = []
    it: Iterable[dict[str, Any]] = loader
    if progress:
        from tqdm import tqdm
        it = tqdm(loader, desc=desc, leave=False)
    for batch in it:
        refs += batch["texts"]
        hyps += transcribe_batch(model, batch, vocab, bf16=bf16)
    if was_training:
        model.train()
    wer, cer = error_rates(refs, hyps)
    rates: dict[str, Any] = {"wer": wer, "cer": cer}
    rates["n"] = len(refs)
    rates["examples"] = [{"ref": r, "hyp": h} for r, h in list(zip(refs, hyps))[:5]]
    rates["all"] = [{"ref": r, "hyp": h} for r, h in zip(refs, hyps)]
    return rates
