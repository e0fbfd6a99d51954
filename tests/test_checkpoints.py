import subprocess
import sys

import pytest

from w2v_triton.build.checkpoints import (
    CheckpointUnavailable, make_offline_checkpoint, read_checkpoint_info, resolve_checkpoint)
from w2v_triton.serving.spec import BASE_960H_VOCAB


def test_random_base_has_the_base_960h_architecture():
    from transformers import Wav2Vec2ForCTC

    path = make_offline_checkpoint("random-base")
    model = Wav2Vec2ForCTC.from_pretrained(str(path))
    params = sum(p.numel() for p in model.parameters())
    assert round(params / 1e6, 1) == 94.4, params
    info = read_checkpoint_info(path)
    assert info.vocab == BASE_960H_VOCAB
    assert (info.sample_rate, info.do_normalize, info.feat_extract_norm) == (16000, True, "group")
    assert info.return_attention_mask is False
    assert (path / "preprocessor_config.json").is_file()


def test_tiny_loads_through_the_hf_processor():
    from transformers import Wav2Vec2Processor

    path = resolve_checkpoint("tiny")
    processor = Wav2Vec2Processor.from_pretrained(str(path))
    assert processor.feature_extractor.sampling_rate == 16000
    assert processor.tokenizer.decode([11, 10, 4, 11]) == "HI H"


def test_local_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(CheckpointUnavailable, match="no config.json"):
        resolve_checkpoint(str(tmp_path))


def test_missing_local_path_is_rejected(tmp_path):
    with pytest.raises(CheckpointUnavailable, match="no such directory"):
        resolve_checkpoint(str(tmp_path / "nope"))


def _offline_env(monkeypatch_env: dict) -> dict:
    import os
    env = dict(os.environ)
    env.update(monkeypatch_env)
    return env


def test_unreachable_hub_gives_one_clear_message_fast():
    # A closed local port stands in for the unreachable hub (no traffic leaves the machine).
    env = _offline_env({"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "3",
                        "HF_HUB_DOWNLOAD_TIMEOUT": "3", "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    result = subprocess.run(
        [sys.executable, "builders/checkpoint.py", "--model", "facebook/wav2vec2-base-960h"],
        capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert "cannot load 'facebook/wav2vec2-base-960h'" in result.stderr
    assert "random-base" in result.stderr and "/path/to/local/checkpoint" in result.stderr
    assert "Traceback" not in result.stderr
