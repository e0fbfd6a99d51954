"""Turn a benchmark run into report.json, report.md and PNG plots (one folder per machine)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.pareto import pareto_front
from w2v_triton.eval.tables import markdown_table

WER_GOAL = 0.10          # issue 19: a student within +10% relative test_seen WER of its teacher


def _one_decimal(value: Any) -> str:
    """A report cell: floats with one decimal, everything else as it is."""
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def best_served(report: dict, sweep_prefix: str) -> dict[str, float]:
    """Highest audio-s/s each served model reached on the sweep whose name starts with prefix."""
    best = {}
    for name, result in report["served"].items():
        for sweep, data in result["sweeps"].items():
            if sweep.startswith(sweep_prefix):
                best[name] = max(r["audio_seconds_per_second"] for r in data["rows"])
    return best


def latency_p50(result: dict, sweep_prefix: str = "seed_") -> float | None:
    """p50 ms at concurrency 1 on the sweep whose name starts with prefix (None if not run)."""
    for sweep, data in result.get("sweeps", {}).items():
        if sweep.startswith(sweep_prefix):
            for row in data["rows"]:
                if row["concurrency"] == 1:
                    return float(row["p50_ms"])
    return None


def headline_rows(report: dict) -> list[dict[str, Any]]:
    """Per student x variant (and the teacher first): served audio-s/s on the long clips in the
    throughput profile (best concurrency), its ratio to the in-process HF PyTorch teacher, the 0.5 s
    clip's p50 at concurrency 1 in the latency profile, and test_seen WER (absolute and relative to
    the teacher's) where an eval_results.json gave it."""
    info = report["headline"]
    clips = best_served(report, "clips_")
    teacher = info["teacher"]
    base = report["inprocess"].get(teacher["baseline"], {}).get("audio_seconds_per_second")
    teacher_wer = (teacher.get("accuracy") or {}).get("test_seen", {}).get("wer")
    rows = [{"student": f"teacher ({teacher['name']}, HF PyTorch in-process)", "variant": "fp32",
             "audio_s_per_s": base, "x_teacher": 1.0 if base else None, "p50_ms": None,
             "wer": teacher_wer, "wer_rel": 0.0 if teacher_wer is not None else None, "teacher": True}]
    for row in info["rows"]:
        speed = clips.get(row["throughput"])
        latency = report["served"].get(row["latency"])
        wer = (row.get("accuracy") or {}).get("test_seen", {}).get("wer")
        rows.append({"student": row["student"], "variant": row["variant"], "audio_s_per_s": speed,
                     "x_teacher": speed / base if speed and base else None,
                     "p50_ms": latency_p50(latency) if latency else None, "wer": wer,
                     "wer_rel": wer / teacher_wer - 1 if wer is not None and teacher_wer else None,
                     "teacher": False})
    points = [(r["audio_s_per_s"], r["wer"]) for r in rows if r["audio_s_per_s"] and r["wer"] is not None]
    front = dict(zip(points, pareto_front(points)))
    for r in rows:
        r["pareto"] = front.get((r["audio_s_per_s"], r["wer"]), False) if r["wer"] is not None else None
    return rows


def clip_label(report: dict) -> str:
    """e.g. "10 s": the long clips' length, from the sweep name (clips_10s)."""
    sweep = next((s for r in report["served"].values() for s in r["sweeps"] if s.startswith("clips_")), "clips_?s")
    return sweep.split("_", 1)[1].removesuffix("s") + " s"


def _cell(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


HEADLINE_COLUMNS = ["student", "variant", "audio-s/s (throughput)", "x teacher", "0.5 s p50 ms (latency)",
                    "test_seen WER", "WER vs teacher", "Pareto front"]


def headline_cells(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The headline rows as table cells (the report and docs/ render the same table)."""
    return [[r["student"], r["variant"], _cell(r["audio_s_per_s"], ".1f"),
             _cell(r["x_teacher"], ".1f") + ("x" if r["x_teacher"] is not None else ""),
             _cell(r["p50_ms"], ".1f"),
             _cell(r["wer"], ".3f") if r["wer"] is not None else "accuracy unknown",
             _cell(r["wer_rel"], "+.1%"), {True: "yes", False: "", None: ""}[r["pareto"]]] for r in rows]


def headline_markdown(report: dict) -> list[str]:
    rows = headline_rows(report)
    table = headline_cells(rows)
    parts = ["## Headline (same run)", "",
             f"Served students: audio-s/s on {clip_label(report)} clips in the **throughput** profile "
             f"(best concurrency) and its ratio to the HF PyTorch teacher in-process; 0.5 s clip p50 at "
             f"concurrency 1 in the **latency** profile; test_seen WER from each student's "
             f"eval_results.json (relative to the teacher's): the checkpoint's, so an int8 row shows its "
             f"fp32 checkpoint's WER (int8 agreement: builders/variants.py).", "",
             markdown_table(HEADLINE_COLUMNS, table, _one_decimal), ""]
    students = [r for r in rows if not r["teacher"] and r["audio_s_per_s"]]
    good = [r for r in students if r["wer_rel"] is not None and r["wer_rel"] <= WER_GOAL]
    if good:
        best = max(good, key=lambda r: r["audio_s_per_s"])
        parts.append(f"Fastest student within +{WER_GOAL:.0%} relative test_seen WER: {best['student']} "
                     f"{best['variant']}, {best['audio_s_per_s']:.1f} audio-s/s ({_cell(best['x_teacher'], '.1f')}x "
                     f"the teacher), WER {best['wer_rel']:+.1%} (goal: >= 100 audio-s/s, >= 12x).")
    elif students:
        parts.append(f"No student with a known test_seen WER within +{WER_GOAL:.0%} of the teacher's in this run.")
    latencies = [r for r in students if r["p50_ms"] is not None]
    if latencies:
        best = min(latencies, key=lambda r: r["p50_ms"])
        parts.append(f"Lowest 0.5 s clip p50 (latency profile, concurrency 1): {best['p50_ms']:.1f} ms, "
                     f"{best['student']} {best['variant']} (goal: <= 15 ms).")
    info = report["headline"]
    accuracy = {info["teacher"]["name"] + " (teacher)": info["teacher"].get("accuracy")}
    accuracy.update({r["student"]: r.get("accuracy") for r in info["rows"] if r.get("accuracy")})
    sets = ("test_seen", "test_unseen", "real_speech")
    rows = [[name, *(f"{acc[s]['wer']:.3f} / {acc[s]['cer']:.3f}" if s in acc and "cer" in acc[s] else "–"
                     for s in sets)] for name, acc in accuracy.items() if acc]
    if rows:
        parts += ["", "Accuracy (greedy WER / CER of each checkpoint, from its eval_results.json):", "",
                  markdown_table(["checkpoint", *sets], rows, _one_decimal)]
    return parts + [""]


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
    if report.get("headline"):
        parts += headline_markdown(report)
    if report["inprocess"]:
        rows = inprocess_rows(report)
        clip = next(iter(report["inprocess"].values()))["clip_seconds"]
        parts += [f"## In-process acoustic model ({clip:g} s clips, batch 1)", "",
                  markdown_table(["candidate", "runtime", "threads", "audio-s/s", "p50 ms", "p99 ms", "peak RSS MiB"],
                                 rows, _one_decimal), ""]
    for name, result in report["served"].items():
        parts += [f"## Served ensemble `{name}` (perf_analyzer, gRPC)", "", f"Repository: `{result['repository']}`", ""]
        for sweep, data in result["sweeps"].items():
            gpu = any("gpu_util_mean" in r for r in data["rows"])   # sampled by nvidia-smi (GpuSampler)
            rows = [[r["concurrency"], r["infer_per_sec"], r["audio_seconds_per_second"], r["p50_ms"],
                     r["p99_ms"]] + ([r.get("gpu_util_mean", "–"), r.get("gpu_mem_used_mib_max", "–")] if gpu else [])
                    for r in data["rows"]]
            info = data["input"]
            parts += [f"### {sweep}: {info['entries']} inputs, mean {info['mean_seconds']:.2f} s "
                      f"(windows of {info.get('request_count', '?')} requests, stable within "
                      f"{info.get('stability_percent', '?')}%)", "",
                      markdown_table(["concurrency", "infer/s", "audio-s/s", "p50 ms", "p99 ms"]
                                     + (["GPU util % (mean)", "GPU MiB (max)"] if gpu else []), rows,
                                     _one_decimal), ""]
            levels = [[r["concurrency"], m, t["requests"], t["queue_ms"], t["compute_infer_ms"]]
                      for r in data["rows"] for m, t in r.get("per_model", {}).items()]
            if levels:
                parts += [f"Per-model averages at each concurrency level (Triton statistics, {sweep}):", "",
                          markdown_table(["concurrency", "model", "requests", "queue ms", "compute ms"], levels,
                                         _one_decimal), ""]
        rows = [[m, s["requests"], s["executions"], s["queue_ms"], s["compute_infer_ms"]]
                for m, s in result.get("per_model", {}).items()]
        parts += ["Per-model averages from Triton's statistics (whole run):", "",
                  markdown_table(["model", "requests", "executions", "queue ms", "compute ms"], rows, _one_decimal), ""]
    ratios = []
    clip_best = best_served(report, "clips_")
    for served_name, served_rate in clip_best.items():
        for base_name, base in report["inprocess"].items():
            if base["kind"] == "hf-pytorch":
                ratios.append([served_name, base_name, served_rate, base["audio_seconds_per_second"],
                               served_rate / base["audio_seconds_per_second"]])
    if ratios:
        parts += ["## Served vs in-process PyTorch (same clips, same run)", "",
                  markdown_table(["served", "baseline", "served audio-s/s", "baseline audio-s/s", "ratio"], ratios,
                                 _one_decimal), ""]
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
    if report.get("headline"):
        pareto = pareto_plot(report, out)
        written += [pareto] if pareto else []
    return written


def pareto_plot(report: dict, out: Path) -> Path | None:
    """Speed (throughput profile, long clips) vs test_seen WER, one point per student x variant with
    a known WER plus the teacher; the Pareto front joined and marked. None when no point has both."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in headline_rows(report) if r["audio_s_per_s"] and r["wer"] is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        label = "teacher (HF PyTorch)" if r["teacher"] else f"{r['student']} {r['variant']}"
        ax.scatter(r["audio_s_per_s"], r["wer"], marker="s" if r["teacher"] else "o",
                   s=70 if r["pareto"] else 35, edgecolors="red" if r["pareto"] else "none",
                   linewidths=1.5, zorder=3)
        ax.annotate(label, (r["audio_s_per_s"], r["wer"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    front = sorted((r["audio_s_per_s"], r["wer"]) for r in rows if r["pareto"])
    ax.step([x for x, _ in front], [y for _, y in front], "r--", where="post", lw=1, label="Pareto front")
    ax.set_xlabel(f"audio-s/s, {clip_label(report)} clips: served in the throughput profile; "
                  "teacher in-process (higher is better)", fontsize=8)
    ax.set_ylabel("test_seen WER (lower is better)")
    ax.set_title(f"Speed vs accuracy, {report['machine']}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "pareto.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(report: dict, out: Path) -> None:
    stem = report["title"].replace(" ", "-")
    if report.get("headline"):   # the computed table too, for docs tables and later comparisons
        report["headline"]["table"] = headline_rows(report)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    (out / f"{stem}.md").write_text(markdown(report))
    for png in plots(report, out):
        png.rename(out / f"{stem}-{png.name}")
