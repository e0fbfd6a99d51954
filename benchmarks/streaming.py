"""Streaming recognition: segment finals vs offline in process, latency under concurrent streams in
a real tritonserver, and the SLO sweep. Writes streaming-<model>.{json,md,png}, streaming-slo.{json,
md,png} and the docs tables (tables/streaming-quality.json, streaming-load.json, streaming-slo.json)
into benchmarks/results/<machine>/.

Quality (in process, w2v_triton.serving.streaming on the repository's acoustic model and decoder): each
utterance streamed in `--chunk-seconds` chunks; the concatenation of its segment finals (each the
acoustic model re-run over that VAD segment) compared with the offline transcript (WER/CER with
the offline text as reference) and with the true text, for several settings. Sets: real speech
(../shared/data/speech, when present) and clean espeak-ng speech of held-out corpus sentences.

Load (served): N concurrent streams (one gRPC stream each, chunks sent at real-time pace) of
real utterances; per-chunk latency (chunk sent -> its answer; END's answer, which waits for the
stream's finals, is not a chunk's) p50/p99, the segment finals' latency (from the send of the
chunk that closed the segment to the final's own response), the time from a stream's start to its
first non-empty partial, the last response's latency after END, and the real-time factor: the
streaming model's execution time (Triton batch statistics: the chunks; the finals' worker thread
runs outside `execute` and is not in it) per second of audio streamed, and how busy the one model instance was (execution time / wall time of the level: near
1 it is saturated, cannot keep up, and latencies grow).

SLO sweep (`--slo REPO=NAME,...`, served): for each repository (model x decoder) and chunk size,
concurrency doubles (1, 2, 4, ...) until the chunk latency p99 passes `--slo-ms` (300) or a
stream fails; reported: the most concurrent real-time streams within it (Riva's streaming table).

    python -m benchmarks.streaming [--model reference] [--levels 1,2,4,8,16] [--utterances 12]
    python -m benchmarks.streaming --slo build/repos/ref-greedy=teacher/greedy,build/repos/ref-beam=teacher/beam+LM
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from w2v_triton.build.manifest import read_manifest, shared_speech_manifests
from w2v_triton.eval.machine import load_average, machine_name
from w2v_triton.eval.metrics import error_rates
from w2v_triton.eval.tables import markdown_table
from w2v_triton.paths import REPO_ROOT, REPOS_DIR
from w2v_triton.serving import spec
from w2v_triton.serving.typing import AnyArray

# (label, StreamingConfig changes): the default first
SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("silero VAD segments (default)", {}),
    ("one segment per utterance (vad none)", {"vad": "none"}),
    ("silero VAD, min silence 0.3 s", {"min_silence_seconds": 0.3}),
]


def real_speech(count: int, max_seconds: float) -> list[tuple[AnyArray, str]]:
    from w2v_triton.serving.audio import load_audio

    utterances = [u for m in shared_speech_manifests(REPO_ROOT) for u in read_manifest(m)
                  if 2.0 <= u.duration <= max_seconds]
    step = max(1, len(utterances) // count) if utterances else 1
    return [(load_audio(u.audio), u.text) for u in utterances[::step][:count]]


def synthetic_speech(count: int) -> list[tuple[AnyArray, str]]:
    """Clean espeak-ng speech of the corpus' held-out test_seen sentences (training voices)."""
    from w2v_triton.train.corpus import CorpusConfig, split_sentences
    from w2v_triton.train.synthesizers import get

    espeak = get("espeak")
    if espeak.missing():
        return []
    sentences = split_sentences(CorpusConfig())["test_seen"][:count]
    voices = espeak.training_voices()
    return [(espeak.synthesize(text, voices[i % len(voices)], 170, 50), text) for i, text in enumerate(sentences)]


def quality(repository: Path, sets: dict[str, list[tuple[AnyArray, str]]], chunk: float) -> list[dict[str, Any]]:
    from w2v_triton.serving.pipeline import ReferencePipeline, model_parameters
    from w2v_triton.serving.streaming import ChunkedRecognizer, build_recognizer, transcript, version_dir

    pipeline = ReferencePipeline(repository)
    base = build_recognizer(model_parameters(repository, spec.STREAMING_MODEL), version_dir(repository),
                            warmup=False)
    rows = []
    for name, items in sets.items():
        if not items:
            continue
        truth = [text for _, text in items]
        offline = [pipeline.transcribe(audio) for audio, _ in items]
        seconds = sum(a.size for a, _ in items) / spec.SAMPLE_RATE
        offline_wer = error_rates(truth, offline)[0]
        for label, changes in SETTINGS:
            recognizer = ChunkedRecognizer(base.acoustic, base.decoder, base.do_normalize,
                                           replace(base.config, **changes))
            started = time.perf_counter()
            streamed = [recognizer.recognize(audio, chunk) for audio, _ in items]
            elapsed = time.perf_counter() - started
            finals = [transcript(r) for r in streamed]
            wer, cer = error_rates(offline, finals)
            rows.append({"set": name, "utterances": len(items), "audio_s": round(seconds, 1),
                         "setting": label, "segments": sum(len(f.finals) for r in streamed for f in r),
                         "wer_vs_offline": round(wer, 4), "cer_vs_offline": round(cer, 4),
                         "identical": sum(a == b for a, b in zip(offline, finals, strict=True)),
                         "wer_vs_truth": round(error_rates(truth, finals)[0], 4),
                         "offline_wer_vs_truth": round(offline_wer, 4),
                         "inprocess_rtf": round(elapsed / seconds, 3)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _stream_worker(url: str, audio: AnyArray, chunk: float, out: dict[str, Any]) -> None:
    from client import TranscriptionClient

    try:
        with TranscriptionClient(url, "grpc", timeout=120) as asr:
            updates = list(asr.stream(audio, chunk_seconds=chunk, realtime=True))
        # a chunk's answer; END's waits for the stream's finals and is reported as "final"
        out["latencies"] = [u.latency_s for u in updates if u.kind == "chunk" and not u.is_final]
        out["segment_finals"] = [u.latency_s for u in updates if u.kind == "final"]
        out["first"] = updates[0].latency_s
        out["final"] = updates[-1].latency_s
        texts = [u for u in updates if u.text]
        out["first_text_audio_s"] = texts[0].audio_s if texts else None
        # from the stream's start (chunk k is sent at k x chunk) to the first non-empty partial
        out["first_text_s"] = texts[0].chunk * chunk + texts[0].latency_s if texts else None
    except Exception as exc:   # counted and reported as a failed stream
        out["error"] = str(exc)


def _execution_stats(url: str) -> tuple[int, int, int]:
    """(compute ns, executions, requests) of the streaming model so far. Compute time is summed
    over executions (batch_stats): per-request compute_infer counts a batch once per request."""
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(url) as client:
        stats = client.get_inference_statistics(spec.STREAMING_MODEL, as_json=True)
    model = stats["model_stats"][0]
    batches = model.get("batch_stats", [])
    compute = sum(int(b.get("compute_infer", {}).get("ns", 0)) for b in batches)
    executions = sum(int(b.get("compute_infer", {}).get("count", 0)) for b in batches)
    requests = int(model["inference_stats"].get("success", {}).get("count", 0))
    return compute, executions, requests


def percentile_ms(seconds: list[float], q: float, digits: int = 1) -> float:
    """The q-th percentile of latencies in seconds, in milliseconds (the results files' unit)."""
    return round(1000 * float(np.percentile(seconds, q)), digits)


def run_level(url: str, clips: list[AnyArray], n: int, chunk: float) -> dict[str, Any]:
    """N concurrent real-time streams (clip i % len(clips) each) against a running server."""
    outs: list[dict[str, Any]] = [{} for _ in range(n)]
    audio = [clips[i % len(clips)] for i in range(n)]
    before = _execution_stats(url)
    started = time.perf_counter()
    threads = [threading.Thread(target=_stream_worker, args=(url, a, chunk, o)) for a, o in zip(audio, outs, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    wall = time.perf_counter() - started
    after = _execution_stats(url)
    compute_s = (after[0] - before[0]) / 1e9
    executions, requests = after[1] - before[1], after[2] - before[2]
    ok = [o for o in outs if "error" not in o]
    latencies = [x for o in ok for x in o["latencies"]] or [float("nan")]
    seconds = sum(a.size for a in audio) / spec.SAMPLE_RATE
    row = {"streams": n, "failed": n - len(ok), "audio_s": round(seconds, 1), "wall_s": round(wall, 1),
           "chunk_p50_ms": percentile_ms(latencies, 50),
           "chunk_p99_ms": percentile_ms(latencies, 99),
           "first_response_ms": round(1000 * statistics.median([o["first"] for o in ok] or [0.0]), 1),
           "first_text_ms": round(1000 * statistics.median(
               [o["first_text_s"] for o in ok if o["first_text_s"] is not None] or [0.0]), 1),
           "final_ms": round(1000 * statistics.median([o["final"] for o in ok] or [0.0]), 1),
           "segment_finals": sum(len(o["segment_finals"]) for o in ok),
           "segment_final_p50_ms": percentile_ms(finals, 50) if (finals := [x for o in ok for x in o["segment_finals"]]) else None,
           "first_text_audio_s": statistics.median(
               [o["first_text_audio_s"] for o in ok if o["first_text_audio_s"] is not None] or [0.0]),
           "compute_s": round(compute_s, 2), "rtf": round(compute_s / seconds, 3),
           "busy": round(compute_s / wall, 2),
           "chunks_per_execution": round(requests / max(executions, 1), 2),
           "load_average": load_average(),
           "errors": sorted({o["error"] for o in outs if "error" in o})[:3]}
    print(json.dumps(row), flush=True)
    return row


def load(repository: Path, clips: list[AnyArray], levels: list[int], chunk: float, log: Path) -> list[dict[str, Any]]:
    from w2v_triton.serving.tritonserver import Ports, TritonServer

    with TritonServer(repository, Ports.free(), log_path=log) as server:
        warm: dict[str, Any] = {}
        _stream_worker(server.grpc_url, clips[0][: 2 * spec.SAMPLE_RATE], chunk, warm)
        return [run_level(server.grpc_url, clips, n, chunk) for n in levels]


SLO_CHUNKS = (0.16, 0.32, 0.64)


def slo(repositories: dict[str, Path], clips: list[AnyArray], chunks: tuple[float, ...], limit_ms: float,
        max_streams: int, log_dir: Path) -> list[dict[str, Any]]:
    """For each repository and chunk size: concurrency doubles until p99 > limit_ms or a stream
    fails; the largest level within the limit is what this machine holds."""
    from w2v_triton.serving.tritonserver import Ports, TritonServer

    rows = []
    for name, repository in repositories.items():
        with TritonServer(repository, Ports.free(), log_path=log_dir / f"{name.replace('/', '-')}.log") as server:
            warm: dict[str, Any] = {}
            _stream_worker(server.grpc_url, clips[0][: 2 * spec.SAMPLE_RATE], 0.32, warm)
            for chunk in chunks:
                levels, n = [], 1
                while n <= max_streams:
                    levels.append(run_level(server.grpc_url, clips, n, chunk))
                    if levels[-1]["failed"] or levels[-1]["chunk_p99_ms"] > limit_ms:
                        break
                    n *= 2
                held = [r for r in levels if not r["failed"] and r["chunk_p99_ms"] <= limit_ms]
                rows.append({"setup": name, "chunk_s": chunk, "streams_within_slo": held[-1]["streams"] if held else 0,
                             "p99_ms_at_that": held[-1]["chunk_p99_ms"] if held else None,
                             "p50_ms_at_that": held[-1]["chunk_p50_ms"] if held else None,
                             "rtf_at_that": held[-1]["rtf"] if held else None, "levels": levels})
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "levels"}), flush=True)
    return rows


def _load(values: list[float]) -> str:
    return " / ".join(f"{x:g}" for x in values)


def _finals_cell(row: dict[str, Any]) -> str:
    """Segment finals' latency (from the send of the chunk that closed the segment), in their own
    responses; results from before that have none."""
    if "segment_finals" not in row:
        return "–"
    return f"{row['segment_final_p50_ms']} ms ({row['segment_finals']})" if row["segment_finals"] else "– (0)"


def markdown(report: dict[str, Any]) -> str:
    quality = [[f"{r['set']} ({r['utterances']}, {r['audio_s']} s)", r["setting"], r["segments"],
                f"{100 * r['wer_vs_offline']:.1f}%", f"{100 * r['cer_vs_offline']:.1f}%", f"{r['identical']}/{r['utterances']}",
                f"{100 * r['wer_vs_truth']:.1f}% ({100 * r['offline_wer_vs_truth']:.1f}%)", f"{r['inprocess_rtf']:.3f}"]
               for r in report["quality"]]
    load = [[r["streams"], r["chunk_p50_ms"], r["chunk_p99_ms"], _finals_cell(r), r["first_text_ms"], r["final_ms"],
             f"{r['rtf']:.3f}", f"{r['busy']:.2f}", r["chunks_per_execution"], r["failed"]] for r in report["load"]]
    lines = [f"# Streaming recognition ({report['model']}, {report['chunk_seconds']:g} s chunks)", "",
             (f"{report['machine']} (2 cores, shared with other jobs while measured), {report['date']}"
              + (f", load average {_load(report['load_average_at_start'])} at start, "
                 f"{_load(report['load_average_at_end'])} at end" if "load_average_at_start" in report else "")
              + f". Command: `{report['command']}`"), "", "## Final vs offline (in process)", "",
             markdown_table(["set", "setting", "segments", "WER vs offline", "CER vs offline", "identical",
                             "WER vs truth (offline)", "RTF"], quality), "",
             "## Concurrent streams (served, real-time pacing)", "",
             markdown_table(["streams", "chunk p50 (ms)", "chunk p99 (ms)", "segment finals p50 (count)",
                             "first text (ms)", "final (ms)", "RTF", "busy", "chunks/execution", "failed"], load)]
    return "\n".join(lines) + "\n"


def tables(report: dict[str, Any], folder: Path) -> None:
    """The docs' tables (benchmarks.docs_tables `table` renderer)."""
    common = {"machine": report["machine"], "date": report["date"], "command": report["command"]}
    quality_rows = [[f"{r['set']} ({r['utterances']} utts, {r['audio_s']} s)", r["setting"], r["segments"],
                     f"{100 * r['wer_vs_offline']:.1f}%", f"{100 * r['cer_vs_offline']:.1f}%",
                     f"{r['identical']}/{r['utterances']}",
                     f"{100 * r['wer_vs_truth']:.1f}% ({100 * r['offline_wer_vs_truth']:.1f}%)"]
                    for r in report["quality"]]
    load_rows = [[r["streams"], f"{r['chunk_p50_ms']} ms", f"{r['chunk_p99_ms']} ms", _finals_cell(r),
                  f"{r['first_text_ms']} ms",
                  f"{r['final_ms']} ms", f"{r['rtf']:.3f}", f"{r['busy']:.2f}", f"{r['chunks_per_execution']:.2f}",
                  f"{r['failed']}/{r['streams']}"] for r in report["load"]]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "streaming-quality.json").write_text(json.dumps({**common, "columns": [
        "set", "setting", "segments", "WER vs offline", "CER vs offline", "identical",
        "WER vs truth (offline's)"], "rows": quality_rows}, indent=1) + "\n")
    (folder / "streaming-load.json").write_text(json.dumps({**common, "columns": [
        "streams", "chunk latency p50", "chunk latency p99", "segment finals' latency p50 (count)",
        "first text (from stream start)",
        "final (after END)", "RTF (compute / audio)", "instance busy", "chunks per execution", "failed"],
        "rows": load_rows}, indent=1) + "\n")


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["load"]
    n = [r["streams"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(n, [r["chunk_p50_ms"] for r in rows], "o-", label="chunk p50")
    left.plot(n, [r["chunk_p99_ms"] for r in rows], "o-", label="chunk p99")
    left.plot(n, [r["first_text_ms"] for r in rows], "s--", label="first text (from start)")
    left.plot(n, [r["final_ms"] for r in rows], "^--", label="final after END")
    left.axhline(1000 * report["chunk_seconds"], color="grey", lw=0.8, ls=":", label="chunk length")
    left.set_xscale("log", base=2)
    left.set_yscale("log")
    left.set_xlabel("concurrent streams")
    left.set_ylabel("latency (ms)")
    left.legend(fontsize=7)
    right.plot(n, [r["rtf"] for r in rows], "o-", label="RTF: compute s per audio s")
    right.plot(n, [r["busy"] for r in rows], "s--", label="instance busy: compute s per wall s")
    right.axhline(1.0, color="grey", lw=0.8, ls=":")
    right.set_xscale("log", base=2)
    right.set_xlabel("concurrent streams")
    right.legend(fontsize=7)
    fig.suptitle(f"streaming_asr, {report['model']}, {report['chunk_seconds']:g} s chunks, "
                 f"{report['machine']} (shared), {report['date'][:10]}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from w2v_triton.build.builder import BuildError, BuildRequest, build_repository

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="reference")
    parser.add_argument("--chunk-seconds", type=float, default=0.5)
    parser.add_argument("--levels", default="1,2,4,8,16")
    parser.add_argument("--utterances", type=int, default=12, help="per quality set")
    parser.add_argument("--max-seconds", type=float, default=8.0, help="longest real utterance used")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--slo", default="", help="REPO=NAME,...: run the SLO sweep over these repositories "
                        "(built with make build-models) instead of the quality and load runs")
    parser.add_argument("--slo-ms", type=float, default=300.0, help="chunk latency p99 bound of the SLO sweep")
    parser.add_argument("--slo-chunks", default=",".join(str(c) for c in SLO_CHUNKS))
    parser.add_argument("--slo-max-streams", type=int, default=64)
    parser.add_argument("--slo-retable", action="store_true", help="redo the SLO plot and table from its results file")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / machine_name())
    args = parser.parse_args(argv)
    if args.slo_retable:
        slo_outputs(json.loads((args.out / "streaming-slo.json").read_text()), args.out)
        return 0
    if args.slo:
        return slo_main(args, argv)
    repository = REPOS_DIR / f"streaming-{args.model}"
    try:
        build_repository(BuildRequest(model=args.model, output=repository))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    load_start = load_average()
    real = real_speech(args.utterances, args.max_seconds)
    sets = {"real speech": real, "espeak-ng clean": synthetic_speech(args.utterances)}
    rows = [] if args.skip_quality else quality(repository, sets, args.chunk_seconds)
    clips = [a for a, _ in real] or [a for a, _ in sets["espeak-ng clean"]]
    if not clips:
        print("error: no real speech and no espeak-ng: nothing to stream", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        load_rows = load(repository, clips, [int(x) for x in args.levels.split(",")], args.chunk_seconds,
                         Path(tmp) / "tritonserver.log")
    report = {"title": "streaming", "machine": machine_name(),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "model": args.model,
              "chunk_seconds": args.chunk_seconds,
              "command": "python -m benchmarks.streaming " + " ".join(sys.argv[1:] if argv is None else argv),
              "load_audio": "real speech" if real else "espeak-ng", "load_average_at_start": load_start,
              "load_average_at_end": load_average(), "quality": rows, "load": load_rows}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"streaming-{args.model}"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(report))
    plot(report, args.out / f"{stem}.png")
    if rows:
        tables(report, args.out / "tables")
    print(f"results: {args.out / stem}.json")
    return 0


def slo_main(args: argparse.Namespace, argv: list[str] | None) -> int:
    repositories = {name: Path(repo) for repo, name in (item.split("=", 1) for item in args.slo.split(","))}
    clips = [a for a, _ in real_speech(args.utterances, args.max_seconds)]
    if not clips:
        clips = [a for a, _ in synthetic_speech(args.utterances)]
    if not clips:
        print("error: no real speech and no espeak-ng: nothing to stream", file=sys.stderr)
        return 2
    chunks = tuple(float(c) for c in args.slo_chunks.split(","))
    load_start = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        rows = slo(repositories, clips, chunks, args.slo_ms, args.slo_max_streams, Path(tmp))
    report = {"title": "streaming-slo", "machine": machine_name(), "slo_ms": args.slo_ms,
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": "python -m benchmarks.streaming " + " ".join(sys.argv[1:] if argv is None else argv),
              "clips": len(clips), "clip_seconds": round(sum(c.size for c in clips) / spec.SAMPLE_RATE / len(clips), 1),
              "chunks": list(chunks), "load_average_at_start": load_start,
              "load_average_at_end": load_average(),
              "repositories": {k: str(v) for k, v in repositories.items()}, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "streaming-slo.json").write_text(json.dumps(report, indent=2) + "\n")
    slo_outputs(report, args.out)
    print(f"results: {args.out / 'streaming-slo.json'}")
    return 0


def slo_outputs(report: dict[str, Any], out: Path) -> None:
    """The SLO sweep's plot and docs table, from its results file (`--slo-retable` redoes them)."""
    plot_slo(report, out / "streaming-slo.png")
    chunks = report.get("chunks") or sorted({r["chunk_s"] for r in report["rows"]})

    def cell(name: str, chunk: float) -> str:
        for r in report["rows"]:
            if r["setup"] == name and r["chunk_s"] == chunk:
                if r["streams_within_slo"]:
                    return f"{r['streams_within_slo']} (p50 / p99 {r['p50_ms_at_that']} / {r['p99_ms_at_that']} ms)"
                one = r["levels"][0]
                return f"0 (1 stream: p50 / p99 {one['chunk_p50_ms']} / {one['chunk_p99_ms']} ms)"
        return ""

    common = {"machine": report["machine"], "date": report["date"], "command": report["command"]}
    table = {**common, "columns": ["model / decoder"] + [f"{c:g} s chunks" for c in chunks],
             "rows": [[name] + [cell(name, c) for c in chunks] for name in report["repositories"]]}
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "tables" / "streaming-slo.json").write_text(json.dumps(table, indent=1) + "\n")


def plot_slo(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    for row in report["rows"]:
        levels = row["levels"]
        ax.plot([r["streams"] for r in levels], [r["chunk_p99_ms"] for r in levels], "o-",
                label=f"{row['setup']}, {row['chunk_s']:g} s")
    ax.axhline(report["slo_ms"], color="grey", ls=":", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("concurrent real-time streams")
    ax.set_ylabel("chunk latency p99 (ms)")
    ax.legend(fontsize=6, ncol=2)
    ax.set_title(f"streaming_asr SLO sweep, {report['machine']} (shared), {report['date'][:10]}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
