"""The speed / accuracy Pareto front, how long each point trained, and the plot of both.

    python -m benchmarks.pareto benchmarks/results/<machine>/bench-distilled-reference.json \\
        --training layers6-prune=benchmarks/results/<machine>/distilled/layers6-prune ...

`make bench` records each headline row's training time (`read_training`: the distill_results.json or
training_summary.json next to its eval_results.json) and draws the plot; the command above adds
training times to a report made before it did (from the named folders' files) and redraws its
`<stem>-pareto.png`. Labels are placed by adjustText, so none overlaps another or a point.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger(__name__)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (speed, error) points (higher speed and lower error are better): True where no other
    point is at least as fast and at least as accurate and strictly better on one of the two.
    Equal points are both on the front."""
    on_front = []
    for i, (speed, error) in enumerate(points):
        dominated = any(s >= speed and e <= error and (s > speed or e < error)
                        for j, (s, e) in enumerate(points) if j != i)
        on_front.append(not dominated)
    return on_front


def read_training(model_dir: str | Path) -> dict[str, Any] | None:
    """How long a checkpoint trained, from what its trainer wrote next to it: distill_results.json
    (a distilled student: its distillation, the teacher's training not counted) or
    training_summary.json (trained from scratch). None when neither is there."""
    d = Path(model_dir)
    if (d / "distill_results.json").is_file():
        r = json.loads((d / "distill_results.json").read_text())
        return {"kind": "distillation", "seconds": float(r["train_time_s"]), "steps": int(r["step"]),
                "device": r.get("device"), "source": str(d / "distill_results.json")}
    if (d / "training_summary.json").is_file():
        r = json.loads((d / "training_summary.json").read_text())
        return {"kind": "training", "seconds": float(r["train_time_s"]), "steps": int(r["steps"]),
                "device": r.get("device"), "source": str(d / "training_summary.json")}
    return None


def training_text(training: dict[str, Any] | None) -> str:
    """e.g. "KD 40 min", "KD 1.8 h", "trained 8 min (NVIDIA H200)"; "–" when unknown."""
    if not training:
        return "–"
    minutes = training["seconds"] / 60
    amount = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
    text = f"{'KD' if training['kind'] == 'distillation' else 'trained'} {amount}"
    return text + (f" ({training['device']})" if training.get("device") else "")


class FrontPlot(NamedTuple):
    path: Path
    labels: list[str]
    overlaps: int     # labels left overlapping another label or a point (logged when > 0)


def plot_front(rows: list[dict[str, Any]], path: Path, title: str, xlabel: str) -> FrontPlot:
    """Speed vs WER, one point per row ({"label", "audio_s_per_s", "wer", "pareto", "teacher",
    "training"}), the front joined; each label names the point and its training time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from adjustText import adjust_text

    fig, ax = plt.subplots(figsize=(8, 5.5))
    texts = []
    for r in rows:
        ax.scatter(r["audio_s_per_s"], r["wer"], marker="s" if r["teacher"] else "o",
                   s=70 if r["pareto"] else 35, edgecolors="red" if r["pareto"] else "none",
                   linewidths=1.5, zorder=3, color="C1" if r["teacher"] else "C0")
        texts.append(ax.text(r["audio_s_per_s"], r["wer"], f"{r['label']}\n{training_text(r.get('training'))}",
                             fontsize=7, zorder=4))
    front = sorted((r["audio_s_per_s"], r["wer"]) for r in rows if r["pareto"])
    ax.step([x for x, _ in front], [y for _, y in front], "r--", where="post", lw=1, label="Pareto front")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("test_seen WER (lower is better)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    ax.margins(x=0.15, y=0.2)
    # labels keep clear of the points and of the front's line (sampled along its steps)
    xs, ys = [r["audio_s_per_s"] for r in rows], [r["wer"] for r in rows]
    for (x0, y0), (x1, y1) in itertools.pairwise(front):
        for t in [i / 20 for i in range(1, 20)]:
            xs += [x0 + t * (x1 - x0), x1]
            ys += [y0, y0 + t * (y1 - y0)]
    adjust_text(texts, x=xs, y=ys, target_x=xs[:len(rows)], target_y=ys[:len(rows)], ax=ax,
                expand=(1.4, 1.9), force_text=(0.6, 1.2), force_static=(0.6, 1.2), iter_lim=3000,
                ensure_inside_axes=True, min_arrow_len=0, arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5})
    fig.tight_layout()
    overlaps = overlapping_labels(fig, ax, texts, list(zip(xs[:len(rows)], ys[:len(rows)], strict=True)))
    if overlaps:
        log.warning("%s: %d labels still overlap another label or a point", path, overlaps)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return FrontPlot(path, [t.get_text() for t in texts], overlaps)


def overlapping_labels(fig: Any, ax: Any, texts: Sequence[Any], points: Sequence[tuple[float, float]],
                       marker_px: float = 6.0) -> int:
    """How many label boxes overlap another label's box or a point's marker (a square of
    2 x marker_px pixels around it)."""
    from matplotlib.transforms import Bbox

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    markers = [Bbox.from_extents(px - marker_px, py - marker_px, px + marker_px, py + marker_px)
               for px, py in (ax.transData.transform(p) for p in points)]
    pairs = sum(1 for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b))
    return pairs + sum(1 for a in boxes for m in markers if a.overlaps(m))


def add_training(report: dict[str, Any], dirs: dict[str, str], teacher_dir: str | None) -> dict[str, Any]:
    """Set the training time of the headline rows of the students named in `dirs` (and of the
    teacher) from the files in those folders; rows already holding one keep it."""
    info = report["headline"]
    missing = [name for name, d in dirs.items() if read_training(d) is None]
    if missing:
        raise ValueError(f"no distill_results.json or training_summary.json for {missing}")
    for row in info["rows"]:
        if row.get("training") is None and row["student"] in dirs:
            row["training"] = read_training(dirs[row["student"]])
    if teacher_dir and info["teacher"].get("training") is None:
        info["teacher"]["training"] = read_training(teacher_dir)
    info["training_added"] = {"by": "python -m benchmarks.pareto", "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    return report


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import headline_rows, markdown, pareto_plot

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", type=Path, help="a make bench report (JSON with a headline)")
    ap.add_argument("--training", action="append", default=[], metavar="STUDENT=DIR",
                    help="the folder with that student's distill_results.json / training_summary.json")
    ap.add_argument("--teacher-training", default=None, metavar="DIR", help="the teacher's folder")
    a = ap.parse_args(argv)
    report = json.loads(a.report.read_text())
    if not report.get("headline"):
        print(f"error: {a.report} has no headline (not a make bench report)", file=sys.stderr)
        return 2
    try:
        dirs = dict(item.split("=", 1) for item in a.training)
        add_training(report, dirs, a.teacher_training)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report["headline"]["table"] = headline_rows(report)
    a.report.write_text(json.dumps(report, indent=2))
    a.report.with_suffix(".md").write_text(markdown(report))   # the headline table gains its training column
    png = pareto_plot(report, a.report.parent)
    if png is not None:
        png = png.rename(a.report.with_name(f"{a.report.stem}-pareto.png"))
    print(f"{a.report} and its .md (training times), {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
