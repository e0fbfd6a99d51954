"""builders/tune_lm.py: grid search on a dev manifest, chosen values land in the repository and
survive a rebuild (build_repository; the repository command line's own refusal at the end)."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from builders.repository import main as build_repository_cli
from builders.tune_lm import main as tune
from test_decoder_lm import TEXTS, write_lm_dir
from w2v_triton.build.builder import BuildRequest, build_repository
from w2v_triton.build.repository import RepositoryOptions
from w2v_triton.build.tuning import TUNED_KEYS
from w2v_triton.serving import spec
from w2v_triton.serving.ctc_decoding import DecoderConfig
from w2v_triton.build.manifest import Utterance, write_manifest
from w2v_triton.serving.pipeline import ReferencePipeline
from w2v_triton.serving.pipeline import model_parameters


@pytest.fixture
def dev_manifest(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i, text in enumerate(TEXTS):
        audio = (0.1 * rng.standard_normal(16000 + 4000 * i)).astype(np.float32)
        sf.write(tmp_path / f"u{i}.wav", audio, spec.SAMPLE_RATE)
        rows.append(Utterance(tmp_path / f"u{i}.wav", text, audio.size / spec.SAMPLE_RATE))
    write_manifest(tmp_path / "dev.jsonl", rows)
    return tmp_path / "dev.jsonl"


@pytest.fixture
def repo(tmp_path, build_tiny):
    return build_tiny(tmp_path / "repo")


GRID = ["--alphas", "0.5,1.5", "--betas", "0,2", "--beam-widths", "4,8", "--quiet"]


def test_tune_reports_every_point_and_applies_the_best(repo, dev_manifest, tmp_path, capsys, caplog):
    lm = write_lm_dir(tmp_path / "lm", TEXTS)
    results = tmp_path / "results.json"
    assert tune(["--repo", str(repo), "--dev", str(dev_manifest), "--lm-dir", str(lm),
                 "--results", str(results)] + GRID) == 0
    out = capsys.readouterr().out
    assert "<- chosen" in out and "audio-s/s/core" in out
    tuning = json.loads((repo / "decoder" / "tuning.json").read_text())
    assert json.loads(results.read_text()) == tuning
    modes = [p["mode"] for p in tuning["points"]]
    assert modes == ["greedy", "beam"] + ["beam+lm"] * 8
    assert all(0 <= p["wer"] and 0 <= p["cer"] and p["speed_per_core"] > 0 for p in tuning["points"])
    lm_points = [p for p in tuning["points"] if p["mode"] == "beam+lm"]
    best = min(p["wer"] for p in lm_points)
    chosen = tuning["chosen"]
    assert any(p["wer"] == best and (p["beam_width"], p["alpha"], p["beta"]) ==
               (chosen["beam_width"], chosen["alpha"], chosen["beta"]) for p in lm_points)

    params = model_parameters(repo, spec.DECODER_MODEL)
    assert params["mode"] == "beam" and params["lm_path"] == "lm.arpa"
    assert (float(params["alpha"]), float(params["beta"]), int(params["beam_width"])) == (
        chosen["alpha"], chosen["beta"], chosen["beam_width"])
    assert (repo / "decoder" / "lm.arpa").is_file()
    info = json.loads((repo / "build_info.json").read_text())
    assert info["options"]["decoder"]["alpha"] == chosen["alpha"]   # typed: DecoderConfig as saved
    ReferencePipeline(repo).transcribe(np.zeros(8000, np.float32))  # the tuned repository loads

    # A rebuild with the same checkpoint and LM keeps the tuned values...
    beam = BuildRequest(model="tiny", output=repo, lm_dir=lm, options=RepositoryOptions(decoder=DecoderConfig(mode="beam")))
    build_repository(beam)
    assert model_parameters(repo, spec.DECODER_MODEL) == params
    # ...unless a value is given (on the command line: a flag; here left out of tuned_fields)...
    build_repository(replace(beam, options=RepositoryOptions(decoder=DecoderConfig(mode="beam", alpha=0.25)),
                             tuned_fields=tuple(k for k in TUNED_KEYS if k != "alpha")))
    assert model_parameters(repo, spec.DECODER_MODEL)["alpha"] == "0.25"
    # ...or the LM changed (the tuning no longer applies).
    other = write_lm_dir(tmp_path / "other", TEXTS + ["SOMETHING ELSE ENTIRELY"])
    build_repository(replace(beam, lm_dir=other))
    assert "tuned for another checkpoint or LM" in caplog.text   # logged by build.tuning.load_tuning
    assert model_parameters(repo, spec.DECODER_MODEL)["alpha"] == "0.5"


def test_no_apply_leaves_the_repository_alone(repo, dev_manifest, tmp_path):
    lm = write_lm_dir(tmp_path / "lm", TEXTS)
    before = (repo / "decoder" / "config.pbtxt").read_text()
    assert tune(["--repo", str(repo), "--dev", str(dev_manifest), "--lm-dir", str(lm), "--no-apply",
                 "--alphas", "0.5", "--betas", "1", "--beam-widths", "4", "--quiet"]) == 0
    assert (repo / "decoder" / "config.pbtxt").read_text() == before
    assert not (repo / "decoder" / "tuning.json").exists()


def test_lower_case_lm_is_refused(repo, dev_manifest, tmp_path, capsys):
    lm = write_lm_dir(tmp_path / "lm", TEXTS, case="lower")
    assert tune(["--repo", str(repo), "--dev", str(dev_manifest), "--lm-dir", str(lm)] + GRID) == 2
    assert "lower case" in capsys.readouterr().err


def test_lm_dir_needs_beam_mode(tmp_path, tiny_repository, capsys):
    lm = write_lm_dir(tmp_path / "lm", TEXTS)
    onnx = tiny_repository / spec.ACOUSTIC_MODEL / "1" / "model.onnx"
    assert build_repository_cli(["--model", "tiny", "--output", str(tmp_path / "r"), "--onnx", str(onnx),
                                 "--lm-dir", str(lm)]) == 2
    assert "--decoder-mode beam" in capsys.readouterr().err
