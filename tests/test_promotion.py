"""`make promote-reference`: the gate (unit), and builders/promote_reference.py with tiny models on
tone 'speech': a worse candidate leaves every file as it was, a better one replaces the committed
model, its docs log and curves, and writes the model card with the command and the figures."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from builders.promote_reference import main as promote
from w2v_triton.train.promotion import PromotionError, decide
from w2v_triton.train.synthetic import write_tone_corpus


def _r(wer: float, cer: float = 0.5) -> dict:
    return {"wer": wer, "cer": cer, "n": 3}


def test_gate_promotes_only_when_both_test_splits_improve():
    old = {"test_seen": _r(0.5), "test_unseen": _r(0.6)}
    promote_it, reason = decide({"test_seen": _r(0.4), "test_unseen": _r(0.55)}, old)
    assert promote_it and reason.startswith("promoted: test_seen WER 0.500 -> 0.400")
    promote_it, reason = decide({"test_seen": _r(0.4), "test_unseen": _r(0.6)}, old)
    assert not promote_it
    assert reason.startswith("kept models/reference: test_unseen WER 0.600 / CER 0.500 is not below")
    # equal WER: the lower CER decides (WER saturates at 1.0 for young models)
    assert decide({"test_seen": _r(1.0, 0.9), "test_unseen": _r(1.0, 0.9)},
                  {"test_seen": _r(1.0, 2.0), "test_unseen": _r(1.0, 2.0)})[0]
    assert not decide({"test_seen": _r(1.0, 2.0), "test_unseen": _r(0.5)},
                      {"test_seen": _r(1.0, 2.0), "test_unseen": _r(0.6)})[0]


def test_gate_real_speech_must_not_get_worse_when_present():
    old = {"test_seen": _r(0.5), "test_unseen": _r(0.6), "real_speech": _r(0.99)}
    new = {"test_seen": _r(0.3), "test_unseen": _r(0.4), "real_speech": _r(0.995)}
    promote_it, reason = decide(new, old)
    assert not promote_it and "real speech WER 0.995 is above the committed 0.990" in reason
    assert decide(new, old, real_speech_tolerance=0.01)[0]
    assert decide(dict(new, real_speech=_r(0.99)), old)[0]                 # equal is no worse
    absent = {k: v for k, v in new.items() if k != "real_speech"}
    promote_it, reason = decide(absent, old)
    assert promote_it and "real speech absent here, not compared" in reason


def test_gate_needs_the_test_splits_and_promotes_a_first_model():
    with pytest.raises(PromotionError, match="no test_unseen split"):
        decide({"test_seen": _r(0.1)}, {"test_seen": _r(0.5), "test_unseen": _r(0.5)})
    assert decide({"test_seen": _r(0.9), "test_unseen": _r(0.9)}, None) == \
        (True, "promoted: nothing was committed in models/reference yet")


# --- tiny models, real evaluation -------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A tone corpus (+ a 'real speech' folder), an untrained tiny model (garbage: CER > 1) and the
    same model trained a few steps (it has learnt to say nothing: CER 1.0), each with a log and a plot."""
    from builders.train_reference import main as train
    from w2v_triton.train.model import TINY_CONFIG, build_ctc_model, export_pretrained

    root = tmp_path_factory.mktemp("promotion")
    write_tone_corpus(root / "corpus", n_train=12, n_test=3)
    write_tone_corpus(root / "real" / "tones", n_train=0, n_test=3, seed=5)
    (root / "real" / "tones" / "test_seen.jsonl").rename(root / "real" / "tones" / "manifest.jsonl")
    export_pretrained(build_ctc_model(TINY_CONFIG, seed=0).eval(), root / "untrained")
    args = ["--tiny", "--corpus", str(root / "corpus"), "--out", str(root / "run"), "--model-out",
            str(root / "trained"), "--max-steps", "40", "--warmup", "5", "--lr", "3e-3", "--batch-seconds", "6",
            "--eval-every", "100", "--save-every", "100", "--real-speech", "", "--no-progress",
            "--plot", str(root / "run" / "training.png")]
    assert train(args) == 0
    seen = json.loads((root / "trained" / "eval_results.json").read_text())["test_seen"]
    assert seen["cer"] <= 1.0, seen      # precondition of the tests below: it has learnt the blank
    return {"root": root, "corpus": root / "corpus", "untrained": root / "untrained", "trained": root / "trained",
            "log": root / "run" / "train_log.jsonl", "plot": root / "run" / "training.png",
            "real": root / "real" / "*" / "manifest.jsonl"}


def _tree(tmp_path: Path, committed: Path) -> dict[str, Path]:
    """A checkout-like folder: models/reference (a copy of `committed`) and the docs files it owns."""
    import shutil

    reference = tmp_path / "models" / "reference"
    shutil.copytree(committed, reference)
    (reference / "README.md").write_text("the committed card\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "reference-training-log.jsonl").write_text('{"step": 1}\n')
    (docs / "reference-training.png").write_bytes(b"not a png")
    return {"reference": reference, "log": docs / "reference-training-log.jsonl",
            "plot": docs / "reference-training.png"}


def _args(tiny, tree, candidate: Path, *extra: str) -> list[str]:
    return ["--candidate", str(candidate), "--corpus", str(tiny["corpus"]), "--reference", str(tree["reference"]),
            "--train-log", str(tiny["log"]), "--plot", str(tiny["plot"]), "--docs-log", str(tree["log"]),
            "--docs-plot", str(tree["plot"]), "--real-speech", str(tiny["real"]), "--threads", "1",
            "--no-progress", *extra]


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_worse_candidate_leaves_every_file_as_it_was(tiny, tmp_path, capsys):
    tree = _tree(tmp_path / "tree", tiny["trained"])
    before = _snapshot(tmp_path / "tree")
    report = tmp_path / "promotion.json"
    assert promote(_args(tiny, tree, tiny["untrained"], "--report", str(report))) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith(f"kept {tree['reference']}: test_seen WER") and "is not below the committed" in out[-1]
    assert _snapshot(tmp_path / "tree") == before                    # no file touched, no staging left
    decision = json.loads(report.read_text())
    assert decision["promote"] is False and decision["written"] == []
    assert decision["candidate"]["test_seen"]["cer"] > decision["committed"]["test_seen"]["cer"]


def test_better_candidate_replaces_the_model_and_writes_its_card(tiny, tmp_path, capsys):
    from safetensors import safe_open

    tree = _tree(tmp_path / "tree", tiny["untrained"])
    assert promote(_args(tiny, tree, tiny["trained"])) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("promoted: test_seen WER")
    reference = tree["reference"]
    assert sorted(p.name for p in (tmp_path / "tree" / "models").iterdir()) == ["reference"]   # no leftovers
    with safe_open(str(reference / "model.safetensors"), "pt") as weights:
        assert {str(weights.get_tensor(k).dtype) for k in weights.keys()} == {"torch.float16"}
    results = json.loads((reference / "eval_results.json").read_text())
    assert {"test_seen", "test_unseen", "dev", "real_speech"} <= set(results)
    assert set(results["real_speech"]["by_set"]) == {"tones"}
    record = json.loads((reference / "promotion.json").read_text())
    assert record["promote"] and record["committed"]["test_seen"]["cer"] > results["test_seen"]["cer"]
    card = (reference / "README.md").read_text()
    assert "python -m builders.promote_reference --candidate " + str(tiny["trained"]) in card
    assert f"**{results['test_seen']['wer']:.3f}**" in card
    committed_rates = f"{record['committed']['test_unseen']['cer']:.3f} / {record['committed']['test_unseen']['wer']:.3f}"
    assert committed_rates in card and "real read speech" in card
    assert json.loads((reference / "training_summary.json").read_text())["steps"] == 40
    assert tree["log"].read_bytes() == tiny["log"].read_bytes()
    assert tree["plot"].read_bytes() == tiny["plot"].read_bytes()


def test_inputs_that_cannot_be_compared_change_nothing(tiny, tmp_path, capsys):
    tree = _tree(tmp_path / "tree", tiny["untrained"])
    before = _snapshot(tmp_path / "tree")
    (tmp_path / "empty").mkdir()
    assert promote(_args(tiny, tree, tmp_path / "empty")) == 2
    assert "no trained model in" in capsys.readouterr().err
    args = _args(tiny, tree, tiny["trained"])
    args[args.index("--corpus") + 1] = str(tmp_path / "empty")
    assert promote(args) == 2
    assert "test_seen.jsonl missing" in capsys.readouterr().err
    assert promote(_args(tiny, tree, tiny["trained"], "--max-model-mb", "0.01")) == 1
    assert "over the 0.01 MB limit" in capsys.readouterr().out
    assert _snapshot(tmp_path / "tree") == before
