"""`make gcp-boot-budget`: what a VM needs to serve, measured off the cloud: boot-to-ready and memory.

    python -m benchmarks.boot_budget --repository latency=build/gcp-boot/latency \\
        --repository throughput=build/gcp-boot/throughput --repository streaming=build/gcp-boot/streaming \\
        [--model random-base] [--runs 3] [--stream-seconds 30 120]

(--model: build each repository not built yet from this checkpoint, in the serving profile it is
named after: latency or throughput; `streaming` is the latency profile with `--stream vad=none
--stream idle_seconds=120` (STREAMING_SETTINGS), so every stream is cut into `max_segment_seconds`
segments whatever its audio: each segment's final is the longest acoustic pass a stream makes.)

For each repository (the same server release as the NGC 24.10 image): its size, the time to copy
it from one local folder to another (a stand-in for the VM's copy from gs://, network-bound there;
the source files are evicted from the page cache first, so it reads the disk), and tritonserver's
start-to-ready time. In the last run of each repository, the resident memory of every Triton model
process (each python-backend instance is its own stub process; w2v_triton.eval.memory) and of the
server: after ready (warm-up included), then the peak while serving the longest input the service
accepts and what stays after it:
  offline    (every repository but `streaming`) one request per acoustic instance at once, each the
             longest accepted upload (`max_audio_seconds` of stereo FLAC at the highest accepted
             sample rate: the most samples the preprocessor decodes and the longest audio the
             acoustic model windows);
  streams    (`streaming`) streams through `streaming_asr` in `max_chunk_seconds` chunks, one after
             the other: one of `max_segment_seconds` (one segment: the longest final) and one of
             4 x that (streams have no length limit; what a stream keeps is bounded by its open
             segment, so after four segments nothing more should stay).
The first repository also gets the queue-time reading under load that the autoscaling signal uses.
From the figures it derives the GCP defaults (machine type, acoustic instances per VM, autohealing
initial delay, autoscaler initialisation period; `gcp_defaults`), which gcp/lib.sh and
docs/deploy-gcp.md cite. Writes JSON + Markdown into benchmarks/results/<machine>/gcp-boot-budget.*.
What it cannot measure here (VM boot, GPU driver install, image pull) are estimates, marked so.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from w2v_triton.eval import memory
from w2v_triton.eval.machine import machine_name, utc_now
from w2v_triton.eval.tables import markdown_table
from w2v_triton.paths import REPO_ROOT, WORK_DIR
from w2v_triton.serving import spec
from w2v_triton.serving.tritonserver import Ports, TritonServer
from w2v_triton.serving.typing import FloatArray

# Steps of a VM's boot that cannot be measured here (docs/deploy-gcp.md, "Boot-to-ready budget").
ESTIMATES_S = {"vm_boot": 30, "image_pull": 180, "gpu_driver": 180, "health_checks": 20}
GCS_MB_PER_S = 100            # estimate: in-region gs:// download of the repository (not measured)
DELAY_MARGIN = 2.0            # autohealing waits at least this many boot-to-ready sums
# Memory a VM keeps for itself and the containers besides Triton's processes (COS, Docker, the
# queue-time exporter): an estimate, not measured (no VM here).
SYSTEM_MIB = 1024
MEMORY_MARGIN = 1.25          # the processes' summed peaks x this must fit the VM
# 8-vCPU N2 machine types and their memory (GiB): general-purpose machine family documentation,
# https://cloud.google.com/compute/docs/general-purpose-machines#n2_machine_types
MACHINE_TYPES = {"n2-highcpu-8": 8, "n2-standard-8": 32, "n2-highmem-8": 64}
VM_VCPUS = 8


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
                     seconds: float = 2.0) -> dict[str, Any]:
    """Mean queue time per request (ms) of each model while `concurrency` clients send
    `requests` random clips: what w2v_triton.serving.queue_metric turns into the autoscaling signal."""
    import tritonclient.http as httpclient

    from w2v_triton.serving import queue_metric

    url = f"http://127.0.0.1:{server.ports.metrics}/metrics"
    before = queue_metric.parse_counters(urllib.request.urlopen(url, timeout=10).read().decode())
    audio = np.random.default_rng(0).standard_normal((1, int(seconds * spec.SAMPLE_RATE))).astype(np.float32)

    def one(_: int) -> None:
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


# ---- memory per model process ---------------------------------------------------------------------

def processes(server: TritonServer) -> dict[str, int]:
    """`tritonserver` and every model instance's stub -> pid."""
    assert server.process is not None
    return {"tritonserver": server.process.pid, **memory.model_processes(server.process.pid)}


def snapshot(pids: dict[str, int]) -> dict[str, dict[str, float]]:
    return {name: memory.memory(pid).as_dict() for name, pid in pids.items()}


def longest_upload(seconds: float, rate: int = spec.MAX_FILE_SAMPLE_RATE) -> bytes:
    """`seconds` of stereo FLAC at `rate`: a quiet tone, so the file is small to send (~2 MB per
    minute) while the preprocessor decodes every sample (cached under build/)."""
    import soundfile as sf

    cache = WORK_DIR / "boot-budget" / f"longest-{seconds:g}s-{rate}hz-stereo.flac"
    if not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        tone = (0.001 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
        with sf.SoundFile(buffer, "w", rate, 2, format="FLAC", subtype="PCM_16") as out:
            for _ in range(int(seconds)):
                out.write(np.stack([tone, tone], axis=1))
        cache.write_bytes(buffer.getvalue())
    return cache.read_bytes()


def measured(server: TritonServer, pids: dict[str, int], work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Reset every process's peak, run `work()`, and return its wall time with each process's
    peak during it and resident memory after it."""
    for pid in pids.values():
        memory.reset_peak(pid)
    start = time.perf_counter()
    detail = work()
    wall = time.perf_counter() - start
    after = snapshot(pids)
    return {**detail, "wall_s": round(wall, 1), "peak_mib": {k: v["peak"] for k, v in after.items()},
            "after_mib": {k: v["rss"] for k, v in after.items()}}


def longest_offline(server: TritonServer, pids: dict[str, int], seconds: float) -> dict[str, Any]:
    """One longest accepted upload per acoustic instance, all at once (every instance at its peak)."""
    from client import TranscriptionClient

    data = longest_upload(seconds)
    instances = sum(memory.model_of(name) == spec.ACOUSTIC_MODEL for name in pids)

    def one(_: int) -> float | None:
        with TranscriptionClient(server.grpc_url, "grpc", timeout=7200) as asr:
            return asr.transcribe_full(data).duration_s

    def work() -> dict[str, Any]:
        with ThreadPoolExecutor(instances) as pool:
            durations = list(pool.map(one, range(instances)))
        return {"requests": instances, "audio_seconds": durations[0], "upload_bytes": len(data),
                "upload": f"FLAC, {spec.MAX_FILE_SAMPLE_RATE} Hz stereo"}

    return measured(server, pids, work)


def longest_streams(server: TritonServer, pids: dict[str, int], stream_seconds: list[float],
                    chunk_seconds: float) -> list[dict[str, Any]]:
    from client import TranscriptionClient

    results = []
    for seconds in stream_seconds:
        audio = 0.1 * np.random.default_rng(1).standard_normal(int(seconds * spec.SAMPLE_RATE), dtype=np.float32)

        # this iteration's audio and length, bound now (measured() calls work() before the next one)
        def work(audio: FloatArray = audio, seconds: float = seconds) -> dict[str, Any]:
            with TranscriptionClient(server.grpc_url, "grpc", timeout=7200) as asr:
                updates = list(asr.stream(audio, chunk_seconds=chunk_seconds))
            assert updates[-1].is_final
            return {"audio_seconds": seconds, "chunk_seconds": chunk_seconds, "chunks": len(updates)}

        results.append(measured(server, pids, work))
        print(f"stream {seconds:g} s: {results[-1]}", flush=True)
    return results


def serve_and_measure(repository: Path, runs: int, log_dir: Path, longest_seconds: float, load: bool,
                      stream_seconds: list[float], chunk_seconds: float) -> dict[str, Any]:
    """`runs` cold starts (repository out of the page cache); the last one gets the load (`load`),
    then the streams (`stream_seconds`) or, with none, the longest offline uploads."""
    times: list[float] = []
    result: dict[str, Any] = {}
    for i in range(runs):
        evict(repository)
        server = TritonServer(repository, Ports.free(), log_path=log_dir / f"boot-budget-{repository.name}-{i}.log")
        start = time.perf_counter()
        server.start(timeout=900)
        times.append(time.perf_counter() - start)
        try:
            if i < runs - 1:
                continue
            pids = processes(server)
            result["after_ready_mib"] = snapshot(pids)
            if load:
                result["queue_under_load"] = queue_under_load(server)
            if stream_seconds:
                result["longest_streams"] = longest_streams(server, pids, stream_seconds, chunk_seconds)
            else:
                result["longest_offline"] = longest_offline(server, pids, longest_seconds)
                print(f"{repository.name} longest offline: {result['longest_offline']}", flush=True)
        finally:
            server.stop()
    return {"start_to_ready_seconds": summary(times), **result}


def _build_options(build_info: Path) -> dict[str, Any] | None:
    """What the repository was built from, without this machine's paths (file names only)."""
    if not build_info.is_file():
        return None
    info = json.loads(build_info.read_text())
    return {k: (Path(v).name if isinstance(v, str) and v.startswith("/") else v) for k, v in info.items()}


STREAMING = "streaming"   # the repository measured with streams (the latency profile, these settings)
# vad none: every stream is cut into max_segment_seconds segments, so each segment's final is the
# longest acoustic pass a stream makes, whatever its audio. idle_seconds 120: the client sends each
# chunk once the previous answer is in, and Triton's sequence batcher counts idleness from the last
# request: a 30 s segment's final on random-base on a shared 2-core machine can take longer than
# the default 15 s, and the batcher would release the stream (docs/streaming.md).
STREAMING_SETTINGS = {"vad": "none", "idle_seconds": 120}


def ensure_built(repository: Path, model: str, name: str) -> bool:
    """Build `repository` from `model` in the serving profile `name` names (latency when it names
    none; `streaming`: latency with vad none) unless it holds rendered configs already; True when built."""
    if (repository / spec.ENSEMBLE_MODEL / "config.pbtxt").is_file():
        return False
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.build.repository import PROFILES, RepositoryOptions

    options = RepositoryOptions.for_profile(name if name in PROFILES else "latency",
                                            streaming=STREAMING_SETTINGS if name == STREAMING else {})
    build_repository(BuildRequest(model=model, output=repository, options=options))
    return True


def summary(values: list[float]) -> dict[str, Any]:
    return {"runs": [round(v, 2) for v in values], "median": round(statistics.median(values), 2),
            "max": round(max(values), 2)}


# ---- per model, and what it means for a VM ---------------------------------------------------------

def per_model(repo: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Model -> instances, and per instance (the largest of its instances): resident after ready,
    peak over the longest inputs (offline or streams), resident after them."""
    runs = [*([repo["longest_offline"]] if "longest_offline" in repo else []), *repo.get("longest_streams", [])]
    models: dict[str, dict[str, Any]] = {}
    for name, ready in repo["after_ready_mib"].items():
        model = memory.model_of(name) if name != "tritonserver" else name
        row = models.setdefault(model, {"instances": 0, "after_ready": 0.0, "peak": 0.0, "after_longest": 0.0})
        row["instances"] += 1
        row["after_ready"] = max(row["after_ready"], ready["rss"])
        row["peak"] = max(row["peak"], *(r["peak_mib"][name] for r in runs))
        row["after_longest"] = max(row["after_longest"], runs[-1]["after_mib"][name])
    return models


def gcp_defaults(report: dict[str, Any]) -> dict[str, Any]:
    """The deploy defaults the figures imply (gcp/lib.sh cites them; tests/test_gcp_dryrun.py holds
    lib.sh to them):

    * machine type: the smallest 8-vCPU N2 type whose memory holds, for both serving profiles
      built for 8 vCPUs (latency: 1 acoustic instance; throughput: 8), every process at its
      measured peak at once, x MEMORY_MARGIN, plus SYSTEM_MIB for the OS and containers;
    * acoustic instances that fit each type (memory only; the profile decides how many run);
    * autohealing initial delay: DELAY_MARGIN x the boot-to-ready sum (estimates + the slowest
      measured start-to-ready + the gs:// download at GCS_MB_PER_S), rounded up to whole 5 minutes;
    * autoscaler initialisation period (cool-down): the cpu boot-to-ready sum, rounded up to a whole minute.
    """
    repos = report["repositories"]
    models = {name: per_model(repo) for name, repo in repos.items()}
    peak = {m: max(ms[m]["peak"] for ms in models.values() if m in ms)
            for m in {m for ms in models.values() for m in ms}}
    fixed = {m: v for m, v in peak.items() if m != spec.ACOUSTIC_MODEL}
    instances = {m: max(ms[m]["instances"] for ms in models.values() if m in ms) for m in fixed}
    fixed_mib = sum(peak[m] * instances[m] for m in fixed)   # everything but the acoustic instances
    acoustic = peak[spec.ACOUSTIC_MODEL]
    need = {profile: MEMORY_MARGIN * (fixed_mib + count * acoustic) + SYSTEM_MIB
            for profile, count in (("latency", 1), ("throughput", VM_VCPUS))}
    fits = {t: math.floor(((gib * 1024 - SYSTEM_MIB) / MEMORY_MARGIN - fixed_mib) / acoustic)
            for t, gib in MACHINE_TYPES.items()}
    machine = next(t for t, gib in sorted(MACHINE_TYPES.items(), key=lambda kv: kv[1])
                   if gib * 1024 >= max(need.values()))
    ready_max = max(r["start_to_ready_seconds"]["max"] for r in repos.values())
    download = max(r["repository_bytes"] for r in repos.values()) / 1e6 / GCS_MB_PER_S
    cpu_sum = ESTIMATES_S["vm_boot"] + ESTIMATES_S["image_pull"] + download + ready_max + ESTIMATES_S["health_checks"]
    gpu_sum = cpu_sum + ESTIMATES_S["gpu_driver"]
    return {
        "per_process_peak_mib": {m: round(v) for m, v in peak.items()},
        "instances_per_model": instances,
        "vm_memory_needed_mib": {p: round(v) for p, v in need.items()},
        "acoustic_instances_that_fit": fits,
        "machine_type": machine,
        "boot_to_ready_sum_s": {"cpu": round(cpu_sum), "gpu": round(gpu_sum)},
        "initial_delay_s": {v: int(math.ceil(DELAY_MARGIN * s / 300) * 300)
                            for v, s in (("cpu", cpu_sum), ("gpu", gpu_sum))},
        "cool_down_s": int(math.ceil(cpu_sum / 60) * 60),
        "assumptions": {"estimates_s": ESTIMATES_S, "gcs_mb_per_s": GCS_MB_PER_S, "delay_margin": DELAY_MARGIN,
                        "system_mib": SYSTEM_MIB, "memory_margin": MEMORY_MARGIN, "vm_vcpus": VM_VCPUS,
                        "machine_types_gib": MACHINE_TYPES},
    }


def steps_table(report: dict[str, Any]) -> str:
    """A VM's boot-to-ready, step by step: the measured steps and the estimates gcp_defaults adds
    (the docs render this table from the results file)."""
    repos, gcp = report["repositories"], report["gcp"]
    est, assumptions = gcp["assumptions"]["estimates_s"], gcp["assumptions"]
    largest = max(r["repository_bytes"] for r in repos.values())
    ready = "; ".join(f"{n} {r['start_to_ready_seconds']['median']} s median, {r['start_to_ready_seconds']['max']} s max "
                      f"({len(r['start_to_ready_seconds']['runs'])} runs)" for n, r in repos.items())
    copies = "; ".join(f"{n} {r['local_copy_seconds']['median']} s" for n, r in repos.items())
    return markdown_table(["step", "seconds", "kind"], [
        ["VM boot to the startup script (COS)", est["vm_boot"], "estimate, not measured"],
        ["GPU driver install (`cos-extensions install gpu`, gpu only)", est["gpu_driver"], "estimate, not measured"],
        ["image pull from Artifact Registry (NGC `tritonserver:24.10-py3` + our layers)", est["image_pull"],
         "estimate, not measured (no Docker engine here)"],
        ["model repository from gs:// (Triton copies it to local disk before loading)",
         f"{largest / 1e6 / assumptions['gcs_mb_per_s']:.1f}",
         (f"estimate: the largest repository, {largest / 2**20:.1f} MiB, at {assumptions['gcs_mb_per_s']} MB/s; "
          f"a local folder-to-folder copy out of the page cache took {copies} (median)")],
        ["tritonserver start to `/v2/health/ready` (warm-up included)",
         max(r["start_to_ready_seconds"]["max"] for r in repos.values()),
         f"measured, the slowest run: {ready}; repository out of the page cache"],
        ["health check turns healthy", est["health_checks"], "configuration (2 checks x 10 s)"],
        ["**sum** (cpu / gpu)", f"{gcp['boot_to_ready_sum_s']['cpu']} / {gcp['boot_to_ready_sum_s']['gpu']}",
         (f"autohealing initial delay {gcp['initial_delay_s']['cpu']} / {gcp['initial_delay_s']['gpu']} s "
          f"({assumptions['delay_margin']:g} x the sum, rounded up to whole 5 minutes); initialisation period "
          f"{gcp['cool_down_s']} s")]])


def markdown(report: dict[str, Any]) -> str:
    repos = report["repositories"]
    sizes = markdown_table(
        ["repository", "size", "local copy (s, median / max)", "start -> ready (s, median / max)"],
        [[name, f"{r['repository_bytes'] / 2**20:.1f} MiB in {r['repository_files']} files",
          f"{r['local_copy_seconds']['median']} / {r['local_copy_seconds']['max']}",
          f"{r['start_to_ready_seconds']['median']} / {r['start_to_ready_seconds']['max']}"] for name, r in repos.items()])
    processes = markdown_table(
        ["repository", "process", "instances", "after ready", "peak, longest inputs", "after them"],
        [[name, model, row["instances"], f"{row['after_ready']:.0f}", f"{row['peak']:.0f}", f"{row['after_longest']:.0f}"]
         for name, repo in repos.items() for model, row in per_model(repo).items()])
    lines = [f"# {report['title']}", "",
             (f"Machine: `{report['machine']}` ({report['cpu_count']} cores, shared with other jobs; load "
              f"average {report['load_before']} before, {report['load_after']} after). Date: {report['date']}."), "",
             f"Command: `python -m benchmarks.boot_budget {' '.join(report['argv'])}`", "", sizes, "",
             "Boot-to-ready, step by step (s):", "", steps_table(report), "",
             "Resident memory per process (MiB; per instance, the largest of a model's instances):", "", processes]
    queue = next(iter(repos.values())).get("queue_under_load")
    if queue:
        lines += ["", f"Queue time per request under load ({queue['requests']} random {queue['clip_seconds']:g} s "
                      f"clips at concurrency {queue['concurrency']}, from Triton's counters as "
                      "w2v_triton.serving.queue_metric reads them): "
                  + ", ".join(f"{m} {v} ms" for m, v in queue["mean_queue_ms_per_request"].items()) + "."]
    gcp = report["gcp"]
    lines += ["", f"GCP defaults derived (`gcp_defaults`): machine type **{gcp['machine_type']}** (VM memory needed: "
                  + ", ".join(f"{p} profile {v} MiB" for p, v in gcp["vm_memory_needed_mib"].items())
              + "), acoustic instances that fit: "
              + ", ".join(f"{t} {n}" for t, n in gcp["acoustic_instances_that_fit"].items())
              + f"; initial delay {gcp['initial_delay_s']['cpu']} s cpu / {gcp['initial_delay_s']['gpu']} s gpu "
                f"(boot-to-ready sums {gcp['boot_to_ready_sum_s']['cpu']} / {gcp['boot_to_ready_sum_s']['gpu']} s); "
                f"cool-down {gcp['cool_down_s']} s.", "",
              ("Not measurable here: VM boot, the COS GPU driver install, the image pull (no Docker engine), "
               "the gs:// download (network-bound on the VM) and the memory COS and Docker keep: estimates "
               f"{gcp['assumptions']}."), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", action="append", required=True, metavar="NAME=DIR",
                        help="a repository to measure (repeatable; the first also gets the load and streams)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", help="build the repositories not built yet from this checkpoint")
    parser.add_argument("--longest-seconds", type=float, default=spec.MAX_AUDIO_SECONDS,
                        help="the longest accepted upload (default: the service's limit, %(default)s)")
    parser.add_argument("--stream-seconds", type=float, nargs="+", default=None,
                        help="streams sent to the `streaming` repository's streaming_asr (default: its "
                             "max_segment_seconds and 4 x that)")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/<machine>")
    args = parser.parse_args(argv)

    from w2v_triton.serving.streaming import StreamingConfig

    named = [item.split("=", 1) if "=" in item else ("latency", item) for item in args.repository]
    stream = StreamingConfig()
    stream_seconds = (args.stream_seconds if args.stream_seconds is not None
                      else [stream.max_segment_seconds, 4 * stream.max_segment_seconds])
    load_before = os.getloadavg()
    repositories = {}
    for index, (name, folder) in enumerate(named):
        repository = Path(folder)
        if args.model:
            ensure_built(repository, args.model, name)
        size, files = repository_size(repository)
        repositories[name] = {
            "path": str(repository), "repository_build": _build_options(repository / "build_info.json"),
            "repository_bytes": size, "repository_files": files,
            "local_copy_seconds": summary(copy_seconds(repository, args.runs)),
            **serve_and_measure(repository, args.runs, WORK_DIR, args.longest_seconds, index == 0,
                                stream_seconds if name == STREAMING else [], stream.max_chunk_seconds)}
    out = args.out or REPO_ROOT / "benchmarks" / "results" / machine_name()
    out.mkdir(parents=True, exist_ok=True)
    report = {"title": "GCP boot-to-ready and memory: the parts measurable off the cloud",
              "machine": machine_name(), "cpu_count": os.cpu_count(), "date": utc_now(),
              "load_before": " ".join(f"{x:.1f}" for x in load_before),
              "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
              "argv": list(argv) if argv is not None else __import__("sys").argv[1:],
              "repositories": repositories}
    report["gcp"] = gcp_defaults(report)
    (out / "gcp-boot-budget.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (out / "gcp-boot-budget.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
