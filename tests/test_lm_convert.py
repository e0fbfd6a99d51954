"""Sphinx binary trie -> ARPA: exact structure and KenLM scores against the shared reference."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from w2v_triton.serving.lm.arpa import write_arpa
from w2v_triton.serving.lm.sphinx_binary import NGramLM, _read_bits, cmu_en_us_lm_path, read_sphinx_trie

kenlm = pytest.importorskip("kenlm")

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "lm" / "cmu-en-us-3gram.reference-scores.jsonl"


@pytest.fixture(scope="module")
def cmu_lm() -> NGramLM:
    try:
        path = cmu_en_us_lm_path()
    except (ModuleNotFoundError, FileNotFoundError) as e:
        pytest.skip(f"pocketsphinx LM not available: {e}")
    return read_sphinx_trie(path)


@pytest.fixture(scope="module")
def cmu_arpa(cmu_lm: NGramLM, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lower-case ARPA conversion, made once per module (a few seconds)."""
    path = tmp_path_factory.mktemp("cmu-lm") / "cmu-lower.arpa"
    write_arpa(cmu_lm, path, case="keep")
    return path


@pytest.fixture(scope="module")
def cmu_kenlm(cmu_arpa: Path):
    return kenlm.Model(str(cmu_arpa))


def _reference() -> list[dict]:
    if not REFERENCE.is_file():
        pytest.skip(f"no shared reference at {REFERENCE}")
    return [json.loads(line) for line in REFERENCE.read_text().splitlines() if line.strip()]


def test_read_bits_matches_python_packing() -> None:
    rng = np.random.default_rng(0)
    for nbits in (1, 7, 16, 17, 21, 32):
        values = rng.integers(0, 1 << nbits, size=50, dtype=np.uint64)
        packed = 0
        for i, v in enumerate(values.tolist()):
            packed |= v << (i * nbits + 3)          # odd start offset
        buf = np.frombuffer(packed.to_bytes((50 * nbits + 3) // 8 + 9, "little"), np.uint8)
        offsets = np.arange(50, dtype=np.int64) * nbits + 3
        np.testing.assert_array_equal(_read_bits(buf, offsets, nbits), values)


def test_trie_holds_fewer_bigrams_than_header(cmu_lm: NGramLM) -> None:
    assert cmu_lm.header_counts == [72547, 2051547, 1669625]
    assert cmu_lm.counts == [72547, 2051541, 1669625]
    assert len(cmu_lm.words) == 72547 and "<s>" in cmu_lm.words and "</s>" in cmu_lm.words
    assert all(ids.shape == (n, k + 1) for k, (ids, n) in enumerate(zip(cmu_lm.ids, cmu_lm.counts)))
    for ids in cmu_lm.ids[1:]:   # no duplicate n-grams (rows packed into one int64 key each)
        keys = np.zeros(len(ids), np.int64)
        for col in ids.T:
            keys = keys * len(cmu_lm.words) + col
        assert len(np.unique(keys)) == len(ids)
    assert all(float(p.max()) <= 0.0 for p in cmu_lm.probs)


def test_converted_arpa_reproduces_reference_scores(cmu_kenlm) -> None:
    for ref in _reference():
        s = ref["sentence"]
        assert cmu_kenlm.score(s, bos=True, eos=True) == pytest.approx(ref["log10_prob_bos_eos"], abs=1e-3), s
        assert cmu_kenlm.score(s, bos=False, eos=False) == pytest.approx(ref["log10_prob_no_bos_eos"], abs=1e-3), s
        assert cmu_kenlm.perplexity(s) == pytest.approx(ref["perplexity"], rel=1e-3), s


def test_binary_lm_reproduces_reference_scores(cmu_arpa: Path, tmp_path: Path) -> None:
    """The quantised KenLM trie `make lm` writes keeps the reference scores (within 1e-3), and
    loads in well under a second."""
    import shutil
    import time

    from w2v_triton.build.kenlm_tool import KenLMToolError, arpa_to_binary, find_build_binary

    refs = _reference()
    if not (shutil.which("g++") or shutil.which("build_binary")):
        pytest.skip("no C++ compiler to build KenLM's build_binary")
    try:
        tool = find_build_binary()
    except KenLMToolError as e:   # e.g. no network for the sdist on a fresh machine
        pytest.skip(str(e))
    binary = tmp_path / "cmu.bin"
    arpa_to_binary(tool, cmu_arpa, binary)
    assert binary.stat().st_size < cmu_arpa.stat().st_size / 3
    start = time.perf_counter()
    model = kenlm.Model(str(binary))
    assert time.perf_counter() - start < 2.0
    for ref in refs:
        s = ref["sentence"]
        assert model.score(s, bos=True, eos=True) == pytest.approx(ref["log10_prob_bos_eos"], abs=1e-3), s
        assert model.score(s, bos=False, eos=False) == pytest.approx(ref["log10_prob_no_bos_eos"], abs=1e-3), s
        assert model.perplexity(s) == pytest.approx(ref["perplexity"], rel=1e-3), s


@pytest.mark.slow
def test_upper_case_arpa_scores_equal(cmu_lm: NGramLM, cmu_kenlm, tmp_path: Path) -> None:
    path = tmp_path / "cmu-upper.arpa"
    write_arpa(cmu_lm, path, case="upper")
    upper = kenlm.Model(str(path))
    sentences = [r["sentence"] for r in _reference()] if REFERENCE.is_file() else ["the cat sat on the mat"]
    for s in sentences:
        for bos, eos in ((True, True), (False, False)):
            assert upper.score(s.upper(), bos=bos, eos=eos) == pytest.approx(
                cmu_kenlm.score(s, bos=bos, eos=eos), abs=1e-9), s
    assert "THE" in upper and "the" not in upper


def test_reader_rejects_other_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\\data\\\nngram 1=1\n")
    with pytest.raises(ValueError, match="not a Sphinx binary trie"):
        read_sphinx_trie(junk)


def test_upper_case_refuses_to_merge_words(tmp_path: Path) -> None:
    lm = NGramLM(words=["a", "A"], ids=[np.array([[0], [1]], np.int32)],
                 probs=[np.array([-1.0, -1.0])], backoffs=[None], header_counts=[2])
    with pytest.raises(ValueError, match="merges distinct words"):
        write_arpa(lm, tmp_path / "x.arpa", case="upper")
