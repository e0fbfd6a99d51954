"""First request after `/v2/health/ready`, with and without the acoustic model's warm-up.

Why: a load balancer sends traffic as soon as the server says ready; if the first requests pay for
memory arenas, kernel selection or a CUDA context, users see it. The acoustic model warms up
inside its load (AcousticSettings.warmup), so ready means fast. This serves the same repository
built with and without warm-up, alternately, and times: start to ready, the first request, and
the median of the next ones. Writes first-request.{json,md,png} into benchmarks/results/<machine>/.

    python -m benchmarks.first_request [--model random-base] [--rounds 2]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from w2v_triton.eval.machine import machine_name
from w2v_triton.eval.tables import markdown_table
from w2v_triton.paths import REPO_ROOT, REPOS_DIR
from w2v_triton.build.manifest import read_manifest, shared_speech_manifests


def speech_clip(seconds: float) -> tuple[np.ndarray, str]:
    """A real-speech clip of about `seconds` (repeated utterances), else noise."""
    from w2v_triton.serving.audio import load_audio

    utterances = [u for m in shared_speech_manifests(REPO_ROOT) for u in read_manifest(m)]
    if not utterances:
        return np.random.default_rng(0).standard_normal(int(seconds * 16000)).astype(np.float32) * 0.1, "noise"
    audio = np.concatenate([load_audio(u.audio) for u in utterances[:8]])
    return audio[: int(seconds * 16000)], "../shared/data/speech"


def measure(repository: Path, clip: np.ndarray, followers: int, log: Path) -> dict:
    from client import TranscriptionClient
    from w2v_triton.serving.tritonserver import Ports, TritonServer

    started = time.perf_counter()
    with TritonServer(repository, Ports.free(), log_path=log) as server:
        ready_s = time.perf_counter() - started
        with TranscriptionClient(server.grpc_url, "grpc") as asr:
            t = time.perf_counter()
            asr.transcribe(clip)
            first_ms = 1000 * (time.perf_counter() - t)
            later = []
            for _ in range(followers):
                t = time.perf_counter()
                asr.transcribe(clip)
                later.append(1000 * (time.perf_counter() - t))
    return {"start_to_ready_s": round(ready_s, 2), "first_request_ms": round(first_ms, 1),
            "next_requests_median_ms": round(statistics.median(later), 1)}


def main(argv: list[str] | None = None) -> int:
    from w2v_triton.build.builder import BuildError, BuildRequest, build_repository
    from w2v_triton.build.repository import RepositoryOptions

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="random-base")
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternating off/on servings of each build")
    parser.add_argument("--followers", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / machine_name())
    args = parser.parse_args(argv)
    clip, audio = speech_clip(args.clip_seconds)
    repos = {}
    for warmup in (False, True):
        repos[warmup] = REPOS_DIR / f"first-request-warmup-{'on' if warmup else 'off'}"
        try:
            build_repository(BuildRequest(model=args.model, output=repos[warmup], options=RepositoryOptions(warmup=warmup)))
        except BuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for warmup in (False, True):
                key = "on" if warmup else "off"
                runs[key].append(measure(repos[warmup], clip, args.followers, Path(tmp) / f"{key}{round_}.log"))
                print(key, runs[key][-1], flush=True)
    summary = {key: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for key, rows in runs.items()}
    report = {"title": "first-request", "machine": machine_name(),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "model": args.model, "clip_seconds": args.clip_seconds, "audio": audio,
              "command": "python -m benchmarks.first_request " + " ".join(sys.argv[1:] if argv is None else argv),
              "runs": runs, "median": summary}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "first-request.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "first-request.md").write_text(markdown(report))
    plot(report, args.out / "first-request.png")
    print(f"results: {args.out / 'first-request.json'}")
    return 0


def markdown(report: dict) -> str:
    rows = [[f"warm-up {key}", f"{m['start_to_ready_s']:.2f}", f"{m['first_request_ms']:.1f}",
             f"{m['next_requests_median_ms']:.1f}", f"{m['first_request_ms'] / m['next_requests_median_ms']:.2f}x"]
            for key, m in report["median"].items()]
    return "\n".join([
        f"# First request after ready ({report['model']}, {report['clip_seconds']:g} s clip)", "",
        f"{report['machine']}, {report['date']}; audio: {report['audio']}; median of "
        f"{len(report['runs']['on'])} alternating servings. Command: `{report['command']}`", "",
        markdown_table(["build", "start to ready (s)", "first request (ms)", "next requests, median (ms)",
                        "first / next"], rows), ""])


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(report["median"])
    first = [report["median"][k]["first_request_ms"] for k in keys]
    later = [report["median"][k]["next_requests_median_ms"] for k in keys]
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(x - 0.2, first, 0.4, label="first request")
    ax.bar(x + 0.2, later, 0.4, label="next requests (median)")
    ax.set_xticks(x, [f"warm-up {k}" for k in keys])
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"{report['model']}, {report['clip_seconds']:g} s clip, {report['machine']}", fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
