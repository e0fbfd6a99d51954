"""Generic trainer: AdamW, warm-up + cosine/linear decay, clipping, accumulation, bf16 autocast,
checkpoints with exact resume, dev WER, JSONL log, PNG curves; DDP-aware (torchrun; gloo on CPU).

The loss is a hook, so other trainers (e.g. distillation) reuse everything else:

    def compute_loss(model, batch) -> tuple[torch.Tensor, dict[str, float]]

`model` is what the trainer optimises (wrapped in DistributedDataParallel under torchrun, so call
it, don't reach into it); `batch` is the collated dict (input_values, attention_mask, labels,
texts, audio_seconds). The default is the model's own CTC loss.

Exact resume: a checkpoint holds model, optimizer, scheduler, step, epoch and batch position,
the Python/NumPy/torch RNG states (SpecAugment draws from NumPy, dropout from torch), the
cumulative training time and the schedule's segments. Resuming from step N gives the same step
N+1 as an uninterrupted run. Checkpoints are written every `save_every` steps, every
`save_every_min` minutes of wall time, and when SIGTERM/SIGINT arrives (then the trainer stops
after the current step and raises `TrainingInterrupted`).

Runs that grow: the lr schedule is a list of segments (`Segment`). A resumed run given a larger
budget (`max_steps`, `max_time_s`) either moves the end of its segment, when it is still at the
peak under both budgets (a constant-then-decay schedule, `decay_fraction` < 1: the continued run is
the run that had the larger budget from the start), or starts a new segment where it stands: a
re-warm from the lr it reached back to the peak over `warmup_steps`, the peak, and a decay at the
new end (a warm restart). Nothing already trained is stretched or replayed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from w2v_triton.train.data import BucketBatchSampler, collate

log = logging.getLogger(__name__)

LossFn = Callable[[torch.nn.Module, dict[str, Any]], "tuple[torch.Tensor, dict[str, Any]]"]


@dataclass
class TrainConfig:
    out_dir: str = "build/train"
    max_steps: int = 1000
    lr: float = 1e-3
    warmup_steps: int = 500
    schedule: str = "cosine"            # cosine | linear | constant (after warm-up)
    min_lr_ratio: float = 0.05          # final lr = lr * min_lr_ratio
    decay_fraction: float = 1.0         # the decay takes this last part of a segment; before it, the peak lr
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    grad_clip: float = 1.0
    grad_accum: int = 1
    bf16: bool = False                  # torch.autocast bfloat16 (CPU or CUDA)
    max_batch_seconds: float = 60.0     # padded audio seconds per micro-batch (per rank)
    max_batch_size: int | None = None
    eval_every: int = 250
    eval_max_batch_seconds: float = 120.0
    save_every: int = 250
    save_every_min: float | None = None  # also checkpoint every this many minutes of wall time
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    num_workers: int = 0
    max_time_s: float | None = None     # stop (and save) once this much training time is spent
    anneal_by_time: bool = False        # decay reaches its end at max_time_s even if max_steps is not reached
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in the log header, not interpreted


def default_ctc_loss(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
    out = model(input_values=batch["input_values"], attention_mask=batch["attention_mask"],
                labels=batch["labels"])
    return out.loss, {"ctc_loss": float(out.loss.detach())}


@dataclass(frozen=True)
class Segment:
    """One stretch of the lr schedule, from (`start_step`, `start_time_s`) to the budget it was given
    (`max_steps`, `max_time_s`): warm-up from `start_ratio` x the peak (0 for a fresh run; where the
    previous segment ended for a continuation) over `warmup_steps`, the peak, then the decay over
    the last `decay_fraction` of the stretch."""
    start_step: int = 0
    start_time_s: float = 0.0
    max_steps: int = 1000
    max_time_s: float | None = None
    decay_fraction: float = 1.0
    start_ratio: float = 0.0


def first_segment(cfg: TrainConfig) -> Segment:
    return Segment(0, 0.0, cfg.max_steps, cfg.max_time_s, cfg.decay_fraction, 0.0)


def segment_progress(cfg: TrainConfig, seg: Segment, step: int, elapsed_s: float | None) -> float:
    """How far (0..1) `step` is through the segment's post-warm-up span; with `anneal_by_time` the
    larger of the step and the time fractions, so a run boxed by wall-clock time (a lent GPU, a
    CI budget) still ends annealed whatever its speed turns out to be."""
    span = max(1, seg.max_steps - seg.start_step - cfg.warmup_steps)
    t = (step - seg.start_step - cfg.warmup_steps) / span
    if cfg.anneal_by_time and seg.max_time_s and elapsed_s is not None:
        time_span = seg.max_time_s - seg.start_time_s
        t = max(t, (elapsed_s - seg.start_time_s) / time_span if time_span > 0 else 1.0)
    return min(1.0, t)


def decaying(cfg: TrainConfig, seg: Segment, step: int, elapsed_s: float | None) -> bool:
    """True once `step` is in the segment's decay (constant schedules never decay)."""
    if cfg.schedule == "constant" or step - seg.start_step < cfg.warmup_steps:
        return False
    return segment_progress(cfg, seg, step, elapsed_s) > 1.0 - seg.decay_fraction


def lr_lambda(cfg: TrainConfig, elapsed_s: Callable[[], float] | None = None,
              segments: list[Segment] | None = None) -> Callable[[int], float]:
    """Multiplier of the peak lr at `step`, from the last of `segments` (a list the trainer appends to
    when a resumed run gets a new budget; default: one segment from cfg)."""
    segs = segments if segments is not None else [first_segment(cfg)]
    if cfg.schedule not in ("cosine", "linear", "constant"):
        raise ValueError(f"unknown schedule {cfg.schedule!r}")

    def f(step: int) -> float:
        seg = segs[-1]
        k = step - seg.start_step
        if cfg.warmup_steps and k < cfg.warmup_steps:
            return seg.start_ratio + (1 - seg.start_ratio) * (k + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        p = segment_progress(cfg, seg, step, elapsed_s() if elapsed_s is not None else None)
        t = min(1.0, max(0.0, (p - (1.0 - seg.decay_fraction)) / seg.decay_fraction))
        shape = 1.0 - t if cfg.schedule == "linear" else 0.5 * (1 + math.cos(math.pi * t))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape
    return f


class TrainingInterrupted(Exception):
    """SIGTERM/SIGINT arrived: the trainer finished its step, saved `checkpoint` and stopped.
    Continue with resume=True (the CLIs: --resume or rerun)."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint {checkpoint}")


class StopSignals:
    """While active (main thread only), SIGTERM and SIGINT set `signum` instead of killing the
    process, so the loop can save and stop after its step; a second one interrupts at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping without a checkpoint")
        self.signum = signum
        log.warning("%s: saving a checkpoint after this step, then stopping", signal.Signals(signum).name)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handler) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}


def checkpoint_step(path: Path) -> int:
    """The step of a checkpoint folder (`step-0001234`, `decay-start-0001234`)."""
    return int(path.name.rsplit("-", 1)[1])


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    # torch.load(map_location=cuda) moves these ByteTensors to the GPU; the setters want them on the host.
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def distributed_setup() -> tuple[int, int, torch.device]:
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return rank, world, device


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


class Trainer:
    def __init__(self, model: torch.nn.Module, train_dataset: Any, config: TrainConfig,
                 dev_dataset: Any = None, vocab: Mapping[str, int] | None = None,
                 compute_loss: LossFn | None = None, collate_fn: Callable[..., Any] = collate,
                 eval_fn: Callable[[torch.nn.Module], dict[str, Any]] | None = None,
                 parameters: Any = None) -> None:
        self.cfg = config
        self.rank, self.world, self.device = distributed_setup()
        self.is_main = self.rank == 0
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        random.seed(config.seed)
        self.model = model.to(self.device)
        self.wrapped: torch.nn.Module = self.model
        if self.world > 1:
            self.wrapped = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=False)
        self.train_dataset, self.dev_dataset, self.vocab = train_dataset, dev_dataset, vocab
        self.compute_loss = compute_loss or default_ctc_loss
        self.collate_fn = collate_fn
        self.eval_fn = eval_fn
        params = list(parameters) if parameters is not None else [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr, betas=config.betas, eps=config.eps)
        if not 0.0 < config.decay_fraction <= 1.0:
            raise ValueError(f"decay_fraction must be in (0, 1], got {config.decay_fraction}")
        if config.save_every_min is not None and config.save_every_min <= 0:
            raise ValueError(f"save_every_min must be > 0 minutes, got {config.save_every_min}")
        self.train_time = 0.0   # read by the schedule when it anneals by time
        self.segments = [first_segment(config)]   # the schedule's segments; resume restores and extends them
        self.lr_at = lr_lambda(config, elapsed_s=lambda: self.train_time, segments=self.segments)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_at)
        self.sampler = BucketBatchSampler(train_dataset.durations, config.max_batch_seconds, shuffle=True,
                                          seed=config.seed, rank=self.rank, world_size=self.world,
                                          max_batch_size=config.max_batch_size)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.audio_seconds = 0.0
        self._saved_at = (-1, time.monotonic())   # (step, wall clock) of the last checkpoint
        self.out = Path(config.out_dir)
        self.ckpt_dir = self.out / "checkpoints"
        self.log_path = self.out / "train_log.jsonl"
        if self.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)

    # --- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step, "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch, "train_time": self.train_time,
                "audio_seconds": self.audio_seconds, "rng": _rng_state(),
                "segments": [asdict(seg) for seg in self.segments],
                "config": asdict(self.cfg), "world_size": self.world}

    def save_checkpoint(self, prefix: str = "step") -> Path | None:
        """Atomically: the state goes to `<name>.tmp/`, fsynced, which is then renamed, and only then
        does the `latest` marker (itself replaced atomically) point at it; a kill at any moment
        leaves the previous checkpoint intact. `step-*` ones rotate (keep_checkpoints); others
        (`decay-start-*`) stay."""
        path = self.ckpt_dir / f"{prefix}-{self.step:07d}"
        state = self.state_dict()   # every rank: RNG of rank 0 is what gets saved
        if self.is_main:
            if not (self._saved_at[0] == self.step and (path / "trainer_state.pt").is_file()):
                tmp = path.with_name(path.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                with open(tmp / "trainer_state.pt", "wb") as f:
                    torch.save(state, f)
                    f.flush()
                    os.fsync(f.fileno())
                shutil.rmtree(path, ignore_errors=True)   # an incomplete leftover of a killed save
                os.replace(tmp, path)
            marker = self.ckpt_dir / "latest.tmp"
            marker.write_text(path.name + "\n")
            os.replace(marker, self.ckpt_dir / "latest")
            ckpts = sorted(p for p in self.ckpt_dir.glob("step-*") if not p.name.endswith(".tmp"))
            for old in ckpts[: max(0, len(ckpts) - self.cfg.keep_checkpoints)]:
                shutil.rmtree(old, ignore_errors=True)
        if dist.is_initialized():
            dist.barrier()
        self._saved_at = (self.step, time.monotonic())
        return path

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint `latest` names; if that is missing or incomplete, the complete one with the
        highest step (logged), so a damaged marker never restarts a long run from scratch."""
        marker = self.ckpt_dir / "latest"
        name = marker.read_text().strip() if marker.is_file() else ""
        if name and (self.ckpt_dir / name / "trainer_state.pt").is_file():
            return self.ckpt_dir / name
        done = [p for p in self.ckpt_dir.glob("*-*") if p.is_dir() and not p.name.endswith(".tmp")
                and (p / "trainer_state.pt").is_file()]
        if not done:
            return None
        best = max(done, key=lambda p: (checkpoint_step(p), p.name.startswith("step-")))
        log.warning("%s does not name a complete checkpoint: resuming from %s", marker, best)
        return best

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        state = torch.load(Path(path) / "trainer_state.pt", map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.batch_in_epoch = state["batch_in_epoch"]
        self.train_time, self.audio_seconds = state["train_time"], state["audio_seconds"]
        saved = state.get("config", {})   # checkpoints from before segments: one, with the budget then
        segments = [Segment(**seg) for seg in state.get("segments", [])] or [
            Segment(0, 0.0, saved.get("max_steps", self.cfg.max_steps), saved.get("max_time_s"),
                    saved.get("decay_fraction", 1.0), 0.0)]
        self.segments[:] = segments   # in place: the schedule's function holds this list
        _set_rng_state(state["rng"])
        self._saved_at = (self.step, time.monotonic())

    def continue_schedule(self) -> str | None:
        """Fit the schedule to this run's budget after a resume (see the module docstring). Returns
        what happened: None (same budget), "moved" (still at the peak: the segment's end moved) or
        "new segment" (re-warm from the current lr, then peak and decay to the new end)."""
        cfg, seg = self.cfg, self.segments[-1]
        wanted = dataclasses.replace(seg, max_steps=cfg.max_steps, max_time_s=cfg.max_time_s,
                                     decay_fraction=cfg.decay_fraction)
        if wanted == seg:
            return None
        now = (self.step, self.train_time)
        if not decaying(cfg, seg, *now) and not decaying(cfg, wanted, *now):
            self.segments[-1], event = wanted, "moved"
        else:
            ratio = self.lr_at(self.step)
            self.segments.append(Segment(self.step, self.train_time, cfg.max_steps, cfg.max_time_s,
                                         cfg.decay_fraction, ratio))
            event = "new segment"
        # the restored optimizer holds the lr of the old schedule for the next step: recompute it
        lrs = [base * self.lr_at(self.step) for base in self.scheduler.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        self.scheduler._last_lr = lrs   # what get_last_lr() (the logged lr) reads
        self.log({"event": "schedule", "change": event, "step": self.step,
                  "train_time_s": round(self.train_time, 1), "segment": asdict(self.segments[-1])})
        log.info("schedule: %s at step %d: %s", event, self.step, self.segments[-1])
        return event

    def _agree(self, *values: float) -> list[float]:
        """Under DDP every rank must see the same step time (the schedule reads it) and save/stop at
        the same step: the maximum of each value over the ranks."""
        if self.world == 1:
            return list(values)
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [float(v) for v in t.tolist()]

    # --- logging ------------------------------------------------------------------------------
    def log(self, row: dict[str, Any]) -> None:
        if self.is_main:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(row) + "\n")

    def run_eval(self) -> dict[str, Any] | None:
        if self.eval_fn is not None:
            res = self.eval_fn(self.model)
        elif self.dev_dataset is not None and self.vocab is not None:
            from w2v_triton.train.evaluate import evaluate
            res = evaluate(self.model, self.dev_dataset, self.vocab,
                           max_batch_seconds=self.cfg.eval_max_batch_seconds, bf16=self.cfg.bf16)
            res.pop("all", None)
        else:
            return None
        row = {"step": self.step, "epoch": self.epoch, "train_time_s": round(self.train_time, 1)}
        row.update({f"dev_{k}": v for k, v in res.items()})
        self.log(row)
        return res

    # --- the loop -----------------------------------------------------------------------------
    def _loader(self) -> DataLoader[Any]:
        self.sampler.set_epoch(self.epoch, self.batch_in_epoch * self.cfg.grad_accum)
        # An own generator: creating the iterator must not draw from the global torch RNG.
        gen = torch.Generator().manual_seed(self.cfg.seed * 100003 + self.epoch)
        return DataLoader(self.train_dataset, batch_sampler=self.sampler, collate_fn=self.collate_fn,
                          num_workers=self.cfg.num_workers, persistent_workers=False, generator=gen,
                          pin_memory=self.device.type == "cuda")

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if not self.cfg.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def train(self, resume: str | os.PathLike[str] | bool | None = None,
              max_steps: int | None = None) -> dict[str, Any]:
        """Train until `config.max_steps` (or `max_steps`, to stop early) or `max_time_s`.
        `resume=True` continues from the latest checkpoint in out_dir, a path from that one; a
        changed budget continues the schedule (`continue_schedule`). SIGTERM/SIGINT: checkpoint
        after the current step, then `TrainingInterrupted`."""
        cfg = self.cfg
        latest = self.latest_checkpoint() if resume else None
        if resume is True:
            resume = latest
            if resume is None and self.is_main:
                log.info("no checkpoint in %s: starting from step 0", self.ckpt_dir)
        if resume:
            self.load_checkpoint(resume)
            if latest is not None and checkpoint_step(latest) > self.step:
                raise ValueError(f"{self.ckpt_dir} already holds step {checkpoint_step(latest)}: continuing step "
                                 f"{self.step} here would mix two runs; copy the work dir and continue the copy")
            self.continue_schedule()
        elif self.is_main and self.step == 0:
            self.log({"event": "start", "config": asdict(cfg), "world_size": self.world,
                      "parameters": sum(p.numel() for p in self.model.parameters())})
        stop_at = min(cfg.max_steps, max_steps) if max_steps else cfg.max_steps
        self.wrapped.train()
        bar = None
        if cfg.progress and self.is_main:
            from tqdm import tqdm
            bar = tqdm(total=stop_at, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        last: dict[str, Any] = {}
        stopped_by_time = cfg.max_time_s is not None and self.train_time >= cfg.max_time_s
        try:
            with StopSignals() as stop:
                while self.step < stop_at and not stopped_by_time:
                    self.sampler.set_epoch(self.epoch)
                    steps_in_epoch = len(self.sampler) // cfg.grad_accum
                    if steps_in_epoch == 0:
                        raise ValueError("the training set yields fewer batches than grad_accum")
                    if self.batch_in_epoch >= steps_in_epoch:
                        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                        continue
                    it = iter(self._loader())
                    epoch_done = False
                    while not epoch_done and self.step < stop_at:
                        before_decay = not decaying(cfg, self.segments[-1], self.step, self.train_time)
                        last, epoch_done = self._step(it, steps_in_epoch)
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix(loss=f"{last['loss']:.3f}", lr=f"{last['lr']:.2e}",
                                            a_s=f"{last['audio_s_per_s']:.0f}/s")
                        if cfg.eval_every and self.step % cfg.eval_every == 0 and self.is_main:
                            res = self.run_eval()
                            if bar is not None and res:
                                bar.write(f"step {self.step}: dev WER {res.get('wer', float('nan')):.3f} "
                                          f"CER {res.get('cer', float('nan')):.3f} | "
                                          + " / ".join(f"{e['hyp']}" for e in res.get("examples", [])[:2]))
                        stopped_by_time = cfg.max_time_s is not None and self.train_time >= cfg.max_time_s
                        self._checkpoints_after_step(stop, before_decay, stopped_by_time)
                        if stopped_by_time:
                            break
        finally:
            if bar is not None:
                bar.close()
        self.save_checkpoint()   # no-op where this step was just saved
        self.log({"event": "end", "step": self.step, "train_time_s": round(self.train_time, 1),
                  "audio_hours_seen": round(self.audio_seconds / 3600, 4), "stopped_by_time": stopped_by_time})
        return last

    def _step(self, it: Any, steps_in_epoch: int) -> tuple[dict[str, Any], bool]:
        """One optimizer step (grad_accum micro-batches); returns its log row and whether the epoch ended."""
        cfg = self.cfg
        t0 = time.perf_counter()
        loss_sum, audio = 0.0, 0.0
        logs_sum: dict[str, float] = {}
        for micro in range(cfg.grad_accum):
            batch = _to_device(next(it), self.device)
            sync = micro == cfg.grad_accum - 1 or self.world == 1
            ctx = contextlib.nullcontext() if sync else cast(Any, self.wrapped).no_sync()   # DDP only
            with ctx:
                with self._autocast():
                    loss, logs = self.compute_loss(self.wrapped, batch)
                (loss / cfg.grad_accum).backward()  # type: ignore[no-untyped-call]  # torch leaves backward unannotated
            loss_sum += float(loss.detach()) / cfg.grad_accum
            for k, v in logs.items():
                logs_sum[k] = logs_sum.get(k, 0.0) + float(v) / cfg.grad_accum
            audio += batch["audio_seconds"]
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.batch_in_epoch += 1
        epoch_done = False
        if self.batch_in_epoch >= steps_in_epoch:   # roll over before any checkpoint
            self.epoch, self.batch_in_epoch, epoch_done = self.epoch + 1, 0, True
        dt, = self._agree(time.perf_counter() - t0)
        self.train_time += dt
        self.audio_seconds += audio * self.world
        row = {"step": self.step, "loss": loss_sum, "lr": lr, "grad_norm": float(grad_norm),
               "epoch": self.epoch, "audio_s": round(audio, 2), "step_s": round(dt, 3),
               "train_time_s": round(self.train_time, 1),
               "audio_hours_seen": round(self.audio_seconds / 3600, 4),
               "audio_s_per_s": round(audio * self.world / dt, 2), **logs_sum}
        if self.step % cfg.log_every == 0 or self.step == 1:
            self.log(row)
        return row, epoch_done

    def _checkpoints_after_step(self, stop: StopSignals, before_decay: bool, budget_spent: bool) -> None:
        """Every save_every steps, every save_every_min minutes, at the start of a decay (kept: the
        branch point to continue the peak of a constant-then-decay run), and on a stop signal
        (then TrainingInterrupted). All ranks decide together."""
        cfg = self.cfg
        by_steps = bool(cfg.save_every) and self.step % cfg.save_every == 0
        by_time = cfg.save_every_min is not None and time.monotonic() - self._saved_at[1] >= 60 * cfg.save_every_min
        decay_start = (before_decay and cfg.decay_fraction < 1 and not budget_spent
                       and decaying(cfg, self.segments[-1], self.step, self.train_time))
        save, stopping = (bool(v) for v in self._agree(by_steps or by_time, stop.signum is not None))
        if decay_start:
            self.save_checkpoint("decay-start")
        if save or stopping:
            path = self.save_checkpoint()
            if stopping:
                signum = stop.signum or signal.SIGTERM
                self.log({"event": "interrupted", "signal": signal.Signals(signum).name, "step": self.step,
                          "train_time_s": round(self.train_time, 1), "checkpoint": str(path)})
                raise TrainingInterrupted(signum, self.step, path)


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def plot_log(log_path: str | os.PathLike[str], png_path: str | os.PathLike[str], title: str = "training") -> None:
    """Loss (train) and WER/CER (dev) against step, one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(log_path)
    # A resumed run may repeat steps: keep the last row written for each step.
    train = {r["step"]: r for r in rows if "loss" in r and "step" in r}
    dev = {r["step"]: r for r in rows if "dev_wer" in r}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    steps = sorted(train)
    ax1.plot(steps, [train[s]["loss"] for s in steps], lw=0.8)
    ax1.set_xlabel("step"); ax1.set_ylabel("train CTC loss"); ax1.set_yscale("log"); ax1.grid(alpha=0.3)
    if dev:
        ds = sorted(dev)
        ax2.plot(ds, [dev[s]["dev_wer"] for s in ds], "o-", label="dev WER")
        ax2.plot(ds, [dev[s]["dev_cer"] for s in ds], "s-", label="dev CER")
        ax2.set_ylim(0, max(1.05, max(dev[s]["dev_wer"] for s in ds) + 0.05))
        ax2.legend()
    ax2.set_xlabel("step"); ax2.set_ylabel("greedy error rate"); ax2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
