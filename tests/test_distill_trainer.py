"""Distillation trainer on a tiny teacher and tone 'speech': loss goes down, the output is a
servable HF dir, resume gives the same next step, and torchrun (DDP, gloo, 2 processes) works."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from w2v_triton.train.distillation.losses import DistillLossConfig
from w2v_triton.train.distillation.trainer import RESULTS_FILE, DistillConfig, run_distillation
from w2v_triton.serving.spec import SAMPLE_RATE
from w2v_triton.train.trainer import TrainConfig, read_log

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from w2v_triton.train.model import TINY_CONFIG, build_ctc_model, export_pretrained
    from w2v_triton.train.synthetic import tone_utterances

    root = tmp_path_factory.mktemp("distill")
    teacher = build_ctc_model(TINY_CONFIG, num_hidden_layers=4, seed=0)
    teacher_dir = export_pretrained(teacher, root / "teacher")
    # the same architecture without dropout: RNG-free training steps
    export_pretrained(build_ctc_model(TINY_CONFIG, num_hidden_layers=4, seed=0, hidden_dropout=0.0,
                                      attention_dropout=0.0, feat_proj_dropout=0.0),
                      root / "teacher_nodrop")
    (root / "audio").mkdir()
    rows = tone_utterances(n=6, seed=1)
    lines = []
    for i, r in enumerate(rows):
        sf.write(root / "audio" / f"{i}.flac", r["samples"], SAMPLE_RATE, subtype="PCM_16")
        row = {"audio": f"audio/{i}.flac", "duration": r["duration"]}
        if i != 5:  # one unlabelled (KD-only) row
            row["text"] = r["text"]
        lines.append(json.dumps(row))
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    (root / "dev.jsonl").write_text("\n".join(lines[:3]) + "\n")
    return root, teacher_dir


def _cfgs(root, teacher_dir, name, **loss_kw):
    loss = DistillLossConfig(**({"kl_weight": 0.8, "temperature": 4.0, "ctc_weight": 0.2} | loss_kw))
    cfg = DistillConfig(teacher=str(teacher_dir), train=str(root / "train.jsonl"), dev=str(root / "dev.jsonl"),
                        out=str(root / name), num_layers=2, strategy="even", loss=loss, threads=1)
    train = TrainConfig(max_steps=10, lr=3e-3, warmup_steps=0, schedule="constant", max_batch_seconds=30.0,
                        eval_every=0, save_every=0, log_every=1, progress=False)
    return cfg, train


def test_short_run_lowers_loss_and_exports_hf_dir(setup):
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor
    root, teacher_dir = setup
    cfg, train = _cfgs(root, teacher_dir, "student_a", hidden_weight=0.5, prediction_heads=True)
    res = run_distillation(cfg, train)
    trainer = res["trainer"]
    rows = [r for r in read_log(Path(cfg.out + ".train") / "train_log.jsonl") if "loss" in r and "step" in r]
    losses = [r["loss"] for r in rows]
    assert len(losses) == 10 and losses[-1] < 0.8 * losses[0], losses
    assert {"kl", "ctc", "hidden"} <= set(rows[0])
    # teacher: frozen, eval mode, untouched
    task_teacher = Wav2Vec2ForCTC.from_pretrained(str(teacher_dir))
    assert sum(p.numel() for p in trainer.model.parameters() if p.requires_grad) > 0
    out = Path(cfg.out)
    student = Wav2Vec2ForCTC.from_pretrained(str(out))
    assert student.config.num_hidden_layers == 2
    assert (out / "vocab.json").read_bytes() == (teacher_dir / "vocab.json").read_bytes()
    Wav2Vec2Processor.from_pretrained(str(out))
    assert json.loads((out / "student_info.json").read_text())["kept_layers"] == [0, 3]
    results = json.loads((out / RESULTS_FILE).read_text())
    for key in ("wer_student_vs_labels", "wer_teacher_vs_labels", "wer_student_vs_teacher", "kl"):
        assert key in results["dev"]
    assert results["dev"]["utterances"] == 3 and results["dev_start"]["utterances"] == 3
    from w2v_triton.train.trainer import plot_log
    plot_log(Path(cfg.out + ".train") / "train_log.jsonl", root / "curve.png")  # dev rows plot
    # the student changed, the teacher on disk did not
    assert not torch.equal(student.lm_head.weight, task_teacher.lm_head.weight)


def test_teacher_frozen_in_eval_mode(setup):
    from w2v_triton.train.distillation.student import build_student, load_teacher
    from w2v_triton.train.distillation.task import DistillTask, make_distill_model
    from w2v_triton.train.distillation.trainer import kd_collate, load_dataset
    root, teacher_dir = setup
    teacher = load_teacher(str(teacher_dir)).train()  # even if handed over in train mode
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student, info = build_student(teacher, 2, "first")
    cfg = DistillLossConfig(kl_weight=1.0, ctc_weight=1.0)
    model = make_distill_model(student, teacher, cfg, info.kept_layers).train()
    task = DistillTask(teacher, cfg)
    vocab = json.loads((teacher_dir / "vocab.json").read_text())
    ds = load_dataset(str(root / "train.jsonl"), vocab, True)
    batch = kd_collate([ds[i] for i in range(6)])
    assert batch["labelled"].tolist() == [True] * 5 + [False]
    loss, logs = task.compute_loss(model, batch)
    loss.backward()
    assert not teacher.training and all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    # the teacher is not part of what the trainer optimises / checkpoints
    assert not any(k.startswith("teacher") for k in model.state_dict())


def _resume_check(root, teacher_dir, tag):
    cfg, train = _cfgs(root, teacher_dir, f"student_{tag}", hidden_weight=0.5, prediction_heads=True)
    train.max_steps, train.save_every, train.keep_checkpoints = 3, 2, 3
    train.max_batch_seconds = 1.5  # several batches per epoch: resume mid-epoch
    run_distillation(cfg, train)
    log = {r["step"]: r for r in read_log(Path(cfg.out + ".train") / "train_log.jsonl") if "loss" in r and "step" in r}
    cfg2, train2 = _cfgs(root, teacher_dir, f"student_{tag}2", hidden_weight=0.5, prediction_heads=True)
    train2.max_steps, train2.save_every, train2.max_batch_seconds = 3, 2, 1.5
    ckpt = Path(cfg.out + ".train") / "checkpoints" / "step-0000002"
    run_distillation(cfg2, train2, resume=str(ckpt))
    log2 = {r["step"]: r for r in read_log(Path(cfg2.out + ".train") / "train_log.jsonl") if "loss" in r and "step" in r}
    assert set(log2) == {3}
    for key in ("loss", "kl", "ctc", "hidden", "grad_norm", "audio_s"):
        assert log2[3][key] == log[3][key], (key, log2[3][key], log[3][key])
    a = json.loads((Path(cfg.out) / RESULTS_FILE).read_text())["last"]
    b = json.loads((Path(cfg2.out) / RESULTS_FILE).read_text())["last"]
    assert a["loss"] == b["loss"]


def test_resumed_run_keeps_the_start_metrics(setup):
    """A run continued with resume=True in its own work dir still reports the un-distilled
    student's dev metrics (read back from its log) next to the final ones."""
    root, teacher_dir = setup
    cfg, train = _cfgs(root, teacher_dir, "student_resumed")
    train.max_steps, train.save_every = 2, 2
    first = json.loads(Path(run_distillation(cfg, train)["out"], RESULTS_FILE).read_text())["dev_start"]
    assert first["utterances"] == 3
    train.max_steps = 3
    resumed = run_distillation(cfg, train, resume=True)
    assert resumed["trainer"].step == 3
    assert json.loads(Path(cfg.out, RESULTS_FILE).read_text())["dev_start"] == first


def test_resume_gives_same_next_step(setup):
    """Student, prediction heads, optimizer and data position all restored (no dropout)."""
    root, _ = setup
    _resume_check(root, root / "teacher_nodrop", "r")


def test_resume_gives_same_next_step_with_dropout(setup):
    """Same with dropout on: the trainer restores the torch RNG stream exactly."""
    root, teacher_dir = setup
    _resume_check(root, teacher_dir, "rd")


def test_torchrun_ddp_two_processes(setup, tmp_path):
    root, teacher_dir = setup
    out = tmp_path / "ddp_student"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "builders" / "distill.py"), "--teacher", str(teacher_dir),
           "--train", str(root / "train.jsonl"), "--dev", str(root / "dev.jsonl"), "--out", str(out),
           "--num-layers", "2", "--strategy", "first", "--hidden-weight", "0.5", "--max-steps", "2",
           "--warmup-steps", "0", "--max-batch-seconds", "2.5", "--eval-every", "0", "--save-every", "0",
           "--log-every", "1", "--threads", "1", "--no-progress"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = read_log(Path(str(out) + ".train") / "train_log.jsonl")
    start = next(r for r in rows if r.get("event") == "start")
    assert start["world_size"] == 2
    assert any(r.get("event") == "eval_at_start" and "dev_wer_student_vs_teacher" in r for r in rows)
    assert max(r.get("step", 0) for r in rows) == 2
    assert (out / "model.safetensors").is_file()
    assert json.loads((out / RESULTS_FILE).read_text())["world_size"] == 2


@pytest.mark.integration
def test_distilled_student_is_served_end_to_end(setup, tmp_path, rng, served_transcripts):
    """`make build-models MODEL=<student dir>` consumes the output unchanged (ONNX verified), and a
    real tritonserver serving it returns the in-process pipeline's transcripts."""
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.serving.pipeline import ReferencePipeline

    root, teacher_dir = setup
    # Its own student, distilled on the teacher's outputs only (no CTC term): a few CTC steps on
    # this toy data collapse a student to all-blank output, which would make the transcript
    # checks below vacuous; imitating the (random, non-blank) teacher keeps letters coming.
    cfg, train = _cfgs(root, teacher_dir, "student_served", kl_weight=1.0, ctc_weight=0.0)
    train.max_steps = 2
    run_distillation(cfg, train)
    student_dir = Path(cfg.out)
    repo = tmp_path / "repo"
    build_repository(BuildRequest(model=str(student_dir), output=repo))
    tones = [sf.read(root / "audio" / f"{i}.flac", dtype="float32")[0] for i in (0, 1)]
    clips = tones + [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (8000, 23456)]
    expected = [ReferencePipeline(repo).transcribe(c) for c in clips]
    # Sane output: every transcript non-empty, only the student's vocabulary characters, words
    # separated by single spaces (a student that emits blanks or garbage tokens fails here).
    alphabet = set(json.loads((student_dir / "vocab.json").read_text())) - {"<pad>", "<s>", "</s>", "<unk>", "|"}
    for text in expected:
        assert text and text == text.strip() and "  " not in text, expected
        assert set(text) <= alphabet | {" "}, expected
    assert served_transcripts(repo, clips) == expected


def test_narrow_front_end_student_distils(setup):
    """--conv-channels: the student's front-end is pruned to the teacher's strongest channels, it
    trains (front-end included) with a hidden-state loss on the encoder input (0:0), and the
    exported student keeps the narrow widths."""
    from transformers import Wav2Vec2ForCTC
    root, teacher_dir = setup
    cfg, train = _cfgs(root, teacher_dir, "student_narrow", hidden_weight=1.0, layer_map=[(0, 0), (1, 1), (2, 4)])
    cfg.conv_channels = 8
    res = run_distillation(cfg, train)
    rows = [r for r in read_log(Path(cfg.out + ".train") / "train_log.jsonl") if "loss" in r and "step" in r]
    assert rows[-1]["loss"] < 0.8 * rows[0]["loss"], [r["loss"] for r in rows]
    student = Wav2Vec2ForCTC.from_pretrained(cfg.out)
    assert list(student.config.conv_dim) == [8] * 7
    assert json.loads((Path(cfg.out) / "student_info.json").read_text())["conv_channels"] == [8] * 7
    trained = res["trainer"].model.student.wav2vec2.feature_extractor.conv_layers[1].conv.weight
    assert trained.requires_grad


def test_narrow_preset_student_distils(setup):
    """A shape from the presets (narrow: transformer half as wide, front-end pruned): the loss
    gets a prediction head per hidden pair that starts as the embedding of the kept teacher
    dimensions, the 0:0 pair is in the default map, the loss falls and the export is narrow."""
    from transformers import Wav2Vec2ForCTC
    from w2v_triton.train.distillation.presets import get_preset
    root, teacher_dir = setup
    cfg, train = _cfgs(root, teacher_dir, "student_preset_narrow", hidden_weight=1.0, map_encoder_input=True)
    cfg.shape, cfg.preset = get_preset("narrow").replace(num_layers=2), "narrow"
    train.max_steps = 3
    torch.manual_seed(0)
    from w2v_triton.train.distillation.trainer import prepare_student
    from w2v_triton.train.distillation.student import load_teacher
    from w2v_triton.train.distillation.task import make_distill_model
    student, info = prepare_student(load_teacher(str(teacher_dir)), cfg, "t")
    assert student.config.hidden_size == 16 and student.config.num_attention_heads == 1
    model = make_distill_model(student, load_teacher(str(teacher_dir)), cfg.loss, info.kept_layers, info.residual_dims)
    assert model.loss.layer_map == [(0, 0), (1, 1), (2, 4)]
    head = model.loss.heads["1_1"]
    assert head.weight.shape == (32, 16)
    x = torch.randn(3, 16)
    torch.testing.assert_close(head(x)[:, info.residual_dims], x)   # h_s lands on its teacher dims
    res = run_distillation(cfg, train)
    rows = [r for r in read_log(Path(cfg.out + ".train") / "train_log.jsonl") if "loss" in r and "step" in r]
    assert rows[-1]["loss"] < rows[0]["loss"], [r["loss"] for r in rows]
    exported = Wav2Vec2ForCTC.from_pretrained(cfg.out)
    assert (exported.config.hidden_size, exported.config.intermediate_size) == (16, 32)
    saved = json.loads((Path(cfg.out) / RESULTS_FILE).read_text())
    assert saved["preset"] == "narrow" and saved["layer_map"] == [[0, 0], [1, 1], [2, 4]]
    assert res["trainer"].model.loss.heads["2_4"].weight.requires_grad


def test_freeze_unreached_for_hidden_only_loss(setup):
    """Hidden-state-only distillation: the CTC head, SpecAugment embedding (when off) and
    layers above the last distilled one get no gradient, so they are frozen (DDP-safe)."""
    from w2v_triton.train.distillation.student import build_student, load_teacher
    from w2v_triton.train.distillation.task import make_distill_model
    from w2v_triton.train.distillation.trainer import freeze_unreached
    _, teacher_dir = setup
    teacher = load_teacher(str(teacher_dir))
    teacher.config.mask_time_prob = 0.05  # the student gets a masked_spec_embed ...
    student, info = build_student(teacher, 3, "first")
    student.config.apply_spec_augment = False  # ... that SpecAugment-off never uses
    cfg = DistillLossConfig(kl_weight=0.0, ctc_weight=0.0, hidden_weight=1.0, layer_map=[(1, 1), (2, 2)])
    frozen = freeze_unreached(make_distill_model(student, teacher, cfg, info.kept_layers))
    assert "lm_head.weight" in frozen and "wav2vec2.masked_spec_embed" in frozen
    assert any(".encoder.layers.2." in n for n in frozen)
    assert not any(".encoder.layers.1." in n or ".encoder.layers.0." in n for n in frozen)
    assert "wav2vec2.encoder.layer_norm.weight" in frozen  # stable-LN final norm follows layer 3 only


def test_distill_report_plots_runs_and_tabulates_held_out_results(tmp_path, capsys):
    import json

    from builders.distill_report import main as report

    for name, wer in (("a", 0.9), ("b", 0.8)):
        (tmp_path / f"{name}.train").mkdir()
        rows = [{"step": s, "loss": 2.0 / s} for s in range(1, 6)]
        rows += [{"step": s, "dev_wer_student_vs_labels": wer, "dev_wer_teacher_vs_labels": 0.7,
                  "dev_wer_student_vs_teacher": wer - 0.3} for s in (0, 5)]
        (tmp_path / f"{name}.train" / "train_log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval_results.json").write_text(json.dumps({"test_seen": {"cer": wer / 2, "wer": wer}}))
    png = tmp_path / "curves.png"
    assert report(["--run", f"a={tmp_path / 'a'}", "--run", f"b={tmp_path / 'b'}", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert png.stat().st_size > 1000
    assert "| a | 0.450 / 0.900 | – | – |" in out and "| b | 0.400 / 0.800 |" in out
    (tmp_path / "t.json").write_text(json.dumps({"test_seen": [{"ref": "A B", "hyp": "A B C D"}]}))
    (tmp_path / "s.json").write_text(json.dumps({"test_seen": [{"ref": "A B", "hyp": "A B C E"}]}))
    assert report(["--run", f"a={tmp_path / 'a'}", "--png", str(png), "--transcripts", f"teacher={tmp_path / 't.json'}",
                   "--transcripts", f"a={tmp_path / 's.json'}"]) == 0
    assert "| a | 0.250 / 0.143 | – | – |" in capsys.readouterr().out   # 1 of 4 words, 1 of 7 chars
    assert report(["--run", f"c={tmp_path / 'c'}", "--png", str(png)]) == 2
    # --json: the docs table, with test_seen WER relative to the teacher's and the run's budget
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "eval_results.json").write_text(json.dumps({"test_seen": {"cer": 0.3, "wer": 0.5}}))
    (tmp_path / "b" / "distill_results.json").write_text(json.dumps(
        {"step": 5, "train_time_s": 12.3, "last": {"audio_hours_seen": 0.25}}))
    table = tmp_path / "table.json"
    assert report(["--run", f"a={tmp_path / 'a'}", "--run", f"b={tmp_path / 'b'}", "--png", str(png),
                   "--teacher", str(tmp_path / "teacher"), "--json", str(table)]) == 0
    data = json.loads(table.read_text())
    assert "test_seen WER vs teacher" in data["columns"] and {"machine", "date", "command"} <= set(data)
    rows = {r[0]: r for r in data["rows"]}
    assert rows["teacher"][data["columns"].index("test_seen WER vs teacher")] == "+0.0 %"
    assert rows["b"][data["columns"].index("test_seen WER vs teacher")] == "+60.0 %"   # 0.8 / 0.5
    assert rows["b"][-1] == "5 / 0.25 / 12" and rows["a"][-1] == "–"


def test_squeeze_student_distils_and_exports_a_sew_checkpoint(setup):
    """--squeeze-factor 2: a SEWForCTC student trains on KL + CTC at the full frame rate and on
    hidden states against the teacher's, averaged over pairs of frames; the export is a SEW dir."""
    from transformers import SEWForCTC
    root, teacher_dir = setup
    cfg, train = _cfgs(root, teacher_dir, "student_sew", hidden_weight=1.0, layer_map=[(0, 0), (1, 1), (2, 4)])
    cfg.squeeze_factor = 2
    run_distillation(cfg, train)
    rows = [r for r in read_log(Path(cfg.out + ".train") / "train_log.jsonl") if "loss" in r and "step" in r]
    assert rows[-1]["loss"] < 0.8 * rows[0]["loss"], [r["loss"] for r in rows]
    assert {"kl", "ctc", "hidden", "hid2->4_l1"} <= set(rows[0])
    student = SEWForCTC.from_pretrained(cfg.out)
    assert student.config.squeeze_factor == 2 and student.config.num_hidden_layers == 2
    info = json.loads((Path(cfg.out) / "student_info.json").read_text())
    assert info["squeeze_factor"] == 2 and info["kept_layers"] == [0, 3]
