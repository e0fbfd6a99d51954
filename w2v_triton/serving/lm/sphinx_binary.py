"""Read CMU Sphinx's binary trie LM (``*.lm.bin``, "Trie Language Model") with numpy.

Why: pocketsphinx ships the only offline English n-gram LM we have, but only in this
format; pyctcdecode/KenLM need ARPA. Upstream's ARPA writer trusts the header counts,
which for ``en-us.lm.bin`` overstate the bigrams by six and make it crash, so here every
level's size is taken from the trie's own pointers and the header only fixes the layout.

Layout (little-endian, as written by pocketsphinx ``ngram_model_trie_write_bin``)::

    "Trie Language Model"  uint8 order  uint32 counts[order]     # header counts
    [order > 1] int32 (ignored) + float32 quant tables:
        per middle order: prob[2**16], backoff[2**16];  longest: prob[2**16]
    unigrams[counts[0] + 1]: float32 prob, float32 backoff, uint32 next
    per middle order: bit-packed (word | backoff16 | prob16 | next) records
    longest order:    bit-packed (word | prob16) records
    int32 nbytes + NUL-separated words

Records are reversed-context: the trie path of ``w1 w2 w3`` is ``w3 -> w2 -> w1``.
Scores are in the log base 1.0001 of sphinx's default ``logmath``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from w2v_triton.serving.typing import AnyArray

MAGIC = b"Trie Language Model"
LOG_BASE = 1.0001          # sphinx logmath default; values * log10(base) -> log10
QUANT_BITS = 16            # fixed in lm_trie_quant.c (prob and backoff alike)
_TO_LOG10 = math.log10(LOG_BASE)


@dataclass
class NGramLM:
    """A back-off LM as flat arrays; ``ids[k]`` are (count, k+1) word ids in text order."""

    words: list[str]
    ids: list[AnyArray]          # per order k+1: int32 [count, k+1]
    probs: list[AnyArray]        # per order: float64 log10 prob [count]
    backoffs: list[AnyArray | None]  # per order: float64 log10 backoff, None for the top order
    header_counts: list[int]

    @property
    def order(self) -> int:
        return len(self.ids)

    @property
    def counts(self) -> list[int]:
        return [len(p) for p in self.probs]


def cmu_en_us_lm_path() -> Path:
    """The CMU US-English 3-gram inside the installed pocketsphinx package."""
    path = Path(str(resources.files("pocketsphinx"))) / "model" / "en-us" / "en-us.lm.bin"
    if not path.is_file():
        raise FileNotFoundError(f"pocketsphinx has no {path}")
    return path


def _required_bits(max_value: int) -> int:
    return int(max_value).bit_length()


def _read_bits(buf: AnyArray, bit_offsets: AnyArray, nbits: int) -> AnyArray:
    """Vectorised ``bitarr_read_int25/57``: little-endian fields at arbitrary bit offsets."""
    byte = bit_offsets >> 3
    shift = (bit_offsets & 7).astype(np.uint64)
    value = np.zeros(len(bit_offsets), dtype=np.uint64)
    for k in range((nbits + 7 + 7) // 8):
        value |= buf[byte + k].astype(np.uint64) << np.uint64(8 * k)
    return (value >> shift) & np.uint64((1 << nbits) - 1)


def _segment_bytes(entries: int, total_bits: int) -> int:
    # one extra record for the final "next" pointer, round up, + 8 bytes slack (lm_trie.c)
    return ((1 + entries) * total_bits + 7) // 8 + 8


def read_sphinx_trie(path: str | Path) -> NGramLM:
    """Parse a sphinx binary trie LM into :class:`NGramLM` (log10 scores)."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path}: not a Sphinx binary trie LM (no {MAGIC!r} header)")
    buf = np.frombuffer(data, dtype=np.uint8)
    pos = len(MAGIC)
    order = data[pos]
    pos += 1
    header = [int(c) for c in np.frombuffer(data, "<u4", order, pos)]
    pos += 4 * order

    # quantisation tables: [prob, backoff] per middle order, then the longest order's prob
    mid_tables: list[tuple[AnyArray, AnyArray]] = []
    longest_table = np.zeros(0, np.float64)
    if order > 1:
        pos += 4  # formerly the quantisation type
        n = 1 << QUANT_BITS
        for _ in range(order - 2):
            p = np.frombuffer(data, "<f4", n, pos).astype(np.float64) * _TO_LOG10
            b = np.frombuffer(data, "<f4", n, pos + 4 * n).astype(np.float64) * _TO_LOG10
            mid_tables.append((p, b))
            pos += 8 * n
        longest_table = np.frombuffer(data, "<f4", n, pos).astype(np.float64) * _TO_LOG10
        pos += 4 * n

    uni = np.frombuffer(data, [("p", "<f4"), ("b", "<f4"), ("n", "<u4")], header[0] + 1, pos)
    pos += 12 * (header[0] + 1)

    n_uni = header[0]
    ids: list[AnyArray] = [np.arange(n_uni, dtype=np.int32)[:, None]]
    probs = [uni["p"][:n_uni].astype(np.float64) * _TO_LOG10]
    backoffs: list[AnyArray | None] = [uni["b"][:n_uni].astype(np.float64) * _TO_LOG10]
    nexts = uni["n"].astype(np.int64)          # child ranges of the previous level
    trie_path = ids[0]                           # reversed n-grams of the previous level
    word_bits = _required_bits(n_uni)

    for k in range(2, order + 1):               # k = n-gram order of this level
        count = int(nexts[-1])                   # what the trie really holds
        if int(nexts[0]) != 0 or np.any(np.diff(nexts) < 0):
            raise ValueError(f"{path}: corrupt {k}-gram pointers")
        parent = np.repeat(np.arange(len(nexts) - 1), np.diff(nexts))
        longest = k == order
        next_bits = 0 if longest else _required_bits(header[k])
        total = word_bits + (QUANT_BITS if longest else 2 * QUANT_BITS) + next_bits
        rec = np.arange(count + (0 if longest else 1), dtype=np.int64) * total + pos * 8
        word = _read_bits(buf, rec[:count], word_bits).astype(np.int32)
        if count and int(word.max()) >= n_uni:
            raise ValueError(f"{path}: word id out of range in {k}-grams")
        if longest:
            probs.append(longest_table[_read_bits(buf, rec + word_bits, QUANT_BITS)])
            backoffs.append(None)
        else:
            p_tab, b_tab = mid_tables[k - 2]
            backoffs.append(b_tab[_read_bits(buf, rec[:count] + word_bits, QUANT_BITS)])
            probs.append(p_tab[_read_bits(buf, rec[:count] + word_bits + QUANT_BITS, QUANT_BITS)])
            nexts = _read_bits(buf, rec + word_bits + 2 * QUANT_BITS, next_bits).astype(np.int64)
        trie_path = np.concatenate([trie_path[parent], word[:, None]], axis=1)
        ids.append(np.ascontiguousarray(trie_path[:, ::-1]))
        pos += _segment_bytes(header[k - 1], total)   # layout follows the header counts

    nbytes = int(np.frombuffer(data, "<i4", 1, pos)[0])
    pos += 4
    words = data[pos:pos + nbytes].decode("utf-8").split("\0")[:-1]
    if len(words) != n_uni:
        raise ValueError(f"{path}: {len(words)} words for {n_uni} unigrams")
    return NGramLM(words=words, ids=ids, probs=probs, backoffs=backoffs, header_counts=header)
