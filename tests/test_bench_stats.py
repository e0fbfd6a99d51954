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
