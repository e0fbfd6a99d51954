"""Synthetic corpus: text normalisation, splits, voices, augmentation, and (with espeak-ng) a
tiny end-to-end build that is deterministic and idempotent."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from w2v_triton.serving.spec import BASE_960H_VOCAB, SAMPLE_RATE
from w2v_triton.train import corpus as C
from w2v_triton.train.augment import augment
from w2v_triton.train.text import normalize_text, number_to_words, sentence_pool

ALPHABET = set(k for k in BASE_960H_VOCAB if len(k) == 1 and k != "|") | {" "}


@pytest.fixture
def fortune_dir(tmp_path: Path) -> Path:
    d = tmp_path / "fortunes"
    d.mkdir()
    lines = []
    for i in range(60):
        lines.append(f"Sentence number {i} is here and it is fine. Don't count {i * 7} \"sheep\" tonight!\n"
                     f"\t\t-- Someone Famous\n%\n")
    lines.append("Hello world.\n%\nHello   WORLD!\n%\nA: what\nB: dialogue\n%\n")
    (d / "quotes").write_text("".join(lines))
    (d / "quotes.dat").write_bytes(b"\0\1binary")
    return d


def test_number_to_words():
    assert number_to_words(0) == "ZERO"
    assert number_to_words(42) == "FORTY TWO"
    assert number_to_words(115) == "ONE HUNDRED FIFTEEN"
    assert number_to_words(2000) == "TWO THOUSAND"
    assert number_to_words(1234567) == "ONE MILLION TWO HUNDRED THIRTY FOUR THOUSAND FIVE HUNDRED SIXTY SEVEN"


def test_normalize_text():
    assert normalize_text("It's 5 o'clock -- in 1984, \"really\"!") == "IT'S FIVE O'CLOCK IN NINETEEN EIGHTY FOUR REALLY"
    assert normalize_text("Rock & roll 100%") == "ROCK AND ROLL ONE HUNDRED PERCENT"
    assert normalize_text("pi is 3.14") is None          # decimals are not spelled out: dropped
    assert normalize_text("x = y + 1") is None
    assert normalize_text("'Quoted' words") == "QUOTED WORDS"


def test_sentence_pool_is_normalised_and_deduplicated(fortune_dir):
    pool = sentence_pool([str(fortune_dir)], min_words=2, max_words=14)
    assert pool == sorted(set(pool))
    assert "HELLO WORLD" in pool and pool.count("HELLO WORLD") == 1
    assert all(set(s) <= ALPHABET for s in pool)
    assert not any("FAMOUS" in s for s in pool)          # attributions dropped
    assert not any("DIALOGUE" in s for s in pool)


def test_splits_are_disjoint_and_voices_held_out(fortune_dir):
    cfg = C.CorpusConfig(out_dir="unused", fortune_dirs=(str(fortune_dir),), n_train=30, n_dev=5,
                         n_test_seen=5, n_test_unseen=5, min_words=2)
    s = C.split_sentences(cfg)
    train = set(s["train"])
    for held in ("dev", "test_seen", "test_unseen"):
        assert len(s[held]) == 5 and not train & set(s[held])
    assert not set(C.training_voices()) & set(C.unseen_voices())
    jobs = C.plan(cfg)
    assert jobs == C.plan(cfg)                           # deterministic
    seen_voices = {j.voice for j in jobs if j.split != "test_unseen"}
    assert seen_voices <= set(C.training_voices())
    assert {j.voice for j in jobs if j.split == "test_unseen"} <= set(C.unseen_voices())


def test_augment_is_deterministic_and_bounded():
    x = (0.3 * np.sin(np.arange(SAMPLE_RATE) / 10)).astype(np.float32)
    a, rec_a = augment(x, np.random.default_rng([1, 2]))
    b, rec_b = augment(x, np.random.default_rng([1, 2]))
    assert np.array_equal(a, b) and rec_a == rec_b
    assert a.dtype == np.float32 and np.abs(a).max() <= 1.0
    outs = [augment(x, np.random.default_rng(i))[1] for i in range(40)]
    assert any("snr_db" in r for r in outs) and any("reverb" in r for r in outs)
    assert any("speed" in r for r in outs) and any("band_limit" in r for r in outs)


@pytest.mark.skipif(C.find_espeak() is None, reason="espeak-ng not installed")
def test_tiny_corpus_build_is_idempotent(fortune_dir, tmp_path):
    cfg = C.CorpusConfig(out_dir=str(tmp_path / "corpus"), fortune_dirs=(str(fortune_dir),), n_train=4,
                         n_dev=1, n_test_seen=1, n_test_unseen=2, min_words=2, workers=2)
    stats = C.build_corpus(cfg, progress=False)
    assert stats["train"]["utterances"] == 4
    rows = [json.loads(line) for line in open(tmp_path / "corpus" / "train.jsonl")]
    assert {"audio", "text", "duration"} <= set(rows[0])
    import soundfile as sf
    f = tmp_path / "corpus" / rows[0]["audio"]
    info = sf.info(str(f))
    assert info.samplerate == SAMPLE_RATE and info.channels == 1 and info.format == "FLAC"
    assert abs(info.duration - rows[0]["duration"]) < 1e-2
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "corpus").glob("*/*.flac")}
    before = (tmp_path / "corpus" / "train.jsonl").read_text()
    C.build_corpus(cfg, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "corpus").glob("*/*.flac")} == mtimes
    assert (tmp_path / "corpus" / "train.jsonl").read_text() == before
    assert not list((tmp_path / "corpus").glob("*/*.tmp.flac"))
