"""Every supported CTC family and any vocabulary: load with its own class -> export -> serve.

Small random-weight checkpoints of each family are built here (no download): wav2vec2 base
(group-norm front-end), wav2vec2 large/XLS-R layout (layer-norm front-end, stable layer norm),
HuBERT, WavLM (relative position bias), data2vec-audio (stacked positional convs) and SEW (squeeze
students: pooled frames into the transformer, upsampled before the head), each with
the base-960h vocabulary and with a Vietnamese-style lower-case vocabulary ([PAD]/[UNK],
diacritics, <s>/</s> added by the tokenizer).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from w2v_triton.build.checkpoints import (
    TINY_FAMILIES, CheckpointMismatch, CheckpointUnavailable, load_ctc_model, make_offline_checkpoint,
    read_checkpoint_info)
from w2v_triton.serving.ctc_decoding import CTCDecoder
from w2v_triton.build.onnx_export import FP32_TOLERANCE, build_onnx
from w2v_triton.serving.vocabulary import Vocabulary

FAMILIES = list(TINY_FAMILIES)
VIETNAMESE_LETTERS = "aăâbcdđeêghiklmnoôơpqrstuưvxyàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"
VIETNAMESE_VOCAB = {"[PAD]": 0, "[UNK]": 1, "|": 2, **{c: i + 3 for i, c in enumerate(VIETNAMESE_LETTERS)}}
VOCABS = {
    "en": (None, {}),
    "vi": (VIETNAMESE_VOCAB, dict(pad_token="[PAD]", unk_token="[UNK]")),
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[tuple[str, str], Path]:
    root = tmp_path_factory.mktemp("families")
    made = {}
    for family in FAMILIES:
        for lang, (vocab, tokens) in VOCABS.items():
            made[family, lang] = make_offline_checkpoint(family, root / f"{family}-{lang}", vocab=vocab, **tokens)
    return made


def _allowed_text(vocabulary: Vocabulary) -> set[str]:
    return {c for t in vocabulary.tokens if vocabulary.text_of(t) for c in vocabulary.text_of(t)} | {" "}


@pytest.mark.parametrize("lang", VOCABS)
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_loads_with_its_own_class_and_exports_exactly(checkpoints, family, lang, tmp_path):
    import transformers

    path = checkpoints[family, lang]
    info = read_checkpoint_info(path)
    model = load_ctc_model(path)
    assert info.model_type == TINY_FAMILIES[family][0]
    assert type(model).__name__ == json.loads((path / "config.json").read_text())["architectures"][0]
    # the weights are the checkpoint's own: same logits as the family's class loaded by hand
    own = getattr(transformers, type(model).__name__).from_pretrained(str(path), attn_implementation="eager").eval()
    audio = np.random.default_rng(0).standard_normal((1, 8000)).astype(np.float32)
    import torch
    with torch.no_grad():
        assert torch.equal(model(torch.from_numpy(audio)).logits, own(torch.from_numpy(audio)).logits)
    _, report = build_onnx(path, tmp_path / "onnx")
    assert report.max_abs_diff_single < FP32_TOLERANCE and report.max_abs_diff_batched < FP32_TOLERANCE


def test_vietnamese_vocabulary_follows_the_tokenizer_files(checkpoints):
    info = read_checkpoint_info(checkpoints["tiny-hubert", "vi"])
    vocabulary = info.vocabulary
    assert vocabulary.blank == "[PAD]" and vocabulary.word_delimiter == "|"
    # the tokenizer added <s> and </s> after vocab.json: the model has outputs for them, never spelled
    assert {"<s>", "</s>", "[UNK]"} <= set(vocabulary.special)
    assert vocabulary.size == len(VIETNAMESE_VOCAB) + 2
    assert vocabulary.upper_case is False
    decoder = CTCDecoder(vocabulary)
    logits = np.full((6, vocabulary.size), -10.0, np.float32)
    for frame, token in enumerate(["đ", "ư", "[PAD]", "|", "<s>", "ợ"]):
        logits[frame, vocabulary.tokens[token]] = 10.0
    assert decoder.decode(logits) == "đư ợ"
    assert decoder.parse_hotwords("Đường, HÀ NỘI") == ["đường", "hà nội"]


def test_a_hubert_checkpoint_labelled_wav2vec2_is_refused_naming_the_keys(checkpoints, tmp_path):
    """The silent failure this guards against: HuBERT weights loaded into Wav2Vec2ForCTC."""
    source = checkpoints["tiny-hubert", "en"]
    wrong = tmp_path / "mislabelled"
    wrong.mkdir()
    for file in source.iterdir():
        (wrong / file.name).write_bytes(file.read_bytes())
    config = json.loads((wrong / "config.json").read_text())
    config.update(model_type="wav2vec2", architectures=["Wav2Vec2ForCTC"])
    (wrong / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatch, match=r"missing \(wav2vec2\..*unexpected \(hubert\."):
        load_ctc_model(wrong)
    result = subprocess.run([sys.executable, "-m", "builders.repository", "--model", str(wrong),
                             "--output", str(tmp_path / "repo")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "do not fit Wav2Vec2ForCTC" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "repo").exists()
    # the documented opt-out loads it anyway, with a warning
    assert load_ctc_model(wrong, allow_weight_mismatch=True) is not None


def test_a_checkpoint_without_a_ctc_head_gets_one_clear_line(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining

    from w2v_triton.build.checkpoints import save_processor, tiny_config_kwargs

    pretraining = tmp_path / "pretraining"
    Wav2Vec2ForPreTraining(Wav2Vec2Config(**tiny_config_kwargs())).save_pretrained(str(pretraining))
    save_processor(pretraining, json.loads((make_offline_checkpoint("tiny") / "vocab.json").read_text()), False)
    with pytest.raises(CheckpointUnavailable, match="Wav2Vec2ForPreTraining has no CTC head"):
        read_checkpoint_info(pretraining)
    with pytest.raises(CheckpointUnavailable, match="has no CTC head"):
        load_ctc_model(pretraining)
    seq2seq = tmp_path / "whisper"
    seq2seq.mkdir()
    (seq2seq / "config.json").write_text(json.dumps({"model_type": "whisper",
                                                     "architectures": ["WhisperForConditionalGeneration"]}))
    with pytest.raises(CheckpointUnavailable, match="'whisper'.*not a supported CTC family"):
        read_checkpoint_info(seq2seq)


def test_students_copy_wav2vec2_and_hubert_layers_and_refuse_others(checkpoints):
    from w2v_triton.train.distillation.student import build_student

    for family in ("tiny", "tiny-hubert"):
        teacher = load_ctc_model(checkpoints[family, "en"])
        student, info = build_student(teacher, num_layers=1, conv_channels=16)
        assert type(student) is type(teacher) and info.student_layers == 1
        assert student.config.conv_dim[0] == 16
    for family in ("tiny-wavlm", "tiny-data2vec-audio", "tiny-sew"):
        with pytest.raises(ValueError, match="students can be built from wav2vec2, hubert teachers"):
            build_student(load_ctc_model(checkpoints[family, "en"]), num_layers=1)


@pytest.mark.integration
@pytest.mark.parametrize("lang", VOCABS)
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_serves_what_the_pipeline_transcribes(checkpoints, family, lang, real_speech, tmp_path):
    from client import TranscriptionClient
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.build.repository import RepositoryOptions
    from w2v_triton.serving.audio import load_audio
    from w2v_triton.serving.pipeline import ReferencePipeline
    from w2v_triton.serving.tritonserver import Ports, TritonServer

    repo = tmp_path / "repo"
    build_repository(BuildRequest(model=str(checkpoints[family, lang]), output=repo,
                                  options=RepositoryOptions(decoder_instances=1)))
    clips = [load_audio(u.audio) for u in real_speech[::40][:4]]
    pipeline = ReferencePipeline(repo)
    expected = [pipeline.transcribe(c) for c in clips]
    server = TritonServer(repo, Ports.free(), log_path=tmp_path / "server.log")
    server.start(timeout=180)
    try:
        with TranscriptionClient(server.grpc_url, "grpc") as asr:
            served = [asr.transcribe(c) for c in clips]
    finally:
        server.stop()
    assert served == expected
    assert any(served)   # random weights still emit characters: the comparison is not vacuous
    allowed = _allowed_text(Vocabulary.load_from_dir(repo / "decoder"))
    assert set("".join(served)) <= allowed
    if lang == "vi":
        assert set("".join(served)) - {" "} <= set(VIETNAMESE_LETTERS)
