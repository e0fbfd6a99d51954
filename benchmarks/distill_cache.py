"""Does a teacher cache speed distillation up? Training steps with the teacher run live and read from disk.

    python -m benchmarks.distill_cache --train build/corpus/train.jsonl --batches 8 --rounds 2 \
        --json benchmarks/results/<machine>/distilled/teacher-cache-speed.json

One process, one student (`--preset squeeze` by default, 24 s batches, bf16, one thread), the first
--batches batches of the training set: a first pass fills an empty cache (a miss: the teacher runs
and its outputs are written), then --rounds rounds in which every batch is stepped twice, once
with the live teacher and once from the cache, the order alternating, so that the load of a shared
machine falls on both alike. A step is what the trainer times: reading and collating the audio,
the loss (teacher forward or cache read, student forward), backward, the optimizer step.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from w2v_triton.paths import CORPUS_DIR


def run(teacher: str, train: str, preset: str, batch_s: float, batches: int, rounds: int) -> dict[str, Any]:
    import torch

    from builders.distill import configs_from_args
    from w2v_triton.eval.machine import machine_name, utc_now
    from w2v_triton.train.data import BucketBatchSampler
    from w2v_triton.train.distillation.task import DistillTask
    from w2v_triton.train.distillation.trainer import kd_collate, setup_distillation

    times: dict[str, list[float]] = {"live (no cache)": [], "miss (computed + written)": [],
                                     "hit (read from the cache)": []}
    audio: list[float] = []
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        cfg, _, _ = configs_from_args(["--teacher", teacher, "--train", train, "--out", str(Path(tmp) / "s"),
                                       "--preset", preset, "--threads", "1", "--teacher-cache", str(Path(tmp) / "c")])
        st = setup_distillation(cfg)
        live = DistillTask(st.teacher, cfg.loss)
        order = list(BucketBatchSampler(st.train_ds.durations, batch_s, seed=0))[:batches]
        params = [p for p in st.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-4)
        st.model.train()

        def step(task: DistillTask, indices: list[int]) -> float:
            start = time.perf_counter()
            batch = kd_collate([st.train_ds[i] for i in indices])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss, _ = task.compute_loss(st.model, batch)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves backward unannotated
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            audio.append(batch["audio_seconds"])
            return time.perf_counter() - start

        for indices in order:
            times["miss (computed + written)"].append(step(st.task, indices))
        for r in range(rounds):
            for i, indices in enumerate(order):
                pair = [("live (no cache)", live), ("hit (read from the cache)", st.task)]
                for kind, task in pair if (r + i) % 2 == 0 else pair[::-1]:
                    times[kind].append(step(task, indices))
            load.append(os.getloadavg()[0])
            print(f"round {r + 1}/{rounds}: load {load[-1]:.1f}", flush=True)
        cache = st.task.cache
        assert cache is not None   # --teacher-cache was given
        hits, misses = cache.hits, cache.misses
    seconds = statistics.mean(audio)
    summary = {k: {"steps": len(v), "median_step_s": round(statistics.median(v), 3),
                   "median_audio_s_per_s": round(seconds / statistics.median(v), 2)} for k, v in times.items()}
    live_rate = summary["live (no cache)"]["median_audio_s_per_s"]
    rows = [[k, v["steps"], f"{v['median_step_s']:.2f}", f"{v['median_audio_s_per_s']:.2f}",
             f"{v['median_audio_s_per_s'] / live_rate:.2f}x"] for k, v in summary.items()]
    return {"machine": machine_name(), "date": utc_now(),
            "command": "python -m benchmarks.distill_cache " + " ".join(sys.argv[1:]),
            "teacher": teacher, "train": train, "preset": preset, "batch_seconds": batch_s,
            "batches": batches, "rounds": rounds, "cache_hits": hits, "cache_misses": misses,
            "mean_audio_s_per_batch": round(seconds, 2), "load_average_1min": [round(x, 2) for x in load],
            "note": "shared 2-core VM; live and cached steps interleaved in one process",
            "speedup_hit_vs_live": round(summary["hit (read from the cache)"]["median_audio_s_per_s"] / live_rate, 3),
            "summary": summary,
            "columns": ["step", "steps", "median s per step", "median audio-s/s", "vs live"], "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="models/reference")
    ap.add_argument("--train", default=str(CORPUS_DIR / "train.jsonl"))
    ap.add_argument("--preset", default="squeeze")
    ap.add_argument("--max-batch-seconds", type=float, default=24.0)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args(argv)
    result = run(a.teacher, a.train, a.preset, a.max_batch_seconds, a.batches, a.rounds)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
