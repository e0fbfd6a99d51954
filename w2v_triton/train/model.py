"""Model configurations trained here from scratch, and export to a HF checkpoint folder."""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from w2v_triton.serving.spec import BASE_960H_VOCAB, PAD_TOKEN

if TYPE_CHECKING:
    from transformers import PreTrainedModel, Wav2Vec2ForCTC

# Reference model sized for a 2-core CPU (see docs/reference-model.md for the measurements):
# 12 pre-LN transformer layers, hidden 192, 4 heads, FFN 768, a light layer-norm conv front-end.
REFERENCE_CONFIG: dict[str, Any] = dict(
    hidden_size=192, num_hidden_layers=12, num_attention_heads=4, intermediate_size=768,
    conv_dim=(64, 96, 96, 96, 96, 192, 192), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
    conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_bias=True,
    feat_extract_norm="layer", do_stable_layer_norm=True,
    num_conv_pos_embeddings=64, num_conv_pos_embedding_groups=16,
    hidden_dropout=0.05, attention_dropout=0.05, activation_dropout=0.0, feat_proj_dropout=0.05,
    final_dropout=0.0, layerdrop=0.0,
    mask_time_prob=0.05, mask_time_length=10, mask_feature_prob=0.0,
    ctc_loss_reduction="mean", ctc_zero_infinity=True,
)

# Reference model sized for a GPU run of minutes (the pilot's configuration that reached 27% WER in
# 7 H100 minutes, ../shared/notes/training-from-scratch.md): hidden 256, FFN 1024, a full 7 x 256
# conv front-end; 11.1 M parameters, 22 MB in fp16.
GPU_REFERENCE_CONFIG: dict[str, Any] = dict(
    REFERENCE_CONFIG, hidden_size=256, intermediate_size=1024, conv_dim=(256,) * 7,
    num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
)

# A few-step test model: same structure, minimal sizes.
TINY_CONFIG: dict[str, Any] = dict(REFERENCE_CONFIG, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, conv_dim=(16, 16, 16, 16, 16, 32, 32),
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                         mask_time_prob=0.0)


def build_ctc_model(config: Mapping[str, Any] | None = None, vocab: Mapping[str, int] = BASE_960H_VOCAB,
                    seed: int = 0, **overrides: Any) -> Wav2Vec2ForCTC:
    """Randomly initialised Wav2Vec2ForCTC (deterministic from `seed`)."""
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    kw = dict(REFERENCE_CONFIG if config is None else config)
    kw.update(overrides)
    cfg = Wav2Vec2Config(vocab_size=len(vocab), pad_token_id=vocab[PAD_TOKEN],
                         bos_token_id=vocab.get("<s>", 1), eos_token_id=vocab.get("</s>", 2), **kw)
    torch.manual_seed(seed)
    return Wav2Vec2ForCTC(cfg)


def export_pretrained(model: PreTrainedModel, out_dir: str | Path, vocab: Mapping[str, int] = BASE_960H_VOCAB,
                      dtype: torch.dtype = torch.float32, max_shard_size: str | None = None) -> Path:
    """save_pretrained (safetensors) + processor files (vocab.json, tokenizer and feature-extractor
    configs: 16 kHz, do_normalize, return_attention_mask) into `out_dir`. `max_shard_size` (e.g.
    "15MB") splits the weights, for transports that cap the size of one file."""
    from w2v_triton.build.checkpoints import save_processor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in list(out.glob("model*.safetensors")) + list(out.glob("model.safetensors.index.json")):
        stale.unlink()   # a sharded export must not leave an older single file behind, and vice versa
    device = next(model.parameters()).device
    # transformers' decorated .to() hides nn.Module.to's signature: hence the arg-type ignores
    model = model.to("cpu", dtype)  # type: ignore[arg-type]
    kw: dict[str, Any] = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(str(out), safe_serialization=True, **kw)
    model.to(device, torch.float32)  # type: ignore[arg-type]
    save_processor(out, dict(vocab), return_attention_mask=True)
    # transformers 5 folds the feature extractor into processor_config.json; serving code and
    # older tools read preprocessor_config.json, so write that file too.
    from transformers import Wav2Vec2FeatureExtractor

    from w2v_triton.serving.spec import SAMPLE_RATE
    extractor = Wav2Vec2FeatureExtractor(  # type: ignore[no-untyped-call]  # transformers leaves __init__ unannotated
        feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True, return_attention_mask=True)
    extractor.save_pretrained(str(out))
    return out


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def read_vocab(path: str | Path) -> dict[str, int]:
    vocab: dict[str, int] = json.loads(Path(path).read_text())
    return vocab
