"""Shared fixtures: a tiny model repository, a real tritonserver, real speech from ../shared."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from w2v_triton.checkpoints import REPO_ROOT
from w2v_triton.manifest import Utterance, read_manifest, shared_speech_manifests


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def real_speech() -> list[Utterance]:
    """All utterances of ../shared/data/speech; the tests that need them skip when absent."""
    manifests = shared_speech_manifests(REPO_ROOT)
    if not manifests:
        pytest.skip("../shared/data/speech is not present")
    return [u for m in manifests for u in read_manifest(m)]


@pytest.fixture(scope="session")
def tiny_repository(tmp_path_factory) -> Path:
    """A complete model repository for the tiny random model (fast to build and serve)."""
    from builders.repository import main as build_repository

    output = tmp_path_factory.mktemp("tiny_repository")
    assert build_repository(["--model", "tiny", "--output", str(output), "--decoder-instances", "2"]) == 0
    return output


@pytest.fixture(scope="session")
def tiny_server(tiny_repository, tmp_path_factory):
    """A real tritonserver on free ports serving the tiny repository; killed by PID at the end."""
    from w2v_triton.tritonserver import Ports, TritonServer

    log = tmp_path_factory.mktemp("server_log") / "tritonserver.log"
    server = TritonServer(tiny_repository, Ports.free(), log_path=log)
    server.start(timeout=180)
    yield server
    server.stop()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
