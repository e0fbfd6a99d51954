"""make distill-bg / distill-stop (builders/distill_bg.py over w2v_triton/train/background.py): the run
starts nice'd with its PID file and log, a second start is refused while it lives, stop sends SIGTERM,
and the Make targets pass the long-run settings through."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from builders.distill_bg import distill_command, main as distill_bg
from w2v_triton.train.background import BackgroundError, BackgroundRun

ROOT = Path(__file__).resolve().parents[1]
# stands in for the trainer: says its niceness, exits 143 on SIGTERM as TrainingInterrupted does
TRAINER = ("import os, signal, sys, time\n"
           "signal.signal(signal.SIGTERM, lambda *_: (print('checkpointed', flush=True), sys.exit(143)))\n"
           "print('nice', os.nice(0), flush=True)\n"
           "time.sleep(60)\n")


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_start_refuses_a_second_copy_and_stop_sends_sigterm(tmp_path):
    run = BackgroundRun(tmp_path / "distill" / "student")
    assert run.running_pid() is None
    pid = run.start([sys.executable, "-c", TRAINER], niceness=7)
    try:
        assert run.pid_file.read_text().split()[0] == str(pid) and run.running_pid() == pid
        assert _wait_for(lambda: "nice" in run.log_file.read_text())
        assert f"nice {min(os.nice(0) + 7, 19)}" in run.log_file.read_text()
        try:
            run.start([sys.executable, "-c", "pass"])
            raise AssertionError("a second start while the first runs")
        except BackgroundError as exc:
            assert f"already running: PID {pid}" in str(exc)
        assert run.stop() == pid
        assert _wait_for(lambda: run.running_pid() is None or _reaped(pid))
        assert _wait_for(lambda: "checkpointed" in run.log_file.read_text())
    finally:
        if run.running_pid() is not None:
            os.kill(pid, 9)
    # the PID file is stale now: a stop says so, a start goes ahead and appends to the same log
    assert distill_bg(["stop", "--out", str(run.out)]) == 1
    pid2 = run.start([sys.executable, "-c", "print('second')"])
    assert _wait_for(lambda: "second" in run.log_file.read_text()) and pid2 != pid
    assert "checkpointed" in run.log_file.read_text()


def test_a_pid_now_used_by_another_program_is_not_the_run(tmp_path):
    """A PID file left by a run that died, whose PID the system gave to something else (here: this
    test's own process), does not block a start."""
    run = BackgroundRun(tmp_path / "student")
    started = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
    run.pid_file.write_text(f"{os.getpid()} {int(started) + 1}\n")   # the run started at another time
    assert run.running_pid() is None
    run.pid_file.write_text(f"{os.getpid()} {started}\n")
    assert run.running_pid() == os.getpid()
    run.pid_file.write_text(f"{os.getpid()}\n")   # no start time recorded (make distill-bg before it): the PID decides
    assert run.running_pid() == os.getpid()


def _reaped(pid: int) -> bool:
    """The child exited (reap it: a zombie still answers kill 0)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def test_the_command_continues_the_run_with_its_box_and_passes_the_rest_through():
    command = distill_command(Path("build/distill/x"), 1.5, 10, ["--preset", "squeeze", "--max-time-s", "60"])
    assert command[:3] == [sys.executable, "-m", "builders.distill"]
    assert command[3:] == ["--out", "build/distill/x", "--resume", "--max-time-s", "5400", "--save-every-min", "10",
                           "--preset", "squeeze", "--max-time-s", "60"]   # argparse: the last one wins


def test_make_targets_call_the_entry_point():
    out = subprocess.run(["make", "-n", "-B", "distill-bg", "PRESET=squeeze", "DISTILL_OUT=build/distill/x",
                          "DISTILL_HOURS=48", "TEACHER_CACHE=build/teacher-cache/c", "TRAIN=t.jsonl", "DEV=d.jsonl"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    line = " ".join(out.replace("\\\n", " ").split())   # make -n keeps the recipe's line continuations
    assert "-m builders.distill_bg start --out build/distill/x --hours 48 --save-min 10 --nice 19 --" in line
    assert "--train t.jsonl --dev d.jsonl --preset squeeze" in line and "--teacher-cache build/teacher-cache/c" in line
    assert "--decay-fraction 0.2" in line and "--anneal-by-time" in line
    out = subprocess.run(["make", "-n", "-B", "distill-stop", "DISTILL_OUT=build/distill/x"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "-m builders.distill_bg stop --out build/distill/x" in out
