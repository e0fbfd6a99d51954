"""Run perf_analyzer (from the tritonclient==2.51.0 wheel) against a server and parse its CSV."""
from __future__ import annotations

import csv
import subprocess
import tempfile
from pathlib import Path

from w2v_triton.serving import spec
from w2v_triton.serving.tritonserver import TritonInstall, server_environment


class PerfAnalyzerError(RuntimeError):
    pass


def perf_analyzer_binary() -> Path:
    """The tritonclient wheel's binary beside this interpreter, or the kit's (W2V_TRITON_HOME)."""
    binary = TritonInstall.find().perf_analyzer
    if not binary.is_file():
        raise PerfAnalyzerError(f"{binary} missing: the tritonclient==2.51.0 wheel ships it (make venv), "
                                "a GPU kit in bin/ (make gpu-kit)")
    return binary


def run_perf_analyzer(url: str, input_data: Path, concurrency: str, protocol: str = "grpc",
                      model: str = spec.ENSEMBLE_MODEL, shape: str | None = None,
                      request_count: int = 16, stability_percent: int = 25,
                      timeout: float = 1800) -> list[dict]:
    """One perf_analyzer sweep; rows: concurrency, infer/s and latency percentiles in ms.

    Windows count requests, not milliseconds: a 10 s clip on a 12-layer model can take longer
    than any fixed time window, and every window still holds `request_count` results."""
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "perf.csv"
        command = [str(perf_analyzer_binary()), "-m", model, "-u", url, "-i", protocol,
                   "--input-data", str(input_data), "--concurrency-range", concurrency,
                   "--measurement-mode", "count_windows", "--measurement-request-count", str(request_count),
                   "--stability-percentage", str(stability_percent),
                   "--max-trials", "6", "-f", str(csv_path)]
        if shape:
            command += ["--shape", shape]
        result = subprocess.run(command, env=server_environment(), capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0 or not csv_path.is_file():
            raise PerfAnalyzerError(f"perf_analyzer failed ({result.returncode}):\n"
                                    f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        with open(csv_path) as handle:
            rows = list(csv.DictReader(handle))
    rows.sort(key=lambda row: int(row["Concurrency"]))
    return [{
        "concurrency": int(row["Concurrency"]),
        "infer_per_sec": float(row["Inferences/Second"]),
        **{f"p{p}_ms": float(row[f"p{p} latency"]) / 1000 for p in (50, 90, 95, 99)},
        "avg_ms": sum(float(row[k]) for k in ("Client Send", "Network+Server Send/Recv", "Server Queue",
                                                "Server Compute Input", "Server Compute Infer",
                                                "Server Compute Output", "Client Recv")) / 1000,
        "command": " ".join(command[1:]),
    } for row in rows]
