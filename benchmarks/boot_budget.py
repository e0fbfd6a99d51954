"""`make gcp-boot-budget`: the parts of a VM's boot-to-ready time that can be measured off the cloud.

    python -m benchmarks.boot_budget --repository build/gcp-boot/repo [--runs 3] [--model random-base]

(--model: build the repository from this checkpoint first when it has no rendered configs.)

Measures, on this machine: the model repository's size, the time to copy it from one local
folder to another (a stand-in for the VM's copy from gs://, which is network-bound there; the source files are
evicted from the page cache first, so it reads the disk), and
tritonserver's start-to-ready time on it (the same server release as the NGC 24.10 image).
Writes JSON + Markdown into benchmarks/results/<machine>/gcp-boot-budget.{json,md}. What it
cannot measure here (VM boot, GPU driver install, image pull) is left to the report's reader.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from w2v_triton.eval.machine import machine_name, utc_now
from w2v_triton.eval.tables import markdown_table
from w2v_triton.paths import REPO_ROOT, WORK_DIR
from w2v_triton.serving import spec
from w2v_triton.serving.tritonserver import Ports, TritonServer


def repository_size(repository: Path) -> tuple[int, int]:
    """(bytes, files) of everything a deploy uploads (the rsync skips __pycache__ and templates)."""
    files = [p for p in repository.rglob("*") if p.is_file() and "__pycache__" not in p.parts
             and not p.name.endswith(".template")]
    return sum(p.stat().st_size for p in files), len(files)


def evict(repository: Path) -> None:
    """Drop the repository's files from the page cache (POSIX_FADV_DONTNEED, these files only),
    so a copy or a model load reads the disk as on a fresh VM."""
    os.sync()
    for path in repository.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def copy_seconds(repository: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        evict(repository)
        with tempfile.TemporaryDirectory(dir=WORK_DIR) as tmp:
            start = time.perf_counter()
            shutil.copytree(repository, Path(tmp) / "copy", ignore=shutil.ignore_patterns("__pycache__"))
            os.sync()
            times.append(time.perf_counter() - start)
    return times


def queue_under_load(server: TritonServer, requests: int = 12, concurrency: int = 6,
                     seconds: float = 2.0) -> dict[str, float]:
    """Mean queue time per request (ms) of each model while `concurrency` clients send
    `requests` random clips: what w2v_triton.serving.queue_metric turns into the autoscaling signal."""
    import numpy as np
    import tritonclient.http as httpclient

    from w2v_triton.serving import queue_metric

    url = f"http://127.0.0.1:{server.ports.metrics}/metrics"
    before = queue_metric.parse_counters(urllib.request.urlopen(url, timeout=10).read().decode())
    audio = np.random.default_rng(0).standard_normal((1, int(seconds * spec.SAMPLE_RATE))).astype(np.float32)

    def one(_):
        client = httpclient.InferenceServerClient(server.http_url)
        try:
            inp = httpclient.InferInput(spec.AUDIO, list(audio.shape), "FP32")
            inp.set_data_from_numpy(audio)
            client.infer(spec.ENSEMBLE_MODEL, [inp])
        finally:
            client.close()

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(requests)))
    after = queue_metric.parse_counters(urllib.request.urlopen(url, timeout=10).read().decode())
    per_model = {}
    for (name, model), done in after.items():
        if name == queue_metric.SUCCESS and done > before.get((name, model), 0):
            only = {k: v for k, v in after.items() if k[1] == model}
            per_model[model] = round(queue_metric.queue_time_ms(
                {k: v for k, v in before.items() if k[1] == model}, only), 3)
    per_model["sum (the metric)"] = round(queue_metric.queue_time_ms(before, after), 3)
    return {"requests": requests, "concurrency": concurrency, "clip_seconds": seconds,
            "mean_queue_ms_per_request": per_model}


def ready_seconds(repository: Path, runs: int, log_dir: Path) -> tuple[list[float], dict]:
    times, queue = [], {}
    for i in range(runs):
        evict(repository)
        server = TritonServer(repository, Ports.free(), log_path=log_dir / f"boot-budget-{i}.log")
        start = time.perf_counter()
        server.start(timeout=600)
        times.append(time.perf_counter() - start)
        try:
            if i == runs - 1:
                queue = queue_under_load(server)
        finally:
            server.stop()
    return times, queue


def _build_options(build_info: Path) -> dict | None:
    """What the repository was built from, without this machine's paths (file names only)."""
    if not build_info.is_file():
        return None
    info = json.loads(build_info.read_text())
    return {k: (Path(v).name if isinstance(v, str) and v.startswith("/") else v) for k, v in info.items()}


def ensure_built(repository: Path, model: str) -> bool:
    """Build `repository` from `model` unless it holds rendered configs already; True when built."""
    if (repository / spec.ENSEMBLE_MODEL / "config.pbtxt").is_file():
        return False
    from w2v_triton.build.builder import BuildRequest, build_repository

    build_repository(BuildRequest(model=model, output=repository))
    return True


def summary(values: list[float]) -> dict:
    return {"runs": [round(v, 2) for v in values], "median": round(statistics.median(values), 2),
            "max": round(max(values), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/<machine>")
    parser.add_argument("--model", help="build the repository from this checkpoint when it is not built yet")
    args = parser.parse_args(argv)

    if args.model:
        ensure_built(args.repository, args.model)
    size, files = repository_size(args.repository)
    copy = copy_seconds(args.repository, args.runs)
    ready, queue = ready_seconds(args.repository, args.runs, WORK_DIR)
    out = args.out or REPO_ROOT / "benchmarks" / "results" / machine_name()
    out.mkdir(parents=True, exist_ok=True)
    build_info = args.repository / "build_info.json"
    report = {
        "title": "GCP boot-to-ready: the parts measurable off the cloud",
        "machine": machine_name(), "cpu_count": os.cpu_count(),
        "date": utc_now(),
        "argv": ["--repository", str(args.repository), "--runs", str(args.runs)],
        "repository_build": _build_options(build_info),
        "repository_bytes": size, "repository_files": files,
        "local_copy_seconds": summary(copy), "start_to_ready_seconds": summary(ready),
        "queue_under_load": queue,
    }
    (out / "gcp-boot-budget.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (out / "gcp-boot-budget.md").write_text(text)
    print(text, end="")
    return 0


def markdown(report: dict) -> str:
    copy, ready, queue = report["local_copy_seconds"], report["start_to_ready_seconds"], report["queue_under_load"]
    rows = [["model repository size", f"{report['repository_bytes'] / 2**20:.1f} MiB in {report['repository_files']} files", ""],
            ["copy local folder -> local folder (source evicted from the page cache)",
             f"median {copy['median']} s, max {copy['max']} s", copy["runs"]],
            ["tritonserver start -> /v2/health/ready (repository evicted from the page cache)",
             f"median {ready['median']} s, max {ready['max']} s", ready["runs"]]]
    return "\n".join([
        f"# {report['title']}", "",
        f"Machine: `{report['machine']}` ({report['cpu_count']} cores, shared with other jobs). Date: {report['date']}.", "",
        f"Command: `python -m benchmarks.boot_budget {' '.join(report['argv'])}`", "",
        markdown_table(["step", "measured", "runs"], rows), "",
        f"Queue time per request under load ({queue['requests']} random {queue['clip_seconds']:g} s clips at "
        f"concurrency {queue['concurrency']}, from Triton's counters as w2v_triton.serving.queue_metric reads them): "
        + ", ".join(f"{m} {v} ms" for m, v in queue["mean_queue_ms_per_request"].items()) + ".", "",
        "Not measurable here: VM boot, the COS GPU driver install, the image pull (no Docker engine), "
        "and the gs:// download (network-bound on the VM).", ""])


if __name__ == "__main__":
    raise SystemExit(main())
