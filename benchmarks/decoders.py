"""Beam search backends compared on the same logits and LM: WER, speed, start-up and memory.

    python -m benchmarks.decoders --repo build/repos/ref-lm --lm-dir build/lm \
        --dev build/corpus/dev.jsonl --test build/corpus/test_seen.jsonl --title decoders-reference

The acoustic logits are computed once with the repository's model (cached in build/logits/).
alpha/beta are tuned per backend on --dev (lm_tuning.grid_search, the same code as
`make tune-lm`), then every configuration is decoded on --test: WER/CER (jiwer) and speed in
audio seconds per CPU second of the decoding thread (one decoder instance = one core).
Start-up time and peak RSS of one decoder instance (ARPA vs binary LM, each backend) are
measured in fresh processes. Writes JSON + Markdown + PNG to benchmarks/results/<machine>/.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from w2v_triton.serving.ctc_decoding import CTCDecoder, DecoderConfig
from w2v_triton.eval.lm_tuning import cached_logits, choose, compute_logits, decode_all, grid_search, save_logits
from w2v_triton.build.manifest import read_manifest
from w2v_triton.eval.metrics import error_rates
from w2v_triton.eval.tables import markdown_table
from w2v_triton.paths import LM_DIR, LOGITS_DIR, REPO_ROOT

STARTUP_CODE = """
import json, resource, sys, time
t0 = time.perf_counter()
from w2v_triton.serving.ctc_decoding import CTCDecoder, DecoderConfig
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t1 = time.perf_counter()
vocab = json.load(open(sys.argv[1]))
CTCDecoder(vocab, DecoderConfig(mode="beam", backend=sys.argv[2], lm_path=sys.argv[3], unigrams_path=sys.argv[4]))
t2 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"import_s": t1 - t0, "build_s": t2 - t1, "peak_rss_mib": rss / 1024,
                  "rss_added_mib": (rss - rss0) / 1024}))
"""


def startup(vocab_path: Path, backend: str, lm: Path, unigrams: Path) -> dict:
    """Build one decoder in a fresh process: seconds to build it (after imports) and memory."""
    res = subprocess.run([sys.executable, "-c", STARTUP_CODE, str(vocab_path), backend, str(lm), str(unigrams)],
                         capture_output=True, text=True, cwd=REPO_ROOT)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def logits_for(repo: Path, manifest: Path, cache_dir: Path) -> tuple[list, list[str], list[float]]:
    utterances = [u for u in read_manifest(manifest) if u.text.strip()]
    paths = [u.audio for u in utterances]
    cache = cache_dir / f"{repo.name}-{manifest.stem}.npz"
    logits = cached_logits(cache, paths)
    if logits is None:
        logits = compute_logits(repo, paths, progress=False)
        save_logits(cache, paths, logits)
    return logits, [u.text.upper() for u in utterances], [u.duration for u in utterances]


class LexiconFree:
    """flashlight's lexicon-free search without an LM, measured directly (CTCDecoder never uses it)."""

    def __init__(self, vocab: dict[str, int]) -> None:
        from w2v_triton.serving.ctc_decoding import Labels
        from w2v_triton.serving.ctc_flashlight import FlashlightBeam

        self.labels = Labels(vocab)
        self.config = DecoderConfig(mode="beam", backend="flashlight")
        self.beam = FlashlightBeam(self.labels.text, self.labels.blank, self.config, [])

    def decode(self, logits) -> str:
        from w2v_triton.serving.ctc_output import log_softmax
        return self.beam.decode(log_softmax(self.labels.select(logits))).text


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", type=Path, required=True, help="model repository (its ONNX model makes the logits)")
    p.add_argument("--lm-dir", type=Path, default=LM_DIR)
    p.add_argument("--dev", type=Path, required=True)
    p.add_argument("--test", type=Path, required=True)
    p.add_argument("--alphas", type=floats, default=floats("0.3,0.5,0.8,1.2"))
    p.add_argument("--betas", type=floats, default=floats("0,1,2"))
    p.add_argument("--tune-beam", type=int, default=32)
    p.add_argument("--title", default="decoders")
    p.add_argument("--out", type=Path, default=None, help="default benchmarks/results/<machine>")
    a = p.parse_args(argv)

    from w2v_triton.eval.machine import machine_name
    out = a.out or REPO_ROOT / "benchmarks" / "results" / machine_name()
    vocab_path = a.repo / "decoder" / "vocab.json"
    vocab = json.loads(vocab_path.read_text())
    lm_bin, lm_arpa, unigrams = a.lm_dir / "lm.bin", a.lm_dir / "lm.arpa", a.lm_dir / "unigrams.txt"
    cache_dir = LOGITS_DIR
    dev = logits_for(a.repo, a.dev, cache_dir)
    test = logits_for(a.repo, a.test, cache_dir)
    report: dict = {"title": a.title, "machine": machine_name(), "cpu_count": os.cpu_count(),
                    "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "note": "2-core VM shared with other jobs: speeds are CPU time of the decoding thread",
                    "repo": str(a.repo), "dev": str(a.dev), "test": str(a.test),
                    "test_audio_s": round(sum(test[2]), 1), "lm": {"binary": str(lm_bin), "arpa": str(lm_arpa)},
                    "startup": {}, "tuning": {}, "rows": []}

    for backend in ("pyctcdecode", "flashlight"):
        for kind, lm in (("arpa", lm_arpa), ("binary", lm_bin)):
            if lm.is_file():
                report["startup"][f"{backend}-{kind}"] = startup(vocab_path, backend, lm, unigrams)
                print(backend, kind, report["startup"][f"{backend}-{kind}"], flush=True)

    base = DecoderConfig(mode="beam", beam_width=a.tune_beam, lm_path=str(lm_bin), unigrams_path=str(unigrams))
    decoders = {b: CTCDecoder(vocab, replace(base, backend=b)) for b in ("pyctcdecode", "flashlight")}
    tuned = {}
    for backend, decoder in decoders.items():
        points = grid_search(vocab, decoder, dev[0], dev[1], dev[2], a.alphas, a.betas, [a.tune_beam],
                             progress=False, baselines=False)
        best = choose(points)
        tuned[backend] = (best.alpha, best.beta)
        report["tuning"][backend] = {"chosen": {"alpha": best.alpha, "beta": best.beta, "dev_wer": best.wer},
                                     "points": [pt.row() for pt in points]}
        print(backend, "tuned on dev:", tuned[backend], f"WER {best.wer:.4f}", flush=True)

    def row(name: str, decoder) -> None:
        texts, cpu, wall = decode_all(decoder, test[0])
        wer, cer = error_rates(test[1], texts)
        c = decoder.config
        report["rows"].append({"name": name, "backend": c.backend if c.mode == "beam" else "-", "mode": c.mode,
                               "lm": bool(c.lm_path), "beam_width": c.beam_width, "alpha": c.alpha, "beta": c.beta,
                               "beam_prune_logp": c.beam_prune_logp, "token_min_logp": c.token_min_logp,
                               "wer": wer, "cer": cer, "decode_cpu_s": cpu,
                               "speed_per_core": sum(test[2]) / max(cpu, 1e-9)})
        print(report["rows"][-1], flush=True)

    row("greedy", CTCDecoder(vocab))
    row("pyctcdecode beam 32, no LM", CTCDecoder(vocab, DecoderConfig(mode="beam", backend="pyctcdecode")))
    row("flashlight lexicon-free beam 32, no LM (not used: CTCDecoder sends no-LM beam search to pyctcdecode)",
        LexiconFree(vocab))
    old = decoders["pyctcdecode"]
    old.set_search(alpha=0.5, beta=1.0, beam_width=32)
    row("pyctcdecode + LM, previous setup (beam 32, alpha 0.5, beta 1)", old)
    for backend, decoder in decoders.items():
        alpha, beta = tuned[backend]
        for width, prune, token_min in ((32, -10.0, -5.0), (16, -10.0, -5.0), (16, -6.0, -3.0), (8, -6.0, -3.0)):
            decoder.config = replace(decoder.config, beam_prune_logp=prune, token_min_logp=token_min)
            decoder.set_search(alpha=alpha, beta=beta, beam_width=width)
            row(f"{backend} + LM, tuned alpha/beta, beam {width}, prune {prune:g}"
                + (f", token_min {token_min:g}" if backend == "pyctcdecode" else ""), decoder)
    write(report, out)
    return 0


def markdown(report: dict) -> str:
    decoding = [[r["name"], f"{100 * r['wer']:.2f}", f"{100 * r['cer']:.2f}", f"{r['speed_per_core']:.0f}"]
                for r in report["rows"]]
    startup = [[k, f"{v['build_s']:.2f}", f"{v['peak_rss_mib']:.0f}", f"{v['rss_added_mib']:.0f}"]
               for k, v in report["startup"].items()]
    lines = [f"# {report['title']}", "", f"Machine: `{report['machine']}` ({report['cpu_count']} cores, shared with "
             f"other jobs). Date: {report['date']}. Logits: `{report['repo']}` on `{report['test']}` "
             f"({report['test_audio_s']} s of audio); alpha/beta tuned per backend on `{report['dev']}`.", "",
             "## Decoding on the same logits and LM (binary)", "",
             markdown_table(["configuration", "WER %", "CER %", "audio-s per CPU-s"], decoding), "",
             "## One decoder instance: start-up (after imports) and peak RSS", "",
             markdown_table(["backend-LM", "build s", "peak RSS MiB", "RSS added MiB"], startup), "",
             "## alpha/beta chosen on dev", ""]
    lines += [f"* {b}: alpha {t['chosen']['alpha']}, beta {t['chosen']['beta']} (dev WER "
              f"{100 * t['chosen']['dev_wer']:.2f} %)" for b, t in report["tuning"].items()]
    return "\n".join(lines) + "\n"


def write(report: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    stem = out / report["title"]
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in report["rows"]:
        marker = {"pyctcdecode": "o", "flashlight": "s"}.get(r["backend"], "^")
        ax.scatter(r["speed_per_core"], 100 * r["wer"], marker=marker, label=r["name"])
    ax.set_xscale("log")
    ax.set_xlabel("audio seconds per CPU second (one decoder thread)")
    ax.set_ylabel("WER % (test)")
    ax.set_title(f"{report['title']} ({report['machine']}, {report['date'][:10]})")
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=110)
    print(f"results: {stem}.json/.md/.png")


if __name__ == "__main__":
    sys.exit(main())
