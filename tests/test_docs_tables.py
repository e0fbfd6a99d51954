"""Docs are rendered from results files: every table matches its file, no figure table lacks a source."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks import docs_tables
from benchmarks.docs_tables import TableSourceError, render_text, unsourced_tables
from w2v_triton.paths import REPO_ROOT


@pytest.mark.parametrize("doc", docs_tables.doc_paths(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_doc_tables_equal_what_their_results_files_render(doc: Path) -> None:
    text = doc.read_text()
    assert render_text(text) == text, f"{doc.name}: run `make docs-tables` (a table differs from its file)"


@pytest.mark.parametrize("doc", docs_tables.doc_paths(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_figure_table_names_its_source(doc: Path) -> None:
    assert unsourced_tables(doc.read_text()) == []


def test_the_docs_render_the_measured_files() -> None:
    """The conversion is real: the main results files are rendered somewhere in the docs."""
    markers = "".join(p.read_text() for p in docs_tables.doc_paths())
    for path in ("bench-student-random-base.json", "variants-reference-test_seen.json",
                 "int8-study-reference.json", "models/reference/eval_results.json",
                 "docs/reference-decoding-eval.json", "docs/reference-training-log.jsonl",
                 "long-audio-reference.json", "openvino-runtimes.json"):
        assert f"{path} -->" in markers
    assert "int8-conv (removed since)" not in markers  # tables of variants that no longer exist


def _table_file(tmp_path: Path, rows: list[list], columns=("a", "b")) -> Path:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"columns": list(columns), "rows": rows}))
    return path


def test_a_stale_table_is_rewritten_and_the_rest_of_the_doc_kept(tmp_path: Path) -> None:
    _table_file(tmp_path, [["x", "1.5"]])
    doc = "intro\n<!-- table: table from t.json -->\n| old | 9.9 |\n<!-- /table -->\noutro 2.0\n"
    out = render_text(doc, tmp_path)
    assert out == "intro\n<!-- table: table from t.json -->\n| a | b |\n|---|---|\n| x | 1.5 |\n<!-- /table -->\noutro 2.0\n"
    assert render_text(out, tmp_path) == out


def test_bad_markers_fail_clearly(tmp_path: Path) -> None:
    _table_file(tmp_path, [["x"]])
    with pytest.raises(TableSourceError, match="unknown table renderer 'nope'"):
        render_text("<!-- table: nope from t.json -->\n<!-- /table -->", tmp_path)
    with pytest.raises(TableSourceError, match="missing.json: results file missing"):
        render_text("<!-- table: table from missing.json -->\n<!-- /table -->", tmp_path)
    with pytest.raises(TableSourceError, match="1 cells, header 2"):
        render_text("<!-- table: table from t.json -->\n<!-- /table -->", tmp_path)


def test_unsourced_figure_tables_are_found(tmp_path: Path) -> None:
    figures = "| model | WER |\n|---|---|\n| a | 0.55 |\n| b | 12.5% |\n"
    words = "| module | what |\n|---|---|\n| a.py | parses |\n"
    assert unsourced_tables(words, tmp_path) == []
    assert len(unsourced_tables(figures, tmp_path)) == 1
    assert "does not exist" in unsourced_tables("<!-- source: gone.py -->\n" + figures, tmp_path)[0]
    (tmp_path / "there.py").write_text("")
    assert unsourced_tables("<!-- source: there.py -->\n" + figures, tmp_path) == []
    fenced = "```\n" + figures + "```\n"
    assert unsourced_tables(fenced, tmp_path) == []


def _served_report() -> dict:
    def sweep(prefix, rows):
        return {prefix: {"input": {}, "rows": [
            {"concurrency": c, "infer_per_sec": ips, "audio_seconds_per_second": a, "p50_ms": p, "p99_ms": 2 * p}
            for c, ips, a, p in rows]}}
    served = {"fast": {"sweeps": {**sweep("seed_0.5s", [(1, 40.0, 20.0, 12.0), (4, 90.0, 45.0, 40.0)]),
                                  **sweep("clips_10s", [(1, 5.0, 50.0, 200.0), (4, 12.0, 120.0, 900.0)]),
                                  **sweep("real_speech", [(1, 4.0, 30.0, 300.0)])}}}
    return {"inprocess": {"pytorch-teacher": {"kind": "hf-pytorch", "audio_seconds_per_second": 10.0}},
            "served": served}


def test_served_and_goal_tables_compute_from_the_report(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(_served_report()))
    served = docs_tables.render_served(path)
    assert "| fast | 50.0 / 120.0 | 30.0 (1) | 12.0 ms | 90.0 | 12.0x |" in served
    goals = docs_tables.render_goals(path)
    assert "| 12.0x (fast) | met |" in goals and "| 120.0 (fast) | met |" in goals
    assert "| 12.0 ms (fast) | met |" in goals
    capacity = docs_tables.render_capacity(path)
    assert "| fast | 120.0 (conc 4) | 30.0 (conc 1, p99 0.6 s) | 13 |" in capacity  # ceil(833.3/72)+1


def test_check_mode_reports_a_stale_doc_and_leaves_it(tmp_path: Path, capsys) -> None:
    (tmp_path / "docs").mkdir()
    _table_file(tmp_path, [["x", "1.5"]])
    doc = tmp_path / "docs" / "d.md"
    doc.write_text("<!-- table: table from t.json -->\n| stale |\n<!-- /table -->\n")
    assert docs_tables.main(["--check", "--root", str(tmp_path)]) == 1
    assert "stale" in doc.read_text() and "docs/d.md" in capsys.readouterr().err
    assert docs_tables.main(["--root", str(tmp_path)]) == 0
    assert docs_tables.main(["--check", "--root", str(tmp_path)]) == 0


def test_every_image_in_docs_has_a_command_that_writes_it() -> None:
    """docs/*.png: named by a Make recipe (mk/*.mk), by a --png/--plot option of a documented command,
    or re-drawn by `make docs-plots` (benchmarks/docs_plots.py PLOTS)."""
    import re

    from benchmarks.docs_plots import PLOTS

    make = "".join(p.read_text() for p in (REPO_ROOT / "mk").glob("*.mk"))
    docs = "".join(p.read_text() for p in docs_tables.doc_paths())
    plotted = {png for _, png, _ in PLOTS}
    for png in sorted((REPO_ROOT / "docs").glob("*.png")):
        name = f"docs/{png.name}"
        assert re.search(rf"^\t.*{re.escape(name)}", make, re.M) or re.search(rf"--(png|plot) {re.escape(name)}", docs) \
            or name in plotted, name


def test_docs_plots_redraws_each_curve_from_its_log(tmp_path: Path, repo_root: Path) -> None:
    from benchmarks import docs_plots

    for log, _, _ in docs_plots.PLOTS:
        (tmp_path / log).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / log).write_text((repo_root / log).read_text())
    assert docs_plots.main(["--root", str(tmp_path)]) == 0
    for log, png, title in docs_plots.PLOTS:
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and log in title
    assert "-m benchmarks.docs_plots" in subprocess.run(["make", "-n", "docs-plots"], cwd=repo_root, capture_output=True,
                                                         text=True, check=True).stdout


def test_training_curve_keeps_the_last_row_of_a_repeated_step(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in (
        {"event": "start"}, {"step": 10, "dev_cer": 0.9, "dev_wer": 1.0}, {"step": 20, "dev_cer": 0.8, "dev_wer": 0.99},
        {"step": 10, "dev_cer": 0.7, "dev_wer": 0.95})) + "\n")
    assert docs_tables.render_training_curve(log).splitlines()[2:] == ["| 10 | 0.700 | 0.950 |", "| 20 | 0.800 | 0.990 |"]


def test_eval_table_lists_each_synthesiser_of_a_set(tmp_path: Path) -> None:
    results = tmp_path / "eval_results.json"
    results.write_text(json.dumps({
        "test_seen": {"n": 4, "audio_hours": 0.01, "cer": 0.2, "wer": 0.5,
                      "by_synth": {"espeak": {"n": 2, "cer": 0.1, "wer": 0.4}, "flite": {"n": 2, "cer": 0.3, "wer": 0.6}}},
        "real_speech": {"n": 3, "audio_hours": 0.02, "cer": 0.7, "wer": 0.99, "by_set": {"a": {"n": 3}}}}))
    assert docs_tables.render_eval(results).splitlines()[2:] == [
        "| test_seen | 4 | 0.010 | 0.200 | 0.500 |", "| test_seen: espeak | 2 |  | 0.100 | 0.400 |",
        "| test_seen: flite | 2 |  | 0.300 | 0.600 |", "| real_speech | 3 | 0.020 | 0.700 | 0.990 |"]
