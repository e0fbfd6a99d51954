"""benchmarks: per-concurrency levels and Triton statistics deltas (no server)."""
from __future__ import annotations

import pytest

from benchmarks import triton_stats
from benchmarks.run import levels


def test_levels_expand_perf_analyzer_ranges():
    assert levels("1:16:5") == ["1:1", "6:6", "11:11", "16:16"]
    assert levels("1:3") == ["1:1", "2:2", "3:3"]
    assert levels("4") == ["4:4"]


def test_per_model_times_since_an_earlier_snapshot(monkeypatch):
    before = {"decoder": {"requests": 10, "executions": 5, "batches": 5, "queue_ns": 10_000_000,
                          "compute_input_ns": 0, "compute_infer_ns": 50_000_000, "compute_output_ns": 0},
              "idle": {"requests": 3, "executions": 3, "batches": 3, "queue_ns": 0, "compute_input_ns": 0,
                       "compute_infer_ns": 0, "compute_output_ns": 0}}
    after = {"decoder": {"requests": 14, "executions": 7, "batches": 7, "queue_ns": 18_000_000,
                         "compute_input_ns": 0, "compute_infer_ns": 90_000_000, "compute_output_ns": 0},
             "idle": dict(before["idle"])}
    monkeypatch.setattr(triton_stats, "model_counters", lambda url: after)
    since = triton_stats.per_model_times("x", since=before)
    assert set(since) == {"decoder"}   # no new requests: left out
    assert since["decoder"]["requests"] == 4 and since["decoder"]["executions"] == 2
    assert since["decoder"]["queue_ms"] == pytest.approx(2.0) and since["decoder"]["compute_infer_ms"] == pytest.approx(10.0)
    whole = triton_stats.per_model_times("x")
    assert whole["decoder"]["queue_ms"] == pytest.approx(18 / 14, abs=1e-3)


def test_gpu_sampler_summarises_nvidia_smi_and_records_nothing_without_it(tmp_path):
    from benchmarks.gpu_util import GpuSampler

    fake = tmp_path / "nvidia-smi"
    fake.write_text('#!/bin/sh\necho "37, 1000"\necho "45, 1200"\necho "[N/A], 1"\nexec sleep 30\n')
    fake.chmod(0o755)
    with GpuSampler(binary=str(fake)) as gpu:
        import time
        time.sleep(1.0)
    assert gpu.summary() == {"gpu_util_mean": 41.0, "gpu_util_max": 45.0, "gpu_mem_used_mib_max": 1200.0,
                             "gpu_samples": 2}
    with GpuSampler(binary=str(tmp_path / "absent")) as gpu:
        pass
    assert gpu.summary() is None


def test_gpu_summary_names_the_busy_model_and_the_goal(tmp_path):
    """busy = compute ms per request x executions over the level's duration (requests / infer/s)."""
    import json

    from benchmarks import gpu_summary

    stats = {"asr": {"requests": 1000, "executions": 1000, "compute_infer_ms": 100.0},
             "preprocessor": {"requests": 1000, "executions": 1000, "compute_infer_ms": 2.0},
             "acoustic_model": {"requests": 1000, "executions": 125, "compute_infer_ms": 40.0},
             "decoder": {"requests": 1000, "executions": 250, "compute_infer_ms": 120.0}}
    row = {"concurrency": 64, "infer_per_sec": 100.0, "audio_seconds_per_second": 1000.0, "p50_ms": 600.0,
           "gpu_util_mean": 31.0, "per_model": stats}
    slow = dict(row, concurrency=8, audio_seconds_per_second=500.0)
    report = {"served": {"teacher": {"sweeps": {"clips_10s": {"rows": [slow, row]}}}}}
    (tmp_path / "gpu-served-teacher.json").write_text(json.dumps(report))
    [cells] = gpu_summary.summary_rows(tmp_path)
    # 10 s of requests; acoustic 40 ms x 125 = 5 s -> 0.50 busy at batch 8; decoder 120 ms x 250 = 30 s -> 3.00
    assert cells == ["teacher", "clips_10s", "1,000 (64)", "600.0", "31", "8.0", "0.20 / 0.50 / 3.00", "5% of 20,000"]
    assert gpu_summary.main([str(tmp_path / "empty")]) == 1
