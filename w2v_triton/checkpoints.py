"""Resolve `MODEL=...` to a Hugging Face Wav2Vec2ForCTC directory, and make offline ones.

Accepted names: a hub id (default facebook/wav2vec2-base-960h), a local directory,
`random-base` (random weights, exact base-960h architecture and vocabulary), `tiny`
(a few-layer model for fast tests) and `reference` (the model trained here and
committed under models/reference).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from w2v_triton.spec import BASE_960H_VOCAB, DEFAULT_HUB_MODEL, PAD_TOKEN, SAMPLE_RATE, WORD_DELIMITER

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_CACHE = REPO_ROOT / "build" / "checkpoints"
REFERENCE_MODEL_DIR = REPO_ROOT / "models" / "reference"
OFFLINE_NAMES = ("random-base", "tiny", "reference")


class CheckpointUnavailable(RuntimeError):
    """The checkpoint cannot be loaded; the message names what to do instead."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What the serving pipeline needs to know about a checkpoint besides its weights."""

    path: Path
    vocab: dict[str, int]
    sample_rate: int
    do_normalize: bool
    feat_extract_norm: str
    return_attention_mask: bool


def base_960h_config_kwargs() -> dict:
    """Wav2Vec2Config arguments of facebook/wav2vec2-base-960h (its published config.json)."""
    return dict(
        vocab_size=len(BASE_960H_VOCAB), pad_token_id=0, bos_token_id=1, eos_token_id=2,
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        feat_extract_norm="group", feat_extract_activation="gelu", do_stable_layer_norm=False,
        conv_dim=(512,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_bias=False, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
        ctc_loss_reduction="sum", apply_spec_augment=True, mask_time_prob=0.05,
    )


def tiny_config_kwargs() -> dict:
    """Same front-end strides (20 ms frames) and group norm as base, a few thousand parameters."""
    kwargs = base_960h_config_kwargs()
    kwargs.update(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )
    return kwargs


def save_processor(out_dir: Path, vocab: dict[str, int], return_attention_mask: bool) -> None:
    """Write vocab.json + tokenizer and feature-extractor configs, as HF checkpoints ship them."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(
        str(out_dir / "vocab.json"), unk_token="<unk>", pad_token=PAD_TOKEN,
        word_delimiter_token=WORD_DELIMITER, do_lower_case=False,
    )
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True,
        return_attention_mask=return_attention_mask,
    )
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(str(out_dir))
    # transformers 5 folds the extractor into processor_config.json; older readers (and
    # read_checkpoint_info) look for preprocessor_config.json, so write it too.
    extractor.save_pretrained(str(out_dir))


def make_offline_checkpoint(name: str, out_dir: Path | None = None, seed: int = 0) -> Path:
    """Write `random-base` or `tiny` (random init, fixed seed) unless already there."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    kwargs = {"random-base": base_960h_config_kwargs, "tiny": tiny_config_kwargs}[name]()
    out_dir = Path(out_dir or CHECKPOINT_CACHE / name)
    if (out_dir / "config.json").is_file() and (out_dir / "model.safetensors").is_file():
        return out_dir
    torch.manual_seed(seed)
    model = Wav2Vec2ForCTC(Wav2Vec2Config(**kwargs)).eval()
    model.save_pretrained(str(out_dir), max_shard_size="2GB")
    save_processor(out_dir, BASE_960H_VOCAB, return_attention_mask=False)
    return out_dir


def _hub_unreachable_message(name: str, error: Exception) -> str:
    return (
        f"cannot load '{name}' from the Hugging Face hub ({type(error).__name__}: "
        f"{str(error).splitlines()[0][:200] if str(error) else 'no detail'}).\n"
        "Alternatives: MODEL=/path/to/local/checkpoint (a save_pretrained directory), "
        "MODEL=random-base (random weights, exact base-960h architecture), "
        "MODEL=reference (the model trained in this repository), MODEL=tiny (tests)."
    )


def resolve_checkpoint(name: str | None) -> Path:
    """Turn a MODEL value into a local directory, downloading from the hub if needed.

    With no name, the hub default is tried; if the hub cannot be reached and the trained
    reference model is committed, that is used instead (and one line says so).
    """
    if name in (None, "", "default"):
        try:
            return resolve_checkpoint(DEFAULT_HUB_MODEL)
        except CheckpointUnavailable:
            if (REFERENCE_MODEL_DIR / "config.json").is_file():
                print(f"hub default {DEFAULT_HUB_MODEL} unreachable: using the committed "
                      f"reference model {REFERENCE_MODEL_DIR.relative_to(REPO_ROOT)}")
                return REFERENCE_MODEL_DIR
            raise
    if name in ("random-base", "tiny"):
        return make_offline_checkpoint(name)
    if name == "reference":
        if not (REFERENCE_MODEL_DIR / "config.json").is_file():
            raise CheckpointUnavailable(f"the reference model is not in {REFERENCE_MODEL_DIR}")
        return REFERENCE_MODEL_DIR
    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise CheckpointUnavailable(f"{local} is not a Hugging Face checkpoint (no config.json)")
        return local
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise CheckpointUnavailable(f"{name}: no such directory")
    return _download(name)


def _download(hub_id: str) -> Path:
    """snapshot_download with short timeouts so that an offline machine fails fast."""
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(
            hub_id, allow_patterns=["*.json", "*.safetensors", "*.bin", "*.txt"],
        ))
    except Exception as exc:  # any network/auth/404 error: one clear message, no traceback
        raise CheckpointUnavailable(_hub_unreachable_message(hub_id, exc)) from None


def read_checkpoint_info(path: Path) -> CheckpointInfo:
    """Vocabulary and feature-extractor settings the serving pipeline must reproduce."""
    config = json.loads((path / "config.json").read_text())
    vocab_file = path / "vocab.json"
    if not vocab_file.is_file():
        raise CheckpointUnavailable(f"{path} has no vocab.json: not a CTC checkpoint with a tokenizer")
    vocab = json.loads(vocab_file.read_text())
    if all(isinstance(v, dict) for v in vocab.values()):  # multilingual vocab: {lang: {tok: id}}
        raise CheckpointUnavailable(f"{vocab_file}: per-language vocabularies are not supported")
    extractor_file = path / "preprocessor_config.json"
    extractor = json.loads(extractor_file.read_text()) if extractor_file.is_file() else {}
    if len(vocab) != config.get("vocab_size", len(vocab)):
        raise CheckpointUnavailable(
            f"{path}: vocab.json has {len(vocab)} tokens but the model has {config['vocab_size']} outputs")
    return CheckpointInfo(
        path=path, vocab=vocab,
        sample_rate=int(extractor.get("sampling_rate", SAMPLE_RATE)),
        do_normalize=bool(extractor.get("do_normalize", True)),
        feat_extract_norm=config.get("feat_extract_norm", "group"),
        return_attention_mask=bool(extractor.get("return_attention_mask", False)),
    )


def load_ctc_model(name_or_path: str | Path):
    """Load a Wav2Vec2ForCTC in eval mode with eager attention (exportable, deterministic), in
    float32 whatever dtype the weights are stored in (models/reference ships fp16 to fit 25 MB;
    export, quantization and distillation all start from fp32)."""
    import torch
    from transformers import Wav2Vec2ForCTC

    path = resolve_checkpoint(str(name_or_path))
    return Wav2Vec2ForCTC.from_pretrained(str(path), attn_implementation="eager", dtype=torch.float32).eval()
