"""benchmarks/: perf_analyzer against a real server, and the report `make perf` / `make bench` write."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks import report as bench_report
from benchmarks.inputs import seed_clip, write_input_data

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROW_KEYS = {"concurrency", "infer_per_sec", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "avg_ms", "command"}


def _report() -> dict:
    rows = [{"concurrency": c, "infer_per_sec": 10.0 * c, "audio_seconds_per_second": 5.0 * c,
             "p50_ms": 20.0, "p99_ms": 40.0} for c in (1, 2)]
    return {"title": "unit report", "machine": "cpu-test", "cpu_count": 2, "date": "2026-12-03T00:00:00+00:00",
            "audio": "synthetic", "argv": ["--title", "unit report"],
            "inprocess": {"pytorch-teacher": {"kind": "hf-pytorch", "threads": 2, "audio_seconds_per_second": 4.0,
                                              "p50_ms": 100.0, "p99_ms": 120.0, "peak_rss_mib": 500.0,
                                              "clip_seconds": 10.0}},
            "served": {"tiny": {"repository": "r", "sweeps": {
                "seed_0.5s": {"input": {"entries": 1, "mean_seconds": 0.5}, "rows": rows},
                "clips_10s": {"input": {"entries": 1, "mean_seconds": 10.0}, "rows": rows}},
                "per_model": {"asr": {"requests": 4, "executions": 4, "queue_ms": 0.1, "compute_infer_ms": 1.0}}}}}


def _check_report_files(out: Path, stem: str, served: list[str]) -> dict:
    data = json.loads((out / f"{stem}.json").read_text())
    assert {"title", "machine", "cpu_count", "date", "audio", "argv", "inprocess", "served"} <= set(data)
    assert sorted(data["served"]) == sorted(served)
    md = (out / f"{stem}.md").read_text()
    assert md.startswith(f"# {data['title']}") and data["machine"] in md and data["date"] in md
    for name, result in data["served"].items():
        assert f"## Served ensemble `{name}`" in md
        for sweep, sweep_data in result["sweeps"].items():
            section = md.split(f"### {sweep}:", 1)[1].split("\n\n")[1]   # heading, then its table
            table_rows = section.splitlines()[2:]
            assert len(table_rows) == len(sweep_data["rows"]) >= 1, (sweep, section)
    assert (out / f"{stem}-served.png").read_bytes()[:8] == PNG_MAGIC
    if data["inprocess"]:
        assert (out / f"{stem}-inprocess.png").read_bytes()[:8] == PNG_MAGIC
    return data


def test_report_writes_json_markdown_and_plots(tmp_path):
    bench_report.write_report(_report(), tmp_path)
    data = _check_report_files(tmp_path, "unit-report", ["tiny"])
    md = (tmp_path / "unit-report.md").read_text()
    assert "| tiny | pytorch-teacher | 10.0 | 4.0 | 2.5 |" in md   # served vs in-process ratio
    assert data["served"]["tiny"]["per_model"]["asr"]["requests"] == 4


@pytest.mark.integration
def test_one_perf_analyzer_window_against_the_tiny_server(tiny_server, tmp_path):
    from benchmarks.perf_analyzer import run_perf_analyzer

    data = write_input_data(tmp_path / "seed.json", [seed_clip()])
    rows = run_perf_analyzer(tiny_server.grpc_url, Path(data["path"]), "1:2", shape="AUDIO:8000",
                             request_count=4, stability_percent=100, timeout=120)
    assert [r["concurrency"] for r in rows] == [1, 2]
    for row in rows:
        assert ROW_KEYS <= set(row) and row["infer_per_sec"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]


@pytest.mark.integration
def test_perf_run_writes_a_well_formed_report(tiny_repository, tmp_path):
    """What `make perf` runs (benchmarks.run --served), shortened: one window per sweep."""
    from benchmarks.run import main

    assert main(["--title", "perf test", "--served", f"current={tiny_repository}", "--seed-concurrency", "1:1",
                 "--real-concurrency", "1:1", "--clips-concurrency", "1:1", "--clip-seconds", "1",
                 "--clips", "1", "--request-count", "4", "--out", str(tmp_path)]) == 0
    data = _check_report_files(tmp_path, "perf-test", ["current"])
    sweeps = data["served"]["current"]["sweeps"]
    assert set(sweeps) == {"seed_0.5s", "real_speech", "clips_1s"}
    for sweep in sweeps.values():
        assert [r["concurrency"] for r in sweep["rows"]] == [1]
        assert sweep["rows"][0]["audio_seconds_per_second"] > 0
    assert {"preprocessor", "acoustic_model", "decoder"} <= set(data["served"]["current"]["per_model"])


def test_make_perf_runs_this_module(repo_root):
    out = subprocess.run(["make", "-n", "perf", "REPO=some_repo"], cwd=repo_root, capture_output=True,
                         text=True, check=True).stdout
    assert "-m benchmarks.run --title perf --served current=some_repo" in out


def test_the_student_plan_declares_the_benchmark_matrix():
    """make bench runs `--plan student`: the matrix is data (benchmarks/plans.py), not shell."""
    from benchmarks.plans import PLANS

    plan = PLANS["student"]("random-base")
    assert [s.key for s in plan.students] == ["student6", "student6-c256"]
    assert {"pytorch-teacher", "pytorch-student6"} == set(plan.baselines)
    assert ("student6", "int8-mm") in plan.onnx.values()
    served = {s.name: s for s in plan.served}
    assert "--acoustic-instances" in served["student6-int8-mm-throughput"].flags
    assert all(s.model in {"student6", "student6-c256"} for s in served.values())


def test_plan_materializes_with_the_teacher_plan(tmp_path, monkeypatch):
    """The teacher plan builds its repository and returns the entries benchmarks.run serves."""
    import benchmarks.plans as plans

    monkeypatch.setattr(plans, "REPOS_DIR", tmp_path)
    entries = plans.materialize(plans.PLANS["teacher"]("tiny"), "tiny")
    assert set(entries["served"]) == {"served-tiny"}
    assert (Path(entries["served"]["served-tiny"]) / "asr" / "config.pbtxt").is_file()
    assert Path(entries["onnx"]["onnx-tiny"]).is_file() and Path(entries["baseline"]["pytorch-tiny"]).is_dir()
