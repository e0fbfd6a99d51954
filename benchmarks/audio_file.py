"""What decoding files inside Triton costs: float32 AUDIO vs AUDIO_FILE per format vs the gateway.

Sequential requests (one in flight) over real speech from ../shared/data/speech, each utterance
sent as: float32 samples decoded in the client (the default path, client decode included), its
FLAC file as stored, and the same samples re-encoded as 16-bit WAV, MP3 and OGG Opus through
AUDIO_FILE; and the FLAC through the OpenAI-compatible gateway. Plus the in-process decode time
per format (w2v_triton.serving.audio, the code the preprocessor runs). Writes JSON + MD + PNG:

    python -m benchmarks.audio_file --repository build/repos/reference --title audio-file-reference
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from w2v_triton.eval.machine import machine_name, utc_now
from w2v_triton.eval.tables import markdown_table
from client import TranscriptionClient
from w2v_triton.serving import spec
from w2v_triton.serving.audio import decode_audio_bytes, encode_audio, load_audio
from w2v_triton.paths import REPO_ROOT
from w2v_triton.build.manifest import read_manifest, shared_speech_manifests
from w2v_triton.serving.tritonserver import Ports, TritonServer, free_port

# format, subtype, rate (Opus runs at 48 kHz only)
ENCODINGS = {"wav": ("WAV", "PCM_16", spec.SAMPLE_RATE), "mp3": ("MP3", "MPEG_LAYER_III", spec.SAMPLE_RATE),
             "ogg-opus": ("OGG", "OPUS", 48000)}


def summary(times: list[float], audio_s: float, sent: list[int]) -> dict:
    ms = sorted(t * 1000 for t in times)
    return {"requests": len(ms), "p50_ms": round(statistics.median(ms), 2),
            "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2), "mean_ms": round(statistics.fmean(ms), 2),
            "audio_s_per_s": round(audio_s / sum(times), 2), "mean_request_kb": round(statistics.fmean(sent) / 1e3, 1)}


def _shown(path: Path) -> str:
    """A path as written in results: relative to the project when inside it (no machine paths)."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return path.name


def start_gateway(triton_url: str) -> tuple[subprocess.Popen, str]:
    import urllib.request

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "gateway.app:app", "--port", str(port),
                                "--log-level", "warning"], cwd=REPO_ROOT, env={**os.environ, "TRITON_URL": triton_url})
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/v1/models", timeout=2)
            return process, url
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("the gateway did not start")


def markdown(report: dict) -> str:
    served = [[k, v["p50_ms"], v["p90_ms"], v["audio_s_per_s"], v["mean_request_kb"]] for k, v in report["served"].items()]
    return "\n".join([
        f"# {report['title']}: {report['date']}, {report['machine']}", "",
        f"{report['utterances']} real utterances ({report['audio_seconds']} s), x{report['repeats']}; {report['note']}.", "",
        markdown_table(["path", "p50 ms", "p90 ms", "audio s/s", "request kB"], served), "",
        "Decoding in process (w2v_triton.serving.audio, what the preprocessor runs), ms per audio second:", "",
        markdown_table(["format", "ms per audio s"], [[k, v["ms_per_audio_s"]] for k, v in report["decode_in_process"].items()]),
        ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--title", default="audio-file")
    parser.add_argument("--count", type=int, default=20, help="utterances (every n-th of the shared set)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    import requests

    manifests = shared_speech_manifests(REPO_ROOT)
    if not manifests:
        print("error: ../shared/data/speech is not present", file=sys.stderr)
        return 2
    utterances = [u for m in manifests for u in read_manifest(m)]
    picked = utterances[:: max(1, len(utterances) // args.count)][: args.count]
    items = []
    for u in picked:
        samples = load_audio(u.audio)
        items.append({"path": u.audio, "flac": u.audio.read_bytes(), "seconds": samples.size / spec.SAMPLE_RATE,
                      **{name: encode_audio(samples, *enc) for name, enc in ENCODINGS.items()}})
    audio_s = sum(i["seconds"] for i in items) * args.repeats

    decode = {}
    for name in ["flac", *ENCODINGS]:
        start = time.perf_counter()
        for item in items:
            decode_audio_bytes(item[name])
        decode[name] = {"ms_per_audio_s": round((time.perf_counter() - start) * 1000 / (audio_s / args.repeats), 3)}

    with tempfile.TemporaryDirectory() as tmp:
        server = TritonServer(args.repository, Ports.free(), log_path=Path(tmp) / "triton.log")
        server.start(timeout=300)
        gateway, url = start_gateway(server.http_url)
        try:
            with TranscriptionClient(server.http_url) as asr, requests.Session() as session:
                def via_gateway(item: dict) -> None:
                    response = session.post(f"{url}/v1/audio/transcriptions", data={"model": "asr"},
                                            files={"file": ("speech.flac", item["flac"])}, timeout=300)
                    response.raise_for_status()

                def file_path(name: str):
                    return lambda item: asr.transcribe(item[name])

                paths = {"AUDIO float32 (client decodes FLAC)": (lambda i: asr.transcribe(load_audio(i["path"])),
                                                                 lambda i: int(i["seconds"] * spec.SAMPLE_RATE * 4)),
                         **{f"AUDIO_FILE {n}": (file_path(n), (lambda n: lambda i: len(i[n]))(n))
                            for n in ["flac", *ENCODINGS]},
                         "gateway /v1/audio/transcriptions flac": (via_gateway, lambda i: len(i["flac"]))}
                for send, _ in paths.values():          # warm-up: every path once
                    send(items[0])
                times: dict[str, list[float]] = {name: [] for name in paths}
                for _ in range(args.repeats):           # interleaved: every path sees the same load
                    for item in items:
                        for name, (send, _) in paths.items():
                            start = time.perf_counter()
                            send(item)
                            times[name].append(time.perf_counter() - start)
                results = {name: summary(times[name], audio_s, [size(i) for i in items])
                           for name, (_, size) in paths.items()}
        finally:
            gateway.terminate()
            gateway.wait(timeout=15)
            server.stop()

    machine = machine_name()
    out_dir = args.out_dir or REPO_ROOT / "benchmarks" / "results" / machine
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"title": args.title, "machine": machine, "date": utc_now(),
              "repository": _shown(args.repository), "utterances": len(items),
              "audio_seconds": round(audio_s / args.repeats, 1), "repeats": args.repeats,
              "note": ("one request in flight, the paths interleaved per utterance; 2-core VM shared with other "
                       "work: compare rows of this run only"),
              "served": results, "decode_in_process": decode}
    (out_dir / f"{args.title}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / f"{args.title}.md").write_text(markdown(report))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    names = list(results)
    ax.barh(names, [results[n]["p50_ms"] for n in names], color="#2459d6")
    ax.invert_yaxis()
    ax.set_xlabel("p50 latency per utterance (ms), one request in flight")
    ax.set_title(f"{args.title} ({machine}, {report['date']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / f"{args.title}.png", dpi=110)
    print((out_dir / f"{args.title}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
