"""Trainer: a tiny model learns on tone 'speech'; resume from a checkpoint is exact; batching."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from w2v_triton.serving.spec import BASE_960H_VOCAB
from w2v_triton.train.data import BucketBatchSampler, ManifestDataset, collate, encode_text
from w2v_triton.eval.metrics import error_rates
from w2v_triton.train.evaluate import greedy_decode
from w2v_triton.train.model import TINY_CONFIG, build_ctc_model
from w2v_triton.train.synthetic import tone_utterances
from w2v_triton.train.trainer import TrainConfig, Trainer, lr_lambda, plot_log, read_log

VOCAB = dict(BASE_960H_VOCAB)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _trainer(tmp_path, rows, seed=0, **cfg_kw):
    cfg = dict(out_dir=str(tmp_path), max_steps=8, lr=3e-3, warmup_steps=2, max_batch_seconds=3.0,
               eval_every=0, save_every=0, log_every=1, progress=False, seed=0)
    cfg.update(cfg_kw)
    # SpecAugment on, dropout on: resume must restore the NumPy and torch RNG streams too.
    model = build_ctc_model(dict(TINY_CONFIG, mask_time_prob=0.2, mask_time_length=2,
                                 hidden_dropout=0.1), VOCAB, seed=seed)
    ds = ManifestDataset(rows, VOCAB)
    return Trainer(model, ds, TrainConfig(**cfg), dev_dataset=ManifestDataset(rows[:2], VOCAB), vocab=VOCAB)


def _losses(log_path):
    return {r["step"]: r["loss"] for r in read_log(log_path) if "loss" in r}


def test_tiny_model_loss_decreases(tmp_path):
    rows = tone_utterances(4, seed=1)
    tr = _trainer(tmp_path, rows, max_steps=25, max_batch_seconds=30.0, lr=5e-3, warmup_steps=3,
                  eval_every=25)
    tr.train()
    losses = _losses(tr.log_path)
    first = np.mean([losses[s] for s in (1, 2, 3)])
    last = np.mean([losses[s] for s in (23, 24, 25)])
    assert last < 0.7 * first, (first, last)
    assert any("dev_wer" in r for r in read_log(tr.log_path))
    plot_log(tr.log_path, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_resume_gives_identical_next_steps(tmp_path):
    rows = tone_utterances(8, seed=2)
    full = _trainer(tmp_path / "full", rows, max_steps=7)
    full.train()
    ref = _losses(full.log_path)
    part = _trainer(tmp_path / "part", rows, max_steps=7, save_every=4)
    part.train(max_steps=4)
    assert (part.ckpt_dir / "latest").read_text().strip() == "step-0000004"
    # A fresh process would build a new (differently initialised) model: the checkpoint wins.
    resumed = _trainer(tmp_path / "part", rows, seed=123, max_steps=7, save_every=4)
    resumed.train(resume=True)
    got = _losses(resumed.log_path)
    assert resumed.step == 7
    # steps 5..7 span an epoch boundary (3 batches per epoch) and SpecAugment/dropout draws
    for s in (5, 6, 7):
        assert got[s] == ref[s], (s, got[s], ref[s])
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_grad_accumulation_and_custom_loss_hook(tmp_path):
    rows = tone_utterances(6, seed=3)
    calls = []

    def loss_fn(model, batch):
        out = model(input_values=batch["input_values"], attention_mask=batch["attention_mask"],
                    labels=batch["labels"])
        calls.append(batch["input_values"].shape[0])
        return out.loss * 1.0, {"custom": 1.0}

    tr = _trainer(tmp_path, rows, max_steps=2, grad_accum=2, max_batch_seconds=1.5)
    tr.compute_loss = loss_fn
    tr.train()
    assert len(calls) == 4
    assert all(r.get("custom") == 1.0 for r in read_log(tr.log_path) if "loss" in r)


def test_bucket_sampler_budget_coverage_and_ranks():
    rng = np.random.default_rng(0)
    durs = rng.uniform(1, 10, size=200)
    s = BucketBatchSampler(durs, 40.0, seed=5)
    s.set_epoch(3)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert all(max(durs[b]) * len(b) <= 40.0 or len(b) == 1 for b in batches)
    s.set_epoch(3, start=5)
    assert list(s) == batches[5:]
    s.set_epoch(4)
    assert list(s) != batches
    r0 = BucketBatchSampler(durs, 40.0, seed=5, rank=0, world_size=2)
    r1 = BucketBatchSampler(durs, 40.0, seed=5, rank=1, world_size=2)
    b0, b1 = list(r0), list(r1)
    assert len(b0) == len(b1)
    assert not {i for b in b0 for i in b} & {i for b in b1 for i in b}


def test_collate_masks_and_labels():
    rows = tone_utterances(3, seed=4)
    items = [ManifestDataset(rows, VOCAB)[i] for i in range(3)]
    batch = collate(items)
    lengths = [len(it["input_values"]) for it in items]
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["input_values"].shape == (3, max(lengths))
    assert (batch["labels"][0, : len(items[0]["labels"])] >= 0).all()
    # normalised like Wav2Vec2FeatureExtractor on the valid part
    v = batch["input_values"][0, : lengths[0]]
    assert abs(float(v.mean())) < 1e-4 and abs(float(v.std(unbiased=False)) - 1) < 1e-3


def test_text_encoding_and_greedy_decode():
    ids = encode_text("don't stop", VOCAB)
    inv = {i: t for t, i in VOCAB.items()}
    assert "".join(inv[i] for i in ids) == "DON'T|STOP"
    frames = [0, VOCAB["H"], VOCAB["H"], 0, VOCAB["I"], VOCAB["|"], VOCAB["|"], 0, VOCAB["O"], 0, VOCAB["O"]]
    logits = np.full((len(frames), len(VOCAB)), -5.0, np.float32)
    logits[np.arange(len(frames)), frames] = 5.0
    assert greedy_decode(logits, VOCAB) == "HI OO"
    assert error_rates(["A B"], ["A C"])[0] == 0.5
    assert error_rates(["A B", " "], ["A C", "X"]) == error_rates(["A B"], ["A C"])  # empty refs left out


def test_schedule_warmup_then_decay():
    f = lr_lambda(TrainConfig(max_steps=100, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1))
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.55, abs=0.01) and f(100) == pytest.approx(0.1)


def test_schedule_annealed_by_time_ends_at_the_time_budget():
    cfg = TrainConfig(max_steps=10_000, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1,
                      max_time_s=100.0, anneal_by_time=True)
    elapsed = [0.0]
    f = lr_lambda(cfg, elapsed_s=lambda: elapsed[0])
    assert f(5) == pytest.approx(0.6)               # warm-up is by steps
    assert f(20) == pytest.approx(1.0, abs=1e-3)    # few steps, no time spent: near the peak
    elapsed[0] = 50.0
    assert f(20) == pytest.approx(0.55, abs=0.01)   # half the time budget: half-way down the cosine
    elapsed[0] = 100.0
    assert f(20) == pytest.approx(0.1)              # budget spent: the floor, whatever the step
    # without anneal_by_time the same elapsed time changes nothing
    plain = lr_lambda(TrainConfig(max_steps=10_000, warmup_steps=10, min_lr_ratio=0.1, max_time_s=100.0),
                      elapsed_s=lambda: 100.0)
    assert plain(20) == pytest.approx(1.0, abs=1e-3)


def test_rng_state_restores_from_tensors_loaded_onto_another_device():
    """torch.load(map_location=cuda) puts the saved RNG ByteTensors on the GPU; restoring must
    bring them back to the host (seen on an H200: 'RNG state must be a torch.ByteTensor')."""
    from w2v_triton.train.trainer import _rng_state, _set_rng_state

    state = _rng_state()
    expected = torch.rand(3)

    class OnDevice:   # stands in for a CUDA tensor: only .cpu() gives back what the setter accepts
        def __init__(self, tensor):
            self.tensor = tensor

        def cpu(self):
            return self.tensor

    _set_rng_state(dict(state, torch=OnDevice(state["torch"])))
    assert torch.equal(torch.rand(3), expected)


def test_constant_then_decay_schedule_and_its_continuations():
    """decay_fraction 0.25: the peak until 3/4 of the segment, then the cosine. A resumed run that
    is still at the peak moves its segment's end (the same function as a run planned longer from
    the start); one already decaying gets a new segment: a re-warm from where it stood, the peak,
    a decay at the new end. Nothing already run changes."""
    from w2v_triton.train.trainer import Segment

    cfg = TrainConfig(max_steps=90, warmup_steps=10, min_lr_ratio=0.1, decay_fraction=0.25)
    f = lr_lambda(cfg)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(50) == 1.0 and f(70) == 1.0                         # the peak for the first 3/4 of 80 steps
    assert f(80) == pytest.approx(0.1 + 0.9 * 0.5, abs=1e-9)    # half-way through the last 20 steps
    assert f(90) == pytest.approx(0.1)
    # the same segment given 170 steps: at the peak until step 130, the function of a 170-step plan
    moved = [Segment(0, 0.0, 170, None, 0.25, 0.0)]
    planned = lr_lambda(dataclasses_replace(cfg, max_steps=170))
    g = lr_lambda(cfg, segments=moved)
    assert [g(s) for s in range(171)] == [planned(s) for s in range(171)]
    # a new segment at step 90 (floor 0.1): re-warm 0.1 -> 1 over 10 steps, peak, decay to step 170
    segs = [Segment(0, 0.0, 90, None, 0.25, 0.0), Segment(90, 0.0, 170, None, 0.25, 0.1)]
    h = lr_lambda(cfg, segments=segs)
    assert h(90) == pytest.approx(0.1 + 0.9 * 0.1) and h(99) == pytest.approx(1.0)
    assert h(140) == 1.0 and h(170) == pytest.approx(0.1) and h(155) < 1.0
    with pytest.raises(ValueError, match="decay_fraction"):
        Trainer(build_ctc_model(TINY_CONFIG, VOCAB), ManifestDataset(tone_utterances(2, seed=0), VOCAB),
                TrainConfig(decay_fraction=0.0, progress=False))


def dataclasses_replace(cfg, **kw):
    import dataclasses
    return dataclasses.replace(cfg, **kw)


def _log_rows(log_path):
    return {r["step"]: r for r in read_log(log_path) if "loss" in r}


def test_extending_a_run_at_its_peak_equals_the_longer_run(tmp_path):
    """A constant-then-decay run stopped while still at its peak (a signal, a crash, a session's
    end) and continued with a larger budget is step for step the run that had the larger budget
    from the start: its segment's end moves, nothing is stretched or re-warmed."""
    rows = tone_utterances(8, seed=2)
    kw = dict(warmup_steps=2, decay_fraction=0.5, save_every=0)
    full = _trainer(tmp_path / "full", rows, max_steps=16, **kw)
    full.train()
    part = _trainer(tmp_path / "part", rows, max_steps=10, **kw)   # its peak: steps 2..6
    part.train(max_steps=4)
    longer = _trainer(tmp_path / "part", rows, max_steps=16, **kw)
    longer.train(resume=True)
    assert len(longer.segments) == 1 and longer.segments[0].max_steps == 16   # the end moved
    ref, got = _log_rows(full.log_path), _log_rows(longer.log_path)
    for s in range(5, 17):
        assert (got[s]["loss"], got[s]["lr"]) == (ref[s]["loss"], ref[s]["lr"]), s
    # the kept branch point: the checkpoint where the decay began, out of the rotation
    assert sorted(p.name for p in full.ckpt_dir.glob("decay-start-*")) == ["decay-start-0000010"]
    changes = [r for r in read_log(longer.log_path) if r.get("event") == "schedule"]
    assert [c["change"] for c in changes] == ["moved"]


def test_extending_a_finished_run_starts_a_new_segment(tmp_path):
    """A run that annealed to its budget and is given more re-warms from the floor and decays
    again at the new end; the steps it already ran are not touched."""
    rows = tone_utterances(8, seed=2)
    tr = _trainer(tmp_path, rows, max_steps=6, warmup_steps=2, min_lr_ratio=0.1, save_every=0)
    tr.train()
    first = _log_rows(tr.log_path)
    more = _trainer(tmp_path, rows, max_steps=12, warmup_steps=2, min_lr_ratio=0.1, save_every=0)
    more.train(resume=True)
    assert [s.start_step for s in more.segments] == [0, 6]
    assert more.segments[1].start_ratio == pytest.approx(0.1)
    lr = {s: r["lr"] for s, r in _log_rows(more.log_path).items()}
    peak = 3e-3
    assert lr[7] == pytest.approx(peak * (0.1 + 0.9 * 0.5))   # step 7 runs at re-warm step 1 of 2
    assert lr[8] == pytest.approx(peak)
    assert lr[9] == pytest.approx(peak) and lr[12] < lr[10] < peak
    assert all(_log_rows(more.log_path)[s]["loss"] == first[s]["loss"] for s in range(1, 7))


def test_sigterm_mid_run_saves_and_the_continued_run_matches(tmp_path):
    """SIGTERM during step 4 (a real signal, delivered to this process): the trainer finishes the
    step, checkpoints it and raises TrainingInterrupted; resumed, steps 5..7 are those of a run that
    was never stopped (SpecAugment and dropout on, an epoch boundary inside)."""
    import os
    import signal

    from w2v_triton.train.trainer import TrainingInterrupted, default_ctc_loss

    rows = tone_utterances(8, seed=2)
    full = _trainer(tmp_path / "full", rows, max_steps=7, save_every=0)
    full.train()
    ref = _log_rows(full.log_path)
    killed = _trainer(tmp_path / "killed", rows, max_steps=7, save_every=0)
    calls = []

    def loss_then_signal(model, batch):
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return default_ctc_loss(model, batch)

    killed.compute_loss = loss_then_signal
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted) as info:
        killed.train()
    assert info.value.step == 4 and info.value.checkpoint.name == "step-0000004"
    assert (killed.ckpt_dir / "latest").read_text().strip() == "step-0000004"
    assert signal.getsignal(signal.SIGTERM) is handler   # the process' own handler is back
    assert any(r.get("event") == "interrupted" for r in read_log(killed.log_path))
    resumed = _trainer(tmp_path / "killed", rows, seed=123, max_steps=7, save_every=0)
    resumed.train(resume=True)
    got = _log_rows(resumed.log_path)
    for s in (5, 6, 7):
        assert got[s]["loss"] == ref[s]["loss"], (s, got[s]["loss"], ref[s]["loss"])
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_checkpoints_by_wall_time_and_a_damaged_latest_marker(tmp_path):
    """save_every_min saves once that much wall time has passed (here 6 ms: after every step, with
    step-based saving off); a latest marker that names nothing complete falls back to the newest
    complete checkpoint instead of restarting the run."""
    rows = tone_utterances(4, seed=1)
    tr = _trainer(tmp_path, rows, max_steps=4, save_every=0, save_every_min=1e-4, keep_checkpoints=10)
    tr.train()
    assert sorted(p.name for p in tr.ckpt_dir.glob("step-*")) == [f"step-000000{i}" for i in range(1, 5)]
    (tr.ckpt_dir / "latest").write_text("")
    (tr.ckpt_dir / "step-0000005.tmp").mkdir()   # a save killed half-way
    assert tr.latest_checkpoint().name == "step-0000004"
    with pytest.raises(ValueError, match="save_every_min"):
        _trainer(tmp_path / "bad", rows, save_every_min=0.0)


def test_an_older_checkpoint_is_not_continued_among_newer_ones(tmp_path):
    """Resuming step 2 in a work dir that already holds step 4 would interleave two runs'
    checkpoints (and the rotation would delete the new ones): refused, one clear line."""
    rows = tone_utterances(4, seed=1)
    tr = _trainer(tmp_path, rows, max_steps=4, save_every=2, keep_checkpoints=5)
    tr.train()
    again = _trainer(tmp_path, rows, max_steps=6, save_every=2)
    with pytest.raises(ValueError, match="already holds step 4: continuing step 2 here would mix two runs"):
        again.train(resume=tr.ckpt_dir / "step-0000002")
