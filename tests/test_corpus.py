"""Synthetic corpus: text normalisation, splits, voices of each synthesiser, augmentation, the
espeak-only corpus unchanged by the mix, and (with the synthesisers installed) tiny end-to-end
builds that are deterministic, idempotent and bounded in time."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from w2v_triton.serving.spec import BASE_960H_VOCAB, SAMPLE_RATE
from w2v_triton.train import corpus as C
from w2v_triton.train.augment import augment
from w2v_triton.train.synthesizers import SYNTHESIZERS, SynthesisError, get
from w2v_triton.train.text import normalize_text, number_to_words, sentence_pool

ESPEAK_ONLY = {"espeak": 1.0}
MIX = {"espeak": 3.0, "flite": 1.0, "festival": 1.0}

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


def _cfg(fortune_dir: Path, synths: dict[str, float], **kw) -> C.CorpusConfig:
    args = dict(out_dir="corpus", fortune_dirs=(str(fortune_dir),), n_train=30, n_dev=5, n_test_seen=5,
                n_test_unseen=5, min_words=2, synths=synths)
    return C.CorpusConfig(**{**args, **kw})


def test_splits_are_disjoint_and_voices_held_out(fortune_dir):
    cfg = _cfg(fortune_dir, MIX)
    s = C.split_sentences(cfg)
    train = set(s["train"])
    for held in ("dev", "test_seen", "test_unseen"):
        assert len(s[held]) == 5 and not train & set(s[held])
    every_training_voice = {(n, v) for n, syn in SYNTHESIZERS.items() for v in syn.training_voices()}
    every_unseen_voice = {(n, v) for n, syn in SYNTHESIZERS.items() for v in syn.unseen_voices()}
    assert not every_training_voice & every_unseen_voice
    # the same speaker never sits on both sides under two engines' names (flite kal = festival kal_diphone)
    speakers = lambda voices: {v.split("_")[0].removesuffix("16") for _, v in voices}
    assert not speakers(every_training_voice - {("espeak", v) for v in get("espeak").training_voices()}) & \
        speakers(every_unseen_voice - {("espeak", v) for v in get("espeak").unseen_voices()})
    jobs = C.plan(cfg)
    assert jobs == C.plan(cfg)                           # deterministic
    for job in jobs:
        synth = get(job.synth)
        voices = synth.unseen_voices() if job.split == "test_unseen" else synth.training_voices()
        assert job.voice in voices
        assert (job.pitch is None) == (not synth.uses_pitch)
    # every synthesiser speaks every held-out sentence; training shared out 3:1:1
    for split in ("dev", "test_seen", "test_unseen"):
        by_kind = {n: [j.text for j in jobs if j.split == split and j.synth == n] for n in MIX}
        assert all(texts == s[split] for texts in by_kind.values())
    assert Counter(j.synth for j in jobs if j.split == "train") == {"espeak": 18, "flite": 6, "festival": 6}
    assert len({j.path for j in jobs}) == len(jobs)


# The espeak-only plan of the corpus before other synthesisers existed (computed with that code on
# this fixture): its voices, rates, pitches, texts and file names must never change, because the
# committed figures were measured on the corpus it builds.
ESPEAK_PLAN_SHA256 = "22caf5cfb0d47733eb3849ae1dbedadbf0a6c57713f9ee8372e154146ebf99d4"


def _fingerprint(jobs: list[C.Job]) -> str:
    rows = [[j.split, j.index, j.text, j.voice, j.rate, j.pitch, j.path] for j in jobs]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def test_espeak_only_plan_is_the_one_of_the_committed_figures(fortune_dir):
    jobs = C.plan(_cfg(fortune_dir, ESPEAK_ONLY))
    assert {j.synth for j in jobs} == {"espeak"}
    assert _fingerprint(jobs) == ESPEAK_PLAN_SHA256


def test_a_mix_keeps_the_espeak_corpus(fortune_dir):
    """Adding kinds changes no espeak utterance: held-out splits identical, training a prefix."""
    alone = C.plan(_cfg(fortune_dir, ESPEAK_ONLY))
    mixed = [j for j in C.plan(_cfg(fortune_dir, MIX)) if j.synth == "espeak"]
    assert [j for j in mixed if j.split != "train"] == [j for j in alone if j.split != "train"]
    train = [j for j in mixed if j.split == "train"]
    assert train == [j for j in alone if j.split == "train"][:len(train)]
    # and a kind's utterances do not depend on which other kinds are in the mix
    flite = lambda synths: [asdict(j) for j in C.plan(_cfg(fortune_dir, synths, n_train=40)) if j.synth == "flite"]
    assert flite({"espeak": 1.0, "flite": 1.0}) == flite({"flite": 1.0, "festival": 0.5, "espeak": 0.5})


def test_espeak_utterances_keep_their_augmentation(fortune_dir, tmp_path, monkeypatch):
    """render() seeds the augmentation of espeak utterances as before ([seed, split, index])."""
    tone = (0.3 * np.sin(np.arange(SAMPLE_RATE) / 7)).astype(np.float32)
    monkeypatch.setattr(type(get("espeak")), "_synthesize", lambda self, *a: tone)
    job = [j for j in C.plan(_cfg(fortune_dir, ESPEAK_ONLY, out_dir=str(tmp_path))) if j.split == "test_unseen"][1]
    (tmp_path / "test_unseen").mkdir()
    C.render(job)
    expected, _ = augment(tone, np.random.default_rng([job.seed, C.SPLITS.index("test_unseen"), 1]), job.strength)
    written, _ = sf.read(job.path, dtype="float32")
    assert np.abs(written - expected).max() < 2 / 32768       # FLAC 16-bit of the same samples


def test_parse_synths_and_train_counts():
    assert C.parse_synths("espeak:3, flite") == {"espeak": 3.0, "flite": 1.0}
    for bad, message in (("espeak,mbrola", "unknown synthesiser 'mbrola'"), ("flite:0", "must be > 0"),
                         ("flite:x", "not a number"), (" , ", "no synthesiser")):
        with pytest.raises(ValueError, match=message):
            C.parse_synths(bad)
    for n in (0, 1, 7, 14000):
        counts = C.CorpusConfig(n_train=n, synths=MIX).train_counts()
        assert sum(counts.values()) == n
        assert all(abs(counts[k] - n * w / 5) < 1 for k, w in MIX.items()), counts
    assert C.CorpusConfig(n_train=14000, synths=ESPEAK_ONLY).train_counts() == {"espeak": 14000}


def test_a_missing_synthesiser_names_its_packages(monkeypatch, fortune_dir, tmp_path):
    monkeypatch.setenv("FLITE", str(tmp_path / "no-flite"))
    assert get("flite").missing().startswith("flite: flite not found (apt-get install flite")
    with pytest.raises(FileNotFoundError, match="flite not found.*make corpus-deps"):
        C.build_corpus(_cfg(fortune_dir, {"flite": 1.0}, out_dir=str(tmp_path / "c")), progress=False)
    assert not (tmp_path / "c").exists()                 # refused before any work


def test_corpus_deps_install_every_synthesisers_packages(repo_root):
    """make corpus-deps (and system-deps, which CI runs) installs what each synthesiser names."""
    make = (repo_root / "mk" / "train.mk").read_text()
    deps = make.split("CORPUS_DEPS =", 1)[1].split("\ncorpus-deps:", 1)[0].replace("\\\n", " ")
    installed = {p for spec in deps.split() for p in spec.split("=", 1)[1].split(",")}
    assert {p for s in SYNTHESIZERS.values() for p in s.packages} | {"fortunes", "fortunes-min"} <= installed


@pytest.mark.parametrize("name", list(SYNTHESIZERS))
def test_each_synthesiser_speaks_every_voice_at_16k(name):
    synth = get(name)
    if synth.missing():
        pytest.skip(synth.missing())
    durations = {}
    for voice in synth.training_voices()[:3] + synth.unseen_voices()[:1]:
        for rate in (130, 210):
            audio = synth.synthesize("the quick brown fox", voice, rate, 50)
            assert audio.dtype == np.float32 and audio.ndim == 1 and np.abs(audio).max() > 0.01, voice
            durations[voice, rate] = len(audio) / SAMPLE_RATE
            assert 0.5 < durations[voice, rate] < 4.0, (voice, rate, durations[voice, rate])
        assert durations[voice, 130] > 1.2 * durations[voice, 210], voice   # the rate is obeyed
    with pytest.raises(ValueError, match="has no voice"):
        synth.synthesize("hello", "no-such-voice", 170, 50)


def test_festival_failure_is_one_clear_error(monkeypatch, tmp_path):
    """A festival that dies answers with the error, not a hang."""
    fake = tmp_path / "festival"
    fake.write_text("#!/bin/sh\necho 'SIOD ERROR: broken' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("FESTIVAL", str(fake))
    monkeypatch.setattr(type(get("festival")), "_running", {})
    with pytest.raises(SynthesisError, match="festival gave no audio.*broken"):
        get("festival").synthesize("hello", "kal_diphone", 170, 50)


def test_augment_is_deterministic_and_bounded():
    x = (0.3 * np.sin(np.arange(SAMPLE_RATE) / 10)).astype(np.float32)
    a, rec_a = augment(x, np.random.default_rng([1, 2]))
    b, rec_b = augment(x, np.random.default_rng([1, 2]))
    assert np.array_equal(a, b) and rec_a == rec_b
    assert a.dtype == np.float32 and np.abs(a).max() <= 1.0
    outs = [augment(x, np.random.default_rng(i))[1] for i in range(40)]
    assert any("snr_db" in r for r in outs) and any("reverb" in r for r in outs)
    assert any("speed" in r for r in outs) and any("band_limit" in r for r in outs)


@pytest.mark.skipif(bool(get("espeak").missing()), reason="espeak-ng not installed")
def test_tiny_corpus_build_is_idempotent(fortune_dir, tmp_path):
    cfg = C.CorpusConfig(out_dir=str(tmp_path / "corpus"), fortune_dirs=(str(fortune_dir),), n_train=4,
                         n_dev=1, n_test_seen=1, n_test_unseen=2, min_words=2, workers=2, synths=ESPEAK_ONLY)
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


def test_tiny_mixed_corpus_records_each_synthesiser(fortune_dir, tmp_path):
    missing = [get(n).missing() for n in MIX if get(n).missing()]
    if missing:
        pytest.skip("; ".join(missing))
    cfg = _cfg(fortune_dir, MIX, out_dir=str(tmp_path / "corpus"), n_train=5, n_dev=1, n_test_seen=2,
               n_test_unseen=2, workers=2)
    stats = C.build_corpus(cfg, progress=False)
    assert {k: v["utterances"] for k, v in stats["test_unseen"]["by_synth"].items()} == {n: 2 for n in MIX}
    rows = [json.loads(line) for line in open(tmp_path / "corpus" / "test_unseen.jsonl")]
    assert {(r["synth"], r["voice"]) for r in rows} <= {(n, v) for n in MIX for v in get(n).unseen_voices()}
    for r in rows:
        info = sf.info(str(tmp_path / "corpus" / r["audio"]))
        assert info.samplerate == SAMPLE_RATE and abs(info.duration - r["duration"]) < 1e-2
    meta = json.loads((tmp_path / "corpus" / "corpus.json").read_text())
    assert meta["synths"] == MIX and set(meta["synthesizers"]) == set(MIX)
    assert meta["synthesizers"]["flite"]["unseen_voices"] == ["rms"]


@pytest.mark.skipif(bool(get("espeak").missing()), reason="espeak-ng not installed")
def test_time_budget_cuts_training_only(fortune_dir, tmp_path):
    """With no time at all the held-out splits are still complete; the training manifest lists
    exactly the files on disk, and a rerun with time fills in the rest."""
    cfg = _cfg(fortune_dir, ESPEAK_ONLY, out_dir=str(tmp_path / "corpus"), n_train=40, n_dev=1, n_test_seen=1,
               n_test_unseen=1, workers=1)
    stats = C.build_corpus(cfg, progress=False, max_seconds=0)
    assert [stats[s]["utterances"] for s in ("dev", "test_seen", "test_unseen")] == [1, 1, 1]
    assert stats["train"]["utterances"] < 40
    listed = {json.loads(line)["audio"] for line in open(tmp_path / "corpus" / "train.jsonl")}
    assert listed == {f"train/{p.name}" for p in (tmp_path / "corpus" / "train").glob("*.flac")}
    assert C.build_corpus(cfg, progress=False)["train"]["utterances"] == 40
