"""Turn a benchmark run into report.json, report.md and PNG plots (one folder per machine)."""
from __future__ import annotations

import json
from pathlib import Path


def _table(header: list[str], rows: list[list]) -> str:
    fmt = lambda v: f"{v:.1f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def best_served(report: dict, sweep_prefix: str) -> dict[str, float]:
    """Highest audio-s/s each served model reached on the sweep whose name starts with prefix."""
    best = {}
    for name, result in report["served"].items():
        for sweep, data in result["sweeps"].items():
            if sweep.startswith(sweep_prefix):
                best[name] = max(r["audio_seconds_per_second"] for r in data["rows"])
    return best


def inprocess_rows(report: dict) -> list[list]:
    """name, runtime, threads, audio-s/s, p50 ms, p99 ms, peak RSS MiB of each in-process run."""
    return [[n, " ".join(filter(None, (r["kind"], r.get("device", "cpu"), r.get("dtype")))), r["threads"],
             r["audio_seconds_per_second"], r["p50_ms"], r["p99_ms"], r["peak_rss_mib"]]
            for n, r in report["inprocess"].items()]


def markdown(report: dict) -> str:
    parts = [f"# {report['title']}", "",
             f"Machine: `{report['machine']}` ({report['cpu_count']} cores). Date: {report['date']}. "
             f"Audio: {report['audio']}.", "",
             f"Command: `python -m benchmarks.run {' '.join(report['argv'])}`", ""]
    if report["inprocess"]:
        rows = inprocess_rows(report)
        clip = next(iter(report["inprocess"].values()))["clip_seconds"]
        parts += [f"## In-process acoustic model ({clip:g} s clips, batch 1)", "",
                  _table(["candidate", "runtime", "threads", "audio-s/s", "p50 ms", "p99 ms", "peak RSS MiB"], rows), ""]
    for name, result in report["served"].items():
        parts += [f"## Served ensemble `{name}` (perf_analyzer, gRPC)", "", f"Repository: `{result['repository']}`", ""]
        for sweep, data in result["sweeps"].items():
            rows = [[r["concurrency"], r["infer_per_sec"], r["audio_seconds_per_second"], r["p50_ms"],
                     r["p99_ms"]] for r in data["rows"]]
            info = data["input"]
            parts += [f"### {sweep}: {info['entries']} inputs, mean {info['mean_seconds']:.2f} s "
                      f"(windows of {info.get('request_count', '?')} requests, stable within "
                      f"{info.get('stability_percent', '?')}%)", "",
                      _table(["concurrency", "infer/s", "audio-s/s", "p50 ms", "p99 ms"], rows), ""]
            levels = [[r["concurrency"], m, t["requests"], t["queue_ms"], t["compute_infer_ms"]]
                      for r in data["rows"] for m, t in r.get("per_model", {}).items()]
            if levels:
                parts += [f"Per-model averages at each concurrency level (Triton statistics, {sweep}):", "",
                          _table(["concurrency", "model", "requests", "queue ms", "compute ms"], levels), ""]
        rows = [[m, s["requests"], s["executions"], s["queue_ms"], s["compute_infer_ms"]]
                for m, s in result.get("per_model", {}).items()]
        parts += ["Per-model averages from Triton's statistics (whole run):", "",
                  _table(["model", "requests", "executions", "queue ms", "compute ms"], rows), ""]
    ratios = []
    clip_best = best_served(report, "clips_")
    for served_name, served_rate in clip_best.items():
        for base_name, base in report["inprocess"].items():
            if base["kind"] == "hf-pytorch":
                ratios.append([served_name, base_name, served_rate, base["audio_seconds_per_second"],
                               served_rate / base["audio_seconds_per_second"]])
    if ratios:
        parts += ["## Served vs in-process PyTorch (same clips, same run)", "",
                  _table(["served", "baseline", "served audio-s/s", "baseline audio-s/s", "ratio"], ratios), ""]
    return "\n".join(parts)


def plots(report: dict, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if report["inprocess"]:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        names = list(report["inprocess"])
        ax.barh(names, [report["inprocess"][n]["audio_seconds_per_second"] for n in names])
        ax.set_xlabel("audio seconds per second (higher is better)")
        ax.set_title(f"In-process, {report['machine']}")
        fig.tight_layout()
        written.append(out / "inprocess.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    sweeps = sorted({s for r in report["served"].values() for s in r["sweeps"]})
    if sweeps:
        fig, axes = plt.subplots(2, len(sweeps), figsize=(4.5 * len(sweeps), 6.5), squeeze=False)
        for col, sweep in enumerate(sweeps):
            for name, result in report["served"].items():
                rows = result["sweeps"].get(sweep, {}).get("rows", [])
                conc = [r["concurrency"] for r in rows]
                axes[0][col].plot(conc, [r["audio_seconds_per_second"] for r in rows], "o-", label=name)
                axes[1][col].plot(conc, [r["p50_ms"] for r in rows], "o-", label=name)
            axes[0][col].set_title(sweep)
            axes[0][col].set_ylabel("audio-s/s")
            axes[1][col].set_ylabel("p50 latency ms")
            axes[1][col].set_xlabel("concurrency")
            axes[0][col].legend(fontsize=7)
        fig.suptitle(f"Served ensembles, {report['machine']}")
        fig.tight_layout()
        written.append(out / "served.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def write_report(report: dict, out: Path) -> None:
    stem = report["title"].replace(" ", "-")
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    (out / f"{stem}.md").write_text(markdown(report))
    for png in plots(report, out):
        png.rename(out / f"{stem}-{png.name}")
