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

from w2v_triton.serving import spec
from w2v_triton.serving.ctc_decoding import BACKENDS, CTCDecoder, DecoderConfig, DecoderConfigError
from w2v_triton.build.tuning import TUNING_FILE, file_id, save_tuning
from w2v_triton.eval.lm_tuning import apply_to_repository, cached_logits, choose, compute_logits, grid_search, save_logits
from w2v_triton.build.manifest import read_manifest
from w2v_triton.paths import DEFAULT_REPOSITORY, LM_DIR, lm_files
from w2v_triton.build.repository import BUILD_INFO
from w2v_triton.serving.settings import model_parameters
from w2v_triton.serving.vocabulary import Vocabulary


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
    p.add_argument("--alphas", type=floats, default=floats("0.2,0.5,0.8,1.2"), help="comma separated")
    p.add_argument("--betas", type=floats, default=floats("0,1,2"), help="comma separated")
    p.add_argument("--beam-widths", type=ints, default=ints("32"), help="comma separated")
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


def resolve_lm(repo: Path, lm_dir: Path | None) -> tuple[list[Path], str, str]:
    """(files, lm name, unigrams name): --lm-dir, else the repository's decoder LM, else build/lm."""
    if lm_dir is not None:
        return lm_files(lm_dir)
    params = model_parameters(repo, spec.DECODER_MODEL)
    if params.get("lm_path"):
        decoder_dir = repo / spec.DECODER_MODEL
        files = [decoder_dir / params["lm_path"]] + (
            [decoder_dir / params["unigrams_path"]] if params.get("unigrams_path") else [])
        return files, params["lm_path"], params.get("unigrams_path", "")
    return lm_files(LM_DIR)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        utterances = [u for manifest in args.dev for u in read_manifest(manifest)]
        if args.max_utterances:
            utterances = utterances[: args.max_utterances]
        utterances = [u for u in utterances if u.text.strip()]
        if not utterances:
            raise ValueError(f"{' '.join(map(str, args.dev))}: no utterances with a transcript")
        files, lm_name, unigrams_name = resolve_lm(args.repo, args.lm_dir)
        vocab = Vocabulary.load_from_dir(args.repo / spec.DECODER_MODEL)
        params = model_parameters(args.repo, spec.DECODER_MODEL)
        served = DecoderConfig.from_parameters(params, check_files=False)
        backend = args.backend or served.backend
        pruning = {"beam_prune_logp": served.beam_prune_logp, "token_min_logp": served.token_min_logp}
        lm_config = DecoderConfig(mode="beam", beam_width=args.beam_widths[0], lm_path=str(files[0]),
                                  unigrams_path=str(files[1]) if len(files) > 1 else "", backend=backend,
                                  **pruning)
        decoder = CTCDecoder(vocab, lm_config)  # loads the LM once; a bad or mis-cased LM fails here
    except (FileNotFoundError, ValueError, DecoderConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logits = cached_logits(args.logits_cache, [u.audio for u in utterances])
    if logits is None:
        logits = compute_logits(args.repo, [u.audio for u in utterances], args.threads, not args.quiet)
        if args.logits_cache:
            save_logits(args.logits_cache, [u.audio for u in utterances], logits)
    points = grid_search(vocab, decoder, logits, [u.text.lower() if vocab.upper_case is False else u.text.upper() for u in utterances],
                         [u.duration for u in utterances], args.alphas, args.betas, args.beam_widths,
                         progress=not args.quiet)
    best = choose(points)
    print(f"{'mode':8} {'beam':>4} {'alpha':>6} {'beta':>5} {'WER %':>7} {'CER %':>7} {'audio-s/s/core':>14}")
    for p in points:
        mark = "  <- chosen" if p is best else ""
        print(f"{p.mode:8} {p.beam_width:4d} {p.alpha:6.2f} {p.beta:5.2f} {100 * p.wer:7.2f} {100 * p.cer:7.2f} "
              f"{p.speed_per_core:14.1f}{mark}")
    build_info = json.loads((args.repo / BUILD_INFO).read_text()) if (args.repo / BUILD_INFO).is_file() else {}
    result = {
        "dev": [str(d) for d in args.dev], "utterances": len(utterances),
        "audio_s": round(sum(u.duration for u in utterances), 3),
        "checkpoint": build_info.get("checkpoint", ""), "lm": file_id(files[0]), "lm_path": str(files[0]),
        "backend": backend, **pruning,
        "chosen": {"beam_width": best.beam_width, "alpha": best.alpha, "beta": best.beta},
        "chosen_wer": best.wer, "points": [p.row() for p in points],
    }
    text = json.dumps(result, indent=2)
    if args.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(text)
    if args.no_apply:
        print("--no-apply: repository left unchanged")
        return 0
    save_tuning(args.repo / spec.DECODER_MODEL, result)
    decoder = apply_to_repository(args.repo, best, files, lm_name, unigrams_name, backend)
    print(f"{args.repo}: decoder set to {decoder} (results in {args.repo / spec.DECODER_MODEL / TUNING_FILE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
