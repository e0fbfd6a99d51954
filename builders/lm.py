#!/usr/bin/env python
"""Build the CTC decoder's language model directory (default build/lm/).

An ARPA source also becomes lm.bin (quantised KenLM trie, loads in well under a second).
Sources: the CMU US-English 3-gram shipped with pocketsphinx (default, offline), a
user ARPA (--arpa, plain or .gz), a user KenLM binary (--kenlm-binary), or a LibriSpeech
LM from OpenSLR (--download). Words are upper-cased by default to match wav2vec2's
vocabulary. Re-running with the same inputs does nothing (see lm.json); --force rebuilds.
"""
from __future__ import annotations

import argparse
import sys

from w2v_triton.build.lm import DEFAULT_BASE_URL, DOWNLOADS, LMBuildError, build_lm
from w2v_triton.paths import LM_DIR


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--arpa", metavar="FILE", help="ARPA LM (plain or gzipped)")
    src.add_argument("--kenlm-binary", metavar="FILE", help="KenLM binary LM (copied as is)")
    src.add_argument("--download", choices=sorted(DOWNLOADS), help="LibriSpeech LM from OpenSLR")
    p.add_argument("--base-url", default=DEFAULT_BASE_URL, help="where --download looks (default: %(default)s)")
    p.add_argument("--unigrams", metavar="FILE", help="word list to go with --kenlm-binary")
    p.add_argument("--case", choices=("upper", "lower", "keep"), default="upper",
                   help="word case of the output LM (default: %(default)s, as wav2vec2's vocabulary)")
    p.add_argument("--out", default=str(LM_DIR), help="output directory (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds")
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p.add_argument("--no-binary", action="store_true",
                   help="keep lm.arpa only (default: also lm.bin, a quantised KenLM trie; KenLM's "
                        "build_binary is compiled from the kenlm sdist into build/kenlm when not on PATH)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    try:
        build_lm(a.out, arpa=a.arpa, kenlm_binary=a.kenlm_binary, download_name=a.download,
                 unigrams=a.unigrams, base_url=a.base_url, case=a.case, force=a.force,
                 timeout=a.timeout, show_progress=not a.quiet,
                 binary=not a.no_binary)
    except LMBuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
