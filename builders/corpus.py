"""Build the synthetic English speech corpus (Debian synthesisers + augmentation) under build/corpus/.

    python -m builders.corpus --out build/corpus --n-train 12000 --workers 2   # espeak-ng + flite, 3:1
    python -m builders.corpus --synths espeak --n-train 14000   # the espeak-only corpus of the committed figures

Deterministic from --seed; rerunning keeps existing files and only fills in the missing ones.
`--synths` names the synthesisers (espeak, flite, festival; w2v_triton/train/synthesizers.py) and
their share of the training utterances; every synthesiser speaks every held-out sentence.
"""
from __future__ import annotations

import argparse
import json
import sys

from w2v_triton.train.corpus import CorpusConfig, build_corpus, parse_synths


def main(argv: list[str] | None = None) -> int:
    d = CorpusConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=d.out_dir)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--synths", default=",".join(f"{k}:{v:g}" for k, v in d.synths.items()),
                   help="synthesisers and their training shares, e.g. espeak:3,flite:1 (default %(default)s)")
    p.add_argument("--n-train", type=int, default=d.n_train, help="training utterances, all synthesisers together")
    p.add_argument("--n-dev", type=int, default=d.n_dev, help="per synthesiser")
    p.add_argument("--n-test-seen", type=int, default=d.n_test_seen, help="per synthesiser")
    p.add_argument("--n-test-unseen", type=int, default=d.n_test_unseen, help="per synthesiser")
    p.add_argument("--max-words", type=int, default=d.max_words)
    p.add_argument("--augment-strength", type=float, default=d.augment_strength)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop rendering training utterances after this long (held-out splits always complete)")
    p.add_argument("--fortune-dir", action="append", default=None,
                   help="text source folder(s) in fortune format (default /usr/share/games/fortunes)")
    a = p.parse_args(argv)
    try:
        synths = parse_synths(a.synths)
    except ValueError as exc:
        print(f"error: --synths: {exc}", file=sys.stderr)
        return 2
    cfg = CorpusConfig(out_dir=a.out, seed=a.seed, n_train=a.n_train, n_dev=a.n_dev,
                       n_test_seen=a.n_test_seen, n_test_unseen=a.n_test_unseen,
                       max_words=a.max_words, augment_strength=a.augment_strength, workers=a.workers,
                       fortune_dirs=tuple(a.fortune_dir) if a.fortune_dir else d.fortune_dirs, synths=synths)
    try:
        stats = build_corpus(cfg, max_seconds=a.max_seconds)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(stats, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
