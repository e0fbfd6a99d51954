"""Tiny procedurally generated 'speech' for fast tests: each letter is a short tone burst.

Needs no TTS engine, so trainer tests run anywhere. Rows carry their samples in memory
(`ManifestDataset` reads `row["samples"]` instead of a file when present).
"""
from __future__ import annotations

import numpy as np

from w2v_triton.spec import SAMPLE_RATE

_LETTERS = "ETAONIHSRDLU"


def tone_utterances(n: int = 6, seed: int = 0, words: int = 2, letter_ms: int = 80) -> list[dict]:
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
