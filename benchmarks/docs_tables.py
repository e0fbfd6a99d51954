"""`make docs-tables`: render every measured table in the docs from the results file it comes from.

A rendered table sits between two marker comments that name a renderer and a results file:

    <!-- table: served from benchmarks/results/cpu-2core-amd-epyc/bench-student-random-base.json -->
    | served | ... |
    <!-- /table -->

`python -m benchmarks.docs_tables` rewrites each region from its file; `--check` only reports the
regions that differ (the tests run it). A figure table that is not rendered names its source in a
`<!-- source: PATH -->` comment on the line above it (a test or a builder that computes it);
`unsourced_tables` finds number-looking tables with neither, so a figure cannot enter the docs
without saying where it comes from.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import gpu_summary
from benchmarks.report import HEADLINE_COLUMNS, headline_cells, headline_rows, inprocess_rows
from w2v_triton.eval.tables import eval_table, markdown_table
from w2v_triton.paths import REPO_ROOT

DOCS = ("README.md", "docs/*.md")
REGION = re.compile(r"(?P<open><!-- table: (?P<name>[\w-]+) from (?P<path>\S+) -->\n)(?P<body>.*?)(?P<close><!-- /table -->)",
                    re.DOTALL)
SOURCE = re.compile(r"<!-- source: (?P<path>\S+)[^>]*-->")
# A cell "looks like a figure" when it holds a decimal, a percentage, a thousands separator or a ratio.
FIGURE = re.compile(r"\d\.\d|\d\s?%|\d,\d{3}|\d(\.\d+)?x\b|\d+/\d+|\d\s?(ms|s|MiB|GB|M)\b")


class TableSourceError(ValueError):
    """A marker names an unknown renderer, or its results file is missing or malformed."""


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


# --- renderers: (path) -> markdown table (w2v_triton.eval.tables) ---------------------------------

def render_table(path: Path) -> str:
    """A table recorded as data: {"columns": [...], "rows": [[...]], "machine", "date", "command"}."""
    data = json.loads(path.read_text())
    if not data.get("columns") or not isinstance(data.get("rows"), list):
        raise TableSourceError(f"{path}: needs 'columns' and 'rows'")
    for row in data["rows"]:
        if len(row) != len(data["columns"]):
            raise TableSourceError(f"{path}: row {row} has {len(row)} cells, header {len(data['columns'])}")
    return markdown_table(data["columns"], data["rows"])


def render_inprocess(path: Path) -> str:
    """The in-process rows of a benchmarks.run report."""
    report = json.loads(path.read_text())
    rows = [[name, runtime, threads, _f(rate), _f(p50), _f(p99)]
            for name, runtime, threads, rate, p50, p99, _ in inprocess_rows(report)]
    return markdown_table(["candidate", "runtime", "threads", "audio-s/s", "p50 ms", "p99 ms"], rows)


def _teacher_rate(report: dict[str, Any]) -> float | None:
    rates = [r["audio_seconds_per_second"] for n, r in report["inprocess"].items()
             if r["kind"] == "hf-pytorch" and "teacher" in n]
    return rates[0] if rates else None


def _sweep(result: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return next((d["rows"] for s, d in result["sweeps"].items() if s.startswith(prefix)), [])


def _served_summary(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per served ensemble: 10 s clips by concurrency, best real speech, 0.5 s clip latency and rate."""
    out = []
    for name, result in report["served"].items():
        clips, real, seed = _sweep(result, "clips_"), _sweep(result, "real_speech"), _sweep(result, "seed_")
        best_real = max(real, key=lambda r: r["audio_seconds_per_second"]) if real else None
        out.append({
            "name": name,
            "clips": {r["concurrency"]: r for r in clips},
            "best_clips": max((r["audio_seconds_per_second"] for r in clips), default=None),
            "best_real": best_real,
            "seed_p50_c1": next((r["p50_ms"] for r in seed if r["concurrency"] == 1), None),
            "seed_best_ips": max((r["infer_per_sec"] for r in seed), default=None),
        })
    return out


def render_served(path: Path) -> str:
    """Served ensembles of a benchmarks.run report: 10 s clips, real speech, 0.5 s clips."""
    report = json.loads(path.read_text())
    summary = _served_summary(report)
    concs = sorted({c for s in summary for c in s["clips"]})
    low, high = concs[0], concs[-1]
    teacher = _teacher_rate(report)
    header = ["served", f"10 s clips, conc {low} / {high} (audio-s/s)", "real speech, best (conc)",
              "0.5 s clip p50, conc 1", "0.5 s clips, best infer/s"]
    if teacher:
        header.append(f"best 10 s vs HF teacher ({teacher:.1f})")
    rows = []
    for s in summary:
        row = [s["name"],
               " / ".join(_f(s["clips"][c]["audio_seconds_per_second"]) if c in s["clips"] else "–"
                          for c in (low, high)),
               f"{_f(s['best_real']['audio_seconds_per_second'])} ({s['best_real']['concurrency']})"
               if s["best_real"] else "–",
               f"{_f(s['seed_p50_c1'])} ms" if s["seed_p50_c1"] is not None else "–",
               _f(s["seed_best_ips"])]
        if teacher:
            row.append(f"{s['best_clips'] / teacher:.1f}x" if s["best_clips"] else "–")
        rows.append(row)
    return markdown_table(header, rows)


def render_latency(path: Path) -> str:
    """Single-request latency of each served ensemble (0.5 s clip, concurrency 1) and where it goes
    (Triton's per-model compute, whole run): the serving-profile measurements."""
    report = json.loads(path.read_text())
    rows = []
    for name, result in report["served"].items():
        row = next((r for r in _sweep(result, "seed_") if r["concurrency"] == 1), None)
        if row is None:
            continue
        models = result.get("per_model", {})
        compute = [_f(models.get(m, {}).get("compute_infer_ms")) for m in ("acoustic_model", "preprocessor", "decoder")]
        rows.append([name, f"{_f(row['p50_ms'])} ms", f"{_f(row['p99_ms'])} ms", *compute])
    return markdown_table(["served", "0.5 s clip p50, conc 1", "p99", "acoustic model compute ms",
                          "preprocessor ms", "decoder ms"], rows)


def render_headline(path: Path) -> str:
    """The headline table of a `make bench` report (benchmarks/report.py: both serving profiles, x the
    HF teacher, test_seen WER, Pareto front)."""
    report = json.loads(path.read_text())
    if not report.get("headline"):
        raise TableSourceError(f"{path}: no headline (a report of `--plan student`)")
    return markdown_table(HEADLINE_COLUMNS, headline_cells(headline_rows(report)))


# The issue's targets for the served student (docs/optimization.md).
GOALS = (("served student vs HF PyTorch teacher, 10 s clips", 6.0, "x", True),
         ("served student, 10 s clips (audio-s/s)", 100.0, "", True),
         ("0.5 s clip p50 at concurrency 1 (ms)", 15.0, " ms", False))


def render_goals(path: Path) -> str:
    """Each goal against the best served ensemble of a benchmarks.run report."""
    report = json.loads(path.read_text())
    summary = [s for s in _served_summary(report) if s["best_clips"]]
    teacher = _teacher_rate(report)
    rows = []
    for (goal, target, unit, higher), key in zip(GOALS, ("ratio", "best_clips", "seed_p50_c1"), strict=True):
        values = {s["name"]: (s["best_clips"] / teacher if key == "ratio" and teacher else s[key])
                  for s in summary if (s[key] if key != "ratio" else teacher) is not None}
        if not values:
            continue
        best = (max if higher else min)(values, key=values.__getitem__)
        value = values[best]
        met = value >= target if higher else value <= target
        factor = target / value if higher else value / target
        rows.append([goal, f"{'>=' if higher else '<='} {target:g}{unit}", f"{value:.1f}{unit} ({best})",
                     "met" if met else f"missed by {factor:.1f}x"])
    return markdown_table(["goal", "target", "best measured (served config)", "verdict"], rows)


def render_capacity(path: Path) -> str:
    """docs/deploy-gcp.md's X_inst per served config, and the instances for its worked example."""
    report = json.loads(path.read_text())
    load = 2 * 10_000 / 24  # A = k * H / 24 with H = 10,000 h/day, k = 2
    rows = []
    for s in _served_summary(report):
        top = max(s["clips"]) if s["clips"] else None
        x = s["clips"][top]["audio_seconds_per_second"] if top else None
        real = s["best_real"]
        rows.append([s["name"], f"{_f(x)} (conc {top})" if x else "–",
                     f"{_f(real['audio_seconds_per_second'])} (conc {real['concurrency']}, p99 "
                     f"{real['p99_ms'] / 1000:.1f} s)" if real else "–",
                     str(math.ceil(load / (0.6 * x)) + 1) if x else "–"])
    return markdown_table(["served (one instance)", "X_inst, 10 s clips (audio-s/s)", "real speech, best",
                          "N for 10,000 h/day, k = 2, u = 0.6"], rows)


def render_variants(path: Path) -> str:
    """A builders/variants.py report: agreement with fp32 and speed per variant."""
    report = json.loads(path.read_text())
    threads = sorted(report.get("speed", {}).get("by_threads", {}), key=int)
    speed = report.get("speed", {}).get("by_threads", {})
    labels = (report.get("speech") or {}).get("fp32_vs_labels")   # WER vs the transcripts, when labelled

    def vs_labels(rates: dict[str, float] | None) -> list[str]:
        return [] if not labels else [f"{rates['wer']:.4f}" if rates else ""]

    header = ["variant", "MiB", "differing / utts", "WER vs fp32", "CER vs fp32", "frame argmax agree",
              "max abs dlogit"] + (["WER vs labels"] if labels else []) + [f"{t} thr x RT" for t in threads]
    rows = [["fp32", "", "(reference)", "", "", "", "", *vs_labels(labels)]
            + [_f(speed[t].get("fp32", {}).get("audio_s_per_s")) for t in threads]]
    for name, v in report["variants"].items():
        a = v.get("agreement")
        if not a:
            rows.append([name, "", v.get("skipped", "no agreement measured"), "", "", "", "", *vs_labels(None)]
                        + [""] * len(threads))
            continue
        rows.append([name, round(v["bytes"] / 2**20), f"{a['differing_transcripts']}/{a['utterances']}",
                     _pct(a["wer_vs_fp32"]), _pct(a["cer_vs_fp32"]), _pct(a["frame_argmax_agreement"]),
                     f"{a['max_abs_logit_diff']:.2g}", *vs_labels(a.get("vs_labels"))]
                    + [_f(speed[t].get(name, {}).get("audio_s_per_s")) for t in threads])
    return markdown_table(header, rows)


def render_openvino(path: Path) -> str:
    """benchmarks/openvino.py's report: agreement with onnxruntime fp32 and speed per runtime and model."""
    from benchmarks.openvino import summary_header, summary_rows

    report = json.loads(path.read_text())
    return markdown_table(summary_header(report), summary_rows(report))


def render_variant_speeds(path: Path) -> str:
    """Every builders/variants.py report in a folder: x real time per variant and thread count."""
    reports = sorted(path.glob("*.json"))
    if not reports:
        raise TableSourceError(f"{path}: no reports")
    columns = []
    loaded = []
    for file in reports:
        report = json.loads(file.read_text())
        loaded.append((file.stem, report))
        for t, by_variant in sorted(report["speed"]["by_threads"].items(), key=lambda kv: int(kv[0])):
            columns += [(v, t) for v in by_variant if (v, t) not in columns]
    columns.sort(key=lambda vt: (vt[0] != "fp32", vt[0], int(vt[1])))
    rows = [[stem] + [_f(r["speed"]["by_threads"].get(t, {}).get(v, {}).get("audio_s_per_s")) for v, t in columns]
            for stem, r in loaded]
    return markdown_table(["checkpoint"] + [f"{v}, {t} thr (x RT)" for v, t in columns], rows)


def _long_audio(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text())
    if not report.get("long_audio"):
        raise TableSourceError(f"{path}: no long_audio section (builders/variants.py --long-audio-seconds)")
    return report


def render_long_audio(path: Path) -> str:
    """The long_audio section of a builders/variants.py report: windowed vs one full pass."""
    report = _long_audio(path)
    la = report["long_audio"]
    return markdown_table(["model", "audio", "frames", "argmax agreement", "max abs dlogit (logit std)",
                           "CER / WER chunked vs full"],
                         [[Path(report["checkpoint"]).name, f"{la['seconds']:.1f} s, {la['windows']} windows", la["frames"],
                           _pct(la["argmax_agreement"]), f"{la['max_abs_diff']:.2f} ({la['logit_std']:.2f})",
                           f"{_pct(la['cer_vs_full'])} / {_pct(la['wer_vs_full'])} ({la['full_chars']} chars)"]])


def render_long_audio_seams(path: Path) -> str:
    """Windowed-vs-full differences by distance from the nearest seam (frames)."""
    bands = _long_audio(path)["long_audio"]["by_seam_distance"]
    return markdown_table(["frames from a seam", "frames", "mean abs dlogit", "max abs dlogit", "argmax agreement"],
                         [[band.replace("-inf", "+"), b["frames"], f"{b['mean_abs_diff']:.3f}", f"{b['max_abs_diff']:.2f}",
                           _pct(b["argmax_agreement"])] for band, b in bands.items()])


def render_int8_study(path: Path) -> str:
    """tools/dev/int8_study.py's report: int8 variants against fp32 on its manifest. Reports with the
    goal check (issue 31) also give the label WER's move, the speed relative to int8-mm timed
    interleaved, and whether the goal is met; older ones the absolute 2-thread speed."""
    report = json.loads(path.read_text())
    if "goal" not in report:
        rows = [[name, f"{r['differing']}/{r['n']}" if "differing" in r else "(reference)",
                 _pct(r["wer_vs_fp32"]) if "wer_vs_fp32" in r else "", f"{r['wer_vs_labels']:.4f}",
                 _f(r.get("x_realtime"))] for name, r in report["results"].items()]
        return markdown_table(["variant", "differing / utts", "WER vs fp32", "WER vs labels", "2 threads x RT"], rows)
    rows = [["fp32", "(reference)", "", f"{report['fp32']['wer_vs_labels']:.4f}", "", "", ""]]
    rows += [[name, f"{r['differing']}/{r['n']}", _pct(r["wer_vs_fp32"]), f"{r['wer_vs_labels']:.4f}",
              f"{100 * r['label_wer_move']:+.2f}", f"{r['speed_vs_int8_mm']:.2f}x", "yes" if r["meets_goal"] else ""]
             for name, r in report["results"].items()]
    return markdown_table(["variant", "differing / utts", "WER vs fp32", "WER vs labels", "label WER move (points)",
                           "speed vs int8-mm", "meets goal"], rows)


def render_int8_sensitivity(path: Path) -> str:
    """tools/dev/int8_study.py's per-layer sensitivity: int8-mm with only one group quantised, on dev."""
    report = json.loads(path.read_text())
    rows = [[rank + 1, group.strip("/"), f"{r['differing']}/{r['n']}", _pct(r["wer_vs_fp32"]),
             f"{100 * r['frame_argmax_agreement']:.2f}%"]
            for rank, (group, r) in enumerate((g, report["sensitivity"][g]) for g in report["ranked"])]
    return markdown_table(["rank", "only this group int8 (dev)", "differing / utts", "WER vs fp32", "frame argmax agree"], rows)


def render_eval(path: Path) -> str:
    """builders/train_reference.py's eval_results.json: greedy CER / WER per set, and per synthesiser of
    a set where the corpus had several."""
    return eval_table(json.loads(path.read_text()))


def render_promotion(path: Path) -> str:
    """builders/promote_reference.py --report: both models' CER / WER per set and synthesiser
    (the model card's table)."""
    from w2v_triton.train.model_card import evaluation_table

    report = json.loads(path.read_text())
    return evaluation_table(report["candidate"], report["committed"])


def render_decoding_eval(path: Path) -> str:
    """tools/dev/eval_reference_decoding.py's report: greedy vs beam + each LM, per set."""
    report = json.loads(path.read_text())
    decoders, sets = [], []
    for key in report:
        decoder, _, split = key.partition(" | ")
        decoders += [decoder] if decoder not in decoders else []
        sets += [split] if split not in sets else []
    header = ["set: WER / CER", *decoders, "exact sentences (same order)"]
    rows = []
    for split in sets:
        cells = [report.get(f"{d} | {split}") for d in decoders]
        rows.append([split] + [f"{c['wer']:.3f} / {c['cer']:.3f}" if c else "–" for c in cells]
                    + [" / ".join(str(c["exact"]) if c else "–" for c in cells) + f" of {cells[0]['n']}"])
    return markdown_table(header, rows)


def render_training_curve(path: Path) -> str:
    """The dev CER / WER at each evaluation of a trainer's JSONL log."""
    evals = {}  # a resumed run may repeat steps: the last row written wins (as in plot_log)
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if "dev_cer" in event:
            evals[event["step"]] = event
    if not evals:
        raise TableSourceError(f"{path}: no dev evaluations")
    return markdown_table(["step", "dev CER", "dev WER"],
                         [[step, f"{e['dev_cer']:.3f}", f"{e['dev_wer']:.3f}"] for step, e in sorted(evals.items())])


def render_gpu_served(path: Path) -> str:
    """Every tools/gpu/gpu_serving_bench.sh report in a folder: best rate, latency, GPU utilisation and
    where the time went per variant and sweep, against issue 33's goals (benchmarks/gpu_summary.py)."""
    rows = gpu_summary.summary_rows(path)
    if not rows:
        raise TableSourceError(f"{path}: no gpu-served-*.json reports")
    return gpu_summary.markdown(rows)


def render_acoustic_memory(path: Path) -> str:
    """benchmarks/acoustic_memory.py: per configuration, resident memory after warm-up, then per
    request length the peak / resident after (MiB) and the median time relative to the baseline."""
    from benchmarks.acoustic_memory import table

    return table(json.loads(path.read_text()))


def render_boot_memory(path: Path) -> str:
    """benchmarks/boot_budget.py: start-to-ready and each model process's resident memory per repository."""
    from benchmarks.boot_budget import per_model

    report = json.loads(path.read_text())
    rows = []
    for name, repo in report["repositories"].items():
        ready = repo["start_to_ready_seconds"]
        for model, row in per_model(repo).items():
            rows.append([name, f"{ready['median']} / {ready['max']}" if model == "tritonserver" else "",
                         model, row["instances"], f"{row['after_ready']:.0f}", f"{row['peak']:.0f}",
                         f"{row['after_longest']:.0f}"])
    return markdown_table(["repository", "start -> ready (s, median / max)", "process", "instances",
                           "after ready (MiB)", "peak, longest inputs (MiB)", "after them (MiB)"], rows)


def render_boot_steps(path: Path) -> str:
    """benchmarks/boot_budget.py: a VM's boot-to-ready step by step, measured and estimated."""
    from benchmarks.boot_budget import steps_table

    return steps_table(json.loads(path.read_text()))


def render_gcp_derived(path: Path) -> str:
    """benchmarks/boot_budget.gcp_defaults: the deploy defaults the measured figures imply."""
    gcp = json.loads(path.read_text())["gcp"]
    fits = ", ".join(f"{t} {n}" for t, n in gcp["acoustic_instances_that_fit"].items())
    need = ", ".join(f"{p} {v / 1024:.1f} GiB" for p, v in gcp["vm_memory_needed_mib"].items())
    return markdown_table(["default", "value", "from"], [
        ["machine type (cpu)", gcp["machine_type"], f"VM memory needed at 8 vCPUs: {need}"],
        ["acoustic instances that fit (memory)", fits,
         f"per-instance peak {gcp['per_process_peak_mib']['acoustic_model']} MiB"],
        ["autohealing initial delay", f"{gcp['initial_delay_s']['cpu']} s cpu / {gcp['initial_delay_s']['gpu']} s gpu",
         (f"{gcp['assumptions']['delay_margin']:g} x boot-to-ready {gcp['boot_to_ready_sum_s']['cpu']} / "
          f"{gcp['boot_to_ready_sum_s']['gpu']} s, rounded up to whole 5 minutes")],
        ["autoscaler initialisation period (--cool-down)", f"{gcp['cool_down_s']} s",
         f"cpu boot-to-ready {gcp['boot_to_ready_sum_s']['cpu']} s, rounded up to a whole minute"]])


def render_autoscaling(path: Path) -> str:
    """benchmarks/autoscaling.py: each simulated run's scale-out, drain and scale-in."""
    from benchmarks.autoscaling import analysis_table

    report = json.loads(path.read_text())
    runs = {f"{name}: {report['policies'][name]['signals']}, {report['policies'][name]['target_queue_ms']:g} ms":
            run["analysis"] for name, run in report["variants"].items()}
    runs |= {f"{name} (other target)": a for name, a in report.get("target_sweep", {}).items()}
    return analysis_table(runs)


RENDERERS: dict[str, Callable[[Path], str]] = {
    "table": render_table, "inprocess": render_inprocess, "served": render_served, "goals": render_goals,
    "capacity": render_capacity, "variants": render_variants, "variant-speeds": render_variant_speeds,
    "int8-study": render_int8_study, "int8-sensitivity": render_int8_sensitivity, "long-audio": render_long_audio,
    "long-audio-seams": render_long_audio_seams, "eval": render_eval, "promotion": render_promotion,
    "decoding-eval": render_decoding_eval,
    "training-curve": render_training_curve, "headline": render_headline,
    "latency": render_latency, "openvino": render_openvino, "gpu-served": render_gpu_served,
    "acoustic-memory": render_acoustic_memory, "boot-memory": render_boot_memory, "boot-steps": render_boot_steps,
    "gcp-derived": render_gcp_derived,
    "autoscaling": render_autoscaling,
}


# --- documents ---------------------------------------------------------------------------------

def render_text(text: str, root: Path = REPO_ROOT) -> str:
    """`text` with every marked region re-rendered from its results file."""
    def replace(match: re.Match[str]) -> str:
        name, path = match["name"], root / match["path"]
        if name not in RENDERERS:
            raise TableSourceError(f"unknown table renderer {name!r} (known: {', '.join(RENDERERS)})")
        if not path.exists():
            raise TableSourceError(f"{match['path']}: results file missing")
        try:
            body = RENDERERS[name](path)
        except (KeyError, TypeError, ValueError) as exc:
            raise TableSourceError(f"{match['path']} ({name}): {exc!r}") from exc
        return match["open"] + body + "\n" + match["close"]
    return REGION.sub(replace, text)


def doc_paths(root: Path = REPO_ROOT) -> list[Path]:
    return sorted(p for pattern in DOCS for p in root.glob(pattern))


def tables(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each markdown table outside code fences."""
    found: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start, fenced = 0, False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("|"):
            start = start if current else number
            current.append(line)
            continue
        if current:
            found.append((start, current))
            current = []
    if current:
        found.append((start, current))
    return found


def looks_like_figures(lines: list[str], share: float = 0.25) -> bool:
    """A table whose body cells are at least `share` figures (decimals, percentages, ratios)."""
    cells = [c.strip() for line in lines[2:] for c in line.strip().strip("|").split("|")]
    cells = [c for c in cells if c]
    return bool(cells) and sum(bool(FIGURE.search(c)) for c in cells) / len(cells) >= share


def unsourced_tables(text: str, root: Path = REPO_ROOT) -> list[str]:
    """Figure tables neither rendered from a results file nor preceded by an existing source marker."""
    lines = text.splitlines()
    rendered = {n for m in REGION.finditer(text)
                for n in range(text.count("\n", 0, m.start()) + 1, text.count("\n", 0, m.end()) + 2)}
    problems = []
    for start, body in tables(text):
        if start in rendered or not looks_like_figures(body):
            continue
        above = lines[start - 2] if start >= 2 else ""
        source = SOURCE.search(above)
        if not source:
            problems.append(f"line {start}: figure table without a source ({body[0][:60]})")
        elif not (root / source["path"]).exists():
            problems.append(f"line {start}: source {source['path']} does not exist")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report docs whose tables differ; exit 1 if any")
    parser.add_argument("--root", type=Path, default=REPO_ROOT)
    args = parser.parse_args(argv)
    stale, unsourced = [], []
    for path in doc_paths(args.root):
        text = path.read_text()
        rendered = render_text(text, args.root)
        name = path.relative_to(args.root)
        unsourced += [f"{name}: {p}" for p in unsourced_tables(rendered, args.root)]
        if rendered != text:
            stale.append(str(name))
            if not args.check:
                path.write_text(rendered)
    for problem in unsourced:
        print(problem, file=sys.stderr)
    if args.check and stale:
        print("tables differ from their results files (run `make docs-tables`): " + ", ".join(stale),
              file=sys.stderr)
    elif stale:
        print("rendered: " + ", ".join(stale))
    return 1 if (args.check and stale) or unsourced else 0


if __name__ == "__main__":
    sys.exit(main())
