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
    """make bench runs `--plan student`: the matrix is data (benchmarks/plans.py), not shell; every
    student x variant is served in both serving profiles."""
    from benchmarks.plans import PLANS, PROFILE_SWEEPS

    plan = PLANS["student"]("random-base")
    assert [s.key for s in plan.students] == ["student6", "student6-c256"]
    assert {"pytorch-teacher", "pytorch-student6"} == set(plan.baselines)
    assert ("student6", "int8-mm") in plan.onnx.values()
    served = {s.name: s for s in plan.served}
    assert ("int8-mm", "throughput") == (served["student6-int8-mm-throughput"].variant,
                                         served["student6-int8-mm-throughput"].profile)
    assert served["student6-int8-mm-latency"].sweeps == PROFILE_SWEEPS["latency"] == ("seed",)
    assert all(s.model in {"student6", "student6-c256"} for s in served.values())
    pairs = {(r.student, r.variant) for r in plan.headline}
    assert pairs == {("student6", "fp32"), ("student6", "int8-pc"), ("student6", "int8-mm"),
                     ("student6-c256", "int8-mm")}
    assert len(served) == 2 * len(pairs) and not any(r.eval_file for r in plan.headline)


def _trained_student(tmp_path, name, wer):
    """A copy of the tiny checkpoint standing in for a distilled student, with its eval_results.json
    as builders.train_reference --eval-only writes it."""
    import shutil

    from w2v_triton.build.checkpoints import resolve_checkpoint

    out = tmp_path / name
    shutil.copytree(resolve_checkpoint("tiny"), out)
    (out / "eval_results.json").write_text(json.dumps(
        {"test_seen": {"wer": wer, "cer": wer / 3, "n": 200, "examples": []}, "real_speech": {"wer": 0.99, "cer": 0.7}}))
    return out


def test_student_plan_with_trained_students_materializes_on_tiny(tmp_path, monkeypatch):
    """BENCH_STUDENTS: trained dirs are served as they are (fp32 + int8-mm, both profiles), their
    accuracy read from eval_results.json; a dir without one is in the speed tables only."""
    import shutil

    import benchmarks.plans as plans

    a = _trained_student(tmp_path, "a", 0.30)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    (b / "eval_results.json").unlink()
    plan = plans.student_plan("tiny", [a, b], undistilled=False)
    assert [s.key for s in plan.students] == ["a", "b"] and set(plan.baselines) == {"pytorch-teacher"}
    info = plans.headline_info(plan)
    rows = {(r["student"], r["variant"]): r for r in info["rows"]}
    assert set(rows) == {("a", "fp32"), ("a", "int8-mm"), ("b", "fp32"), ("b", "int8-mm")}
    assert rows[("a", "int8-mm")]["accuracy"]["test_seen"]["wer"] == 0.30
    assert rows[("b", "fp32")]["accuracy"] is None and info["teacher"]["accuracy"] is None   # tiny: none

    monkeypatch.setattr(plans, "REPOS_DIR", tmp_path / "repos")
    entries = plans.materialize(plan, "tiny")
    assert set(entries["served"]) == {f"{s}-{v}-{p}" for s in "ab" for v in ("fp32", "int8-mm")
                                      for p in ("latency", "throughput")}
    assert entries["served_sweeps"]["a-fp32-latency"] == "seed"
    ensemble = (Path(entries["served"]["a-int8-mm-throughput"]) / "asr" / "config.pbtxt").read_text()
    assert '"serving_profile" value: { string_value: "throughput" }' in ensemble
    build_info = json.loads((Path(entries["served"]["b-fp32-latency"]) / "build_info.json").read_text())
    assert Path(build_info["checkpoint"]) == b.resolve()


def test_student_plan_refuses_bad_student_dirs(tmp_path):
    from benchmarks.plans import student_plan

    with pytest.raises(ValueError, match="no config.json"):
        student_plan("tiny", [tmp_path], undistilled=False)
    with pytest.raises(ValueError, match="needs trained student dirs"):
        student_plan("tiny", [], undistilled=False)
    a = _trained_student(tmp_path, "a", 0.3)
    (a / "eval_results.json").write_text("{not json")
    from benchmarks.plans import headline_info
    with pytest.raises(ValueError, match="not a readable eval_results.json"):
        headline_info(student_plan("tiny", [a], undistilled=False))


def test_pareto_front():
    from benchmarks.pareto import pareto_front

    #          fast+bad   slow+good   dominated  equal to the first   best at both axes? no
    points = [(100, 0.6), (10, 0.5), (50, 0.7), (100, 0.6), (60, 0.55)]
    assert pareto_front(points) == [True, True, False, True, True]
    assert pareto_front([(1, 1)]) == [True] and pareto_front([]) == []
    assert pareto_front([(2, 0.5), (1, 0.5)]) == [True, False]   # as accurate and faster dominates


def _headline_report() -> dict:
    report = _report()
    rows = report["served"]["tiny"]["sweeps"]["clips_10s"]["rows"]
    report["served"] = {
        "a-int8-mm-latency": {"repository": "r", "sweeps": {"seed_0.5s": {
            "input": {"entries": 1, "mean_seconds": 0.5},
            "rows": [{"concurrency": 1, "infer_per_sec": 80.0, "audio_seconds_per_second": 40.0,
                      "p50_ms": 12.5, "p99_ms": 20.0}]}}},
        "a-int8-mm-throughput": {"repository": "r", "sweeps": {"clips_10s": {
            "input": {"entries": 1, "mean_seconds": 10.0}, "rows": [dict(r) for r in rows]}}},
        "b-fp32-throughput": {"repository": "r", "sweeps": {"clips_10s": {
            "input": {"entries": 1, "mean_seconds": 10.0},
            "rows": [{**r, "audio_seconds_per_second": 60.0} for r in rows]}}}}
    report["headline"] = {
        "teacher": {"name": "reference", "baseline": "pytorch-teacher",
                    "accuracy": {"test_seen": {"wer": 0.5, "cer": 0.2}}},
        "rows": [{"student": "a", "variant": "int8-mm", "latency": "a-int8-mm-latency",
                  "throughput": "a-int8-mm-throughput",
                  "accuracy": {"test_seen": {"wer": 0.54, "cer": 0.21}, "real_speech": {"wer": 0.99, "cer": 0.7}},
                  "training": {"kind": "distillation", "seconds": 2400.0, "steps": 800}},
                 {"student": "b", "variant": "fp32", "latency": "b-fp32-latency",
                  "throughput": "b-fp32-throughput", "accuracy": None}]}
    return report


def test_report_opens_with_the_headline_and_draws_the_pareto_plot(tmp_path):
    bench_report.write_report(_headline_report(), tmp_path)
    md = (tmp_path / "unit-report.md").read_text()
    assert md.index("## Headline") < md.index("## In-process")
    # teacher 4.0 audio-s/s in-process; student a: best 10 s clips 10.0 (2.5x), 12.5 ms p50, WER +8%
    assert "| teacher (reference, HF PyTorch in-process) | fp32 | 4.0 | 1.0x | – | 0.500 | +0.0% | yes | – |" in md
    assert "| a | int8-mm | 10.0 | 2.5x | 12.5 | 0.540 | +8.0% | yes | KD 40 min |" in md
    assert "| b | fp32 | 60.0 | 15.0x | – | accuracy unknown | – |  | – |" in md
    assert "Fastest student within +10% relative test_seen WER: a int8-mm, 10.0 audio-s/s (2.5x" in md
    assert "Lowest 0.5 s clip p50 (latency profile, concurrency 1): 12.5 ms, a int8-mm" in md
    assert "| reference (teacher) | 0.500 / 0.200 | – | – |" in md
    assert "| a | 0.540 / 0.210 | – | 0.990 / 0.700 |" in md
    assert (tmp_path / "unit-report-pareto.png").read_bytes()[:8] == PNG_MAGIC
    table = json.loads((tmp_path / "unit-report.json").read_text())["headline"]["table"]
    assert [r["pareto"] for r in table] == [True, True, None]
    from benchmarks.docs_tables import render_headline   # docs/ render the same table from the JSON
    assert "| a | int8-mm | 10.0 | 2.5x | 12.5 | 0.540 | +8.0% | yes | KD 40 min |" in render_headline(
        tmp_path / "unit-report.json")


def test_pareto_plot_labels_every_point_with_its_training_time_and_none_overlaps(tmp_path):
    """Crowded points (two pairs a few audio-s/s apart at one WER, as the teacher and the reference
    fp32 rows were): adjustText moves the labels until none overlaps another label or a point."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from benchmarks.pareto import overlapping_labels, plot_front, training_text

    rows = [{"label": f"model {i} int8-mm", "audio_s_per_s": x, "wer": y, "pareto": p, "teacher": i == 0,
             "training": {"kind": "distillation", "seconds": 600.0 * (i + 1), "steps": 100}}
            for i, (x, y, p) in enumerate([(30, 0.556, False), (33, 0.556, False), (96, 0.556, False),
                                            (100, 0.556, True), (176, 0.602, True), (180, 0.60, False),
                                            (420, 0.74, True)])]
    plotted = plot_front(rows, tmp_path / "front.png", "t", "x")
    assert plotted.path.read_bytes()[:8] == PNG_MAGIC
    assert plotted.overlaps == 0
    assert plotted.labels[3] == "model 3 int8-mm\nKD 40 min" and training_text(rows[6]["training"]) == "KD 70 min"
    # the check itself sees overlaps: the same labels left on their points overlap
    fig, ax = plt.subplots()
    texts = [ax.text(r["audio_s_per_s"], r["wer"], r["label"]) for r in rows]
    ax.set_xlim(0, 450), ax.set_ylim(0.5, 0.8)
    assert overlapping_labels(fig, ax, texts, [(r["audio_s_per_s"], r["wer"]) for r in rows]) > 0
    plt.close(fig)


def test_training_times_come_from_the_trainers_files(tmp_path, capsys):
    """read_training: a student's distill_results.json or a model's training_summary.json; the CLI
    adds them to an older report's headline rows, rewrites its .md, redraws its Pareto plot, and names a folder
    without either."""
    from benchmarks.pareto import main as pareto_main, read_training, training_text

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "distill_results.json").write_text(json.dumps({"train_time_s": 6400.4, "step": 1643}))
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "training_summary.json").write_text(
        json.dumps({"train_time_s": 507.1, "steps": 2466, "device": "NVIDIA H200"}))
    assert read_training(tmp_path / "s")["seconds"] == 6400.4 and read_training(tmp_path / "nowhere") is None
    assert training_text(read_training(tmp_path / "s")) == "KD 107 min"
    assert training_text(read_training(tmp_path / "t")) == "trained 8 min (NVIDIA H200)"
    report = _headline_report()
    report["headline"]["rows"][0].pop("training")
    path = tmp_path / "bench-x.json"
    path.write_text(json.dumps(report))
    assert pareto_main([str(path), "--training", f"a={tmp_path / 's'}", "--teacher-training", str(tmp_path / "t")]) == 0
    table = json.loads(path.read_text())["headline"]["table"]
    assert [r["training"]["seconds"] if r["training"] else None for r in table] == [507.1, 6400.4, None]
    assert (tmp_path / "bench-x-pareto.png").read_bytes()[:8] == PNG_MAGIC
    assert "| training |" in (tmp_path / "bench-x.md").read_text()   # the .md follows its JSON
    assert pareto_main([str(path), "--training", f"b={tmp_path / 'nowhere'}"]) == 2
    assert "no distill_results.json or training_summary.json for ['b']" in capsys.readouterr().err


def test_make_bench_passes_trained_students(repo_root):
    out = subprocess.run(["make", "-n", "bench", "BENCH_TEACHER=reference", "BENCH_STUDENTS=dirA dirB"],
                         cwd=repo_root, capture_output=True, text=True, check=True).stdout
    assert "--plan student --plan-teacher reference" in out and "--plan-students dirA dirB" in out
    out = subprocess.run(["make", "-n", "bench"], cwd=repo_root, capture_output=True, text=True, check=True).stdout
    assert "--plan-students" not in out


def test_plan_materializes_with_the_teacher_plan(tmp_path, monkeypatch):
    """The teacher plan builds its repository and returns the entries benchmarks.run serves."""
    import benchmarks.plans as plans

    monkeypatch.setattr(plans, "REPOS_DIR", tmp_path)
    entries = plans.materialize(plans.PLANS["teacher"]("tiny"), "tiny")
    assert set(entries["served"]) == {"served-tiny"}
    assert (Path(entries["served"]["served-tiny"]) / "asr" / "config.pbtxt").is_file()
    assert Path(entries["onnx"]["onnx-tiny"]).is_file() and Path(entries["baseline"]["pytorch-tiny"]).is_dir()


def test_run_refuses_plan_students_it_cannot_use(tmp_path, capsys):
    from benchmarks.run import main

    with pytest.raises(SystemExit):
        main(["--plan", "teacher", "--plan-teacher", "tiny", "--plan-students", str(tmp_path)])
    assert "--plan-students / --plan-no-undistilled need --plan student" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--plan", "student", "--plan-teacher", "tiny", "--plan-students", str(tmp_path / "missing"),
              "--plan-no-undistilled"])
    assert "not a checkpoint folder (no config.json)" in capsys.readouterr().err


def test_served_sweeps_limit_what_a_served_entry_runs(tmp_path):
    """--served-sweeps NAME=seed (the plan's latency-profile entries): in a run without that sweep
    the entry is skipped, its server never started."""
    from benchmarks.run import main

    assert main(["--title", "skip", "--served", f"latency={tmp_path / 'no-such-repo'}", "--served-sweeps",
                 "latency=seed", "--sweeps", "clips", "--clips", "1", "--clip-seconds", "1",
                 "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "skip.json").read_text())["served"] == {}


def test_bench_lm_builds_tunes_and_runs_the_served_decoders(tmp_path, monkeypatch, repo_root):
    """`make bench-lm` is benchmarks/bench_lm.py: an ARPA-only folder of links, the four repositories the
    shell used to build (same folders, decoders and LMs), the flashlight one tuned on dev, then the
    backends on the same logits (benchmarks.decoders) and the four served (benchmarks.run), in order."""
    from types import SimpleNamespace

    import w2v_triton.build.builder as builder
    import w2v_triton.eval.lm_tuning as lm_tuning
    from benchmarks import bench_lm, decoders, run

    lm = tmp_path / "lm"
    lm.mkdir()
    for name in ("lm.arpa", "lm.bin", "unigrams.txt"):
        (lm / name).write_text(name)
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(bench_lm, "WORK_DIR", tmp_path / "work")
    monkeypatch.setattr(builder, "build_repository", lambda r: calls.append(("build", r)) or SimpleNamespace(path=r.output))
    monkeypatch.setattr(lm_tuning, "tune_repository", lambda r: calls.append(("tune", r)) or "tuned")
    monkeypatch.setattr(lm_tuning, "apply_tuning", lambda repo, t: calls.append(("apply", (repo, t))) or "decoder")
    monkeypatch.setattr(decoders, "main", lambda argv: calls.append(("decoders", argv)) or 0)
    monkeypatch.setattr(run, "main", lambda argv: calls.append(("run", argv)) or 0)
    prefix = tmp_path / "repos" / "bench-lm"
    assert bench_lm.main(["--model", "models/reference", "--lm-dir", str(lm), "--dev", "dev.jsonl", "--test",
                          "test.jsonl", "--repos", str(prefix), "--", "--request-count", "4"]) == 0
    assert [kind for kind, _ in calls] == ["build"] * 4 + ["tune", "apply", "decoders", "run"]
    builds = [r for kind, r in calls if kind == "build"]
    arpa = tmp_path / "work" / "lm-arpa"
    assert [(r.model, r.output.name, r.options.decoder.mode, r.options.decoder.backend, r.lm_dir) for r in builds] == [
        ("models/reference", "bench-lm-greedy", "greedy", "flashlight", None),
        ("models/reference", "bench-lm-beam", "beam", "flashlight", None),
        ("models/reference", "bench-lm-pyctcdecode-arpa", "beam", "pyctcdecode", arpa),
        ("models/reference", "bench-lm-flashlight", "beam", "flashlight", lm)]
    assert sorted((p.name, p.resolve()) for p in arpa.iterdir()) == [("lm.arpa", lm / "lm.arpa"),
                                                                      ("unigrams.txt", lm / "unigrams.txt")]
    flashlight = prefix.with_name("bench-lm-flashlight")
    tune = calls[4][1]
    assert (tune.repo, tune.dev, tune.lm_dir) == (flashlight, (Path("dev.jsonl"),), None)
    assert calls[5][1] == (flashlight, "tuned")
    assert calls[6][1] == ["--repo", str(flashlight), "--lm-dir", str(lm), "--dev", "dev.jsonl", "--test", "test.jsonl",
                           "--title", "decoders-reference"]
    served = [f"{name}={prefix.with_name(f'bench-lm-{suffix}')}" for name, suffix in (
        ("greedy", "greedy"), ("beam-pyctcdecode", "beam"), ("lm-pyctcdecode-arpa", "pyctcdecode-arpa"),
        ("lm-flashlight-bin", "flashlight"))]
    assert calls[7][1] == ["--title", "served-decoders-reference", "--sweeps", "real",
                           *(arg for s in served for arg in ("--served", s)),
                           "--real-concurrency", "1:16:5", "--request-count", "12", "--request-count", "4"]
    make = subprocess.run(["make", "-n", "bench-lm", "BENCH_ARGS=--request-count 4"], cwd=repo_root,
                          capture_output=True, text=True, check=True).stdout
    assert "-m benchmarks.bench_lm --model models/reference --lm-dir build/lm" in make and "-- --request-count 4" in make


def test_bench_lm_without_an_lm_says_make_lm(tmp_path, capsys, monkeypatch):
    from benchmarks import bench_lm

    monkeypatch.setattr(bench_lm, "WORK_DIR", tmp_path / "work")
    assert bench_lm.main(["--lm-dir", str(tmp_path / "none")]) == 2
    assert "run `make lm` first" in capsys.readouterr().err


def test_boot_budget_builds_its_repository_only_when_missing(tmp_path, monkeypatch, repo_root):
    import w2v_triton.build.builder as builder
    from benchmarks.boot_budget import ensure_built

    built = []
    monkeypatch.setattr(builder, "build_repository", lambda request: built.append(request))
    for name in ("latency", "throughput", "streaming"):
        assert ensure_built(tmp_path / name, "random-base", name)
    assert [(r.model, r.output, r.options.profile, r.options.streaming) for r in built] == [
        ("random-base", tmp_path / "latency", "latency", {}),
        ("random-base", tmp_path / "throughput", "throughput", {}),
        ("random-base", tmp_path / "streaming", "latency", {"vad": "none", "idle_seconds": 120})]   # 30 s segments
    (tmp_path / "latency" / "asr").mkdir(parents=True)
    (tmp_path / "latency" / "asr" / "config.pbtxt").write_text("")
    assert not ensure_built(tmp_path / "latency", "random-base", "latency") and len(built) == 3
    make = subprocess.run(["make", "-n", "gcp-boot-budget"], cwd=repo_root, capture_output=True, text=True,
                          check=True).stdout
    for name in ("latency", "throughput", "streaming"):
        assert f"--repository {name}=build/gcp-boot/{name}" in make
    assert "--model random-base" in make and "builders.repository" not in make


def test_tune_lm_without_a_dev_manifest_is_a_usage_error(repo_root, capsys):
    from builders.tune_lm import main

    make = subprocess.run(["make", "-n", "tune-lm", "DEV="], cwd=repo_root, capture_output=True, text=True,
                          check=True).stdout
    assert "-m builders.tune_lm --repo model_repository" in make and "--dev" not in make
    with pytest.raises(SystemExit) as exit_:
        main(["--repo", "model_repository"])
    assert exit_.value.code == 2 and "--dev" in capsys.readouterr().err
