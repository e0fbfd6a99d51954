#!/usr/bin/env python
"""Tune the beam decoder's alpha / beta (and beam width) on a dev manifest (`make tune-lm`).

    make tune-lm DEV=build/corpus/dev.jsonl REPO=model_repository [LM_DIR=build/lm]

The acoustic logits are computed once with the repository's model; every grid point re-runs
only the decoder. Prints WER and decode speed (audio seconds per CPU second = per core) for
each point, writes them with the chosen values to <repo>/decoder/tuning.json (and --results),
and re-renders the repository with the chosen values (beam mode, LM copied in) unless
--no-apply. A later `builders/repository.py` rebuild into the same folder, with the same
checkpoint and LM, re-applies the tuned values (see builders/repository.py).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from w2v_triton.build.tuning import TUNING_FILE
from w2v_triton.eval.lm_tuning import (DEFAULT_ALPHAS, DEFAULT_BEAM_WIDTHS, DEFAULT_BETAS, TuningRequest,
                                       apply_tuning, tune_repository)
from w2v_triton.paths import DEFAULT_REPOSITORY
from w2v_triton.serving import spec
from w2v_triton.serving.ctc_decoding import BACKENDS, DecoderConfigError


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", type=Path, default=DEFAULT_REPOSITORY, help="model repository")
    p.add_argument("--dev", type=Path, nargs="+", required=True,
                   help="dev manifest(s) (JSONL: audio, text, duration)")
    p.add_argument("--lm-dir", type=Path, help="LM folder (`make lm`); default: the repository's LM, else build/lm")
    p.add_argument("--alphas", type=floats, default=list(DEFAULT_ALPHAS), help="comma separated")
    p.add_argument("--betas", type=floats, default=list(DEFAULT_BETAS), help="comma separated")
    p.add_argument("--beam-widths", type=ints, default=list(DEFAULT_BEAM_WIDTHS), help="comma separated")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="beam search engine to tune (default: the repository decoder's backend); "
                        "applying the result also sets it in the repository")
    p.add_argument("--max-utterances", type=int, default=0, help="use the first N utterances (0 = all)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads for the logits")
    p.add_argument("--results", type=Path, help="also write the results JSON here")
    p.add_argument("--logits-cache", type=Path,
                   help="npz of the acoustic logits: reused when it holds the same audio files, else written")
    p.add_argument("--no-apply", action="store_true", help="report only; leave the repository as it is")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    request = TuningRequest(
        repo=args.repo, dev=tuple(args.dev), lm_dir=args.lm_dir, alphas=tuple(args.alphas), betas=tuple(args.betas),
        beam_widths=tuple(args.beam_widths), backend=args.backend, max_utterances=args.max_utterances,
        threads=args.threads, logits_cache=args.logits_cache, progress=not args.quiet)
    try:
        tuning = tune_repository(request)
    except (FileNotFoundError, ValueError, DecoderConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'mode':8} {'beam':>4} {'alpha':>6} {'beta':>5} {'WER %':>7} {'CER %':>7} {'audio-s/s/core':>14}")
    for p in tuning.points:
        mark = "  <- chosen" if p is tuning.best else ""
        print(f"{p.mode:8} {p.beam_width:4d} {p.alpha:6.2f} {p.beta:5.2f} {100 * p.wer:7.2f} {100 * p.cer:7.2f} "
              f"{p.speed_per_core:14.1f}{mark}")
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(tuning.result, indent=2))
    if args.no_apply:
        print("--no-apply: repository left unchanged")
        return 0
    decoder = apply_tuning(args.repo, tuning)
    print(f"{args.repo}: decoder set to {decoder} (results in {args.repo / spec.DECODER_MODEL / TUNING_FILE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
