"""Resolve `MODEL=...` to a Hugging Face CTC checkpoint directory, load it by its architecture,
and make offline ones.

Accepted names: a hub id (default facebook/wav2vec2-base-960h), a local directory,
`random-base` (random weights, exact base-960h architecture and vocabulary), `tiny`
(a few-layer model for fast tests) and `reference` (the model trained here and
committed under models/reference).

A checkpoint is loaded with the CTC class of its own family and every weight must load
(w2v_triton.serving.ctc_model, also used at serve time by the torch runtime).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

# CheckpointMismatch is re-exported: callers import it from here
from w2v_triton.serving.ctc_model import (CTC_FAMILIES, CheckpointMismatch, CheckpointUnavailable,  # noqa: F401
                                  ctc_class_name, load_ctc_weights)
from w2v_triton.paths import CHECKPOINT_CACHE, IN_CHECKOUT, REFERENCE_MODEL_DIR, REPO_ROOT
from w2v_triton.serving.spec import BASE_960H_VOCAB, DEFAULT_HUB_MODEL, PAD_TOKEN, SAMPLE_RATE, WORD_DELIMITER
from w2v_triton.serving.vocabulary import Vocabulary, VocabularyError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckpointInfo:
    """What the serving pipeline needs to know about a checkpoint besides its weights."""

    path: Path
    vocabulary: Vocabulary
    model_type: str
    sample_rate: int
    do_normalize: bool
    feat_extract_norm: str
    return_attention_mask: bool

    @property
    def vocab(self) -> dict[str, int]:
        return self.vocabulary.tokens


def base_960h_config_kwargs() -> dict[str, Any]:
    """Wav2Vec2Config arguments of facebook/wav2vec2-base-960h (its published config.json)."""
    return dict(
        vocab_size=len(BASE_960H_VOCAB), pad_token_id=0, bos_token_id=1, eos_token_id=2,
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        feat_extract_norm="group", feat_extract_activation="gelu", do_stable_layer_norm=False,
        conv_dim=(512,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_bias=False, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
        ctc_loss_reduction="sum", apply_spec_augment=True, mask_time_prob=0.05,
    )


def tiny_config_kwargs() -> dict[str, Any]:
    """Same front-end strides (20 ms frames) and group norm as base, a few thousand parameters."""
    kwargs = base_960h_config_kwargs()
    kwargs.update(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )
    return kwargs


# Offline tiny checkpoints of every supported family (random weights, for tests and for trying a
# family's export without a download): name -> (model_type, config overrides of tiny_config_kwargs).
TINY_FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "tiny": ("wav2vec2", {}),
    # wav2vec2 large / lv60 / XLS-R layout: layer norm in every conv layer, stable (pre-LN) encoder
    "tiny-large": ("wav2vec2", dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)),
    "tiny-hubert": ("hubert", {}),
    "tiny-wavlm": ("wavlm", dict(num_buckets=32, max_bucket_distance=64)),
    "tiny-data2vec-audio": ("data2vec-audio", dict(num_conv_pos_embeddings=3, conv_pos_kernel_size=5,
                                                   conv_bias=True)),
    # SEW squeeze student layout: half the frames into the transformer; conv width 24 != hidden 32,
    # so it has the feature projection Linear
    "tiny-sew": ("sew", dict(squeeze_factor=2, conv_dim=(24,) * 7)),
}
OFFLINE_NAMES = ("random-base", *TINY_FAMILIES, "reference")


def save_processor(out_dir: Path, vocab: dict[str, int], return_attention_mask: bool,
                   pad_token: str = PAD_TOKEN, unk_token: str = "<unk>",
                   word_delimiter: str = WORD_DELIMITER) -> int:
    """Write vocab.json + tokenizer and feature-extractor configs, as HF checkpoints ship them.
    Returns the tokenizer's size (vocab.json plus the special tokens it adds, e.g. <s> and </s>
    when vocab.json lacks them): the model needs that many outputs."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(  # type: ignore[no-untyped-call]  # transformers leaves __init__ unannotated
        str(out_dir / "vocab.json"), unk_token=unk_token, pad_token=pad_token,
        word_delimiter_token=word_delimiter, do_lower_case=False,
    )
    extractor = Wav2Vec2FeatureExtractor(  # type: ignore[no-untyped-call]  # transformers leaves __init__ unannotated
        feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True,
        return_attention_mask=return_attention_mask,
    )
    processor = Wav2Vec2Processor(  # type: ignore[no-untyped-call]  # transformers leaves __init__ unannotated
        feature_extractor=extractor, tokenizer=tokenizer)
    processor.save_pretrained(str(out_dir))
    # transformers 5 folds the extractor into processor_config.json; older readers (and
    # read_checkpoint_info) look for preprocessor_config.json, so write it too.
    extractor.save_pretrained(str(out_dir))
    return len(tokenizer)


def make_offline_checkpoint(name: str, out_dir: Path | None = None, seed: int = 0,
                            vocab: dict[str, int] | None = None, **tokens: str) -> Path:
    """Write `random-base` or a TINY_FAMILIES checkpoint (random init, fixed seed) unless already
    there. `vocab` (+ `pad_token`/`unk_token`/`word_delimiter`) replaces the base-960h vocabulary."""
    import torch
    import transformers

    if name == "random-base":
        model_type, kwargs = "wav2vec2", base_960h_config_kwargs()
    elif name in TINY_FAMILIES:
        model_type, overrides = TINY_FAMILIES[name]
        kwargs = {**tiny_config_kwargs(), **overrides}
    else:
        raise ValueError(f"unknown offline checkpoint {name!r}: expected random-base or one of {list(TINY_FAMILIES)}")
    out_dir = Path(out_dir or CHECKPOINT_CACHE / name)
    if (out_dir / "config.json").is_file() and (out_dir / "model.safetensors").is_file():
        return out_dir
    size = save_processor(out_dir, vocab or BASE_960H_VOCAB, return_attention_mask=False, **tokens)
    if model_type == "data2vec-audio":
        kwargs.pop("feat_extract_norm")   # always layer norm in every conv layer
    if model_type == "sew":
        kwargs.pop("do_stable_layer_norm")   # always post-LN
    config_class = getattr(transformers, CTC_FAMILIES[model_type].replace("ForCTC", "Config"))
    tokenizer_vocab = json.loads((out_dir / "vocab.json").read_text(encoding="utf-8"))
    pad_id = tokenizer_vocab[tokens.get("pad_token", PAD_TOKEN)]
    kwargs.update(vocab_size=size, pad_token_id=pad_id)
    torch.manual_seed(seed)
    model = getattr(transformers, CTC_FAMILIES[model_type])(config_class(**kwargs)).eval()
    model.save_pretrained(str(out_dir), max_shard_size="2GB")
    return out_dir


def _hub_unreachable_message(name: str, error: Exception) -> str:
    return (
        f"cannot load '{name}' from the Hugging Face hub ({type(error).__name__}: "
        f"{str(error).splitlines()[0][:200] if str(error) else 'no detail'}).\n"
        "Alternatives: MODEL=/path/to/local/checkpoint (a save_pretrained directory), "
        "MODEL=random-base (random weights, exact base-960h architecture), "
        "MODEL=reference (the model trained in this repository: synthetic espeak voices only), "
        "MODEL=tiny (tests)."
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
                logger.warning(
                    "hub default %s unreachable: using the committed reference model %s, which knows "
                    "only synthetic espeak-ng voices and is not for real speech (MODEL=<dir> for yours)",
                    DEFAULT_HUB_MODEL, REFERENCE_MODEL_DIR.relative_to(REPO_ROOT))
                return REFERENCE_MODEL_DIR
            raise
    if name == "random-base" or name in TINY_FAMILIES:
        return make_offline_checkpoint(name)
    if name == "reference":
        if not (REFERENCE_MODEL_DIR / "config.json").is_file():
            raise CheckpointUnavailable(f"the reference model is not in {REFERENCE_MODEL_DIR}" if IN_CHECKOUT else
                                        "the reference model is committed in the project's checkout (models/reference), "
                                        "not in an installed package: MODEL=<its folder>")
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
    """Family, vocabulary and feature-extractor settings the serving pipeline must reproduce."""
    config = json.loads((path / "config.json").read_text())
    ctc_class_name(config, path)
    try:
        vocabulary = Vocabulary.load_from_dir(path)
    except VocabularyError as exc:
        raise CheckpointUnavailable(f"{path}: {exc}") from None
    extractor_file = path / "preprocessor_config.json"
    extractor = json.loads(extractor_file.read_text()) if extractor_file.is_file() else {}
    if vocabulary.size != config.get("vocab_size", vocabulary.size):
        raise CheckpointUnavailable(
            f"{path}: vocab.json has {vocabulary.size} tokens but the model has {config['vocab_size']} outputs")
    pad_id = config.get("pad_token_id")
    if pad_id is not None and vocabulary.tokens[vocabulary.blank] != pad_id:
        raise CheckpointUnavailable(
            f"{path}: the tokenizer's pad token {vocabulary.blank!r} (the CTC blank) is id "
            f"{vocabulary.tokens[vocabulary.blank]} but config.json's pad_token_id is {pad_id}")
    return CheckpointInfo(
        path=path, vocabulary=vocabulary, model_type=config["model_type"],
        sample_rate=int(extractor.get("sampling_rate", SAMPLE_RATE)),
        do_normalize=bool(extractor.get("do_normalize", True)),
        feat_extract_norm=config.get("feat_extract_norm", "layer" if config["model_type"] == "data2vec-audio" else "group"),
        return_attention_mask=bool(extractor.get("return_attention_mask", False)),
    )


def load_ctc_model(name_or_path: str | Path, allow_weight_mismatch: bool = False) -> PreTrainedModel:
    """Resolve a MODEL name (hub id, local dir, offline name) and load it with its family's CTC
    class, every weight checked (ctc_model.load_ctc_weights)."""
    return load_ctc_weights(resolve_checkpoint(str(name_or_path)), allow_weight_mismatch)
