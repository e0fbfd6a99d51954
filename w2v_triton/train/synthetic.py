"""Tiny procedurally generated 'speech' for fast tests: each letter is a short tone burst.

Needs no TTS engine, so trainer tests run anywhere. Rows carry their samples in memory
(`ManifestDataset` reads `row["samples"]` instead of a file when present).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from w2v_triton.serving.spec import SAMPLE_RATE

_LETTERS = "ETAONIHSRDLU"


def tone_utterances(n: int = 6, seed: int = 0, words: int = 2, letter_ms: int = 80) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        text = " ".join("".join(rng.choice(list(_LETTERS), size=int(rng.integers(2, 4))))
                        for _ in range(words))
        pieces = [np.zeros(int(0.05 * SAMPLE_RATE), np.float32)]
        t = np.arange(int(letter_ms / 1000 * SAMPLE_RATE)) / SAMPLE_RATE
        for ch in text:
            if ch == " ":
                pieces.append(np.zeros(int(0.06 * SAMPLE_RATE), np.float32))
            else:
                f = 200.0 + 150.0 * _LETTERS.index(ch)
                pieces.append((0.5 * np.sin(2 * np.pi * f * t) * np.hanning(len(t))).astype(np.float32))
        pieces.append(np.zeros(int(0.05 * SAMPLE_RATE), np.float32))
        audio = np.concatenate(pieces) + 0.01 * rng.standard_normal(sum(map(len, pieces))).astype(np.float32)
        rows.append({"audio": f"<tone-{i}>", "samples": audio.astype(np.float32), "text": text,
                     "duration": len(audio) / SAMPLE_RATE})
    return rows


def write_tone_corpus(out_dir: str | Path, n_train: int = 8, n_test: int = 3, seed: int = 0) -> dict[str, Any]:
    """FLAC files + train/dev/test_seen/test_unseen manifests of tone 'speech' (for CLI tests)."""
    import json

    import soundfile as sf

    out = Path(out_dir)
    counts = {"train": n_train, "dev": n_test, "test_seen": n_test, "test_unseen": n_test}
    for k, (split, n) in enumerate(counts.items()):
        (out / split).mkdir(parents=True, exist_ok=True)
        with open(out / f"{split}.jsonl", "w") as f:
            for i, row in enumerate(tone_utterances(n, seed=seed * 10 + k)):
                rel = f"{split}/{i:06d}.flac"
                sf.write(str(out / rel), row["samples"], SAMPLE_RATE, subtype="PCM_16", format="FLAC")
                f.write(json.dumps({"audio": rel, "text": row["text"], "duration": row["duration"]}) + "\n")
    return counts
