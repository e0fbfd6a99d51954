"""A served acoustic model gives back what a long request needed (issue 27).

Before, onnxruntime's arena kept the largest working set a process had ever needed: random-base's
acoustic model held 773 MB after start and 3.5 GB after one 590 s request, for good. Now
(`AcousticSettings.release_memory`, the default) the model process's resident memory after a long
request returns to within a small margin of what it was after warm-up. The same request against a
repository built with the settings from before (--cpu-arena --no-release-memory) shows that the
measurement sees the difference.
"""
from __future__ import annotations

import numpy as np
import pytest

from w2v_triton.eval import memory
from w2v_triton.serving import spec

pytestmark = pytest.mark.integration

LONG_SECONDS = 120          # four 30 s windows: the arena grows to a window batch's working set
MARGIN_MIB = 32             # measured: +13 MiB after one request, +20 after six (8 of them the input in shared memory)


def acoustic_rss_after_long_request(repository, tmp_path) -> tuple[float, float, str]:
    from client import TranscriptionClient
    from w2v_triton.serving.tritonserver import Ports, TritonServer

    audio = 0.1 * np.random.default_rng(0).standard_normal(LONG_SECONDS * spec.SAMPLE_RATE, dtype=np.float32)
    with TritonServer(repository, Ports.free(), log_path=tmp_path / "triton.log") as server:
        assert server.process is not None
        stubs = memory.model_processes(server.process.pid)
        pid = stubs[f"{spec.ACOUSTIC_MODEL}_0_0"]
        ready = memory.memory(pid).rss
        with TranscriptionClient(server.grpc_url, "grpc", timeout=600) as asr:
            text = asr.transcribe(audio)
        return ready, memory.memory(pid).rss, text


@pytest.mark.parametrize("release", [True, False], ids=["default", "before-issue-27"])
def test_retained_memory_after_a_long_request_is_bounded(release, tiny_repository, tmp_path):
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.build.repository import RepositoryOptions

    repository = tiny_repository if release else build_repository(BuildRequest(
        model="tiny", output=tmp_path / "keep", options=RepositoryOptions(cpu_arena=True, release_memory=False))).path
    ready, after, text = acoustic_rss_after_long_request(repository, tmp_path)
    assert text   # the request was served, not refused
    if release:
        assert after - ready <= MARGIN_MIB, f"acoustic model kept {after - ready:.0f} MiB after a {LONG_SECONDS} s request"
    else:   # without release the arena keeps the windows' working set: the check above would fail
        assert after - ready > 2 * MARGIN_MIB, f"only {after - ready:.0f} MiB more: the bound above proves nothing"
