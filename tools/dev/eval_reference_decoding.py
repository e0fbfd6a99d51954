"""What decoding adds to a CTC model on the synthetic test splits: greedy vs beam + LM, same logits.

    python tools/dev/eval_reference_decoding.py --model models/reference --corpus build/corpus \\
        --lm cmu=build/lm --out docs/reference-decoding-eval.json

Sets: test_seen and test_unseen as built (augmented), and test_seen's sentences re-synthesised
cleanly (espeak-ng voice en-us, rate 160, no augmentation). LMs: each --lm NAME=DIR (lm.arpa +
unigrams.txt, as `make lm` writes) plus "domain bigram", a word bigram of the corpus's training
sentences (the LM tests/test_reference_e2e.py serves). Needs espeak-ng and the fortunes text.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from w2v_triton.serving.ctc_decoding import CTCDecoder, DecoderConfig
from w2v_triton.build.lm_sentences import write_lm_dir
from w2v_triton.serving.preprocessing import normalize
from w2v_triton.serving.spec import BASE_960H_VOCAB
from w2v_triton.train.corpus import CorpusConfig, split_sentences  # noqa: E402
from w2v_triton.train.synthesizers import get as synthesizer  # noqa: E402
from w2v_triton.train.data import ManifestDataset  # noqa: E402
from w2v_triton.eval.metrics import error_rates  # noqa: E402
from w2v_triton.paths import CORPUS_DIR


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/reference")
    p.add_argument("--corpus", default=str(CORPUS_DIR))
    p.add_argument("--lm", action="append", default=[], help="NAME=DIR with lm.arpa + unigrams.txt")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    from tqdm import tqdm
    from transformers import Wav2Vec2ForCTC

    torch.set_num_threads(a.threads)
    model = Wav2Vec2ForCTC.from_pretrained(a.model, dtype=torch.float32).eval()

    def logits(audio):
        with torch.no_grad():
            return model(torch.from_numpy(normalize(audio))[None]).logits[0].numpy()

    sentences = split_sentences(CorpusConfig())
    sets = {}
    for split in ("test_seen", "test_unseen"):
        ds = ManifestDataset.from_manifest(Path(a.corpus) / f"{split}.jsonl", BASE_960H_VOCAB, do_normalize=False)
        rows = [ds[i] for i in tqdm(range(len(ds)), desc=split)]
        sets[split] = ([logits(r["input_values"]) for r in rows], [r["text"] for r in rows])
    clean = sentences["test_seen"]
    sets["test_seen_clean_en-us"] = ([logits(synthesizer("espeak").synthesize(t, "en-us", 160, 50)) for t in tqdm(clean, desc="clean")],
                                     clean)
    with tempfile.TemporaryDirectory() as tmp:
        lms = dict(item.split("=", 1) for item in a.lm)
        lms["domain bigram"] = str(write_lm_dir(Path(tmp), sentences["train"]))
        decoders = {"greedy": DecoderConfig()}
        decoders.update({f"beam32 + {name} (a0.5 b1)": DecoderConfig(
            mode="beam", lm_path=str(Path(d) / "lm.arpa"), unigrams_path=str(Path(d) / "unigrams.txt"))
            for name, d in lms.items()})
        results = {}
        for name, cfg in decoders.items():
            decoder = CTCDecoder(dict(BASE_960H_VOCAB), cfg)
            for split, (lg, refs) in sets.items():
                hyps = decoder.decode_batch(lg)
                wer, cer = error_rates(refs, hyps)
                results[f"{name} | {split}"] = {
                    "wer": round(wer, 3), "cer": round(cer, 3),
                    "exact": sum(r == h for r, h in zip(refs, hyps)), "n": len(refs)}
                print(name, "|", split, results[f"{name} | {split}"], flush=True)
    Path(a.out).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
