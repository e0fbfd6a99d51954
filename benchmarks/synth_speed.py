"""How fast each corpus synthesiser speaks: utterances and audio-seconds per second of one process.

    python -m benchmarks.synth_speed --json benchmarks/results/<machine>/tables/synth-speed.json

Synthesis alone (no augmentation, no FLAC), the first training sentences of the default corpus
spoken round-robin by each kind's training voices; what sizes a corpus build (`make corpus`, the
GPU session's corpus budget). The load average goes into the file: on a shared machine only the
ratios between kinds of one run mean much.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from w2v_triton.eval.machine import load_average, machine_name, utc_now
    from w2v_triton.train.corpus import CorpusConfig, split_sentences
    from w2v_triton.train.synthesizers import SYNTHESIZERS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=40)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    texts = split_sentences(CorpusConfig())["train"][: args.sentences]
    rows, first = [], None
    for name, synth in SYNTHESIZERS.items():
        if synth.missing():
            print(f"skipped: {synth.missing()}", file=sys.stderr)
            continue
        voices = synth.training_voices()
        synth.synthesize(texts[0], voices[0], 170, 50)          # start-up (festival) out of the timing
        start, audio_s = time.perf_counter(), 0.0
        for i, text in enumerate(texts):
            audio_s += len(synth.synthesize(text, voices[i % len(voices)], 170, 50)) / 16000
        elapsed = time.perf_counter() - start
        first = first or len(texts) / elapsed
        rows.append([name, len(voices), f"{len(texts) / elapsed:.1f}", f"{audio_s / elapsed:.0f}",
                     f"{len(texts) / elapsed / first:.2f}"])
        print(" | ".join(map(str, rows[-1])), flush=True)
    data = {"machine": machine_name(), "date": utc_now(), "load_average": load_average(1),
            "command": "python -m benchmarks.synth_speed " + " ".join(sys.argv[1:] if argv is None else argv),
            "columns": ["synthesiser", "training voices", "utterances/s", "audio-s/s", "x espeak"], "rows": rows}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
