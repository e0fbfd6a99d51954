"""builders/train_reference.py end to end on tone 'speech': train, resume, export, evaluate;
and the same under torchrun with 2 processes (DDP, gloo on CPU)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


from w2v_triton.train.synthetic import write_tone_corpus

ROOT = Path(__file__).resolve().parents[1]


def _run(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, **kw)


def _common(tmp_path):
    return ["--tiny", "--corpus", str(tmp_path / "corpus"), "--out", str(tmp_path / "run"),
            "--model-out", str(tmp_path / "model"), "--warmup", "2", "--batch-seconds", "3",
            "--eval-every", "3", "--save-every", "3", "--real-speech", "", "--no-progress"]


def test_train_reference_cli_tiny(tmp_path, capsys):
    from builders.train_reference import main

    write_tone_corpus(tmp_path / "corpus")
    args = [*_common(tmp_path), "--max-steps", "3", "--no-eval"]
    assert main(args) == 0
    # rerun with more steps: resumes at step 3 instead of starting over
    assert main(args[:-3] + ["--max-steps", "5"]) == 0
    log = [json.loads(line) for line in open(tmp_path / "run" / "train_log.jsonl")]
    assert [row["event"] for row in log if "event" in row] == ["start", "end", "end"]
    model = tmp_path / "model"
    for name in ("config.json", "model.safetensors", "vocab.json", "tokenizer_config.json",
                 "eval_results.json", "training_summary.json"):
        assert (model / name).is_file(), name
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["do_stable_layer_norm"] and cfg["feat_extract_norm"] == "layer" and cfg["pad_token_id"] == 0
    results = json.loads((model / "eval_results.json").read_text())
    assert {"test_seen", "test_unseen", "dev"} <= set(results)
    assert json.loads((model / "training_summary.json").read_text())["steps"] == 5
    capsys.readouterr()
    assert main(["--eval-only", "--corpus", str(tmp_path / "corpus"), "--out", str(tmp_path / "run"),
                 "--model-out", str(model), "--real-speech", "", "--no-progress"]) == 0
    assert "test_unseen" in capsys.readouterr().out


def test_train_reference_under_torchrun_ddp(tmp_path):
    write_tone_corpus(tmp_path / "corpus", n_train=8)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "builders/train_reference.py", *_common(tmp_path), "--max-steps", "3", "--no-eval"]
    r = _run(cmd)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    log = [json.loads(line) for line in open(tmp_path / "run" / "train_log.jsonl")]
    assert log[0]["world_size"] == 2
    assert [row["step"] for row in log if row.get("event") == "end"] == [3]
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_presets_fill_only_unset_hyper_parameters():
    from builders.train_reference import _parser, resolve_preset

    a = _parser().parse_args(["--preset", "gpu", "--lr", "3e-4"])
    preset = resolve_preset(a)
    assert preset["name"] == "gpu" and preset["config"] == "GPU_REFERENCE_CONFIG"
    assert a.lr == 3e-4 and a.batch_seconds == 600.0 and a.workers == 8
    a = _parser().parse_args(["--preset", "auto"])
    import torch
    assert resolve_preset(a)["name"] == ("gpu" if torch.cuda.is_available() else "cpu")


def test_gpu_reference_config_fits_the_size_limit():
    from w2v_triton.train.model import GPU_REFERENCE_CONFIG, build_ctc_model, parameter_count

    model = build_ctc_model(GPU_REFERENCE_CONFIG)
    assert model.config.num_hidden_layers == 12
    assert parameter_count(model) * 2 <= 25e6      # fp16 safetensors <= 25 MB


def test_init_from_and_sharded_export(tmp_path):
    """--init-from starts from a trained folder's weights (not a fresh random init);
    --max-shard-size splits the export, and from_pretrained reads the shards back."""
    import torch
    from transformers import Wav2Vec2ForCTC

    from builders.train_reference import main

    write_tone_corpus(tmp_path / "corpus")
    common = _common(tmp_path)
    assert main([*common, "--max-steps", "2", "--no-eval", "--seed", "1"]) == 0
    first = Wav2Vec2ForCTC.from_pretrained(str(tmp_path / "model"))
    out2 = tmp_path / "model2"
    args = [a if a != str(tmp_path / "run") else str(tmp_path / "run2") for a in common]
    args[args.index(str(tmp_path / "model"))] = str(out2)
    assert main([*args, "--max-steps", "1", "--no-eval", "--lr", "1e-9", "--seed", "2",
                 "--init-from", str(tmp_path / "model"), "--max-shard-size", "50KB"]) == 0
    shards = sorted(out2.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 2 and not (out2 / "model.safetensors").exists()
    second = Wav2Vec2ForCTC.from_pretrained(str(out2))
    for (name, p1), (_, p2) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.allclose(p1, p2, atol=1e-5), name   # lr 1e-9: one step leaves the weights as loaded
    summary = json.loads((out2 / "training_summary.json").read_text())
    assert summary["init_from"] == str(tmp_path / "model")


def test_evaluation_reports_each_synthesiser_and_real_speech_source(tmp_path):
    """evaluate_model: WER per synthesiser of a mixed corpus and per real-speech folder, grouped by
    each utterance's own row (not by its text: every synthesiser speaks the same held-out sentences)."""
    from w2v_triton.train.evaluate import evaluate_model
    from w2v_triton.train.model import TINY_CONFIG, build_ctc_model, export_pretrained

    write_tone_corpus(tmp_path / "corpus", n_test=4)
    manifest = tmp_path / "corpus" / "test_seen.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps(dict(r, synth=("espeak", "flite")[i % 2])) + "\n" for i, r in enumerate(rows)))
    for name in ("a", "b"):
        write_tone_corpus(tmp_path / "real" / name, n_train=0, n_test=2)
        (tmp_path / "real" / name / "dev.jsonl").rename(tmp_path / "real" / name / "manifest.jsonl")
    export_pretrained(build_ctc_model(TINY_CONFIG).eval(), tmp_path / "model")
    results = evaluate_model(tmp_path / "model", tmp_path / "corpus", str(tmp_path / "real" / "*" / "manifest.jsonl"))
    seen = results["test_seen"]
    assert {k: v["n"] for k, v in seen["by_synth"].items()} == {"espeak": 2, "flite": 2}
    assert "by_synth" not in results["test_unseen"]            # one kind: no breakdown
    assert {k: v["n"] for k, v in results["real_speech"]["by_set"].items()} == {"a": 2, "b": 2}
    assert sorted(p["index"] for p in seen["all"]) == [0, 1, 2, 3]
