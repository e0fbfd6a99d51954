"""The acoustic model's memory and speed for each memory setting, in one interleaved run.

Why: onnxruntime's CPU arena grows to the largest working set a process ever needed and keeps it
(issue 27: 3.5 GB after one 590 s request on random-base), a 40 s request or a batch of long ones
needs one large working set, and OpenVINO keeps the buffers of the largest shape it ran. The
defaults of `AcousticSettings.cpu_arena` / `release_memory` and `LongAudioConfig.batch_windows`
were chosen from this file's figures (docs/optimization.md, "Memory").

Each configuration is an `AcousticModel` in its own worker process (so each process's resident
memory is its own), loaded and warmed up as in Triton. Then every worker gets the same sequence of
requests, one worker at a time and interleaved (each round sends a length to every worker before
the next round), so the machine's background load falls on all configurations alike; the worker
order rotates every round. Per request: wall time, the process's peak resident memory during it
(VmHWM, reset before) and its resident memory after it (what stays).

    python -m benchmarks.acoustic_memory --model random-base [--configs arena-keep arena-release ...]
        [--lengths 0.5x10 10x3 40 100 600] [--title acoustic-memory]
    python -m benchmarks.acoustic_memory --render benchmarks/results/<machine>/acoustic-memory.json

Writes <title>.{json,md,png} into benchmarks/results/<machine>/. Audio is random noise (a
model's memory and time do not depend on what is said).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from w2v_triton.build.checkpoints import resolve_checkpoint
from w2v_triton.eval import memory
from w2v_triton.eval.machine import machine_name, utc_now
from w2v_triton.eval.tables import markdown_table
from w2v_triton.paths import REPO_ROOT
from w2v_triton.serving import spec
from w2v_triton.serving.acoustic import AcousticModel, AcousticSettings
from w2v_triton.serving.long_audio import LongAudioConfig

# name -> how it differs from the defaults of AcousticSettings / LongAudioConfig
CONFIGS: dict[str, dict[str, Any]] = {
    "arena-keep": dict(cpu_arena=True, release_memory=False, batch_windows=2),        # before issue 27
    "arena-keep-bw1": dict(cpu_arena=True, release_memory=False, batch_windows=1),
    "arena-release": dict(cpu_arena=True, release_memory=True, batch_windows=2),
    "arena-release-bw1": dict(cpu_arena=True, release_memory=True, batch_windows=1),  # the defaults
    "malloc-release": dict(cpu_arena=False, release_memory=True, batch_windows=2),
    "malloc-release-bw1": dict(cpu_arena=False, release_memory=True, batch_windows=1),
    "openvino-keep-bw1": dict(runtime="openvino", release_memory=False, batch_windows=1),
    "openvino-release-bw1": dict(runtime="openvino", release_memory=True, batch_windows=1),
    "torch-keep-bw1": dict(runtime="torch", release_memory=False, batch_windows=1),
    "torch-release-bw1": dict(runtime="torch", release_memory=True, batch_windows=1),
}
DEFAULT_CONFIGS = ("arena-keep", "arena-keep-bw1", "arena-release", "arena-release-bw1", "malloc-release-bw1")
DEFAULT_LENGTHS = ("0.5x20", "10x5", "15x3", "40", "100", "600")


def settings_for(name: str, model_file: str) -> AcousticSettings:
    """The AcousticSettings of configuration `name` (defaults for everything it does not set)."""
    values = dict(CONFIGS[name])
    long_audio = replace(LongAudioConfig(), batch_windows=values.pop("batch_windows", LongAudioConfig().batch_windows))
    return replace(AcousticSettings(), model_file=model_file, long_audio=long_audio, **values)


def parse_lengths(items: list[str]) -> list[tuple[float, int]]:
    """`10x3` -> (10.0 s, 3 rounds); `40` -> (40.0, 1)."""
    out = []
    for item in items:
        seconds, _, rounds = item.partition("x")
        out.append((float(seconds), int(rounds or 1)))
    return out


# ---- worker: one AcousticModel, commands on stdin, one JSON line per answer ----------------------

def _cpu_seconds() -> float:
    """This process's CPU time, all threads, user + system (page faults of a re-grown working set
    are system time): steadier than wall time on a shared machine."""
    return time.process_time()


def worker(settings: AcousticSettings, version_dir: Path) -> int:
    pid = os.getpid()
    started = time.perf_counter()
    model = AcousticModel.from_settings(version_dir, settings)
    loaded = memory.memory(pid)
    if settings.warmup:
        model.warmup()
    print(json.dumps({"load_s": round(time.perf_counter() - started, 2), "after_load": loaded.as_dict(),
                      "after_warmup": memory.memory(pid).as_dict()}), flush=True)
    rng = np.random.default_rng(0)
    for line in sys.stdin:
        seconds = float(line)
        audio = rng.standard_normal(int(seconds * spec.SAMPLE_RATE), dtype=np.float32)
        memory.reset_peak(pid)
        start, cpu = time.perf_counter(), _cpu_seconds()
        logits = model.run([audio])
        wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        peak = memory.memory(pid).peak
        del audio, logits
        print(json.dumps({"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "peak": round(peak, 1),
                          "after": memory.memory(pid).as_dict()}), flush=True)
    return 0


class Worker:
    """A worker process of one configuration, driven line by line."""

    def __init__(self, name: str, settings: AcousticSettings, version_dir: Path) -> None:
        self.name, self.stopped = name, ""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.acoustic_memory", "--worker", json.dumps(settings.to_parameters()),
             "--version-dir", str(version_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        self.start = self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} exited with {self.process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, seconds: float, cap_mib: float) -> dict[str, Any]:
        """One request; a worker whose resident memory passes `cap_mib` is stopped (the machine is
        shared: the previous default grew past 5.7 GB on a 600 s request and was OOM-killed)."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{seconds}\n")
        self.process.stdin.flush()
        done, seen = threading.Event(), [0.0]

        def watch() -> None:
            while not done.wait(0.2):
                try:
                    seen[0] = max(seen[0], memory.memory(self.process.pid).rss)
                except ProcessLookupError:
                    return
                if seen[0] > cap_mib:
                    self.process.kill()
                    return

        watchdog = threading.Thread(target=watch, daemon=True)
        watchdog.start()
        try:
            return self._answer()
        except RuntimeError:
            self.stopped = f"stopped: resident memory passed {cap_mib:.0f} MiB during a {seconds:g} s request"
            return {"stopped": self.stopped, "peak": round(seen[0], 1)}
        finally:
            done.set()
            watchdog.join()

    def close(self) -> None:
        if self.process.stdin is not None and not self.stopped:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def model_files(model: str) -> tuple[Path, Path]:
    """(the verified fp32 ONNX file, the checkpoint dir) of `model`."""
    from w2v_triton.build.onnx_export import build_onnx
    from w2v_triton.paths import onnx_dir_for

    checkpoint = resolve_checkpoint(model)
    onnx, _ = build_onnx(checkpoint, onnx_dir_for(checkpoint))
    return Path(onnx), Path(checkpoint)


def measure(names: list[str], onnx: Path, checkpoint: Path, lengths: list[tuple[float, int]],
            cap_mib: float) -> dict[str, Any]:
    workers = []
    try:
        for name in names:   # one at a time: loads and warm-ups do not compete for the cores
            torch = CONFIGS[name].get("runtime") == "torch"
            path = checkpoint if torch else onnx
            workers.append(Worker(name, settings_for(name, path.name), path.parent))
            print(f"{name}: {workers[-1].start}", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {w.name: [] for w in workers}
        turn = 0
        for seconds, rounds in lengths:
            for _ in range(rounds):
                order = workers[turn % len(workers):] + workers[: turn % len(workers)]
                turn += 1
                for w in order:
                    if w.stopped:
                        continue
                    answer = w.run(seconds, cap_mib)
                    runs[w.name].append({"seconds": seconds, **answer})
                    print(f"{w.name} {seconds:g} s: {answer}", flush=True)
        return {w.name: {"settings": CONFIGS[w.name], **w.start, "stopped": w.stopped, "requests": runs[w.name]}
                for w in workers}
    finally:
        for w in workers:
            w.close()


def summarise(configs: dict[str, Any], lengths: list[tuple[float, int]], baseline: str) -> dict[str, Any]:
    """Per configuration and length: median wall and CPU time, audio-s/s, the largest peak and the
    resident memory after the length's last request, and the times as ratios to a reference: the
    `baseline`, or where it stopped before that length, the first configuration that finished it
    (`vs` names it)."""
    table: dict[str, dict[str, Any]] = {}
    for name, data in configs.items():
        rows: dict[str, dict[str, Any]] = {}
        for seconds, _ in lengths:
            mine = [r for r in data["requests"] if r["seconds"] == seconds]
            if not mine:    # the worker was stopped at an earlier length
                rows[f"{seconds:g}"] = {"not_run": True}
                continue
            if any("stopped" in r for r in mine):   # no time, no memory after: what it reached
                rows[f"{seconds:g}"] = {"stopped": True, "peak_mib": max(r["peak"] for r in mine)}
                continue
            wall = statistics.median(r["wall_s"] for r in mine)
            cpu = statistics.median(r["cpu_s"] for r in mine) if all("cpu_s" in r for r in mine) else None
            rows[f"{seconds:g}"] = {"wall_s": round(wall, 3), "cpu_s": cpu, "x_realtime": round(seconds / wall, 2),
                                    "peak_mib": max(r["peak"] for r in mine),
                                    "rss_after_mib": mine[-1]["after"]["rss"]}
        table[name] = {"after_warmup_mib": data["after_warmup"]["rss"], "lengths": rows}
    for seconds, _ in lengths:
        key = f"{seconds:g}"
        finished = [n for n, d in table.items() if "wall_s" in d["lengths"][key]]
        if not finished:
            continue
        reference = baseline if baseline in finished else finished[0]
        base = table[reference]["lengths"][key]
        for name in finished:
            row = table[name]["lengths"][key]
            row["vs"] = reference
            row["time_vs_baseline"] = round(row["wall_s"] / base["wall_s"], 3)
            if row["cpu_s"] and base["cpu_s"]:
                row["cpu_vs_baseline"] = round(row["cpu_s"] / base["cpu_s"], 3)
    return table


def _ratio(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:.2f}x" if row.get(key) is not None else "–"


def cell(row: dict[str, Any], baseline: str) -> str:
    """`peak / after MiB, wall / CPU time vs the reference` of one length, or how far it got."""
    if row.get("not_run"):
        return "not run (stopped earlier)"
    if row.get("stopped"):
        return f"stopped at {row['peak_mib']:.0f} MiB"
    vs = f" vs {row['vs']}" if row.get("vs", baseline) != baseline else ""
    return (f"{row['peak_mib']:.0f} / {row['rss_after_mib']:.0f}, {_ratio(row, 'time_vs_baseline')} / "
            f"{_ratio(row, 'cpu_vs_baseline')}{vs}")


def table(report: dict[str, Any]) -> str:
    """One row per configuration, one column per requested length (the docs render this too)."""
    lengths = [f"{seconds:g}" for seconds, _ in parse_lengths(report["lengths"].split())]
    return markdown_table(
        ["configuration", "after warm-up (MiB)"]
        + [f"{s} s: peak / after (MiB), wall / CPU time vs {report['baseline']}" for s in lengths],
        [[name, f"{data['after_warmup_mib']:.0f}"]
         + [cell(data["lengths"].get(s, {"not_run": True}), report["baseline"]) for s in lengths]
         for name, data in report["summary"].items()])


def markdown(report: dict[str, Any]) -> str:
    return "\n".join([
        f"# {report['title']}: acoustic model memory and speed per setting", "",
        (f"{report['machine']}, {report['date']}, load average before/after {report['load_before']} / "
         f"{report['load_after']} (a shared machine: compare times only within this table). Model "
         f"`{report['model']}`, {report['threads']}; requests interleaved over the configurations "
         f"({report['lengths']}). A worker whose resident memory passed {report.get('cap_mib', 3072):.0f} MiB was "
         f"stopped; where `{report['baseline']}` did not finish a length, its times are ratios to the "
         f"configuration named in the cell. Command: `{report['command']}`"), "", table(report), "",
        "Settings: " + "; ".join(f"`{n}` {c['settings']}" for n, c in report["configs"].items()), ""])


def write(report: dict[str, Any], out: Path) -> None:
    """<title>.{json,md,png} into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{report['title']}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{report['title']}.md").write_text(markdown(report))
    plot(report, out / f"{report['title']}.png")


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, data in report["configs"].items():
        rss = [data["after_warmup"]["rss"]] + [r["after"]["rss"] if "after" in r else np.nan for r in data["requests"]]
        peaks = [data["after_warmup"]["peak"]] + [r["peak"] for r in data["requests"]]
        left.plot(rss, marker=".", label=name)
        right.plot(peaks, marker=".", label=name)
    longest = max(report["configs"].values(), key=lambda c: len(c["requests"]))
    labels = ["warm"] + [f"{r['seconds']:g}" for r in longest["requests"]]
    for ax, title in ((left, "resident after each request (MiB)"), (right, "peak during each request (MiB)")):
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_xlabel("request (audio seconds), in order")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    left.legend(fontsize=7)
    fig.suptitle(f"{report['model']} acoustic model, {report['machine']}, {report['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="random-base")
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--lengths", nargs="+", default=list(DEFAULT_LENGTHS),
                        help="audio seconds per request, xN for N interleaved rounds")
    parser.add_argument("--baseline", default="arena-keep")
    parser.add_argument("--cap-mib", type=float, default=3072,
                        help="stop a worker whose resident memory passes this (a shared machine)")
    parser.add_argument("--title", default="acoustic-memory")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / machine_name())
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="re-summarise and re-render a results file's .md/.png from its measurements")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--version-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(AcousticSettings.from_parameters(json.loads(args.worker)), args.version_dir)

    if args.render:
        report = json.loads(args.render.read_text())
        report["summary"] = summarise(report["configs"], parse_lengths(report["lengths"].split()), report["baseline"])
        write(report, args.render.parent)
        print(markdown(report))
        return 0

    lengths = parse_lengths(args.lengths)
    onnx, checkpoint = model_files(args.model)
    load_before = os.getloadavg()
    configs = measure(args.configs, onnx, checkpoint, lengths, args.cap_mib)
    report = {"title": args.title, "machine": machine_name(), "date": utc_now(), "model": args.model,
              "threads": "intra-op threads: all cores (the latency profile's)",
              "load_before": " ".join(f"{x:.1f}" for x in load_before),
              "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
              "lengths": " ".join(args.lengths), "baseline": args.baseline, "cap_mib": args.cap_mib,
              "command": "python -m benchmarks.acoustic_memory " + " ".join(sys.argv[1:] if argv is None else argv),
              "summary": summarise(configs, lengths, args.baseline), "configs": configs}
    write(report, args.out)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
