"""Hotwords (the gateway's `prompt`) in the beam + LM decoder: WER with and without a prompt, and the cost.

    python -m benchmarks.hotwords --repo build/repos/reference-lm \
        --test build/corpus/test_seen.jsonl build/corpus/test_unseen.jsonl --title hotwords-reference

The acoustic logits are computed once per set with the repository's model (cached in build/logits/,
shared with benchmarks.decoders); the repository's decoder (alpha, beta, beam, hotword_weight as
built) then decodes every set with each prompt, turned into hotwords in one of two ways:

    PROMPT rule     what the PROMPT input does (CTCDecoder.prompt_hotwords): the prompt's words the
                    LM does not know, of its first max_prompt_words (32)
    every word      every distinct word of the prompt (prompt_words, first 32) as HOTWORDS

The prompts:

    none            no prompt (what every request without one gets)
    own OOV words   the words of the sentence that the LM does not know: the names a caller would
                    put in a prompt (empty for a sentence without such words)
    other's OOV     the out-of-LM words of a different sentence: a prompt that does not fit the audio
    previous text   the previous sentence of the set: Whisper's "previous transcript" use of a prompt
    the sentence    its own words (an oracle: the most a prompt can give, and what boosting every
                    word costs in insertions)

in the flashlight backend (the default, hotwords in a search of their own) and, for the OOV prompt,
in pyctcdecode too (where a flashlight repository sent every hotword request before). WER/CER (jiwer) per
set and on the sentences that have an out-of-LM word; speed in audio seconds per CPU second of
the decoding thread; the time to build a request's search. Writes JSON (+ the docs table) and
Markdown to benchmarks/results/<machine>/.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.decoders import logits_for
from w2v_triton.eval.metrics import error_rates
from w2v_triton.eval.tables import markdown_table
from w2v_triton.paths import LOGITS_DIR, REPO_ROOT
from w2v_triton.serving.ctc_decoding import CTCDecoder, prompt_words
from w2v_triton.serving.pipeline import ReferencePipeline

# (prompt, how it becomes hotwords, backend): the rows of the report
ROWS = [("none", "-", "flashlight"),
        ("own OOV words", "PROMPT rule", "flashlight"), ("own OOV words", "PROMPT rule", "pyctcdecode"),
        ("other's OOV words", "PROMPT rule", "flashlight"),
        ("previous text", "PROMPT rule", "flashlight"), ("previous text", "every word", "flashlight"),
        ("the sentence", "PROMPT rule", "flashlight"), ("the sentence", "every word", "flashlight")]


def prompts(references: list[str], lm_words: set[str]) -> dict[str, list[str]]:
    """Each prompt kind as one text per utterance (see the module docstring)."""
    oov = [" ".join(w for w in dict.fromkeys(r.split()) if w not in lm_words) for r in references]
    return {"none": [""] * len(references), "own OOV words": oov,
            "other's OOV words": [next((oov[(i + k) % len(oov)] for k in range(1, len(oov)) if oov[(i + k) % len(oov)]),
                                       "") for i in range(len(oov))],
            "previous text": [references[i - 1] for i in range(len(references))],
            "the sentence": list(references)}


def hotwords_of(decoder: CTCDecoder, texts: list[str], mapping: str) -> list[list[str]]:
    if mapping == "every word":
        return [prompt_words(t)[:decoder.config.max_prompt_words] for t in texts]
    return [decoder.prompt_hotwords(t) for t in texts]


def run(decoder: CTCDecoder, logits: list[Any], hotwords: list[list[str]]) -> tuple[list[str], float]:
    cpu = time.thread_time()
    out = [decoder.decode(x, h or None) for x, h in zip(logits, hotwords, strict=True)]
    return out, time.thread_time() - cpu


def build_ms(decoder: CTCDecoder, hotwords: list[list[str]]) -> float | None:
    """Mean time to build a request's flashlight search for these hotwords (ms)."""
    hotwords = [h for h in hotwords if h]
    if decoder._fast is None or not hotwords:   # the private flashlight search: what a request builds
        return None
    began = time.thread_time()
    for words in hotwords:
        decoder._fast.search(words)
    return 1000 * (time.thread_time() - began) / len(hotwords)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", type=Path, required=True, help="a beam + LM repository (its model makes the logits)")
    p.add_argument("--test", type=Path, nargs="+", required=True, help="manifests (JSONL)")
    p.add_argument("--title", default="hotwords")
    p.add_argument("--out", type=Path, default=None, help="default benchmarks/results/<machine>")
    a = p.parse_args(argv)

    from w2v_triton.eval.machine import machine_name
    out = a.out or REPO_ROOT / "benchmarks" / "results" / machine_name()
    flashlight = ReferencePipeline(a.repo).decoder
    config = flashlight.config
    if config.mode != "beam" or not config.lm_path or config.backend != "flashlight":
        p.error(f"{a.repo}: needs a flashlight beam + LM decoder (build with --decoder-mode beam --lm-dir ...)")
    decoders = {"flashlight": flashlight, "pyctcdecode": CTCDecoder(_vocab(a.repo), replace(config, backend="pyctcdecode"))}
    lm_words = set(Path(config.unigrams_path).read_text().split())
    report: dict[str, Any] = {"title": a.title, "machine": machine_name(), "cpu_count": os.cpu_count(),
                    "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "load_average": os.getloadavg(),
                    "note": "2-core VM shared with other engineers' jobs: speeds are CPU time of the decoding thread",
                    "command": "python -m benchmarks.hotwords " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "repo": str(a.repo), "decoder": config.to_parameters(),
                    "sets": {}}
    for manifest in a.test:
        logits, references, _durations = logits_for(a.repo, manifest, LOGITS_DIR)
        audio_s = sum(x.shape[0] for x in logits) * 0.02
        kinds = prompts(references, lm_words)
        with_oov = [i for i, t in enumerate(kinds["own OOV words"]) if t]
        rows = []
        for kind, mapping, backend in ROWS:
            hotwords = hotwords_of(decoders[backend], kinds[kind], mapping)
            hyps, cpu = run(decoders[backend], logits, hotwords)
            wer, cer = error_rates(references, hyps)
            sub = error_rates([references[i] for i in with_oov], [hyps[i] for i in with_oov]) if with_oov else (0, 0)
            found = sum(w in set(hyps[i].split()) for i in with_oov for w in kinds["own OOV words"][i].split())
            rows.append({"prompt": kind, "hotwords": mapping, "backend": backend, "wer": wer, "cer": cer,
                         "wer_oov_sentences": sub[0], "oov_words_recovered": found,
                         "hotwords_per_request": sum(map(len, hotwords)) / len(hotwords),
                         "speed_per_core": audio_s / max(cpu, 1e-9),
                         "search_build_ms": build_ms(decoders[backend], hotwords)})
            print(manifest.stem, rows[-1], flush=True)
        report["sets"][manifest.stem] = {
            "manifest": str(manifest), "utterances": len(references), "audio_s": round(audio_s, 1),
            "oov_sentences": len(with_oov), "oov_words": sum(len(kinds["own OOV words"][i].split()) for i in with_oov),
            "rows": rows}
    write(report, out)
    return 0


def _vocab(repo: Path) -> dict[str, int]:
    return dict(json.loads((repo / "decoder" / "vocab.json").read_text()))


def write(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sets = list(report["sets"])
    columns = ["prompt", "as hotwords", "decoder"] + [f"{s}: WER % (OOV sentences)" for s in sets] + \
              [f"{s}: OOV words found" for s in sets] + ["hotwords per request", "audio-s per CPU-s", "search ms"]
    rows = []
    for k, first in enumerate(report["sets"][sets[0]]["rows"]):
        cells = [report["sets"][s]["rows"][k] for s in sets]
        speed = sum(c["speed_per_core"] for c in cells) / len(cells)
        build = [c["search_build_ms"] for c in cells if c["search_build_ms"] is not None]
        per_request = sum(c["hotwords_per_request"] for c in cells) / len(cells)
        rows.append([first["prompt"], first["hotwords"], first["backend"]]
                    + [f"{100 * c['wer']:.2f} ({100 * c['wer_oov_sentences']:.2f})" for c in cells]
                    + [f"{c['oov_words_recovered']} of {report['sets'][s]['oov_words']}" for c, s in zip(cells, sets, strict=True)]
                    + [f"{per_request:.1f}", f"{speed:,.0f}", f"{sum(build) / len(build):.2f}" if build else "–"])
    report["columns"], report["rows"] = columns, rows
    stem = out / report["title"]
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# {report['title']}", "",
             (f"Machine: `{report['machine']}` ({report['cpu_count']} cores, shared; load "
              f"average {', '.join(f'{x:.1f}' for x in report['load_average'])}). Date: {report['date']}. "
              f"Repository `{report['repo']}`, decoder {report['decoder']}."), ""]
    lines += [f"* {s}: {v['utterances']} utterances, {v['audio_s']} s, {v['oov_sentences']} sentences with "
              f"{v['oov_words']} out-of-LM words" for s, v in report["sets"].items()]
    lines += ["", markdown_table(columns, rows)]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"results: {stem}.json/.md")


if __name__ == "__main__":
    sys.exit(main())
