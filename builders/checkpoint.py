"""Resolve MODEL (hub id, local dir, random-base, tiny, reference) to a local checkpoint dir."""
from __future__ import annotations

import argparse
import sys

from w2v_triton.build.checkpoints import CheckpointUnavailable, read_checkpoint_info, resolve_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="", help="hub id, local dir, random-base, tiny, reference")
    args = parser.parse_args(argv)
    try:
        info = read_checkpoint_info(resolve_checkpoint(args.model))
    except CheckpointUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{info.path}  vocab={len(info.vocab)} do_normalize={info.do_normalize} "
          f"feat_extract_norm={info.feat_extract_norm}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
