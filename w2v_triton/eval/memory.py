"""Resident memory of a process and of a tritonserver's model processes, read from /proc.

Why resident memory: on a shared machine it is far steadier than time, and it is what decides how
many model instances fit on a VM. Each python-backend model instance of a tritonserver is its own
stub process (`triton_python_backend_stub <repo>/<model>/1/model.py ... <instance name> ...`), so a
model's memory is its stubs' memory; the server process itself holds the ensemble scheduler and the
shared-memory regions the stubs exchange tensors through.

`peak` is the kernel's high-water mark (VmHWM) since the process started or since `reset_peak`
(writing 5 to /proc/<pid>/clear_refs, Linux >= 4.0; our own children only). Linux only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

MIB = 1024 * 1024
STUB = "triton_python_backend_stub"


@dataclass(frozen=True)
class Memory:
    """One process's resident memory in MiB: now (rss), the high-water mark (peak), and its
    proportional share of pages shared with other processes counted once (pss)."""

    rss: float
    peak: float
    pss: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 1) for k, v in asdict(self).items()}


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/{pid}/status")


def _pss_kib(pid: int) -> int:
    """Pss from smaps_rollup (Linux >= 4.14); the RSS where it is absent."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return _status_kib(pid, "VmRSS")


def memory(pid: int) -> Memory:
    """The resident memory of process `pid` (ProcessLookupError once it is gone)."""
    try:
        return Memory(_status_kib(pid, "VmRSS") / 1024, _status_kib(pid, "VmHWM") / 1024, _pss_kib(pid) / 1024)
    except FileNotFoundError:
        raise ProcessLookupError(f"process {pid} is gone") from None


def reset_peak(pid: int) -> None:
    """Restart `pid`'s high-water mark from its present RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def children(pid: int) -> list[int]:
    """Process ids whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:   # exited while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def model_processes(server_pid: int) -> dict[str, int]:
    """Triton model instance name (e.g. `acoustic_model_0_0`) -> its python stub's pid, for the
    stubs tritonserver `server_pid` started."""
    instances = {}
    for pid in children(server_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if Path(argv[0].decode()).name == STUB and len(argv) > 8:
            instances[argv[8].decode()] = pid
    return instances


def model_of(instance: str) -> str:
    """`acoustic_model_0_1` -> `acoustic_model` (Triton names instances <model>_<group>_<index>)."""
    return instance.rsplit("_", 2)[0]
