"""Compare distillation runs: curves (PNG) and a Markdown table of held-out error rates.

Reads what the trainer and the evaluator already write: `<work dir>/train_log.jsonl` (train
loss and periodic dev evaluations) and `<student dir>/eval_results.json`
(`builders/train_reference.py --eval-only`), so the report never recomputes a figure.
"""
from __future__ import annotations

import json
from pathlib import Path

from w2v_triton.eval.tables import markdown_table
from w2v_triton.train.trainer import read_log

DEV_CURVES = (("dev_wer_student_vs_labels", "dev WER vs labels"),
              ("dev_wer_student_vs_teacher", "dev WER vs teacher transcripts"))


def plot_runs(logs: dict[str, Path], png_path: Path, title: str = "distillation") -> None:
    """One row per run name: train loss, then each DEV_CURVES series, against step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 1 + len(DEV_CURVES), figsize=(5 * (1 + len(DEV_CURVES)), 4))
    teacher_wer = None
    for name, path in logs.items():
        rows = read_log(path)
        train = {r["step"]: r["loss"] for r in rows if "loss" in r and "step" in r}
        dev = {r["step"]: r for r in rows if "dev_wer_student_vs_labels" in r}
        axes[0].plot(sorted(train), [train[s] for s in sorted(train)], lw=0.8, label=name)
        for ax, (key, _) in zip(axes[1:], DEV_CURVES):
            ax.plot(sorted(dev), [dev[s][key] for s in sorted(dev)], "o-", label=name)
        teacher_wer = next((r["dev_wer_teacher_vs_labels"] for r in dev.values()), teacher_wer)
    if teacher_wer is not None:
        axes[1].axhline(teacher_wer, color="k", ls="--", lw=1, label="teacher")
    axes[0].set_ylabel("train loss (KD + CTC [+ hidden])"); axes[0].set_yscale("log")
    for ax, (_, label) in zip(axes[1:], DEV_CURVES):
        ax.set_ylabel(label)
    for ax in axes:
        ax.set_xlabel("step"); ax.grid(alpha=0.3); ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def error_rows(models: dict[str, Path], sets: tuple[str, ...] = ("test_seen", "test_unseen", "real_speech"),
               relative_to: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Columns and rows: greedy CER / WER of each model's eval_results.json on each set, its training
    budget (steps, audio hours, training seconds from `<dir>/distill_results.json` and the log, where
    present) and, with `relative_to` (a key of `models`), test_seen WER relative to that model's."""
    results = {n: json.loads((Path(d) / "eval_results.json").read_text()) for n, d in models.items()}
    base = results[relative_to]["test_seen"]["wer"] if relative_to and "test_seen" in results[relative_to] else None
    columns = ["model", *(f"{s} CER / WER" for s in sets)]
    columns += ["test_seen WER vs teacher"] if base else []
    columns += ["parameters", "distillation steps / audio h / training s"]
    rows = []
    for name, model_dir in models.items():
        r = results[name]
        row = [name, *(f"{r[s]['cer']:.3f} / {r[s]['wer']:.3f}" if s in r else "–" for s in sets)]
        if base:
            row.append(f"{100 * (r['test_seen']['wer'] / base - 1):+.1f} %" if "test_seen" in r else "–")
        info_file, done_file = Path(model_dir) / "student_info.json", Path(model_dir) / "distill_results.json"
        params = json.loads(info_file.read_text()).get("student_params") if info_file.is_file() else None
        row.append(f"{params:,}" if params else "–")
        if done_file.is_file():
            done = json.loads(done_file.read_text())
            row.append(f"{done['step']} / {done.get('last', {}).get('audio_hours_seen', 0):.2f} / "
                       f"{done['train_time_s']:.0f}")
        else:
            row.append("–")
        rows.append(row)
    return columns, rows


def error_table(models: dict[str, Path], sets: tuple[str, ...] = ("test_seen", "test_unseen", "real_speech"),
                relative_to: str | None = None) -> str:
    """Markdown of `error_rows`."""
    return markdown_table(*error_rows(models, sets, relative_to))


def teacher_agreement_table(teacher: Path, students: dict[str, Path],
                            sets: tuple[str, ...] = ("test_seen", "test_unseen", "real_speech")) -> str:
    """Markdown: WER / CER of each student's transcripts scored against the teacher's, per set.
    Inputs are the evaluator's `eval_transcripts.json` files ({set: [{ref, hyp}, ...]}, same order)."""
    from w2v_triton.eval.metrics import error_rates

    reference = json.loads(Path(teacher).read_text())
    rows = []
    for name, path in students.items():
        hyps = json.loads(Path(path).read_text())
        cells = []
        for split in sets:
            if split not in hyps or split not in reference:
                cells.append("–")
                continue
            wer, cer = error_rates([r["hyp"] for r in reference[split]], [h["hyp"] for h in hyps[split]])
            cells.append(f"{wer:.3f} / {cer:.3f}")
        rows.append([name, *cells])
    return markdown_table(["student", *(f"{s} WER / CER vs teacher" for s in sets)], rows)
