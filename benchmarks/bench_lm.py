"""`make bench-lm`: the beam search + LM backends on the same logits, then the served decoders, one run.

    python -m benchmarks.bench_lm [--model models/reference] [--lm-dir build/lm] [--dev ...] [--test ...]
        [-- benchmarks.run options, e.g. --request-count 4]

Why Python: the steps used to be shell in mk/bench.mk. In order: an ARPA-only copy of `make lm`'s
folder (links to its lm.arpa + unigrams.txt: the setup before the binary LM), the four served
repositories (SERVED: greedy, beam without LM, beam + LM with pyctcdecode on the ARPA, beam + LM
with flashlight on lm.bin), alpha/beta tuned on --dev for the flashlight one (the same search as
`make tune-lm`, logits cached), the backends on the same logits (benchmarks.decoders), and the four
served with perf_analyzer on real speech (benchmarks.run).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from w2v_triton.build.builder import BuildRequest
from w2v_triton.build.repository import RepositoryOptions
from w2v_triton.paths import CORPUS_DIR, LM_DIR, LOGITS_DIR, REPOS_DIR, UNIGRAMS_FILE, WORK_DIR
from w2v_triton.serving.ctc_decoding import DecoderConfig

ARPA_FILE = "lm.arpa"


@dataclass(frozen=True)
class ServedDecoder:
    """One served repository of the run: its name in the report, folder suffix, decoder and LM."""

    name: str
    suffix: str
    decoder: DecoderConfig
    lm: str = ""                # "" (none), "arpa" (the ARPA-only folder) or "bin" (`make lm`'s folder)


SERVED = (
    ServedDecoder("greedy", "greedy", DecoderConfig()),
    ServedDecoder("beam-pyctcdecode", "beam", DecoderConfig(mode="beam")),
    ServedDecoder("lm-pyctcdecode-arpa", "pyctcdecode-arpa", DecoderConfig(mode="beam", backend="pyctcdecode"), "arpa"),
    ServedDecoder("lm-flashlight-bin", "flashlight", DecoderConfig(mode="beam", backend="flashlight"), "bin"),
)
TUNED = "lm-flashlight-bin"      # alpha/beta tuned on dev before serving


def arpa_only(lm_dir: Path, target: Path) -> Path:
    """`target` with links to `lm_dir`'s lm.arpa and unigrams.txt only (no lm.bin: the decoder takes the ARPA)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (ARPA_FILE, UNIGRAMS_FILE):
        if not (lm_dir / name).is_file():
            raise FileNotFoundError(f"{lm_dir / name} is missing: run `make lm` first")
        link = target / name
        link.unlink(missing_ok=True)
        link.symlink_to((lm_dir / name).resolve())
    return target


def requests(model: str, lm_dir: Path, arpa_dir: Path, repos: Path) -> dict[str, BuildRequest]:
    """The served repositories of SERVED as build requests (folders `<repos>-<suffix>`)."""
    lm = {"": None, "arpa": arpa_dir, "bin": lm_dir}
    return {s.name: BuildRequest(model=model, output=repos.with_name(f"{repos.name}-{s.suffix}"), lm_dir=lm[s.lm],
                                 options=RepositoryOptions(decoder=s.decoder)) for s in SERVED}


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--model", default="models/reference", help="checkpoint (default %(default)s)")
    parser.add_argument("--lm-dir", type=Path, default=LM_DIR, help="`make lm`'s folder (lm.bin + lm.arpa)")
    parser.add_argument("--dev", type=Path, default=CORPUS_DIR / "dev.jsonl", help="tuning manifest")
    parser.add_argument("--test", type=Path, default=CORPUS_DIR / "test_seen.jsonl", help="decoding manifest")
    parser.add_argument("--repos", type=Path, default=REPOS_DIR / "bench-lm", help="prefix of the repositories")
    args, run_args = parser.parse_known_args(argv)
    return args, [a for a in run_args if a != "--"]


def main(argv: list[str] | None = None) -> int:
    from benchmarks import decoders, run
    from w2v_triton.build.builder import BuildError, build_repository
    from w2v_triton.eval.lm_tuning import TuningRequest, apply_tuning, tune_repository

    args, run_args = parse_args(argv)
    stem = Path(args.model).name
    try:
        arpa_dir = arpa_only(args.lm_dir, WORK_DIR / "lm-arpa")
        built = {name: build_repository(request).path
                 for name, request in requests(args.model, args.lm_dir, arpa_dir, args.repos).items()}
    except (BuildError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tuning = tune_repository(TuningRequest(repo=built[TUNED], dev=(args.dev,), progress=False,
                                           logits_cache=LOGITS_DIR / "bench-lm-flashlight-dev.npz"))
    print(f"{TUNED}: decoder tuned on {args.dev}: {apply_tuning(built[TUNED], tuning)}", flush=True)
    status = decoders.main(["--repo", str(built[TUNED]), "--lm-dir", str(args.lm_dir), "--dev", str(args.dev),
                            "--test", str(args.test), "--title", f"decoders-{stem}"])
    if status:
        return status
    return run.main(["--title", f"served-decoders-{stem}", "--sweeps", "real",
                     *(arg for name, path in built.items() for arg in ("--served", f"{name}={path}")),
                     "--real-concurrency", "1:16:5", "--request-count", "12", *run_args])


if __name__ == "__main__":
    sys.exit(main())
