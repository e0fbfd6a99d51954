"""ARPA back-off LM files: write an :class:`NGramLM`, read headers, change word case.

Why: ARPA is the interchange format KenLM (and so pyctcdecode) reads. wav2vec2's
vocabulary is upper case while the CMU LM is lower case, so the writer can upper-case
words; the sentence markers keep their spelling because KenLM looks them up by name.
"""
from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, cast

import numpy as np

from w2v_triton.serving.typing import AnyArray

from .sphinx_binary import NGramLM

SPECIAL_WORDS = frozenset({"<s>", "</s>", "<unk>"})
_CHUNK = 200_000


class NotArpaError(ValueError):
    """The file does not start with an ARPA ``\\data\\`` section."""


def case_mapper(case: str) -> Callable[[str], str]:
    """``upper``/``lower``/``keep`` -> a word mapping that leaves <s>, </s>, <unk> alone."""
    if case == "keep":
        return lambda w: w
    if case not in ("upper", "lower"):
        raise ValueError(f"case must be upper, lower or keep, not {case!r}")
    fn = str.upper if case == "upper" else str.lower
    return lambda w: w if w in SPECIAL_WORDS else fn(w)


def _formatted(values: AnyArray, decimals: int) -> list[str]:
    """Format many (often quantised, so repeated) floats fast: each distinct value once."""
    uniq, inverse = np.unique(values, return_inverse=True)
    table = np.array([f"{v:.{decimals}f}" for v in uniq.tolist()], dtype=object)
    return cast(list[str], table[inverse.ravel()].tolist())


def write_arpa(lm: NGramLM, path: str | Path, case: str = "keep", decimals: int = 6,
               progress: Callable[[int], None] | None = None) -> None:
    """Write ``lm`` as ARPA, n-grams sorted by word id; ``progress(n)`` after n lines."""
    mapper = case_mapper(case)
    words = [mapper(w) for w in lm.words]
    if len(set(words)) != len(words):
        raise ValueError(f"changing case to {case!r} merges distinct words")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\\data\\\n")
        f.writelines(f"ngram {k}={n}\n" for k, n in enumerate(lm.counts, 1))
        for k in range(lm.order):
            f.write(f"\n\\{k + 1}-grams:\n")
            ids = lm.ids[k]
            perm = np.lexsort(ids.T[::-1])
            for start in range(0, len(perm), _CHUNK):
                sel = perm[start:start + _CHUNK]
                cols = [[words[i] for i in ids[sel, j].tolist()] for j in range(k + 1)]
                grams = cols[0] if k == 0 else [" ".join(t) for t in zip(*cols, strict=True)]
                probs = _formatted(lm.probs[k][sel], decimals)
                bo = lm.backoffs[k]
                if bo is None:
                    f.writelines(f"{p}\t{g}\n" for p, g in zip(probs, grams, strict=True))
                else:
                    bos = _formatted(bo[sel], decimals)
                    f.writelines(f"{p}\t{g}\t{b}\n" for p, g, b in zip(probs, grams, bos, strict=True))
                if progress:
                    progress(len(sel))
        f.write("\n\\end\\\n")


def open_text(path: str | Path) -> IO[str]:
    """Open plain or gzip-compressed text (by magic bytes, not by name)."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    # the handle is returned (the caller's with block closes it through the wrapper)
    raw = gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline=None)


def read_header(lines: Iterable[str], source: str = "file") -> list[int]:
    """Consume lines up to and including the counts; return the n-gram counts."""
    it = iter(lines)
    for seen, line in enumerate(it, 1):
        s = line.strip()
        if s == "\\data\\":
            break
        if seen > 100 or "\0" in s:
            raise NotArpaError(f"{source}: no \\data\\ section near the top: not an ARPA file")
    else:
        raise NotArpaError(f"{source}: no \\data\\ section: not an ARPA file")
    counts: list[int] = []
    for line in it:
        s = line.strip()
        if not s:
            if counts:
                return counts
            continue
        if not s.startswith("ngram ") or "=" not in s:
            break
        k, n = s[6:].split("=", 1)
        if int(k) != len(counts) + 1:
            raise NotArpaError(f"{source}: n-gram counts out of order")
        counts.append(int(n))
    if not counts:
        raise NotArpaError(f"{source}: \\data\\ section without 'ngram N=count' lines")
    return counts


def iter_unigrams(lines: Iterator[str]) -> Iterator[str]:
    """Words of the ``\\1-grams:`` section (call after :func:`read_header`)."""
    for line in lines:
        if line.strip() == "\\1-grams:":
            break
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if parts[0].startswith("\\"):
            return
        yield parts[1]


def arpa_info(path: str | Path) -> tuple[list[int], list[str]]:
    """(counts, unigram words) of an ARPA file, reading only its header and unigrams."""
    with open_text(path) as f:
        counts = read_header(f, str(path))
        words = list(iter_unigrams(f))
    if len(words) != counts[0]:
        raise NotArpaError(f"{path}: header says {counts[0]} unigrams, file has {len(words)}")
    return counts, words


def detect_case(words: Iterable[str]) -> str:
    """``upper``, ``lower``, ``mixed`` or ``none`` (no cased letters); markers ignored."""
    kinds: set[str] = set()
    for w in words:
        if w in SPECIAL_WORDS or w.upper() == w.lower():
            continue
        kinds.add("upper" if w == w.upper() else "lower" if w == w.lower() else "mixed")
    if len(kinds) == 1:
        return kinds.pop()
    return "mixed" if kinds else "none"


def recase_arpa(src: str | Path, dst: str | Path, case: str,
                progress: Callable[[int], None] | None = None) -> None:
    """Stream-copy an (optionally gzipped) ARPA file, changing the case of its words."""
    mapper = case_mapper(case)
    order = 0
    with open_text(src) as fin, open(dst, "w", encoding="utf-8", newline="\n") as fout:
        for done, line in enumerate(fin, 1):
            s = line.strip()
            if s.startswith("\\") and s.endswith("-grams:"):
                order = int(s[1:s.index("-")])
            elif order and s and not s.startswith("\\"):
                parts = s.split()
                parts[1:1 + order] = [mapper(w) for w in parts[1:1 + order]]
                line = "\t".join([parts[0], " ".join(parts[1:1 + order]), *parts[1 + order:]]) + "\n"
            elif s == "\\end\\":
                order = 0
            fout.write(line)
            if progress and done % 100_000 == 0:
                progress(100_000)
