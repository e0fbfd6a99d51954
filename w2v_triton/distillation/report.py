"""Compare distillation runs: curves (PNG) and a Markdown table of held-out error rates.

Reads what the trainer and the evaluator already write: `<work dir>/train_log.jsonl` (train
loss and periodic dev evaluations) and `<student dir>/eval_results.json`
(`builders/train_reference.py --eval-only`), so the report never recomputes a figure.
"""
from __future__ import annotations

import json
from pathlib import Path

from w2v_triton.training.trainer import read_log

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


def error_table(models: dict[str, Path], sets: tuple[str, ...] = ("test_seen", "test_unseen", "real_speech")) -> str:
    """Markdown: greedy CER / WER of each model's eval_results.json on each set."""
    header = "| model | " + " | ".join(f"{s} CER / WER" for s in sets) + " |"
    lines = [header, "|---" * (len(sets) + 1) + "|"]
    for name, model_dir in models.items():
        results = json.loads((Path(model_dir) / "eval_results.json").read_text())
        cells = [f"{results[s]['cer']:.3f} / {results[s]['wer']:.3f}" if s in results else "–" for s in sets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def teacher_agreement_table(teacher: Path, students: dict[str, Path],
                            sets: tuple[str, ...] = ("test_seen", "test_unseen", "real_speech")) -> str:
    """Markdown: WER / CER of each student's transcripts scored against the teacher's, per set.
    Inputs are the evaluator's `eval_transcripts.json` files ({set: [{ref, hyp}, ...]}, same order)."""
    from w2v_triton.metrics import error_rates

    reference = json.loads(Path(teacher).read_text())
    lines = ["| student | " + " | ".join(f"{s} WER / CER vs teacher" for s in sets) + " |",
             "|---" * (len(sets) + 1) + "|"]
    for name, path in students.items():
        hyps = json.loads(Path(path).read_text())
        cells = []
        for split in sets:
            if split not in hyps or split not in reference:
                cells.append("–")
                continue
            wer, cer = error_rates([r["hyp"] for r in reference[split]], [h["hyp"] for h in hyps[split]])
            cells.append(f"{wer:.3f} / {cer:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
