"""OpenVINO against onnxruntime on this CPU, one run: `python -m benchmarks.openvino` (`make bench-openvino`).

Why: issue 19 asks whether a second CPU runtime beats onnxruntime int8-mm. This runs the variants
evaluation (builders/variants.py: agreement with onnxruntime fp32, interleaved speed) for
onnxruntime fp32 / int8-mm and OpenVINO fp32 / bf16 / int8 (NNCF, calibrated on the synthetic dev
set) on
  * the trained reference model (`models/reference`): agreement on the synthetic test_seen set and on
    real speech (../shared/data/speech, skipped when absent), speed on a 10 s clip;
  * the base-size 6-layer student with a 256-channel front-end (random weights, built like
    benchmarks/plans.py's `student6-c256`): speed only (its transcripts mean nothing).
Writes <out>/<title>.json, .md and .png.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from w2v_triton.eval.machine import utc_now
from w2v_triton.paths import CORPUS_DIR, REPO_ROOT

RUNTIMES = ("fp32", "int8-mm", "ov-fp32", "ov-bf16", "ov-int8")
LABELS = {"fp32": "onnxruntime fp32", "int8-mm": "onnxruntime int8-mm", "ov-fp32": "OpenVINO fp32",
          "ov-bf16": "OpenVINO bf16", "ov-int8": "OpenVINO int8 (NNCF)"}
MACHINE = "cpu-2core-amd-epyc"


def student_checkpoint() -> Path:
    """The base-size 6-layer student with a 256-channel front-end (plans.py's `student6-c256`)."""
    from benchmarks.plans import NARROW_CONV_CHANNELS, Plan, Student, materialize

    key = f"student6-c{NARROW_CONV_CHANNELS}"
    plan = Plan(title="openvino", students=(Student(key, conv_channels=NARROW_CONV_CHANNELS),),
                baselines={key: key})
    return Path(materialize(plan, "random-base")["baseline"][key])


def variants_report(args: list[str]) -> dict[str, Any]:
    """builders/variants.py's report for `args` (its own file in a temporary folder)."""
    from builders import variants as cli

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        if cli.main([*args, "--variants", *RUNTIMES[1:], "--report", str(out)]) != 0:
            raise RuntimeError(f"builders.variants {' '.join(args)} failed")
        return dict(json.loads(out.read_text()))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from builders.variants import speech_rows

    common = ["--threads", *map(str, args.threads), "--repeats", str(args.repeats),
              "--calibration-size", str(args.calibration_size)]
    started = utc_now()
    report: dict[str, Any] = {"title": args.title, "date": started, "machine": MACHINE,
                              "machine_note": "2-core shared VM (other work running: compare ratios within a table)",
                              "runtimes": LABELS, "argv": sys.argv[1:], "models": {}}
    test_seen = args.corpus / "test_seen.jsonl"
    reference: dict[str, Any] = {"agreement": {}}
    seen = variants_report(["--model", "reference", "--manifest", str(test_seen), "--limit", str(args.limit),
                            "--no-speed", *common])
    reference["agreement"]["test_seen"] = seen
    if speech_rows():
        real = variants_report(["--model", "reference", "--limit", str(args.speech_limit), *common])
        reference["agreement"]["real_speech"] = real
        reference["speed"] = real["speed"]
    else:
        print("../shared/data/speech absent: real-speech agreement skipped; speed on a test_seen clip")
        reference["speed"] = variants_report(["--model", "reference", "--manifest", str(test_seen), "--limit", "20",
                                              "--no-agreement", *common])["speed"]
    report["cpu"] = seen["cpu"]
    report["calibration"] = seen.get("calibration")
    report["models"]["reference"] = reference
    student = variants_report(["--model", str(student_checkpoint()), "--no-agreement", *common])
    report["models"]["student6-c256"] = {"speed": student["speed"], "checkpoint": "random-base-student6-c256"}
    report["finished"] = utc_now()
    return report


def relative_paths(value: Any) -> Any:
    """The report with this checkout's absolute paths made relative to the repository root."""
    root = f"{REPO_ROOT}/"
    if isinstance(value, str):
        return value.replace(root, "")
    if isinstance(value, dict):
        return {k: relative_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [relative_paths(v) for v in value]
    return value


def summary_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per runtime: agreement with onnxruntime fp32 (reference model) and x real time per model."""
    threads = sorted({t for m in report["models"].values() for t in m["speed"]["by_threads"]}, key=int)
    rows = []
    for name in RUNTIMES:
        row = [report["runtimes"][name]]
        for split in ("test_seen", "real_speech"):
            a = report["models"]["reference"]["agreement"].get(split, {}).get("variants", {}).get(name, {}).get("agreement")
            row.append("(reference)" if name == "fp32" else
                       f"{a['differing_transcripts']}/{a['utterances']}, {100 * a['wer_vs_fp32']:.2f}%, "
                       f"{100 * a['frame_argmax_agreement']:.2f}%" if a else "–")
        for model in ("reference", "student6-c256"):
            by = report["models"][model]["speed"]["by_threads"]
            base = {t: by[t]["int8-mm"]["audio_s_per_s"] for t in threads}
            row += [f"{by[t][name]['audio_s_per_s']:.1f} ({by[t][name]['audio_s_per_s'] / base[t]:.2f})" for t in threads]
        rows.append(row)
    return rows


def summary_header(report: dict[str, Any]) -> list[str]:
    threads = sorted({t for m in report["models"].values() for t in m["speed"]["by_threads"]}, key=int)
    return (["runtime", "test_seen: differing, WER, frames vs fp32", "real speech: differing, WER, frames vs fp32"]
            + [f"{m} {t} thr x RT (vs int8-mm)" for m in ("reference", "student6-c256") for t in threads])


def markdown(report: dict[str, Any]) -> str:
    from w2v_triton.eval.tables import markdown_table

    seen = report["models"]["reference"]["agreement"]["test_seen"]["speech"]
    real = report["models"]["reference"]["agreement"].get("real_speech", {}).get("speech")
    lines = [f"# {report['title']}", "",
             f"Date: {report['date']} - {report['finished']}. Machine: {report['machine']} "
             f"({report['cpu'].get('model', '?')}, {report['cpu'].get('logical_cpus', '?')} logical CPUs, "
             f"AVX512-BF16: {report['cpu'].get('flags', {}).get('avx512_bf16')}, AMX: "
             f"{report['cpu'].get('flags', {}).get('amx_tile')}), {report['machine_note']}.", "",
             f"Command: `python -m benchmarks.openvino {' '.join(report['argv'])}`", "",
             f"Agreement: the reference model on test_seen ({seen['utterances']} utterances, {seen['audio_seconds']} s)"
             + (f" and real speech ({real['utterances']} utterances, {real['audio_seconds']} s)" if real else
                " (real speech absent)")
             + ", each utterance alone, transcripts differing / WER / frame argmax agreement vs onnxruntime fp32. "
             f"Speed: 10 s clip, batch 1, median of {report['models']['reference']['speed']['repeats']} interleaved "
             "repeats, audio-s/s (x real time) and the ratio to onnxruntime int8-mm at the same thread count. "
             "student6-c256 = base-size 6-layer student, 256-channel front-end, random weights (speed only). "
             f"ov-int8 calibration: {report.get('calibration')}.", "",
             markdown_table(summary_header(report), summary_rows(report)), ""]
    return "\n".join(lines)


def plot(report: dict[str, Any], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(report["models"])
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4))
    for ax, model in zip(axes, models):
        by = report["models"][model]["speed"]["by_threads"]
        width = 0.8 / len(by)
        for i, (threads, rates) in enumerate(sorted(by.items())):
            xs = [j + i * width for j in range(len(RUNTIMES))]
            ax.bar(xs, [rates[n]["audio_s_per_s"] for n in RUNTIMES], width, label=f"{threads} thread(s)")
        ax.set_xticks([j + width * (len(by) - 1) / 2 for j in range(len(RUNTIMES))])
        ax.set_xticklabels([n for n in RUNTIMES], rotation=20)
        ax.set_ylabel("audio-s/s (10 s clip, batch 1)")
        ax.set_title(model)
        ax.legend()
    fig.suptitle(f"onnxruntime vs OpenVINO, {report['date']}, 2-core shared VM")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--title", default="openvino-runtimes")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / MACHINE)
    ap.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    ap.add_argument("--limit", type=int, default=100, help="test_seen utterances (spread over the set)")
    ap.add_argument("--speech-limit", type=int, default=60, help="real-speech utterances")
    ap.add_argument("--calibration-size", type=int, default=64)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if not (args.corpus / "test_seen.jsonl").is_file():
        print(f"error: {args.corpus}/test_seen.jsonl is missing: build the corpus first (make corpus)", file=sys.stderr)
        return 2
    report = relative_paths(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / args.title
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report) + "\n")
    plot(report, stem.with_suffix(".png"))
    print(markdown(report))
    print(f"report: {stem}.json / .md / .png ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
