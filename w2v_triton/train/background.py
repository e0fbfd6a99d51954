"""A long training run in the background (`make distill-bg` / `distill-stop`, docs/distillation.md).

The run is an ordinary command (the trainer continues itself with --resume), started nice'd in a
session of its own so that it outlives the shell that started it, its output appended to
`<out>.log` and its PID in `<out>.pid`. Starting it again while it lives is refused (two trainers
in one work dir would overwrite each other's checkpoints); stopping it sends SIGTERM, on which the
trainer finishes its step, checkpoints and exits (trainer.TrainingInterrupted).
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class BackgroundError(RuntimeError):
    """A start while the run is alive, or a stop with no run to stop (one line for the user)."""


@dataclass(frozen=True)
class BackgroundRun:
    out: Path   # the run's output folder; its PID file and log sit beside it

    @property
    def pid_file(self) -> Path:
        return self.out.with_name(self.out.name + ".pid")

    @property
    def log_file(self) -> Path:
        return self.out.with_name(self.out.name + ".log")

    def running_pid(self) -> int | None:
        """The PID in the PID file while that process is alive; None without one, or when the PID is
        gone or now belongs to another process (its start time is not the one recorded)."""
        try:
            fields = self.pid_file.read_text().split()
            pid = int(fields[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:   # alive, owned by another user
            pass
        started = _start_time(pid)
        if len(fields) > 1 and started is not None and started != fields[1]:
            return None   # the PID was reused
        return pid

    def start(self, command: list[str], niceness: int = 19) -> int:
        """Start `command` in the background (nice'd, new session, output appended to the log) and
        return its PID; BackgroundError while a previous start is still alive."""
        pid = self.running_pid()
        if pid is not None:
            raise BackgroundError(f"already running: PID {pid} ({self.pid_file}); stop it first")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out, open(os.devnull, "rb") as devnull:
            process = subprocess.Popen(command, stdin=devnull, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True, preexec_fn=lambda: os.nice(niceness))
        self.pid_file.write_text(f"{process.pid} {_start_time(process.pid) or ''}\n")
        log.info("started PID %d: %s", process.pid, " ".join(command))
        return process.pid

    def stop(self) -> int:
        """SIGTERM the running process (it checkpoints after its step and exits); its PID.
        BackgroundError when none runs."""
        pid = self.running_pid()
        if pid is None:
            raise BackgroundError(f"not running: no live PID in {self.pid_file}")
        os.kill(pid, signal.SIGTERM)
        log.info("sent SIGTERM to PID %d", pid)
        return pid


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat, field 22: set at fork,
    so the same before and after exec); None where /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()   # after "pid (comm) ": field 3 onwards
    return fields[22 - 3] if len(fields) > 22 - 3 else None
