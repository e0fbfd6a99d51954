"""Replace models/reference with a newly trained model only if it is better (`make promote-reference`).

    python -m builders.promote_reference --candidate build/train-reference/model --corpus build/corpus \\
        --train-log build/train-reference/train_log.jsonl --plot build/train-reference/reference-training.png

Evaluates the candidate (weights as committed: float16) and the committed model on the corpus'
test_seen and test_unseen and on real speech when present; replaces the model folder, the docs'
training log and curves, and writes the model card only when the candidate is better on both
test splits (lower greedy WER, or the same WER and lower CER) and its real-speech WER is no
higher. Exit 0: promoted; 1: kept (the line says why, nothing changed); 2: the inputs cannot be
compared. `make promote-reference` re-renders the docs' tables after a promotion.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

from w2v_triton.train.promotion import PromotionConfig, PromotionError, promote_reference


def main(argv: list[str] | None = None) -> int:
    d = PromotionConfig(candidate=Path())
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--candidate", type=Path, required=True, help="trained model folder (make train-reference)")
    p.add_argument("--corpus", type=Path, default=d.corpus, help="folder with test_seen/test_unseen.jsonl")
    p.add_argument("--reference", type=Path, default=d.reference, help="the committed model folder")
    p.add_argument("--real-speech", default=d.real_speech_glob, help="glob of real-speech manifests ('' = none)")
    p.add_argument("--train-log", type=Path, default=None, help="the candidate's train_log.jsonl -> --docs-log")
    p.add_argument("--plot", type=Path, default=None, help="the candidate's curves PNG -> --docs-plot")
    p.add_argument("--docs-log", type=Path, default=d.docs_log)
    p.add_argument("--docs-plot", type=Path, default=d.docs_plot)
    p.add_argument("--weights-dtype", default=d.weights_dtype, choices=["float16", "bfloat16", "float32"])
    p.add_argument("--max-model-mb", type=float, default=d.max_model_mb)
    p.add_argument("--real-speech-tolerance", type=float, default=d.real_speech_tolerance,
                   help="real-speech WER increase still accepted (default %(default)s)")
    p.add_argument("--report", type=Path, default=None, help="write the decision and both models' figures here")
    p.add_argument("--threads", type=int, default=None, help="torch threads on the CPU (default: all)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = PromotionConfig(candidate=a.candidate, corpus=a.corpus, reference=a.reference,
                          real_speech_glob=a.real_speech, train_log=a.train_log, plot=a.plot,
                          docs_log=a.docs_log, docs_plot=a.docs_plot, weights_dtype=a.weights_dtype,
                          max_model_mb=a.max_model_mb, real_speech_tolerance=a.real_speech_tolerance,
                          command=shlex.join(["python", "-m", "builders.promote_reference",
                                              *(sys.argv[1:] if argv is None else argv)]))
    try:
        decision = promote_reference(cfg, progress=not a.no_progress)
    except PromotionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if a.report:
        a.report.parent.mkdir(parents=True, exist_ok=True)
        a.report.write_text(json.dumps(decision.to_json(), indent=2) + "\n")
    print(decision.reason)
    return 0 if decision.promote else 1


if __name__ == "__main__":
    sys.exit(main())
