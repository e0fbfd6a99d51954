"""Greedy CTC decoding and WER/CER over a dataset (dev during training, test splits after), and of
a model folder on a corpus' held-out splits and real speech, per synthesiser and per source."""
from __future__ import annotations

import contextlib
import glob
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from w2v_triton.eval.metrics import error_rates
from w2v_triton.serving.typing import AnyArray
from w2v_triton.train.data import BucketBatchSampler, ManifestDataset, collate
from w2v_triton.train.model import read_vocab

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
    batches = list(BucketBatchSampler(dataset.durations, max_batch_seconds, shuffle=False))
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate)
    refs: list[str] = []
    hyps: list[str] = []
    indices: list[int] = []
    it: Iterable[dict[str, Any]] = loader
    if progress:
        from tqdm import tqdm
        it = tqdm(loader, desc=desc, leave=False)
    for batch_indices, batch in zip(batches, it, strict=True):
        refs += batch["texts"]
        hyps += transcribe_batch(model, batch, vocab, bf16=bf16)
        indices += batch_indices
    if was_training:
        model.train()
    wer, cer = error_rates(refs, hyps)
    rates: dict[str, Any] = {"wer": wer, "cer": cer}
    rates["n"] = len(refs)
    rates["examples"] = [{"ref": r, "hyp": h} for r, h in list(zip(refs, hyps, strict=True))[:5]]
    rates["all"] = [{"ref": r, "hyp": h, "index": i} for r, h, i in zip(refs, hyps, indices, strict=True)]
    return rates


def rates_by(rows: list[dict[str, Any]], pairs: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """WER / CER of `evaluate`'s pairs grouped by `rows[pair["index"]][key]` (e.g. synth, source)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for pair in pairs:
        groups.setdefault(str(rows[pair["index"]][key]), []).append(pair)
    out = {}
    for name, group in sorted(groups.items()):
        wer, cer = error_rates([p["ref"] for p in group], [p["hyp"] for p in group])
        out[name] = {"wer": wer, "cer": cer, "n": len(group)}
    return out


EVAL_SPLITS = ("test_seen", "test_unseen", "dev")


def evaluate_model(model_dir: str | Path, corpus: str | Path, real_speech_glob: str = "",
                   splits: tuple[str, ...] = EVAL_SPLITS, progress: bool = False) -> dict[str, Any]:
    """Greedy CER / WER of a model folder on the corpus' `splits` that exist (per synthesiser when
    the corpus has several) and on the real-speech manifests matching `real_speech_glob` (per
    source folder; none when '' or nothing matches), on the GPU when there is one."""
    from w2v_triton.build.manifest import read_rows
    from w2v_triton.serving.ctc_model import load_ctc_weights

    model_dir, corpus = Path(model_dir), Path(corpus)
    vocab = read_vocab(model_dir / "vocab.json")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # the checkpoint's own family class, strict: a student of another family (e.g. a SEW squeeze
    # student) loaded as Wav2Vec2ForCTC would be evaluated with random weights
    # transformers' decorated .to() hides nn.Module.to's signature: hence the arg-type ignore
    model = load_ctc_weights(model_dir).to(device)  # type: ignore[arg-type]
    sets: list[tuple[str, list[dict[str, Any]], str | None]] = []
    for split in splits:
        if (corpus / f"{split}.jsonl").is_file():
            rows = read_rows(corpus / f"{split}.jsonl")
            sets.append((split, rows, "synth" if len({r.get("synth") for r in rows}) > 1 else None))
    real_rows = []
    for manifest in sorted(glob.glob(real_speech_glob)) if real_speech_glob else []:
        real_rows += [dict(row, set=Path(manifest).parent.name) for row in read_rows(manifest)]
    if real_rows:
        sets.append(("real_speech", real_rows, "set"))
    results: dict[str, Any] = {}
    for name, rows, group in sets:
        start = time.time()
        dataset = ManifestDataset(rows, vocab)
        r = evaluate(model, dataset, vocab, max_batch_seconds=120, progress=progress, desc=name)
        r["audio_hours"] = round(sum(dataset.durations) / 3600, 3)
        r["eval_s"] = round(time.time() - start, 1)
        if group:
            r["by_synth" if group == "synth" else "by_set"] = rates_by(rows, r["all"], group)
        results[name] = r
    return results


def rates_only(results: dict[str, Any]) -> dict[str, Any]:
    """`evaluate_model`'s results without the per-utterance transcripts: what eval_results.json holds."""
    return {name: {k: v for k, v in r.items() if k != "all"} for name, r in results.items()}
