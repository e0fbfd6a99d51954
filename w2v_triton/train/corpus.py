"""Synthetic English speech corpus: Debian synthesisers + numpy augmentation -> FLAC + JSONL manifests.

Layout under `out_dir`:
  <split>/<index>.flac           16 kHz mono 16-bit FLAC (espeak-ng; other kinds: <split>/<kind>-<index>.flac)
  <split>.jsonl                  {"audio": "<split>/<index>.flac", "text", "duration", "synth", "voice", ...}
  sentences/<split>.txt          the sentences of each split (train never holds a test sentence)
  corpus.json                    parameters it was built with, the synthesisers and voices, counts

Splits: train and dev use the training voices; test_seen = unseen sentences spoken by training
voices; test_unseen = unseen sentences spoken by voices never used in training. With several
synthesisers (`synths`, w2v_triton/train/synthesizers.py) every kind speaks every held-out
sentence with its own voices (so each kind gets its own WER on the same sentences), and the
training utterances are shared out by weight. Everything is a pure function of the seed and each
kind's fixed stream: the espeak part of any mix is the espeak-only corpus, file for file. Files
that already exist are kept (a rerun only fills in what is missing and rewrites the manifests).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from itertools import chain, zip_longest
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from w2v_triton.serving.spec import SAMPLE_RATE
from w2v_triton.train.augment import augment
from w2v_triton.train.synthesizers import SYNTHESIZERS, get
from w2v_triton.train.text import DEFAULT_FORTUNE_DIRS, sentence_pool

SPLITS = ("train", "dev", "test_seen", "test_unseen")
logger = logging.getLogger(__name__)


def parse_synths(spec: str) -> dict[str, float]:
    """"espeak:3,flite" -> {"espeak": 3.0, "flite": 1.0}: synthesisers and their share of training."""
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, weight = item.partition(":")
        get(name)   # unknown names fail here, with the known ones listed
        try:
            out[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"synthesiser weight {weight!r} of {name!r} is not a number") from None
        if not out[name] > 0:
            raise ValueError(f"synthesiser weight of {name!r} must be > 0, got {weight}")
    if not out:
        raise ValueError(f"no synthesiser in {spec!r} (known: {', '.join(SYNTHESIZERS)})")
    return out


@dataclass
class CorpusConfig:
    out_dir: str = "build/corpus"
    seed: int = 1234
    n_train: int = 12000                         # training utterances, all synthesisers together
    n_dev: int = 200                             # held-out utterances per synthesiser
    n_test_seen: int = 200
    n_test_unseen: int = 200
    min_words: int = 3
    max_words: int = 14
    rate_range: tuple[int, int] = (130, 210)     # words per minute
    pitch_range: tuple[int, int] = (25, 75)      # espeak-ng pitch 0..99 (50 = the voice's own)
    augment_strength: float = 1.0                # probability scale of each augmentation
    fortune_dirs: tuple[str, ...] = DEFAULT_FORTUNE_DIRS
    # espeak-ng's 77 voices stay three quarters of training; flite's 4 voices (and 5-10x slower
    # synthesis) the rest. {"espeak": 1.0} is the espeak-only corpus of the committed figures.
    synths: dict[str, float] = field(default_factory=lambda: {"espeak": 3.0, "flite": 1.0})
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)

    def train_counts(self) -> dict[str, int]:
        """n_train shared out by weight (largest remainder, ties to the first named)."""
        total = sum(self.synths.values())
        exact = {k: self.n_train * w / total for k, w in self.synths.items()}
        counts = {k: int(v) for k, v in exact.items()}
        for k in sorted(exact, key=lambda k: counts[k] - exact[k])[: self.n_train - sum(counts.values())]:
            counts[k] += 1
        return counts


@dataclass
class Job:
    split: str
    index: int
    text: str
    voice: str
    rate: int
    pitch: int | None
    seed: int
    strength: float
    path: str
    synth: str = "espeak"


def _row(job: Job, duration: float) -> dict[str, Any]:
    return {"audio": os.path.relpath(job.path, start=os.path.dirname(os.path.dirname(job.path))),
            "text": job.text, "duration": round(duration, 3), "synth": job.synth, "voice": job.voice,
            "rate": job.rate, "pitch": job.pitch}


def existing_row(job: Job) -> dict[str, Any] | None:
    """The manifest row of an utterance already on disk, or None (a truncated file is removed)."""
    if not os.path.exists(job.path):
        return None
    try:
        return _row(job, sf.info(job.path).duration)
    except RuntimeError:
        os.remove(job.path)   # truncated file from an interrupted run
        return None


def render(job: Job) -> dict[str, Any]:
    """Make one utterance unless its file exists; return its manifest row."""
    row = existing_row(job)
    if row is not None:
        return row
    synth = get(job.synth)
    audio = synth.synthesize(job.text, job.voice, job.rate, 50 if job.pitch is None else job.pitch)
    key = [job.seed, SPLITS.index(job.split), job.index] + ([synth.stream] if synth.stream else [])
    audio, _ = augment(audio, np.random.default_rng(key), job.strength)
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


def plan(cfg: CorpusConfig, sentences: dict[str, list[str]] | None = None) -> list[Job]:
    """Every utterance of the corpus, in order: split, then synthesiser, then index."""
    sentences = sentences or split_sentences(cfg)
    counts = {"dev": cfg.n_dev, "test_seen": cfg.n_test_seen, "test_unseen": cfg.n_test_unseen}
    train_counts = cfg.train_counts()
    jobs = []
    for split in SPLITS:
        texts = sentences[split]
        for name in cfg.synths:
            synth = get(name)
            # espeak draws from the stream earlier versions used, so its files stay the same
            rng = np.random.default_rng([cfg.seed, 100 + SPLITS.index(split)] + ([synth.stream] if synth.stream else []))
            voices = synth.unseen_voices() if split == "test_unseen" else synth.training_voices()
            offset = round(synth.text_offset * len(texts)) if split == "train" else 0
            prefix = "" if synth.stream == 0 else f"{name}-"
            for i in range(train_counts[name] if split == "train" else counts[split]):
                # Train cycles through its sentences (a new voice each time round when n_train > pool).
                text = texts[(i + offset) % len(texts)]
                voice = voices[int(rng.integers(len(voices)))]
                rate = int(rng.integers(cfg.rate_range[0], cfg.rate_range[1] + 1))
                pitch = int(rng.integers(cfg.pitch_range[0], cfg.pitch_range[1] + 1))
                jobs.append(Job(split, i, text, voice, rate, pitch if synth.uses_pitch else None,
                                cfg.seed, cfg.augment_strength,
                                os.path.join(cfg.out_dir, split, f"{prefix}{i:06d}.flac"), name))
    return jobs


def render_order(jobs: list[Job]) -> list[Job]:
    """Held-out utterances first, then training utterances taking turns between synthesisers, so a
    time budget cuts training only, and evenly across kinds."""
    held = [j for j in jobs if j.split != "train"]
    by_synth: dict[str, list[Job]] = {}
    for j in jobs:
        if j.split == "train":
            by_synth.setdefault(j.synth, []).append(j)
    turns = [j for j in chain.from_iterable(zip_longest(*by_synth.values())) if j is not None]
    return held + turns


def check_synthesizers(cfg: CorpusConfig) -> None:
    """Fail with one line per missing synthesiser before any work starts."""
    problems = [m for m in (get(name).missing() for name in cfg.synths) if m]
    if problems:
        raise FileNotFoundError("; ".join(problems) + " (make corpus-deps installs every synthesiser)")


def _render_all(cfg: CorpusConfig, jobs: list[Job], max_seconds: float | None,
                progress: bool) -> dict[str, dict[str, Any]]:
    """Rows by file path; with `max_seconds`, training utterances stop being rendered once the
    budget is spent (held-out splits are always complete)."""
    order = render_order(jobs)
    n_held = sum(j.split != "train" for j in order)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    rows: dict[str, dict[str, Any]] = {}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(order), desc="corpus", unit="utt")
    workers = max(1, cfg.workers)
    pool = Pool(workers) if workers > 1 else None
    try:
        results = pool.imap(render, order, chunksize=16) if pool else map(render, order)
        for i, (job, row) in enumerate(zip(order, results, strict=True)):
            rows[job.path] = row
            if bar:
                bar.update()
            if deadline is not None and i + 1 >= n_held and time.monotonic() > deadline:
                logger.warning("corpus: time budget of %.0f s spent after %d of %d utterances",
                               max_seconds, i + 1, len(order))
                break
    finally:
        if pool:
            pool.terminate()
            pool.join()
        if bar:
            bar.close()
    if len(rows) < len(order):   # stopped early: utterances finished meanwhile (or in earlier runs) count
        for job in order[len(rows):]:
            found = existing_row(job)
            if found is not None:
                rows[job.path] = found
        for stale in Path(cfg.out_dir).glob("*/*.tmp.flac"):
            stale.unlink()
    return rows


def _stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"utterances": len(rows), "hours": round(sum(r["duration"] for r in rows) / 3600, 3),
            "voices": len({(r["synth"], r["voice"]) for r in rows})}


def build_corpus(cfg: CorpusConfig, progress: bool = True,
                 max_seconds: float | None = None) -> dict[str, dict[str, Any]]:
    """Render every missing utterance in parallel, then write the manifests. Returns split stats.
    `max_seconds` bounds the rendering time (the GPU session): held-out splits are complete, the
    training split holds what was rendered in time (corpus.json says how many)."""
    check_synthesizers(cfg)
    out = Path(cfg.out_dir)
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
    sentences = split_sentences(cfg)
    jobs = plan(cfg, sentences)
    (out / "sentences").mkdir(exist_ok=True)
    for split in sentences:
        used = sorted({j.text for j in jobs if j.split == split})
        (out / "sentences" / f"{split}.txt").write_text("\n".join(used) + "\n")
    rows = _render_all(cfg, jobs, max_seconds, progress)
    stats: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        split_rows = [rows[j.path] for j in jobs if j.split == split and j.path in rows]
        with open(out / f"{split}.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in split_rows)
        stats[split] = _stats(split_rows)
        if len(cfg.synths) > 1:
            stats[split]["by_synth"] = {name: _stats([r for r in split_rows if r["synth"] == name])
                                        for name in cfg.synths}
    meta = asdict(cfg)
    meta.pop("workers")
    synths: dict[str, dict[str, Any]] = {
        name: {"weight": w, "packages": list(get(name).packages),
               "training_voices": get(name).training_voices(), "unseen_voices": get(name).unseen_voices()}
        for name, w in cfg.synths.items()}
    meta["synthesizers"] = synths
    meta["training_voices"] = [v for s in synths.values() for v in s["training_voices"]]
    meta["unseen_voices"] = [v for s in synths.values() for v in s["unseen_voices"]]
    meta["planned_train"] = cfg.train_counts()
    meta["stats"] = stats
    (out / "corpus.json").write_text(json.dumps(meta, indent=2) + "\n")
    return stats
