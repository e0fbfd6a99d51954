"""Synthetic English speech corpus: espeak-ng voices + numpy augmentation -> FLAC + JSONL manifests.

Layout under `out_dir`:
  <split>/<index>.flac           16 kHz mono 16-bit FLAC
  <split>.jsonl                  {"audio": "<split>/<index>.flac", "text", "duration", "voice", ...}
  sentences/<split>.txt          the sentences of each split (train never holds a test sentence)
  corpus.json                    parameters it was built with

Splits: train and dev use the training voices; test_seen = unseen sentences spoken by training
voices; test_unseen = unseen sentences spoken by voices (accent or variant) never used in
training. Everything is a pure function of the seed; files that already exist are kept (a rerun
only fills in what is missing and rewrites the manifests).
"""
from __future__ import annotations

from typing import Any, cast
import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from w2v_triton.serving.spec import SAMPLE_RATE
from w2v_triton.train.augment import augment
from w2v_triton.train.text import sentence_pool
from w2v_triton.serving.typing import AnyArray

TRAIN_ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
                 "en-gb-x-gbcwmd", "en-029")
UNSEEN_ACCENTS = ("en-us-nyc",)
TRAIN_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f4")
UNSEEN_VARIANTS = ("m7", "f5")
SPLITS = ("train", "dev", "test_seen", "test_unseen")


def voice_name(accent: str, variant: str) -> str:
    return accent + ("+" + variant if variant else "")


def training_voices() -> list[str]:
    return [voice_name(a, v) for a in TRAIN_ACCENTS for v in TRAIN_VARIANTS]


def unseen_voices() -> list[str]:
    """Voices with an accent or a variant that training never hears."""
    voices = [voice_name(a, v) for a in UNSEEN_ACCENTS for v in TRAIN_VARIANTS + UNSEEN_VARIANTS]
    voices += [voice_name(a, v) for a in TRAIN_ACCENTS for v in UNSEEN_VARIANTS]
    return voices


@dataclass
class CorpusConfig:
    out_dir: str = "build/corpus"
    seed: int = 1234
    n_train: int = 12000
    n_dev: int = 200
    n_test_seen: int = 200
    n_test_unseen: int = 200
    min_words: int = 3
    max_words: int = 14
    rate_range: tuple[int, int] = (130, 210)     # espeak-ng words per minute
    pitch_range: tuple[int, int] = (25, 75)      # espeak-ng pitch 0..99
    augment_strength: float = 1.0                # probability scale of each augmentation
    fortune_dirs: tuple[str, ...] = ("/usr/share/games/fortunes",)
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)


@dataclass
class Job:
    split: str
    index: int
    text: str
    voice: str
    rate: int
    pitch: int
    seed: int
    strength: float
    path: str


def find_espeak() -> str | None:
    return os.environ.get("ESPEAK_NG") or shutil.which("espeak-ng")


def synthesize(text: str, voice: str, rate: int, pitch: int, espeak: str | None = None) -> AnyArray:
    """espeak-ng -> float32 mono at 16 kHz. The text is spoken in lower case (no acronym spelling)."""
    espeak = espeak or find_espeak()
    if espeak is None:
        raise RuntimeError("espeak-ng not found (apt-get install espeak-ng, or set ESPEAK_NG)")
    proc = subprocess.run([espeak, "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout",
                           text.lower()], capture_output=True, check=True)
    raw = proc.stdout
    if raw[:4] != b"RIFF" or len(raw) <= 44:
        raise RuntimeError(f"espeak-ng gave no audio for {voice!r}: {proc.stderr[-200:]!r}")
    rate_hz = int.from_bytes(raw[24:28], "little")
    # espeak-ng writes a streaming header (bogus length); the PCM starts at byte 44.
    pcm = np.frombuffer(raw[44: 44 + (len(raw) - 44) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    resampled: AnyArray = soxr.resample(pcm, rate_hz, SAMPLE_RATE).astype(np.float32)
    return resampled


def _row(job: Job, duration: float) -> dict[str, Any]:
    return {"audio": os.path.relpath(job.path, start=os.path.dirname(os.path.dirname(job.path))),
            "text": job.text, "duration": round(duration, 3), "voice": job.voice,
            "rate": job.rate, "pitch": job.pitch}


def render(job: Job) -> dict[str, Any]:
    """Make one utterance unless its file exists; return its manifest row."""
    if os.path.exists(job.path):
        try:
            return _row(job, sf.info(job.path).duration)
        except RuntimeError:
            os.remove(job.path)   # truncated file from an interrupted run
    audio = synthesize(job.text, job.voice, job.rate, job.pitch)
    rng = np.random.default_rng([job.seed, SPLITS.index(job.split), job.index])
    audio, _ = augment(audio, rng, job.strength)
    tmp = job.path + ".tmp.flac"
    sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    os.replace(tmp, job.path)
    return _row(job, len(audio) / SAMPLE_RATE)


def split_sentences(cfg: CorpusConfig) -> dict[str, list[str]]:
    """Disjoint sentence sets; the test/dev sentences are drawn first so train never has them."""
    pool = sentence_pool(cfg.fortune_dirs, cfg.min_words, cfg.max_words)
    rng = np.random.default_rng(cfg.seed)
    order = [pool[i] for i in rng.permutation(len(pool))]
    held = cfg.n_dev + cfg.n_test_seen + cfg.n_test_unseen
    if len(order) <= held:
        raise ValueError(f"only {len(order)} sentences, need more than {held}")
    out, start = {}, 0
    for split, n in (("dev", cfg.n_dev), ("test_seen", cfg.n_test_seen), ("test_unseen", cfg.n_test_unseen)):
        out[split] = order[start:start + n]
        start += n
    out["train"] = order[start:]
    return out


def plan(cfg: CorpusConfig) -> list[Job]:
    sentences = split_sentences(cfg)
    seen, unseen = training_voices(), unseen_voices()
    counts = {"train": cfg.n_train, "dev": cfg.n_dev, "test_seen": cfg.n_test_seen,
              "test_unseen": cfg.n_test_unseen}
    jobs = []
    for split in SPLITS:
        rng = np.random.default_rng([cfg.seed, 100 + SPLITS.index(split)])
        voices = unseen if split == "test_unseen" else seen
        texts = sentences[split]
        for i in range(counts[split]):
            # Train cycles through its sentences (a new voice each time round when n_train > pool).
            text = texts[i % len(texts)]
            jobs.append(Job(split, i, text, voices[int(rng.integers(len(voices)))],
                            int(rng.integers(cfg.rate_range[0], cfg.rate_range[1] + 1)),
                            int(rng.integers(cfg.pitch_range[0], cfg.pitch_range[1] + 1)),
                            cfg.seed, cfg.augment_strength,
                            os.path.join(cfg.out_dir, split, f"{i:06d}.flac")))
    return jobs


def build_corpus(cfg: CorpusConfig, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Render every missing utterance in parallel, then write the manifests. Returns split stats."""
    out = Path(cfg.out_dir)
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
    jobs = plan(cfg)
    sentences = split_sentences(cfg)
    (out / "sentences").mkdir(exist_ok=True)
    for split, texts in sentences.items():
        used = sorted({j.text for j in jobs if j.split == split})
        (out / "sentences" / f"{split}.txt").write_text("\n".join(used) + "\n")
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc="corpus", unit="utt")
    workers = max(1, cfg.workers)
    if workers == 1:
        for i, job in enumerate(jobs):
            rows[i] = render(job)
            if bar:
                bar.update()
    else:
        with Pool(workers) as pool:
            for i, row in enumerate(pool.imap(render, jobs, chunksize=16)):
                rows[i] = row
                if bar:
                    bar.update()
    if bar:
        bar.close()
    stats: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        rendered = cast(list[dict[str, Any]], rows)   # every job was rendered above
        split_rows = [r for r, j in zip(rendered, jobs) if j.split == split]
        with open(out / f"{split}.jsonl", "w") as f:
            for r in split_rows:
                f.write(json.dumps(r) + "\n")
        stats[split] = {"utterances": len(split_rows),
                        "hours": round(sum(r["duration"] for r in split_rows) / 3600, 3),
                        "voices": len({r["voice"] for r in split_rows})}
    meta = asdict(cfg)
    meta.pop("workers")
    meta["training_voices"] = training_voices()
    meta["unseen_voices"] = unseen_voices()
    meta["stats"] = stats
    (out / "corpus.json").write_text(json.dumps(meta, indent=2) + "\n")
    return stats
