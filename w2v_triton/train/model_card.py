"""The model card (README.md) of a promoted reference model, written from what the promotion
measured and the files the training and the corpus left (training_summary.json, corpus.json), so
that the card's figures are the ones the gate compared."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from w2v_triton.eval.tables import markdown_table

SET_NAMES = {"test_seen": "test_seen (unseen sentences, training voices)",
             "test_unseen": "test_unseen (unseen sentences, unseen voices)",
             "dev": "dev (training voices)", "real_speech": "real read speech"}


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    return data


def _rates(results: dict[str, Any] | None, split: str, synth: str | None = None) -> str:
    r = (results or {}).get(split)
    if r is not None and synth is not None:
        r = r.get("by_synth", {}).get(synth)
    return "–" if r is None else f"{r['cer']:.3f} / {r['wer']:.3f}"


def evaluation_table(candidate: dict[str, Any], committed: dict[str, Any] | None) -> str:
    """Markdown: each set (and each synthesiser of it) with the candidate's CER / WER and the committed model's."""
    rows = []
    for split, r in candidate.items():
        rows.append([SET_NAMES.get(split, split), r["n"], r.get("audio_hours", ""), f"{r['cer']:.3f}",
                     f"**{r['wer']:.3f}**", _rates(committed, split)])
        rows += [[f"{split}: {synth}", g["n"], "", f"{g['cer']:.3f}", f"{g['wer']:.3f}",
                  _rates(committed, split, synth)] for synth, g in r.get("by_synth", {}).items()]
    return markdown_table(["set", "utterances", "hours", "greedy CER", "greedy WER", "committed model: CER / WER"],
                          rows)


def _architecture(config: dict[str, Any], parameters: int, record: dict[str, Any]) -> list[str]:
    return [f"- `{config.get('architectures', ['?'])[0]}` ({config.get('model_type')}): "
            f"{config.get('num_hidden_layers')} transformer layers, hidden {config.get('hidden_size')}, "
            f"{config.get('num_attention_heads')} heads, FFN {config.get('intermediate_size')}, "
            f"{'pre-LN' if config.get('do_stable_layer_norm') else 'post-LN'}; conv front-end "
            f"{config.get('conv_dim')} ({config.get('feat_extract_norm')} norm); "
            f"CTC head over {config.get('vocab_size')} tokens (blank = id {config.get('pad_token_id')}).",
            f"- **{parameters:,} parameters**; weights stored in {record['weights_dtype']} "
            f"({record['weights_mb']} MB); the project's loaders read them in float32."]


def _corpus(corpus: dict[str, Any], where: str) -> list[str]:
    if not corpus:
        return [f"- (no corpus.json in {where})"]
    lines = [f"- `{where}`, built by `builders/corpus.py` (seed {corpus.get('seed')}): "
             + ", ".join(f"{name} (share {info['weight']:g}; training voices {', '.join(info['training_voices'][:6])}"
                         f"{', ...' if len(info['training_voices']) > 6 else ''}; held-out voices "
                         f"{', '.join(info['unseen_voices'][:4])}{', ...' if len(info['unseen_voices']) > 4 else ''})"
                         for name, info in corpus.get("synthesizers", {}).items())]
    for split, s in corpus.get("stats", {}).items():
        lines.append(f"- {split}: {s['utterances']:,} utterances, {s['hours']} h, {s['voices']} voices")
    return lines


def _training(summary: dict[str, Any]) -> list[str]:
    if not summary:
        return ["- (no training_summary.json)"]
    keys = ("steps", "epoch", "train_time_s", "audio_hours_seen", "device", "preset", "model_config", "init_from",
            "bf16_autocast", "train_utterances", "train_hours")
    lines = ["- " + ", ".join(f"{k} {summary[k]}" for k in keys if summary.get(k) is not None)]
    if summary.get("command"):
        lines.append(f"- command: `{summary['command']}`")
    return lines


def write_model_card(folder: Path, record: dict[str, Any], corpus_dir: Path, parameters: int,
                     replaced: Path) -> Path:
    """README.md in `folder` (the staged model) from the promotion `record` (Decision.to_json() plus
    command, date, corpus, weights_dtype, weights_mb); `replaced` is the committed folder it replaces."""
    config = _read(folder / "config.json")
    summary = _read(folder / "training_summary.json")
    previous = _read(replaced / "training_summary.json")
    previous_promotion = _read(replaced / "promotion.json")
    lines = [
        "# reference: English wav2vec2 CTC trained from scratch on synthetic speech",
        "",
        f"Promoted on {record['date']} by `{record['command'] or 'promote_reference'}` "
        "(`w2v_triton/train/promotion.py`): it replaced the committed model only because it is better on "
        "test_seen and test_unseen (greedy WER, then CER) and, where real speech was present, no worse on it, "
        f"measured on the same splits ({record['corpus']}). Decision: {record['reason']}.",
        "It has heard synthetic voices only (corpus below); its real-speech row, where measured, says how "
        "far that carries to people. Project documentation: `docs/reference-model.md`.",
        "",
        "## Evaluation (greedy CTC, no LM; `make eval-reference`)",
        evaluation_table(record["candidate"], record["committed"]),
        "",
        "## Model",
        *_architecture(config, parameters, record),
        "- Files: `config.json`, `model.safetensors`, `vocab.json`, `tokenizer_config.json`, "
        "`preprocessor_config.json` + `processor_config.json` (16 kHz, `do_normalize=True`, "
        "`return_attention_mask=True`), `eval_results.json` (the figures above), `training_summary.json`, "
        "`promotion.json` (the gate's inputs and decision).",
        "",
        "## Training data (the corpus it was evaluated on)",
        *_corpus(_read(corpus_dir / "corpus.json"), str(corpus_dir)),
        "",
        "## Training",
        *_training(summary),
        "",
        "## Previous version",
        *(_training(previous) if previous else ["- none"]),
    ]
    if previous_promotion:
        lines.append(f"- promoted on {previous_promotion.get('date')} by `{previous_promotion.get('command')}`")
    path = folder / "README.md"
    path.write_text("\n".join(lines) + "\n")
    return path
