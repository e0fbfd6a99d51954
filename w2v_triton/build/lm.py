"""Produce the decoder's LM directory: ``lm.arpa`` (and ``lm.bin``), ``unigrams.txt``, ``lm.json``.

Why one function: ``builders/lm.py`` (make lm), tests and other tools all need the same
rules — which source, which word case (wav2vec2's labels are upper case), when a rebuild
is needed (``lm.json`` records the inputs; same inputs and files present -> nothing to do).
"""
from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from tqdm import tqdm

from w2v_triton.serving.lm.arpa import SPECIAL_WORDS, NotArpaError, arpa_info, case_mapper, detect_case, open_text, recase_arpa, write_arpa
from w2v_triton.build.kenlm_tool import QUANTIZE_ARGS, KenLMToolError, arpa_to_binary, find_build_binary
from w2v_triton.serving.lm.sphinx_binary import cmu_en_us_lm_path, read_sphinx_trie
from w2v_triton.paths import LM_DIR

DEFAULT_BASE_URL = "https://www.openslr.org/resources/11"   # LibriSpeech LMs (OpenSLR SLR11)
DOWNLOADS = {
    "librispeech-3gram-pruned": "3-gram.pruned.1e-7.arpa.gz",
    "librispeech-4gram": "4-gram.arpa.gz",
}
KENLM_MAGIC = b"mmap lm http://kheafield.com/code"
LAYOUT_VERSION = 2   # bump when the output of the same inputs changes
META = "lm.json"


class LMBuildError(RuntimeError):
    """A user-facing failure (bad path, unreachable URL, not an LM); the CLI prints it."""



def _ticker(bar: Any) -> Callable[[int], None]:
    """A tqdm bar's update as the progress callback the ARPA writers take."""
    def tick(count: int) -> None:
        bar.update(count)
    return tick

def _file_id(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise LMBuildError(f"{what} not found: {path}")
    return path


def _up_to_date(out: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        meta = json.loads((out / META).read_text())
    except (OSError, ValueError):
        return None
    files = [meta.get("lm_file"), meta.get("unigrams_file")]
    if meta.get("key") != key or not all((out / f).is_file() for f in files if f):
        return None
    return cast(dict[str, Any], meta)


def download(url: str, dest: Path, timeout: float, show_progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest`` (via ``.part``, so an interrupted run leaves no bad file)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                      disable=not show_progress) as bar:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        part.unlink(missing_ok=True)
        raise LMBuildError(f"download failed: HTTP {e.code} for {url}") from e
    except (urllib.error.URLError, OSError) as e:
        part.unlink(missing_ok=True)
        reason = getattr(e, "reason", e)
        raise LMBuildError(f"cannot download {url}: {reason} (timeout {timeout:g} s)") from e
    part.replace(dest)
    return dest


def _write_unigrams(words: list[str], case: str, path: Path) -> int:
    mapper = case_mapper(case)
    kept = [mapper(w) for w in words if w not in SPECIAL_WORDS]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(w + "\n" for w in kept), encoding="utf-8")
    tmp.replace(path)
    return len(kept)


def _kenlm_case(path: Path) -> str:
    """Word case of a KenLM binary, probed with common words (the vocabulary is hashed)."""
    import kenlm  # local: only this path needs the extension

    model = kenlm.Model(str(path))
    probes = ("the", "and", "of", "a", "to")
    if any(w.upper() in model for w in probes):
        return "upper"
    return "lower" if any(w in model for w in probes) else "none"


def build_lm(out_dir: str | Path = LM_DIR, *, arpa: str | Path | None = None,
             kenlm_binary: str | Path | None = None, download_name: str | None = None,
             unigrams: str | Path | None = None, base_url: str = DEFAULT_BASE_URL,
             case: str = "upper", force: bool = False, timeout: float = 30.0,
             show_progress: bool = True, binary: bool = True,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build (or find up to date) the LM directory; return the ``lm.json`` content.

    Exactly one of ``arpa``/``kenlm_binary``/``download_name`` may be given; none means the
    CMU US-English 3-gram from pocketsphinx (offline). ``case``: upper/lower/keep.
    ``binary``: also write ``lm.bin`` (quantised KenLM trie) from an ARPA, compiling KenLM's
    ``build_binary`` from the kenlm sdist when it is not on PATH (kenlm_tool.py).
    """
    if sum(x is not None for x in (arpa, kenlm_binary, download_name)) > 1:
        raise LMBuildError("give at most one of --arpa, --kenlm-binary, --download")
    case_mapper(case)  # validates
    out = Path(out_dir)

    # -- identify the source (this is what decides whether a rebuild is needed) --------
    if download_name is not None:
        if download_name not in DOWNLOADS:
            raise LMBuildError(f"unknown download {download_name!r}; choose from {sorted(DOWNLOADS)}")
        url = f"{base_url.rstrip('/')}/{DOWNLOADS[download_name]}"
        source: dict[str, Any] = {"kind": "download", "name": download_name, "url": url}
    elif arpa is not None:
        source = {"kind": "arpa", **_file_id(_require_file(Path(arpa), "ARPA file"))}
    elif kenlm_binary is not None:
        source = {"kind": "kenlm-binary", **_file_id(_require_file(Path(kenlm_binary), "KenLM binary"))}
        source["unigrams"] = _file_id(_require_file(Path(unigrams), "unigram list")) if unigrams else None
    else:
        source = {"kind": "cmu-sphinx", "name": "cmu-en-us-3gram", **_file_id(cmu_en_us_lm_path())}
    key = {"layout": LAYOUT_VERSION, "source": source, "case": case,
           "kenlm_binary": QUANTIZE_ARGS if binary or source["kind"] == "kenlm-binary" else None}
    if not force and (meta := _up_to_date(out, key)):
        log(f"LM in {out} is up to date ({meta['lm_file']}, {meta['case']} case); --force rebuilds")
        return meta

    out.mkdir(parents=True, exist_ok=True)
    (out / META).unlink(missing_ok=True)   # written last: its presence marks a finished build
    for stale in ("lm.arpa", "lm.bin", "unigrams.txt"):
        (out / stale).unlink(missing_ok=True)
    arpa_out = out / "lm.arpa"
    tmp = out / "lm.arpa.tmp"

    if source["kind"] == "kenlm-binary":
        src = Path(source["path"])
        with open(src, "rb") as f:
            if f.read(len(KENLM_MAGIC)) != KENLM_MAGIC:
                raise LMBuildError(f"{src}: not a KenLM binary (use --arpa for ARPA files)")
        src_case = _kenlm_case(src)
        if case != "keep" and src_case not in (case, "none"):
            raise LMBuildError(f"{src}: KenLM binary words are {src_case} case and a binary cannot be "
                               f"re-cased; pass --case keep or give the ARPA file instead")
        shutil.copyfile(src, out / "lm.bin.tmp")
        (out / "lm.bin.tmp").replace(out / "lm.bin")
        order, counts, words = None, None, None
        if unigrams:
            words = Path(unigrams).read_text(encoding="utf-8").split()
        lm_file, final_case = "lm.bin", src_case
    elif source["kind"] == "cmu-sphinx":
        log(f"converting {source['path']} (Sphinx binary trie) to ARPA")
        lm = read_sphinx_trie(source["path"])
        with tqdm(total=sum(lm.counts), unit="ngram", unit_scale=True, desc="lm.arpa",
                  disable=not show_progress) as bar:
            write_arpa(lm, tmp, case=case, progress=_ticker(bar))
        tmp.replace(arpa_out)
        order, counts, words = lm.order, lm.counts, lm.words
        lm_file = "lm.arpa"
        final_case = detect_case(case_mapper(case)(w) for w in words[:5000])
    else:
        if source["kind"] == "download":
            src = out / "downloads" / DOWNLOADS[download_name]   # type: ignore[index]
            stamp = src.with_name(src.name + ".url")   # reuse a download only from the same URL
            if force or not src.is_file() or not stamp.is_file() or stamp.read_text() != source["url"]:
                log(f"downloading {source['url']}")
                download(source["url"], src, timeout, show_progress)
                stamp.write_text(source["url"])
        else:
            src = Path(source["path"])
        try:
            counts, words = arpa_info(src)
        except (NotArpaError, UnicodeDecodeError, EOFError, OSError) as e:
            raise LMBuildError(f"{src}: not a readable ARPA LM ({e})") from e
        order = len(counts)
        src_case = detect_case(words)
        with tqdm(total=sum(counts), unit="line", unit_scale=True, desc="lm.arpa",
                  disable=not show_progress) as bar:
            if case == "keep" or src_case in (case, "none"):
                with open_text(src) as fin, open(tmp, "w", encoding="utf-8") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
                bar.update(sum(counts))
            else:
                recase_arpa(src, tmp, case, progress=_ticker(bar))
        tmp.replace(arpa_out)
        lm_file = "lm.arpa"
        final_case = src_case if case == "keep" or src_case == "none" else case
        if final_case != "upper":
            log(f"note: LM words are {final_case} case; wav2vec2's vocabulary is upper case")

    if lm_file == "lm.arpa" and binary:
        try:
            tool = find_build_binary()
            log(f"building the KenLM binary ({' '.join(QUANTIZE_ARGS)}) with {tool}")
            arpa_to_binary(tool, arpa_out, out / "lm.bin")
            lm_file = "lm.bin"
        except KenLMToolError as e:
            raise LMBuildError(f"{e}\n(--no-binary keeps lm.arpa only; it loads ~10x slower)") from e

    n_unigrams = None
    if words is not None:
        n_unigrams = _write_unigrams(words, case, out / "unigrams.txt")
    else:
        log("no unigram list (a KenLM binary does not expose its vocabulary; pass --unigrams)")
    meta = {
        "key": key,
        "source": source,
        "order": order,
        "counts": counts,
        "case": final_case,
        "lm_file": lm_file,
        "arpa_file": "lm.arpa" if arpa_out.is_file() else None,
        "binary_file": "lm.bin" if (out / "lm.bin").is_file() else None,
        "unigrams_file": "unigrams.txt" if n_unigrams is not None else None,
        "n_unigrams": n_unigrams,
        "sizes": {f: (out / f).stat().st_size for f in ("lm.arpa", "lm.bin", "unigrams.txt")
                  if (out / f).is_file()},
    }
    meta_tmp = out / (META + ".tmp")
    meta_tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(meta_tmp, out / META)
    log(f"wrote {out / lm_file} ({meta['case']} case, order {order}, counts {counts})")
    return meta
