"""builders/lm.py: ARPA in/out, case, idempotency, --download from a local server, errors."""
from __future__ import annotations

import functools
import gzip
import http.server
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]

TINY_ARPA = """\\data\\
ngram 1=6
ngram 2=5
ngram 3=3

\\1-grams:
-99\t<s>\t-0.30
-1.00\t</s>
-0.70\tthe\t-0.25
-0.90\tcat\t-0.20
-1.10\tsat\t-0.15
-1.20\tmat\t-0.10

\\2-grams:
-0.30\t<s> the\t-0.10
-0.50\tthe cat\t-0.05
-0.60\tcat sat\t-0.05
-0.40\tsat </s>
-0.80\tthe mat

\\3-grams:
-0.20\t<s> the cat
-0.25\tthe cat sat
-0.30\tcat sat </s>

\\end\\
"""
SENTENCES = ["the cat sat", "the mat", "cat the sat mat", "dog sat"]
TINY_ARPA_UPPER = functools.reduce(lambda t, w: t.replace(w, w.upper()), ["the", "cat", "sat", "mat"], TINY_ARPA)


@pytest.fixture(scope="module")
def cli() -> ModuleType:
    spec = importlib.util.spec_from_file_location("builders_lm", REPO / "builders" / "lm.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_arpa(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.arpa"
    path.write_text(TINY_ARPA)
    return path


def run(cli: ModuleType, *args: str | Path, binary: bool = False) -> int:
    """builders/lm.py main(); without `binary`, ARPA only (no C++ compiler needed)."""
    return cli.main([str(a) for a in args] + ["--quiet"] + ([] if binary else ["--no-binary"]))


def meta(out: Path) -> dict:
    return json.loads((out / "lm.json").read_text())


def test_upper_case_keeps_scores(cli: ModuleType, tiny_arpa: Path, tmp_path: Path) -> None:
    kenlm = pytest.importorskip("kenlm")
    out = tmp_path / "lm"
    assert run(cli, "--arpa", tiny_arpa, "--out", out) == 0
    m = meta(out)
    assert (m["case"], m["order"], m["counts"]) == ("upper", 3, [6, 5, 3])
    assert m["lm_file"] == "lm.arpa" and m["arpa_file"] == "lm.arpa" and m["binary_file"] is None
    assert (out / "unigrams.txt").read_text().split() == ["THE", "CAT", "SAT", "MAT"]
    lower, upper = kenlm.Model(str(tiny_arpa)), kenlm.Model(str(out / m["lm_file"]))
    for s in SENTENCES:
        for bos, eos in ((True, True), (False, False), (True, False)):
            assert upper.score(s.upper(), bos=bos, eos=eos) == pytest.approx(
                lower.score(s, bos=bos, eos=eos), abs=1e-6)


def test_binary_lm_is_written_and_scores_like_the_arpa(cli: ModuleType, tiny_arpa: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """make lm's default: lm.bin (quantised trie from build_binary, compiled from the kenlm sdist
    when not on PATH) next to lm.arpa; the decoder config picks lm.bin."""
    kenlm = pytest.importorskip("kenlm")
    if not (shutil.which("g++") or shutil.which("build_binary")):
        pytest.skip("no C++ compiler to build KenLM's build_binary")
    out = tmp_path / "lm"
    assert run(cli, "--arpa", tiny_arpa, "--out", out, binary=True) == 0, capsys.readouterr().err
    m = meta(out)
    assert (m["lm_file"], m["binary_file"], m["arpa_file"]) == ("lm.bin", "lm.bin", "lm.arpa")
    assert (out / "lm.bin").read_bytes().startswith(b"mmap lm http://kheafield.com/code")
    arpa, binary = kenlm.Model(str(out / "lm.arpa")), kenlm.Model(str(out / "lm.bin"))
    for s in SENTENCES:
        for bos, eos in ((True, True), (False, False)):
            assert binary.score(s.upper(), bos=bos, eos=eos) == pytest.approx(
                arpa.score(s.upper(), bos=bos, eos=eos), abs=1e-3)
    assert m["key"]["kenlm_binary"] == ["-q", "16", "-b", "16", "trie"]
    assert run(cli, "--arpa", tiny_arpa, "--out", out) == 0   # --no-binary: another key, rebuilt, ARPA only
    assert meta(out)["lm_file"] == "lm.arpa" and not (out / "lm.bin").exists()


def test_gzipped_arpa_keep_case(cli: ModuleType, tiny_arpa: Path, tmp_path: Path) -> None:
    gz = tmp_path / "tiny.arpa.gz"
    gz.write_bytes(gzip.compress(tiny_arpa.read_bytes()))
    out = tmp_path / "lm"
    assert run(cli, "--arpa", gz, "--case", "keep", "--out", out) == 0
    assert (out / "lm.arpa").read_text() == TINY_ARPA
    assert meta(out)["case"] == "lower"
    assert (out / "unigrams.txt").read_text().split() == ["the", "cat", "sat", "mat"]


def test_idempotent_unless_input_changes_or_force(cli: ModuleType, tiny_arpa: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lm"
    assert run(cli, "--arpa", tiny_arpa, "--out", out) == 0
    stamp = (out / "lm.json").stat().st_mtime_ns
    capsys.readouterr()
    assert run(cli, "--arpa", tiny_arpa, "--out", out) == 0
    assert "up to date" in capsys.readouterr().out
    assert (out / "lm.json").stat().st_mtime_ns == stamp
    assert run(cli, "--arpa", tiny_arpa, "--out", out, "--force") == 0
    assert "up to date" not in capsys.readouterr().out
    assert run(cli, "--arpa", tiny_arpa, "--out", out, "--case", "lower") == 0   # other case: rebuild
    assert meta(out)["case"] == "lower"
    tiny_arpa.write_text(TINY_ARPA.replace("-0.70\tthe", "-0.75\tthe"))           # edited input: rebuild
    os.utime(tiny_arpa, ns=(stamp + 10**9, stamp + 10**9))
    assert run(cli, "--arpa", tiny_arpa, "--out", out, "--case", "lower") == 0
    assert "-0.75\tthe" in (out / "lm.arpa").read_text()


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A local HTTP server (127.0.0.1, free port, own thread) serving a temp folder."""
    root = tmp_path / "www"
    root.mkdir()
    handler = type("H", (_Handler,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/lms", root, handler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_download_from_local_server(cli: ModuleType, http_dir: tuple[str, Path, list[str]],
                                    tmp_path: Path) -> None:
    base_url, root, requests = http_dir
    (root / "lms").mkdir()
    (root / "lms" / "3-gram.pruned.1e-7.arpa.gz").write_bytes(gzip.compress(TINY_ARPA_UPPER.encode()))
    out = tmp_path / "lm"
    args = ["--download", "librispeech-3gram-pruned", "--base-url", base_url, "--out", out]
    assert run(cli, *args) == 0
    m = meta(out)
    assert m["source"]["url"] == f"{base_url}/3-gram.pruned.1e-7.arpa.gz" and m["case"] == "upper"
    assert (out / "lm.arpa").read_text() == TINY_ARPA_UPPER
    assert (out / "unigrams.txt").read_text().split() == ["THE", "CAT", "SAT", "MAT"]
    assert run(cli, *args) == 0                      # up to date: no second request
    assert requests == ["/lms/3-gram.pruned.1e-7.arpa.gz"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_error_paths(cli: ModuleType, tiny_arpa: Path, tmp_path: Path, http_dir: tuple[str, Path, list[str]],
                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lm"
    not_arpa = tmp_path / "notes.txt"
    not_arpa.write_text("hello\nworld\n")
    junk_gz = tmp_path / "junk.arpa.gz"
    junk_gz.write_bytes(b"\x1f\x8b not really gzip")
    cases = [
        (["--arpa", tmp_path / "missing.arpa"], "ARPA file not found"),
        (["--kenlm-binary", tmp_path / "missing.bin"], "KenLM binary not found"),
        (["--arpa", not_arpa], "not an ARPA file"),
        (["--arpa", junk_gz], "not a readable ARPA LM"),
        (["--kenlm-binary", tiny_arpa], "not a KenLM binary"),
        (["--download", "librispeech-4gram", "--base-url", http_dir[0]], "HTTP 404"),
        (["--download", "librispeech-4gram", "--base-url", f"http://127.0.0.1:{_free_port()}"],
         "cannot download"),
    ]
    for args, message in cases:
        capsys.readouterr()
        assert run(cli, *args, "--out", out) == 2, args
        assert message in capsys.readouterr().err, args
        assert not (out / "lm.json").exists()
    with pytest.raises(SystemExit):                  # argparse: one source at most
        run(cli, "--arpa", tiny_arpa, "--download", "librispeech-4gram")


def test_download_times_out(cli: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as silent:                  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        assert run(cli, "--download", "librispeech-4gram", "--base-url", url, "--timeout", "0.5",
                   "--out", tmp_path / "lm") == 2
    err = capsys.readouterr().err
    assert "cannot download" in err and "timeout 0.5 s" in err


def test_cli_exit_status(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(REPO / "builders" / "lm.py"), "--arpa", str(tmp_path / "nope"),
                          "--out", str(tmp_path / "lm")], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2 and res.stderr.startswith("error: ARPA file not found")


@pytest.mark.slow
def test_default_source_is_cmu_upper_case(cli: ModuleType, tmp_path: Path) -> None:
    pytest.importorskip("pocketsphinx")
    out = tmp_path / "lm"
    assert run(cli, "--out", out) == 0
    m = meta(out)
    assert (m["source"]["kind"], m["case"], m["order"]) == ("cmu-sphinx", "upper", 3)
    assert m["counts"] == [72547, 2051541, 1669625] and m["n_unigrams"] == 72545
    with open(out / "unigrams.txt") as f:
        assert f.readline().strip() == "'BOUT"
