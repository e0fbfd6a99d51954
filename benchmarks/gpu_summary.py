"""A GPU serving run at a glance (tools/gpu/gpu_serving_bench.sh; docs/gpu.md).

Per variant and sweep: the best rate and its concurrency, latency, GPU utilisation, and where the
time went at that level. "busy" is a model's compute time over the level's duration (Triton's
compute ms per request x requests / mean batch, over requests / infer-per-s): the number of its
instances kept busy, so a model whose busy figure reaches its instance count is the bottleneck,
and a low GPU utilisation with a busy CPU-side model says the GPU is starved. Goals: issue 33.
Printed at the end of the GPU run; `docs_tables` renders the same table ("gpu-served").

    python -m benchmarks.gpu_summary benchmarks/results/gpu-nvidia-h100-80gb-hbm3
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from w2v_triton.eval.tables import markdown_table
from w2v_triton.serving import spec

# audio-seconds per second on an H100/H200-class GPU (issue 33): the ensemble, the acoustic model alone
GOALS = {"clips_": 20_000.0, spec.ACOUSTIC_MODEL: 40_000.0}
MODELS = (spec.PREPROCESSOR_MODEL, spec.ACOUSTIC_MODEL, spec.DECODER_MODEL)
COLUMNS = ["variant", "sweep", "best audio-s/s (conc)", "p50 ms", "GPU util %", "acoustic batch",
           "busy: preprocessor / acoustic / decoder", "goal"]


def busy(row: dict[str, Any], model: str, measured: str) -> float | None:
    """Instances of `model` kept busy during the level whose rate `row` reports for `measured`."""
    stats, target = row.get("per_model", {}).get(model), row.get("per_model", {}).get(measured)
    if not stats or not target or not row["infer_per_sec"] or not stats["executions"]:
        return None
    duration_s = target["requests"] / row["infer_per_sec"]
    # every request of a batch reports the batch's time: per request x requests / mean batch
    busy_ms = stats["compute_infer_ms"] * stats["executions"]
    return float(busy_ms / 1000 / duration_s)


def summary_rows(folder: Path) -> list[list[str]]:
    """One row per variant x sweep of every gpu-served-*.json report in `folder`."""
    rows = []
    for path in sorted(Path(folder).glob("gpu-served-*.json")):
        report = json.loads(path.read_text())
        for name, result in report["served"].items():
            for sweep, data in result["sweeps"].items():
                if not data["rows"]:
                    continue
                best = max(data["rows"], key=lambda r: r["audio_seconds_per_second"])
                measured = spec.ACOUSTIC_MODEL if sweep.startswith(spec.ACOUSTIC_MODEL) else spec.ENSEMBLE_MODEL
                acoustic = best.get("per_model", {}).get(spec.ACOUSTIC_MODEL)
                batch = acoustic["requests"] / acoustic["executions"] if acoustic and acoustic["executions"] else None
                loads = [busy(best, m, measured) for m in MODELS]
                goal = next((g for prefix, g in GOALS.items() if sweep.startswith(prefix)), None)
                rate = best["audio_seconds_per_second"]
                rows.append([name, sweep, f"{rate:,.0f} ({best['concurrency']})", f"{best['p50_ms']:.1f}",
                             f"{best['gpu_util_mean']:.0f}" if "gpu_util_mean" in best else "–",
                             f"{batch:.1f}" if batch else "–",
                             " / ".join("–" if b is None else f"{b:.2f}" for b in loads),
                             "–" if goal is None else f"{rate / goal:.0%} of {goal:,.0f}"])
    return rows


def markdown(rows: list[list[str]]) -> str:
    return markdown_table(COLUMNS, rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m benchmarks.gpu_summary <results folder>", file=sys.stderr)
        return 2
    rows = summary_rows(Path(args[0]))
    if not rows:
        print(f"gpu_summary: no gpu-served-*.json results in {args[0]}", file=sys.stderr)
        return 1
    print(markdown(rows), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
