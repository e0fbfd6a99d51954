"""Where the time goes inside the server: per-model averages from Triton's statistics API."""
from __future__ import annotations


def per_model_times(url: str) -> dict[str, dict[str, float]]:
    """Average queue / compute times per request (ms) and batch count, for every model."""
    import tritonclient.http as http

    with http.InferenceServerClient(url) as client:
        stats = client.get_inference_statistics()
    result = {}
    for model in stats.get("model_stats", []):
        inference = model.get("inference_stats", {})
        count = int(inference.get("success", {}).get("count", 0))
        if not count:
            continue
        avg = {key: int(inference.get(key, {}).get("ns", 0)) / count / 1e6
               for key in ("queue", "compute_input", "compute_infer", "compute_output")}
        batches = sum(int(b.get("compute_infer", {}).get("count", 0)) for b in model.get("batch_stats", []))
        result[model["name"]] = {**{f"{k}_ms": round(v, 3) for k, v in avg.items()},
                                 "requests": count, "executions": int(model.get("execution_count", 0)),
                                 "batches": batches}
    return result
