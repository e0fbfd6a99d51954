"""Promote a trained model to models/reference only if it is better (`make promote-reference`).

The candidate is staged as it would be committed (weights in `weights_dtype`, within the size
limit), then it and the committed model are evaluated on the same splits: the corpus'
test_seen and test_unseen, and real speech when present. It replaces the committed model (and
the training curve and log the docs show) only when it is better on test_seen and on test_unseen
(lower greedy WER, or the same WER and lower CER: CER is the finer count of the same errors, which
matters where WER saturates at 1.0) and its real-speech WER is no higher; its model card
(README.md) then records the command and the figures of both. Otherwise every file stays as it
was and the decision says why in one line. The first model (nothing committed yet) is promoted
after its evaluation.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from w2v_triton.build import manifest
from w2v_triton.paths import CORPUS_DIR, REFERENCE_MODEL_DIR, REPO_ROOT

logger = logging.getLogger(__name__)

GATED_SPLITS = ("test_seen", "test_unseen")   # must improve
REAL_SPEECH = "real_speech"                  # must not get worse, when present


@dataclass
class PromotionConfig:
    candidate: Path                                       # a trained model folder (config.json + weights)
    corpus: Path = CORPUS_DIR                             # the splits both models are evaluated on
    reference: Path = REFERENCE_MODEL_DIR
    real_speech_glob: str = manifest.real_speech_glob(REPO_ROOT)   # '' = no real speech
    train_log: Path | None = None                         # the candidate's training log and curves, copied
    plot: Path | None = None                              # to docs_log / docs_plot when it is promoted
    docs_log: Path = REPO_ROOT / "docs" / "reference-training-log.jsonl"
    docs_plot: Path = REPO_ROOT / "docs" / "reference-training.png"
    weights_dtype: str = "float16"                        # as committed: 11 M parameters fit 25 MB
    max_model_mb: float = 25.0                            # the repository's limit for a committed model
    real_speech_tolerance: float = 0.0                    # allowed real-speech WER increase
    command: str = ""                                     # recorded in the model card


@dataclass
class Decision:
    promote: bool
    reason: str                                           # one line
    candidate: dict[str, Any] = field(default_factory=dict)   # eval rates (eval_results.json form)
    committed: dict[str, Any] | None = None
    written: list[str] = field(default_factory=list)      # files replaced (paths as configured)
    context: dict[str, Any] = field(default_factory=dict)    # command, date, corpus, weights

    def to_json(self) -> dict[str, Any]:
        return {"promote": self.promote, "reason": self.reason, "candidate": self.candidate,
                "committed": self.committed, "written": self.written, **self.context}


class PromotionError(ValueError):
    """The inputs cannot be compared (no candidate, no test split, missing log): nothing was changed."""


def decide(candidate: dict[str, Any], committed: dict[str, Any] | None, real_speech_tolerance: float = 0.0,
           reference_name: str = "models/reference") -> tuple[bool, str]:
    """The gate on two eval results ({split: {"wer", ...}}): (promote?, one-line reason)."""
    for split in GATED_SPLITS:
        if split not in candidate:
            raise PromotionError(f"the corpus has no {split} split: the candidate cannot be gated")
    if committed is None:
        return True, f"promoted: nothing was committed in {reference_name} yet"
    changes, failures = [], []
    for split in GATED_SPLITS:
        new, old = candidate[split], committed[split]
        changes.append(f"{split} WER {old['wer']:.3f} -> {new['wer']:.3f} (CER {old['cer']:.3f} -> {new['cer']:.3f})")
        if not (new["wer"], new["cer"]) < (old["wer"], old["cer"]):
            failures.append(f"{split} WER {new['wer']:.3f} / CER {new['cer']:.3f} is not below the committed "
                            f"{old['wer']:.3f} / {old['cer']:.3f}")
    if REAL_SPEECH in candidate and REAL_SPEECH in committed:
        new, old = candidate[REAL_SPEECH]["wer"], committed[REAL_SPEECH]["wer"]
        changes.append(f"real speech WER {old:.3f} -> {new:.3f}")
        if new > old + real_speech_tolerance:
            failures.append(f"real speech WER {new:.3f} is above the committed {old:.3f}")
    else:
        changes.append("real speech absent here, not compared")
    if failures:
        return False, f"kept {reference_name}: " + "; ".join(failures) + f" ({', '.join(changes)})"
    return True, "promoted: " + ", ".join(changes)


def _weights(folder: Path) -> list[Path]:
    return sorted(folder.glob("model*.safetensors"))


def _check_inputs(cfg: PromotionConfig) -> None:
    if cfg.candidate.resolve() == cfg.reference.resolve():
        raise PromotionError(f"the candidate {cfg.candidate} is the committed model itself")
    if not (cfg.candidate / "config.json").is_file() or not _weights(cfg.candidate):
        raise PromotionError(f"no trained model in {cfg.candidate} (config.json + model*.safetensors): "
                             "run make train-reference first")
    for split in GATED_SPLITS:
        if not (cfg.corpus / f"{split}.jsonl").is_file():
            raise PromotionError(f"{cfg.corpus / f'{split}.jsonl'} missing: build the corpus the models are "
                                 "compared on first (make corpus)")
    for path in (cfg.train_log, cfg.plot):
        if path is not None and not path.is_file():
            raise PromotionError(f"{path} missing (the candidate's training log / curves)")
    if cfg.reference.exists() and not (cfg.reference / "config.json").is_file():
        raise PromotionError(f"{cfg.reference} exists but holds no model (config.json): refusing to replace it")


def stage(cfg: PromotionConfig, staging: Path) -> int:
    """The candidate as it would be committed: its files, weights re-saved in `weights_dtype`.
    Returns the number of parameters."""
    import torch

    from w2v_triton.serving.ctc_model import load_ctc_weights
    from w2v_triton.train.model import export_pretrained, parameter_count, read_vocab

    shutil.rmtree(staging, ignore_errors=True)
    skip = shutil.ignore_patterns("model*.safetensors", "model.safetensors.index.json", "eval_results.json",
                                  "README.md", "promotion.json")
    shutil.copytree(cfg.candidate, staging, ignore=skip)
    model = load_ctc_weights(cfg.candidate)
    export_pretrained(model, staging, read_vocab(cfg.candidate / "vocab.json"),
                      dtype=getattr(torch, cfg.weights_dtype))
    return parameter_count(model)


def _replace(staging: Path, reference: Path) -> None:
    """staging -> reference with the old folder moved aside first (restored if the move fails)."""
    previous = reference.parent / f".{reference.name}.previous"
    shutil.rmtree(previous, ignore_errors=True)
    if reference.exists():
        reference.rename(previous)
    try:
        staging.rename(reference)
    except OSError:
        if previous.exists():
            previous.rename(reference)
        raise
    shutil.rmtree(previous, ignore_errors=True)


def promote_reference(cfg: PromotionConfig, progress: bool = False) -> Decision:
    """Evaluate, decide, and on success replace the committed model, its docs log and curves and
    write its model card; on refusal change nothing. Raises PromotionError on unusable inputs."""
    from w2v_triton.train.evaluate import evaluate_model, rates_only
    from w2v_triton.train.model_card import write_model_card

    _check_inputs(cfg)
    cfg.reference.parent.mkdir(parents=True, exist_ok=True)
    staging = cfg.reference.parent / f".{cfg.reference.name}.candidate"
    try:
        parameters = stage(cfg, staging)
        size_mb = sum(p.stat().st_size for p in _weights(staging)) / 1e6
        context = {"command": cfg.command, "date": time.strftime("%Y-%m-%d"), "corpus": str(cfg.corpus),
                   "weights_dtype": cfg.weights_dtype, "weights_mb": round(size_mb, 2)}
        if size_mb > cfg.max_model_mb:
            return Decision(False, f"kept {cfg.reference}: the candidate's weights are {size_mb:.1f} MB in "
                                   f"{cfg.weights_dtype}, over the {cfg.max_model_mb:g} MB limit", context=context)
        logger.info("evaluating the candidate (%s) and the committed model on %s", staging, cfg.corpus)
        candidate = rates_only(evaluate_model(staging, cfg.corpus, cfg.real_speech_glob, progress=progress))
        committed = None
        if cfg.reference.exists():
            committed = rates_only(evaluate_model(cfg.reference, cfg.corpus, cfg.real_speech_glob,
                                                  progress=progress))
        promote, reason = decide(candidate, committed, cfg.real_speech_tolerance, str(cfg.reference))
        decision = Decision(promote, reason, candidate, committed, context=context)
        if not promote:
            return decision
        (staging / "eval_results.json").write_text(json.dumps(candidate, indent=2) + "\n")
        record = {k: v for k, v in decision.to_json().items() if k != "written"}
        (staging / "promotion.json").write_text(json.dumps(record, indent=2) + "\n")
        write_model_card(staging, record, cfg.corpus, parameters, replaced=cfg.reference)
        _replace(staging, cfg.reference)
        decision.written = sorted(str(p) for p in cfg.reference.iterdir())
        for source, target in ((cfg.train_log, cfg.docs_log), (cfg.plot, cfg.docs_plot)):
            if source is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                decision.written.append(str(target))
        return decision
    finally:
        shutil.rmtree(staging, ignore_errors=True)
