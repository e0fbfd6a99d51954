"""Why a 600 s stream's segment finals differ from the offline transcript of the same audio (issue 30).

    nice python tools/dev/streaming_finals_study.py --repository build/repos/streaming-ref-beam \\
        --out benchmarks/results/cpu-2core-amd-epyc/streaming-finals-study.json

The narration of benchmarks/streaming_long.py (stream 0, cached) is cut into the segments the
streaming model's VAD makes (the endpointer alone: the acoustic model is replaced by zeros for that
pass, segments depend only on the VAD). Then, with the repository's acoustic model and decoder:

* offline: the `asr` pipeline's logits (whole-audio normalisation, 30 s windows with 3 s overlap)
  decoded as the decoder does by default, one beam search per pause-delimited piece (== the offline
  transcript), in one beam search over the 600 s (the default before), and per VAD segment: what
  the decode split alone changes;
* finals: each segment's own pass (normalised over the segment) decoded per segment (== the
  streamed finals), decoded per pause-delimited piece as long offline audio is, normalised over
  the whole audio as offline is, and with 1, 2 and 4 s of the surrounding audio in the pass (its
  frames dropped): what the decode rule, the normalisation and the missing context change;
* greedy decodes of the offline and the per-segment logits: the acoustic difference without a LM.

WER of each against the offline transcript, the one-search transcript and the true text.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from dataclasses import replace
from pathlib import Path
from unittest.mock import patch

import numpy as np

from benchmarks.streaming_long import CACHE, narration, offline_key
from w2v_triton.eval.machine import load_average, machine_name
from w2v_triton.eval.metrics import error_rates
from w2v_triton.serving import spec
from w2v_triton.serving.ctc_decoding import CTCDecoder, DecoderConfig
from w2v_triton.serving.long_audio import frame_count
from w2v_triton.serving.pipeline import ReferencePipeline, model_parameters
from w2v_triton.serving.preprocessing import normalize, preprocess
from w2v_triton.serving.streaming import build_recognizer, version_dir
from w2v_triton.serving.typing import AnyArray
from w2v_triton.serving.vocabulary import Vocabulary

SR = spec.SAMPLE_RATE
STRIDE = spec.FRAME_STRIDE_SAMPLES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    audio, truth = narration(args.seconds, 0)
    recognizer = build_recognizer(model_parameters(args.repository, spec.STREAMING_MODEL),
                                  version_dir(args.repository), warmup=False)
    vocab = recognizer.acoustic.run([np.zeros(SR, np.float32)])[0].shape[1]
    with patch.object(recognizer.acoustic, "run",
                      lambda jobs: [np.zeros((frame_count(len(x)), vocab), np.float32) for x in jobs]):
        finals = [f for r in recognizer.recognize(audio, 0.5) for f in r.finals]
    segments = [(round(f["start_s"] * SR), round(f["end_s"] * SR)) for f in finals]
    lengths = [(b - a) / SR for a, b in segments]

    pipeline = ReferencePipeline(args.repository)
    offline_logits = pipeline.logits([audio])[0]
    beam = recognizer.decoder
    vocabulary = Vocabulary.load_from_dir(args.repository / spec.DECODER_MODEL)
    greedy = CTCDecoder(vocabulary, DecoderConfig())

    def joined(texts: list[str]) -> str:
        return " ".join(t for t in texts if t)

    def frames(logits: AnyArray, a: int, b: int) -> AnyArray:
        return logits[a // STRIDE: a // STRIDE + frame_count(b - a)]

    def with_context(seconds: float) -> list[AnyArray]:
        out = []
        for a, b in segments:
            lo, hi = max(0, a - int(seconds * SR)), min(audio.size, b + int(seconds * SR))
            logits = recognizer.acoustic.run([preprocess(audio[lo:hi], recognizer.do_normalize)])[0]
            out.append(logits[(a - lo) // STRIDE: (a - lo) // STRIDE + frame_count(b - a)])
        return out

    offline = beam.decode_full(offline_logits).text
    one_search = CTCDecoder(vocabulary,
                            replace(beam.config, split_above_seconds=0.0)).decode_full(offline_logits).text
    cache = CACHE / f"offline-{args.repository.name}.json"
    cached = json.loads(cache.read_text()).get(offline_key(args.repository, audio, truth)) if cache.is_file() else None
    own = with_context(0.0)
    hypotheses = {
        "offline logits, one beam search per pause-delimited piece (the offline transcript)": offline,
        "offline logits, one beam search over the stream (the default before)": one_search,
        "offline logits, one beam search per VAD segment": joined([beam.decode_full(frames(offline_logits, a, b)).text
                                                                  for a, b in segments]),
        "segment passes, beam per segment (the streamed finals)": joined([beam.decode_full(x).text for x in own]),
    }
    per_piece = CTCDecoder(vocabulary, replace(beam.config, split_above_seconds=0.01))   # every input split
    hypotheses["segment passes, one beam search per pause-delimited piece"] = joined(
        [per_piece.decode_full(x).text for x in own])
    whole = normalize(audio) if recognizer.do_normalize else audio
    hypotheses["segment passes normalised over the whole audio, per pause-delimited piece"] = joined(
        [per_piece.decode_full(x).text for x in recognizer.acoustic.run([whole[a:b] for a, b in segments])])
    for seconds in (1.0, 2.0, 4.0):
        hypotheses[f"segment passes with {seconds:g} s of context each side, beam per segment"] = joined(
            [beam.decode_full(x).text for x in with_context(seconds)])
    hypotheses["offline logits, greedy"] = greedy.decode_full(offline_logits).text
    hypotheses["segment passes, greedy"] = joined([greedy.decode_full(x).text for x in own])
    rows = [{"decode": name, "wer_vs_offline": round(error_rates([offline], [text])[0], 4),
             "wer_vs_one_search": round(error_rates([one_search], [text])[0], 4),
             "wer_vs_greedy_offline": round(error_rates([hypotheses["offline logits, greedy"]], [text])[0], 4),
             "wer_vs_truth": round(error_rates([truth], [text])[0], 4)} for name, text in hypotheses.items()]
    report = {"title": "streaming finals vs offline study", "machine": machine_name(),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": "python tools/dev/streaming_finals_study.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "load_average_at_end": load_average(),
              "repository": str(args.repository), "audio_s": round(audio.size / SR, 1),
              "offline_matches_the_benchmark_cache": cached == offline if cached is not None else None,
              "segments": len(segments), "segment_s_median": round(float(np.median(lengths)), 2),
              "segment_s_max": round(max(lengths), 2),
              "offline_pieces": len(beam.pieces(beam.labels.select(offline_logits))), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
