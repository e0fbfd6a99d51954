"""Manifest datasets, length-bucketed batching (by audio seconds) and padding collation."""
from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from w2v_triton.build.manifest import read_rows
from w2v_triton.serving.audio import load_audio
from w2v_triton.serving.preprocessing import normalize
from w2v_triton.serving.spec import SAMPLE_RATE, WORD_DELIMITER


def encode_text(text: str, vocab: Mapping[str, int]) -> list[int]:
    """Characters -> ids with spaces as the word delimiter; characters outside the vocab dropped."""
    ids = []
    for ch in " ".join(text.upper().split()):
        tok = WORD_DELIMITER if ch == " " else ch
        if tok in vocab:
            ids.append(vocab[tok])
    return ids


class ManifestDataset(Dataset[dict[str, Any]]):
    """Items: {"input_values": normalised float32 audio, "labels": int ids, "text", "duration"}.

    `augment_strength` > 0: every item is passed through `augment.augment` (silence, speed, band
    limit, reverb, noise) afresh each time it is read, with a generator seeded from NumPy's global
    RNG, which checkpoints save: a resumed run draws the same augmentations (num_workers=0)."""

    def __init__(self, rows: Sequence[dict[str, Any]], vocab: Mapping[str, int], do_normalize: bool = True,
                 augment_strength: float = 0.0):
        self.rows = list(rows)
        self.vocab = dict(vocab)
        self.do_normalize = do_normalize
        if augment_strength < 0:
            raise ValueError(f"augment_strength must be >= 0, got {augment_strength}")
        self.augment_strength = augment_strength

    @classmethod
    def from_manifest(cls, path: str | os.PathLike[str], vocab: Mapping[str, int], **kw: Any) -> ManifestDataset:
        limit = kw.pop("limit", None)
        max_duration = kw.pop("max_duration", None)
        return cls(read_rows(path, max_duration=max_duration, limit=limit), vocab, **kw)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def durations(self) -> list[float]:
        return [float(r["duration"]) for r in self.rows]

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.rows[i]
        audio = row["samples"] if "samples" in row else load_audio(row["audio"], SAMPLE_RATE)
        audio = np.asarray(audio, dtype=np.float32)
        if self.augment_strength > 0:
            from w2v_triton.train.augment import augment
            rng = np.random.default_rng(np.random.randint(2**31 - 1))
            audio, _ = augment(audio, rng, self.augment_strength)
        if self.do_normalize:
            audio = normalize(audio)
        return {"input_values": audio, "labels": np.asarray(encode_text(row["text"], self.vocab), np.int64),
                "text": row["text"], "duration": len(audio) / SAMPLE_RATE}


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar-length utterances whose padded size stays under `max_batch_seconds`.

    Each epoch: sort by duration with a little seeded jitter (so batches differ between epochs),
    cut into batches, shuffle the batch order. Under DDP every rank takes every `world_size`-th
    batch (all ranks get the same count). `set_epoch(epoch, start)` skips the first `start`
    batches of this rank, which is how a resumed run continues exactly where it stopped.
    """

    def __init__(self, durations: Sequence[float], max_batch_seconds: float, shuffle: bool = True,
                 seed: int = 0, rank: int = 0, world_size: int = 1, max_batch_size: int | None = None):
        self.durations = np.asarray(durations, dtype=np.float64)
        self.max_batch_seconds = float(max_batch_seconds)
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.max_batch_size = max_batch_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        keys = self.durations * rng.uniform(0.9, 1.1, size=len(self.durations)) if self.shuffle else self.durations
        order = np.argsort(keys, kind="stable")
        batches: list[list[int]] = []
        cur: list[int] = []
        cur_max = 0.0
        for idx in order:
            d = self.durations[idx]
            new_max = max(cur_max, d)
            too_big = cur and (new_max * (len(cur) + 1) > self.max_batch_seconds
                               or (self.max_batch_size and len(cur) >= self.max_batch_size))
            if too_big:
                batches.append(cur)
                cur, new_max = [], d
            cur.append(int(idx))
            cur_max = new_max
        if cur:
            batches.append(cur)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def rank_batches(self) -> list[list[int]]:
        batches = self._all_batches()
        per_rank = len(batches) // self.world_size if self.world_size > 1 else len(batches)
        return batches[self.rank::self.world_size][:per_rank]

    def __len__(self) -> int:
        return len(self.rank_batches())

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.rank_batches()[self.start:]


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Zero-pad audio (after normalisation, like the feature extractor), attention_mask 1 on valid
    samples, labels padded with -100 (ignored by the CTC loss)."""
    n = len(items)
    max_len = max(len(it["input_values"]) for it in items)
    max_lab = max(max(len(it["labels"]) for it in items), 1)
    x = torch.zeros(n, max_len, dtype=torch.float32)
    mask = torch.zeros(n, max_len, dtype=torch.long)
    labels = torch.full((n, max_lab), -100, dtype=torch.long)
    for i, it in enumerate(items):
        a = torch.from_numpy(np.ascontiguousarray(it["input_values"]))
        x[i, : len(a)] = a
        mask[i, : len(a)] = 1
        labels[i, : len(it["labels"])] = torch.from_numpy(it["labels"])
    return {"input_values": x, "attention_mask": mask, "labels": labels,
            "texts": [it["text"] for it in items],
            "audio_seconds": float(sum(len(it["input_values"]) for it in items) / SAMPLE_RATE)}


def num_frames(num_samples: int) -> int:
    """Logit frames of the standard wav2vec2 front-end for `num_samples` samples."""
    n = num_samples
    for k, s in zip((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2), strict=True):
        n = math.floor((n - k) / s) + 1
    return max(n, 0)
