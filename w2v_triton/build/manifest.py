"""JSONL manifests (`audio`, `text`, `duration` per line), as used for corpora and evaluation."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Utterance:
    audio: Path          # absolute path (manifest paths are relative to the manifest's folder)
    text: str            # upper-case transcript, may be "" for unlabelled audio
    duration: float      # seconds


def read_rows(path: str | os.PathLike[str], max_duration: float | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The one manifest parser: JSONL rows {"audio", "text", "duration", ...} with `audio` made
    absolute (relative paths are relative to the manifest's folder); rows longer than
    `max_duration` seconds are skipped, at most `limit` rows are read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    rows: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            audio = Path(row["audio"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a manifest row ({exc})") from None
        row["audio"] = str(audio if audio.is_absolute() else path.parent / audio)
        if max_duration is not None and float(row.get("duration", 0.0)) > max_duration:
            continue
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    return rows


def read_manifest(path: str | Path) -> list[Utterance]:
    return [Utterance(Path(r["audio"]), r.get("text", ""), float(r.get("duration", 0.0))) for r in read_rows(path)]


def write_manifest(path: str | Path, utterances: list[Utterance]) -> None:
    """Paths are written relative to the manifest's folder when they lie below it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for u in utterances:
        try:
            audio = str(Path(u.audio).resolve().relative_to(path.parent.resolve()))
        except ValueError:
            audio = str(u.audio)
        lines.append(json.dumps({"audio": audio, "text": u.text, "duration": round(u.duration, 3)}))
    path.write_text("\n".join(lines) + ("\n" if lines else ""))


# A folder laid out like ../shared/data/speech (<source>/manifest.jsonl + audio) used instead of it:
# the real-speech subset a GPU kit carries (docs/gpu.md).
SPEECH_DIR_ENV = "W2V_SPEECH_DIR"


def shared_speech_dir(repo_root: Path) -> Path:
    """$W2V_SPEECH_DIR when set, else ../shared/data/speech beside the checkout."""
    return Path(os.environ.get(SPEECH_DIR_ENV) or repo_root.parent / "shared" / "data" / "speech")


def real_speech_glob(repo_root: Path) -> str:
    """The glob of those manifests, the default of the evaluations' --real-speech ('' = none)."""
    return str(shared_speech_dir(repo_root) / "*" / "manifest.jsonl")


def shared_speech_manifests(repo_root: Path) -> list[Path]:
    """The real-speech manifests (tests and benchmarks only): one per source folder."""
    return sorted(shared_speech_dir(repo_root).glob("*/manifest.jsonl"))
