"""A small word-bigram LM folder from sentences, in the layout `make lm` writes (lm.arpa +
unigrams.txt): for a domain LM from a corpus' training sentences (tools/eval_reference_decoding)
and for tests that need an LM that knows a few sentences."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path


def write_sentence_arpa(path: Path, texts: list[str], case: str = "upper") -> Path:
    """A word-bigram ARPA (add-one unigrams, relative-frequency bigrams, flat backoff)."""
    recase = str.upper if case == "upper" else str.lower
    sentences = [recase(t).split() for t in texts if t.strip()]
    unigrams = Counter(w for s in sentences for w in s)
    bigrams = Counter((a, b) for s in sentences for a, b in zip(["<s>", *s], [*s, "</s>"], strict=True))
    starts = Counter(a for a, _ in bigrams.elements())
    total = sum(unigrams.values()) + len(unigrams) + 2
    words = ["<unk>", "</s>", *sorted(unigrams)]
    lines = ["\\data\\", f"ngram 1={len(words) + 1}", f"ngram 2={len(bigrams)}", "", "\\1-grams:",
             "-99\t<s>\t-0.30"]
    for w in words:
        lines.append(f"{math.log10((unigrams.get(w, 0) + 1) / total):.5f}\t{w}\t-0.30")
    lines += ["", "\\2-grams:"]
    for (a, b), n in sorted(bigrams.items()):
        lines.append(f"{math.log10(0.8 * n / starts[a]):.5f}\t{a} {b}")
    lines += ["", "\\end\\", ""]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def write_lm_dir(folder: Path, texts: list[str], case: str = "upper") -> Path:
    """An LM folder like `make lm` writes: lm.arpa + unigrams.txt."""
    write_sentence_arpa(folder / "lm.arpa", texts, case)
    recase = str.upper if case == "upper" else str.lower
    (folder / "unigrams.txt").write_text("\n".join(sorted({recase(w) for t in texts for w in t.split()})) + "\n")
    return folder
