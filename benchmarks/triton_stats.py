"""Where the time goes inside the server: per-model averages from Triton's statistics API.

Read as plain JSON over HTTP (/v2/models/stats): no HTTP client package, so it runs where only
tritonclient's gRPC part travels (a lent GPU machine, docs/gpu.md)."""
from __future__ import annotations

import json
import urllib.request

KEYS = ("queue", "compute_input", "compute_infer", "compute_output")


def model_counters(url: str) -> dict[str, dict[str, int]]:
    """Triton's cumulative counters per model: requests, executions, batches and ns per stage."""
    with urllib.request.urlopen(f"http://{url}/v2/models/stats", timeout=30) as reply:
        stats = json.load(reply)
    counters = {}
    for model in stats.get("model_stats", []):
        inference = model.get("inference_stats", {})
        counters[model["name"]] = {
            "requests": int(inference.get("success", {}).get("count", 0)),
            "executions": int(model.get("execution_count", 0)),
            "batches": sum(int(b.get("compute_infer", {}).get("count", 0)) for b in model.get("batch_stats", [])),
            **{f"{k}_ns": int(inference.get(k, {}).get("ns", 0)) for k in KEYS}}
    return counters


def per_model_times(url: str, since: dict[str, dict[str, int]] | None = None) -> dict[str, dict[str, float]]:
    """Average queue / compute times per request (ms) and batch count, for every model; with
    `since` (an earlier `model_counters`), only over the requests served after it."""
    result = {}
    for name, now in model_counters(url).items():
        before = (since or {}).get(name, {})
        delta = {k: v - before.get(k, 0) for k, v in now.items()}
        count = delta["requests"]
        if not count:
            continue
        result[name] = {**{f"{k}_ms": round(delta[f"{k}_ns"] / count / 1e6, 3) for k in KEYS},
                        "requests": count, "executions": delta["executions"], "batches": delta["batches"]}
    return result
