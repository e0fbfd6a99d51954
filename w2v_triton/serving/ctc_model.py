"""Load a CTC checkpoint with the class of its own family, or refuse it with one clear line.

Why: loading HuBERT (or WavLM, data2vec-audio) weights into Wav2Vec2ForCTC "works" - every
encoder weight is reported missing and freshly initialised - and an exported, verified, served
model is then random. Here the class comes from the config's model_type (`CTC_FAMILIES`:
wav2vec2 incl. large/lv60/XLS-R, HuBERT, WavLM, data2vec-audio) and any missing, unexpected or
mismatched weight is an error naming the first keys. Used by the builders (export, students,
distillation) and at serve time by the torch runtime.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

# model_type (config.json) -> the transformers CTC class of that family. The length-aware export
# (masked_frontend) is verified for each of these; other CTC families are refused.
CTC_FAMILIES: dict[str, str] = {
    "wav2vec2": "Wav2Vec2ForCTC",
    "hubert": "HubertForCTC",
    "wavlm": "WavLMForCTC",
    "data2vec-audio": "Data2VecAudioForCTC",
    "sew": "SEWForCTC",    # squeeze students (distillation/squeeze.py): 1/s of the frames into the transformer
}
# Weights a checkpoint may lack without changing inference: the SpecAugment mask embedding is only
# used in training (facebook/wav2vec2-base-960h itself ships without it).
TRAINING_ONLY_WEIGHTS = ("masked_spec_embed",)
_KEYS_SHOWN = 5


class CheckpointUnavailable(RuntimeError):
    """The checkpoint cannot be loaded; the message names what to do instead."""


class CheckpointMismatch(CheckpointUnavailable):
    """The weights do not fit the architecture the config names (missing or unexpected keys)."""


def ctc_class_name(config: dict[str, Any], path: Path | str = "") -> str:
    """The transformers CTC class for a checkpoint's config.json, or one clear refusal."""
    model_type = config.get("model_type", "")
    architectures = config.get("architectures") or []
    where = f"{path}: " if path else ""
    if model_type not in CTC_FAMILIES:
        raise CheckpointUnavailable(
            f"{where}model_type {model_type!r} ({', '.join(architectures) or 'no architectures'}) is not a "
            f"supported CTC family; supported: {', '.join(CTC_FAMILIES)} (wav2vec2 includes large, lv60 "
            "and XLS-R). Sequence-to-sequence models (Whisper, speech encoder-decoders) are not CTC models.")
    if architectures and not any(a.endswith("ForCTC") for a in architectures):
        raise CheckpointUnavailable(
            f"{where}{architectures[0]} has no CTC head (a pretraining-only or other-task checkpoint): "
            f"serving needs a checkpoint fine-tuned with CTC ({CTC_FAMILIES[model_type]}), e.g. "
            "facebook/wav2vec2-base-960h, or fine-tune this one with a CTC head first")
    return CTC_FAMILIES[model_type]


def _mismatch_message(path: Path, class_name: str, missing: list[str], unexpected: list[str]) -> str:
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            shown = ", ".join(sorted(keys)[:_KEYS_SHOWN]) + (", ..." if len(keys) > _KEYS_SHOWN else "")
            parts.append(f"{len(keys)} {label} ({shown})")
    return (f"{path}: the weights do not fit {class_name}: {'; '.join(parts)}. The served model would be "
            "partly random. Check that config.json's model_type matches the weights; "
            "--allow-weight-mismatch overrides this (only for checkpoints whose extra weights are "
            "training-only heads, see README)")


def load_ctc_weights(path: Path, allow_weight_mismatch: bool = False) -> PreTrainedModel:
    """Load a local CTC checkpoint with its own family's class, in eval mode with eager attention
    (exportable, deterministic), in float32 whatever dtype the weights are stored in
    (models/reference ships fp16 to fit 25 MB; export, quantization and distillation start from
    fp32). Missing or unexpected weights raise CheckpointMismatch unless allowed."""
    import torch
    import transformers

    path = Path(path)
    class_name = ctc_class_name(json.loads((path / "config.json").read_text()), path)
    model, loading = getattr(transformers, class_name).from_pretrained(
        str(path), attn_implementation="eager", dtype=torch.float32, output_loading_info=True)
    missing = [k for k in loading.get("missing_keys", ()) if not k.endswith(TRAINING_ONLY_WEIGHTS)]
    unexpected = list(loading.get("unexpected_keys", ()))
    mismatched = [k[0] if isinstance(k, tuple) else k for k in loading.get("mismatched_keys", ())]
    if missing or unexpected or mismatched:
        message = _mismatch_message(path, class_name, missing + mismatched, unexpected)
        if not allow_weight_mismatch:
            raise CheckpointMismatch(message)
        logger.warning("allowed by --allow-weight-mismatch: %s", message)
    loaded: PreTrainedModel = model.eval()
    return loaded
