"""The decoder values `make tune-lm` chose, on disk (`<repository>/decoder/tuning.json`).

Why in build: a rebuild of a repository with the same checkpoint and LM re-applies them, so the
build reads this file; the tuning itself (eval.lm_tuning) writes it through `save_tuning`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from w2v_triton.serving.ctc_decoding import DecoderConfig

TUNING_FILE = "tuning.json"
logger = logging.getLogger(__name__)


def file_id(path: Path | str) -> dict[str, Any]:
    """Name and size of a file: enough to tell whether tuning was done for it."""
    path = Path(path)
    return {"name": path.name, "size": path.stat().st_size} if path.is_file() else {}


# What tuning chooses: the DecoderConfig fields tuning.json's "chosen" may hold.
TUNED_KEYS = ("beam_width", "alpha", "beta", "beam_prune_logp", "token_min_logp")


def save_tuning(decoder_dir: Path, result: dict[str, Any]) -> Path:
    """Write tuning.json (every grid point, the chosen values, what they were tuned for)."""
    unknown = set(result.get("chosen", {})) - set(TUNED_KEYS)
    if unknown or "checkpoint" not in result or "lm" not in result:
        raise ValueError(f"not a tuning result: unknown chosen keys {sorted(unknown)} or no checkpoint/lm")
    path = Path(decoder_dir) / TUNING_FILE
    path.write_text(json.dumps(result, indent=2))
    return path


def load_tuning(decoder_dir: Path, checkpoint: Path, lm_file: Path | None) -> dict[str, Any]:
    """The chosen values of `<decoder_dir>/tuning.json` when it was made for this checkpoint and
    LM file (else {}), each checked against DecoderConfig."""
    path = Path(decoder_dir) / TUNING_FILE
    if lm_file is None or not path.is_file():
        return {}
    tuning = json.loads(path.read_text())
    if tuning.get("checkpoint") != str(checkpoint) or tuning.get("lm") != file_id(lm_file):
        logger.warning("%s was tuned for another checkpoint or LM; not using it", path)
        return {}
    chosen = {k: v for k, v in tuning.get("chosen", {}).items() if k in TUNED_KEYS}
    DecoderConfig.from_parameters({k: str(v) for k, v in chosen.items()}, check_files=False)   # valid values
    return chosen
