"""Streams that last (issue 30): latency drift over 600 s streams, segment finals vs offline, and a
2-hour stream's memory. Heavy: run outside CI, with nice. Results (JSON + PNG) go to
benchmarks/results/<machine>/streaming-long-<model>.{json,md,png} and streaming-marathon-<model>.*,
and the docs tables to tables/streaming-long-*.json.

* narration: espeak-ng speech of the corpus' held-out sentences in the training voices (what the
  reference model knows), a few sentences per espeak call so it pauses as a narrator does; each
  stream gets its own voice and sentences. Real speech: ../shared/data/speech utterances back to
  back (when present).
* quality (in process, the streaming library the server runs): each 600 s stream in chunks; the
  concatenated segment finals against the offline transcript of the same audio (the `asr`
  pipeline: long-audio windows, one beam search per pause-delimited piece) and against the true text.
* drift (served, real-time pacing or back to back, 1 and 8 concurrent streams over gRPC): every
  chunk's latency (its answer; segment finals come in responses of their own) by minute of stream
  time; the ratio of the last minute's p99 to the first minute's; the finals' latency (from the
  send of the chunk that closed the segment) over the whole stream.
* marathon (in process, unpaced): a 2-hour stream (the narration looped); process RSS, the
  stream's kept bytes and per-chunk compute (the chunk's own: its segments' finals are computed
  after it, as the server's worker thread does) by 10 minutes of stream time.

    nice python -m benchmarks.streaming_long --repository build/repos/ref-beam --model reference-beam-lm
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.streaming import percentile_ms
from w2v_triton.build.manifest import read_manifest, shared_speech_manifests
from w2v_triton.eval.machine import load_average, machine_name
from w2v_triton.eval.metrics import error_rates
from w2v_triton.paths import REPO_ROOT, WORK_DIR
from w2v_triton.serving import spec
from w2v_triton.serving.pipeline import model_parameters
from w2v_triton.serving.typing import AnyArray

SR = spec.SAMPLE_RATE
CACHE = WORK_DIR / "streaming-long"


def narration(seconds: float, index: int) -> tuple[AnyArray, str]:
    """Up to `seconds` of espeak-ng narration (cached): held-out sentences, 4 per espeak call,
    voice `index` of the training voices; (audio, true text)."""
    import soundfile as sf

    path = CACHE / f"narration-{index}-{int(seconds)}s.flac"
    if path.is_file():
        return sf.read(path, dtype="float32")[0], path.with_suffix(".txt").read_text()
    from w2v_triton.train.corpus import CorpusConfig, split_sentences
    from w2v_triton.train.synthesizers import get

    espeak = get("espeak")
    splits = split_sentences(CorpusConfig())
    sentences = [s for name in ("test_seen", "test_unseen", "dev") for s in splits[name]]
    voices = espeak.training_voices()
    rng = np.random.default_rng(index)
    order = rng.permutation(len(sentences))
    parts, texts, total = [], [], 0
    for k in range(0, len(order), 4):
        group = [sentences[i] for i in order[k:k + 4]]
        audio = espeak.synthesize(". ".join(group), voices[index % len(voices)], 170, 50)
        if total + audio.size > seconds * SR:
            break
        parts.append(audio)
        texts += group
        total += audio.size
    audio, text = np.concatenate(parts), " ".join(texts)
    CACHE.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SR, subtype="PCM_16")
    path.with_suffix(".txt").write_text(text)
    return sf.read(path, dtype="float32")[0], text   # as stored (16-bit), like every later run


def real_stream(seconds: float) -> tuple[AnyArray, str] | None:
    """Real utterances back to back, up to `seconds`; None without ../shared."""
    from w2v_triton.serving.audio import load_audio

    utterances = [u for m in shared_speech_manifests(REPO_ROOT) for u in read_manifest(m)]
    parts, texts, total = [], [], 0
    for u in utterances:
        audio = load_audio(u.audio)
        if total + audio.size > seconds * SR:
            break
        parts.append(audio)
        texts.append(u.text)
        total += audio.size
    return (np.concatenate(parts), " ".join(texts)) if parts else None


def quality(repository: Path, streams: dict[str, tuple[AnyArray, str]], chunk: float) -> list[dict[str, Any]]:
    """Concatenated segment finals vs the offline transcript and the truth, in process."""
    from w2v_triton.serving.pipeline import ReferencePipeline
    from w2v_triton.serving.streaming import build_recognizer, transcript, version_dir

    pipeline = ReferencePipeline(repository)
    recognizer = build_recognizer(model_parameters(repository, spec.STREAMING_MODEL), version_dir(repository),
                                  warmup=False)
    rows = []
    for name, (audio, truth) in streams.items():
        offline = pipeline.transcribe(audio)
        started = time.perf_counter()
        results = recognizer.recognize(audio, chunk)
        elapsed = time.perf_counter() - started
        finals = [f for r in results for f in r.finals]
        streamed = transcript(results)
        lengths = [f["end_s"] - f["start_s"] for f in finals]
        row = {"stream": name, "audio_s": round(audio.size / SR, 1), "segments": len(finals),
               "segment_s_median": round(float(np.median(lengths)), 2), "segment_s_max": round(max(lengths), 2),
               "wer_vs_offline": round(error_rates([offline], [streamed])[0], 4),
               "cer_vs_offline": round(error_rates([offline], [streamed])[1], 4),
               "wer_vs_truth": round(error_rates([truth], [streamed])[0], 4),
               "offline_wer_vs_truth": round(error_rates([truth], [offline])[0], 4),
               "inprocess_rtf": round(elapsed / (audio.size / SR), 3)}
        row["wer_gap_vs_truth"] = round(row["wer_vs_truth"] - row["offline_wer_vs_truth"], 4)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def _paced(url: str, audio: AnyArray, chunk: float, out: dict[str, Any], realtime: bool = True) -> None:
    from client import TranscriptionClient

    try:
        with TranscriptionClient(url, "grpc", timeout=300) as asr:
            updates = list(asr.stream(audio, chunk_seconds=chunk, realtime=realtime))
        # a chunk's answer (END's is not: it waits for the stream's finals, and is counted with them)
        out["chunks"] = [(u.audio_s, u.latency_s) for u in updates if u.kind == "chunk" and not u.is_final]
        # segment finals, from the send of the chunk that closed the segment; END's answer last
        out["final_latencies"] = [u.latency_s for u in updates if u.kind == "final" or u.is_final]
        out["finals"] = " ".join(f["text"] for u in updates for f in u.finals if f["text"])
    except Exception as exc:   # counted and reported as a failed stream
        out["error"] = str(exc)


def offline_key(repository: Path, audio: AnyArray, truth: str) -> str:
    """What an offline transcript depends on: the audio, and the decoder's and acoustic model's settings."""
    settings = json.dumps([model_parameters(repository, m) for m in (spec.DECODER_MODEL, spec.ACOUSTIC_MODEL)],
                          sort_keys=True)
    return f"{audio.size}:{hashlib.sha1(truth.encode()).hexdigest()}:{hashlib.sha1(settings.encode()).hexdigest()[:12]}"


def offline_transcripts(repository: Path, streams: list[tuple[AnyArray, str]]) -> list[str]:
    """The offline `asr` pipeline's transcripts (long-audio windows), cached next to the narrations."""
    from w2v_triton.serving.pipeline import ReferencePipeline

    cache = CACHE / f"offline-{repository.name}.json"
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    pipeline = None
    out = []
    for audio, truth in streams:
        key = offline_key(repository, audio, truth)
        if key not in known:
            pipeline = pipeline or ReferencePipeline(repository)
            known[key] = pipeline.transcribe(audio)
        out.append(known[key])
    cache.write_text(json.dumps(known))
    return out


def full_minutes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The minutes with (nearly) a full minute of chunks: the stream's last, partial minute is left out."""
    return [r for r in rows if r["chunks"] >= 0.9 * rows[0]["chunks"]]


def drift(repository: Path, audios: list[AnyArray], chunk: float, log: Path, realtime: bool = True) -> dict[str, Any]:
    """N concurrent streams on one server: latency by minute of stream time. `realtime`: chunks at
    the audio's pace (needs a machine that keeps up: otherwise the queue, not the chunk, grows);
    else back to back (each chunk once the previous one's answer is in: the latency is the cost of
    a chunk, as in issue 30's measurement of the previous design)."""
    from w2v_triton.serving.tritonserver import Ports, TritonServer

    outs: list[dict[str, Any]] = [{} for _ in audios]
    with TritonServer(repository, Ports.free(), log_path=log) as server:
        warm: dict[str, Any] = {}
        _paced(server.grpc_url, audios[0][: 3 * SR], chunk, warm)
        load_before = os.getloadavg()
        threads = [threading.Thread(target=_paced, args=(server.grpc_url, a, chunk, o, realtime))
                   for a, o in zip(audios, outs, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        load_after = os.getloadavg()
    ok = [o for o in outs if "error" not in o]
    base = {"streams": len(audios), "pacing": "real time" if realtime else "back to back",
            "failed": len(audios) - len(ok), "errors": [o["error"] for o in outs if "error" in o][:3],
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after], "finals": [o.get("finals", "") for o in outs]}
    if not ok:
        return {**base, "by_minute": [], "p99_ratio_last_first": None, "p50_ratio_last_first": None}
    minutes: dict[int, list[float]] = {}
    for o in ok:
        for audio_s, latency in o["chunks"]:
            minutes.setdefault(int(audio_s // 60), []).append(latency)
    rows = [{"minute": m, "chunks": len(v), "p50_ms": percentile_ms(v, 50),
             "p99_ms": percentile_ms(v, 99)} for m, v in sorted(minutes.items())]
    full = full_minutes(rows)
    finals = [x for o in ok for x in o["final_latencies"]]
    return {**base, "by_minute": rows, "p99_ratio_last_first": round(full[-1]["p99_ms"] / full[0]["p99_ms"], 3),
            "p50_ratio_last_first": round(full[-1]["p50_ms"] / full[0]["p50_ms"], 3),
            "segment_finals": len(finals),
            "final_latency_p50_ms": percentile_ms(finals, 50),
            "final_latency_p99_ms": percentile_ms(finals, 99)}


def marathon(repository: Path, hours: float, chunk: float, loop: AnyArray) -> dict[str, Any]:
    """One stream of `hours` in process, unpaced: memory and chunk compute over stream time."""
    import psutil

    from w2v_triton.serving.streaming import build_recognizer, version_dir

    recognizer = build_recognizer(model_parameters(repository, spec.STREAMING_MODEL), version_dir(repository),
                                  warmup=False)
    state = recognizer.new_stream()
    process = psutil.Process()
    step = int(chunk * SR)
    total = int(hours * 3600 * SR)
    rows, times, segments = [], [], 0
    every = 600 * SR
    for start in range(0, total, step):
        offset = start % loop.size
        piece = loop[offset: offset + step]
        began = time.perf_counter()
        result = recognizer.process([(state, piece, start + step >= total)])[0]
        times.append(time.perf_counter() - began)
        if isinstance(result, Exception):
            raise result
        recognizer.finals(result.pending)   # as the server's worker does, apart from the chunk's time
        segments += len(result.pending)
        if (start + step) % every < step or start + step >= total:
            rows.append({"stream_minute": round((start + step) / SR / 60, 1),
                         "rss_mib": round(process.memory_info().rss / 2**20, 1),
                         "kept_kib": round(state.kept_bytes() / 1024, 1), "segments": segments,
                         "chunk_p50_ms": percentile_ms(times, 50, 2),
                         "chunk_p99_ms": percentile_ms(times, 99, 2)})
            print(json.dumps(rows[-1]), flush=True)
            times = []
    return {"hours": hours, "chunk_seconds": chunk, "by_10_minutes": rows,
            "rss_growth_mib_after_first_10_min": round(rows[-1]["rss_mib"] - rows[0]["rss_mib"], 1)}


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in ("drift", "marathon") if report.get(p)]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel == "drift":
            for run in report["drift"]:
                minutes = [r["minute"] for r in run["by_minute"]]
                label = f"{run['streams']} stream(s), {run.get('pacing', 'real time')}"
                ax.plot(minutes, [r["p99_ms"] for r in run["by_minute"]], "o-", label=f"{label}: p99")
                ax.plot(minutes, [r["p50_ms"] for r in run["by_minute"]], "s--", label=f"{label}: p50")
            ax.set_xlabel("minute of stream time")
            ax.set_ylabel("chunk latency (ms)")
            ax.set_yscale("log")
            ax.set_title(f"600 s streams, {report['chunk_seconds']:g} s chunks", fontsize=8)
            ax.legend(fontsize=7)
        else:
            rows = report["marathon"]["by_10_minutes"]
            minutes = [r["stream_minute"] for r in rows]
            ax.plot(minutes, [r["rss_mib"] for r in rows], "o-", color="C0", label="process RSS (MiB)")
            ax.plot(minutes, [r["kept_kib"] / 1024 for r in rows], "^-", color="C2", label="stream state kept (MiB)")
            ax.set_ylim(bottom=0)
            ax.set_xlabel("minute of stream time (one 2-hour stream, in process)")
            ax.set_ylabel("MiB")
            twin = ax.twinx()
            twin.plot(minutes, [r["chunk_p50_ms"] for r in rows], "s--", color="C1", label="chunk wall time p50 (ms)")
            twin.set_ylim(bottom=0)
            twin.set_ylabel("ms (wall, shared machine)")
            lines = ax.get_legend_handles_labels()
            more = twin.get_legend_handles_labels()
            ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="center right")
            ax.set_title(f"{report['marathon']['chunk_seconds']:g} s chunks", fontsize=8)
    fig.suptitle(f"streaming_asr over long streams, {report['model']}, {report['machine']} (shared), "
                 f"{report['date'][:10]}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# drift runs from before the decoder searched long audio per pause-delimited piece (2026-12-07)
# compared their finals with an offline transcript decoded in one beam search
STALE_OFFLINE = " vs the one-search offline of before 2026-12-07"


def tables(report: dict[str, Any], folder: Path) -> None:
    common = {"machine": report["machine"], "date": report["date"], "command": report["command"]}
    quality_rows = [[r["stream"], f"{r['audio_s']:.0f} s", r["segments"], f"{r['segment_s_median']} / {r['segment_s_max']} s",
                     f"{100 * r['wer_vs_offline']:.1f}%", f"{100 * r['wer_vs_truth']:.1f}%",
                     f"{100 * r['offline_wer_vs_truth']:.1f}%", f"{100 * r['wer_gap_vs_truth']:+.1f}"]
                    for r in report["quality"]]
    def minute(rows: list[dict[str, Any]]) -> str:
        return f"{rows[0]['p50_ms']} / {rows[0]['p99_ms']} ms" if rows else "–"

    drift_rows = [[run["streams"], run.get("pacing", "real time"), minute(run["by_minute"]),
                   minute(full_minutes(run["by_minute"])[-1:] if run["by_minute"] else []),
                   "–" if run["p99_ratio_last_first"] is None else f"{run['p99_ratio_last_first']:.2f}",
                   f"{run['final_latency_p50_ms']} / {run['final_latency_p99_ms']} ms ({run['segment_finals']})"
                   if "final_latency_p50_ms" in run else "in the chunk's answer",
                   f"{100 * run['finals_wer_vs_offline']:.1f}% / {100 * run['finals_wer_vs_truth']:.1f}% "
                   f"({100 * run['offline_wer_vs_truth']:.1f}%)" + ("" if "offline_decoder" in run else STALE_OFFLINE)
                   if "offline_wer_vs_truth" in run else "–",
                   f"{run['failed']}/{run['streams']}",
                   " / ".join(f"{x:.1f}" for x in run["load_average_before"])]
                  for run in report["drift"]]
    folder.mkdir(parents=True, exist_ok=True)
    if quality_rows:
        (folder / "streaming-long-quality.json").write_text(json.dumps({**common, "columns": [
        "600 s stream", "audio", "segments", "segment median / max", "WER vs offline", "WER vs truth",
        "offline WER vs truth", "gap (points)"], "rows": quality_rows}, indent=1) + "\n")
    if drift_rows:
        (folder / "streaming-long-drift.json").write_text(json.dumps({**common, "columns": [
        "concurrent streams", "pacing", "minute 0 p50 / p99", "last full minute p50 / p99", "p99 last / first",
        "segment finals' latency p50 / p99 (count)",
        "segment finals: WER vs offline / vs truth (offline's)",
        "failed", "load average (1/5/15 min) at start"], "rows": drift_rows}, indent=1) + "\n")
    if report.get("marathon"):
        m = report["marathon"]
        (folder / "streaming-marathon.json").write_text(json.dumps({**common, "columns": [
            "stream minute", "process RSS", "stream state kept", "segments so far", "chunk wall time p50 / p99"],
            "rows": [[r["stream_minute"], f"{r['rss_mib']} MiB", f"{r['kept_kib']} KiB", r["segments"],
                      f"{r['chunk_p50_ms']} / {r['chunk_p99_ms']} ms"] for r in m["by_10_minutes"]]}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True, help="a repository from `make build-models`")
    parser.add_argument("--model", required=True, help="name in the results files")
    parser.add_argument("--parts", default="quality,drift", help="quality,drift (streaming-long-*) and/or "
                        "marathon (streaming-marathon-*)")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--streams", default="1,8", help="concurrency levels of the drift runs")
    parser.add_argument("--chunk-seconds", type=float, default=0.5)
    parser.add_argument("--pacing", choices=("realtime", "back-to-back"), default="realtime",
                        help="drift runs: chunks at the audio's pace, or each after the previous answer")
    parser.add_argument("--quality-sets", default="espeak-ng,real", help="streams of the quality part")
    parser.add_argument("--hours", type=float, default=2.0, help="length of the marathon stream")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / machine_name())
    parser.add_argument("--retable", action="store_true", help="only re-render the tables and plot of the "
                        "existing results file (after an interrupted or failed run was removed from it)")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if args.retable:
        stem = f"streaming-{'marathon' if parts == {'marathon'} else 'long'}-{args.model}"
        saved: dict[str, Any] = json.loads((args.out / f"{stem}.json").read_text())
        plot(saved, args.out / f"{stem}.png")
        tables(saved, args.out / "tables")
        return 0
    levels = [int(x) for x in args.streams.split(",")] if "drift" in parts else []
    narrations = [narration(args.seconds, i) for i in range(max([*levels, 1]))]
    report: dict[str, Any] = {"machine": machine_name(), "model": args.model,
                    "repository": str(args.repository), "chunk_seconds": args.chunk_seconds,
                    "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "command": "python -m benchmarks.streaming_long " + " ".join(sys.argv[1:] if argv is None else argv),
                    "load_average_at_start": load_average(), "cpu_count": os.cpu_count(),
                    "quality": [], "drift": []}
    if "quality" in parts:
        streams = {"espeak-ng narration (training voice)": narrations[0]}   # keys: the set name first
        real = real_stream(args.seconds)
        if real is not None:
            streams["real speech (utterances back to back)"] = real
        wanted = set(args.quality_sets.split(","))
        report["quality"] = quality(args.repository, {k: v for k, v in streams.items() if k.split()[0] in wanted},
                                    args.chunk_seconds)
    for n in levels:
        with tempfile.TemporaryDirectory() as tmp:
            run = drift(args.repository, [a for a, _ in narrations[:n]], args.chunk_seconds, Path(tmp) / "triton.log",
                        args.pacing == "realtime")
        finals = run.pop("finals")
        run["finals_wer_vs_truth"] = round(error_rates([t for _, t in narrations[:n]], finals)[0], 4)
        offline = offline_transcripts(args.repository, narrations[:n])
        run["finals_wer_vs_offline"] = round(error_rates(offline, finals)[0], 4)
        run["offline_wer_vs_truth"] = round(error_rates([t for _, t in narrations[:n]], offline)[0], 4)
        run["offline_decoder"] = {k: v for k, v in model_parameters(args.repository, spec.DECODER_MODEL).items()
                                  if k.startswith("split_")}
        print(json.dumps({k: v for k, v in run.items() if k != "by_minute"}), flush=True)
        report["drift"].append(run)
    if "marathon" in parts:
        report["marathon"] = marathon(args.repository, args.hours, args.chunk_seconds, narrations[0][0])
    report["load_average_at_end"] = load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"streaming-{'marathon' if parts == {'marathon'} else 'long'}-{args.model}"
    path = args.out / f"{stem}.json"
    if path.is_file():   # parts run separately (quality, then drift) go into one file; each keeps its own run's facts
        earlier = json.loads(path.read_text())
        facts = ("date", "command", "load_average_at_start", "load_average_at_end")
        runs = earlier.get("runs") or [{k: earlier.get(k) for k in facts}]
        runs.append({k: report[k] for k in facts})
        drifts = earlier.get("drift", []) + report["drift"]
        report = {**earlier, **{k: v for k, v in report.items() if v or k not in earlier}, "runs": runs,
                  "drift": drifts}
    path.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / f"{stem}.png")
    tables(report, args.out / "tables")
    print(f"results: {args.out / stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
