"""The `streaming_asr` model in a real tritonserver (tiny model, 2 s idle timeout): partials then a
final equal to the in-process recognizer and to the offline ensemble, concurrent streams that do
not mix, a bad chunk that fails its own stream only, idle streams freed, the --stream CLI."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from client import ClientError, TranscriptionClient
from w2v_triton.serving import spec
from w2v_triton.serving.pipeline import model_parameters
from w2v_triton.serving.streaming import build_recognizer, version_dir

pytestmark = pytest.mark.integration

SR = spec.SAMPLE_RATE
IDLE_SECONDS = 2.0


@pytest.fixture(scope="module")
def stream_repository(build_tiny, tmp_path_factory) -> Path:
    from w2v_triton.build.repository import RepositoryOptions

    options = RepositoryOptions(decoder_instances=1, streaming={"idle_seconds": str(IDLE_SECONDS)})
    return build_tiny(tmp_path_factory.mktemp("stream_repository"), options=options)


@pytest.fixture(scope="module")
def server(stream_repository, tmp_path_factory):
    from w2v_triton.serving.tritonserver import Ports, TritonServer

    log = tmp_path_factory.mktemp("stream_server_log") / "tritonserver.log"
    server = TritonServer(stream_repository, Ports.free(), log_path=log)
    server.start(timeout=180)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def recognizer(stream_repository):
    return build_recognizer(model_parameters(stream_repository, spec.STREAMING_MODEL), version_dir(stream_repository),
                            warmup=False)


def speechlike(seed: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def test_partials_then_final_equal_in_process_and_offline(server, recognizer):
    audio = speechlike(1, 3.3)
    with TranscriptionClient(server.grpc_url, "grpc") as asr:
        updates = list(asr.stream(audio, chunk_seconds=0.5))
        offline = asr.transcribe(audio)
    expected = recognizer.recognize(audio, chunk_seconds=0.5)
    assert [u.chunk for u in updates] == list(range(len(expected)))
    assert [u.is_final for u in updates] == [r.is_final for r in expected]
    assert [u.text for u in updates] == [r.text for r in expected]
    assert updates[-1].text == offline
    assert all(u.latency_s >= 0 for u in updates)


def test_concurrent_streams_do_not_mix(server, recognizer):
    audios = [speechlike(seed, seconds) for seed, seconds in ((2, 2.2), (3, 3.1), (4, 1.3))]
    results: dict[int, list[str] | Exception] = {}

    def run(i: int) -> None:
        try:
            with TranscriptionClient(server.grpc_url, "grpc") as asr:
                results[i] = [u.text for u in asr.stream(audios[i], chunk_seconds=0.25)]
        except Exception as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(audios))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i, audio in enumerate(audios):
        assert results[i] == [r.text for r in recognizer.recognize(audio, 0.25)]


def test_bad_chunk_fails_its_own_stream_only(server, recognizer):
    good = speechlike(5, 2.0)
    bad = speechlike(6, 2.0)
    bad[SR + 10] = np.nan
    outcome: dict[str, object] = {}

    def run(name: str, audio: np.ndarray) -> None:
        try:
            with TranscriptionClient(server.grpc_url, "grpc") as asr:
                outcome[name] = [u.text for u in asr.stream(audio, chunk_seconds=0.25)]
        except ClientError as exc:
            outcome[name] = exc

    threads = [threading.Thread(target=run, args=a) for a in (("good", good), ("bad", bad))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert isinstance(outcome["bad"], ClientError) and "NaN" in str(outcome["bad"])
    assert outcome["good"] == [r.text for r in recognizer.recognize(good, 0.25)]
    assert server.is_ready()


def test_idle_stream_is_freed(server):
    import tritonclient.grpc as grpcclient

    def chunk_input(samples: int):
        tensor = grpcclient.InferInput(spec.AUDIO, [1, samples], "FP32")
        tensor.set_data_from_numpy(speechlike(7, samples / SR).reshape(1, -1))
        return tensor

    responses: list = []
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.start_stream(callback=lambda result, error: responses.append((result, error)))
    try:
        client.async_stream_infer(spec.STREAMING_MODEL, [chunk_input(8000)], sequence_id=4242, sequence_start=True)
        deadline = time.monotonic() + 20
        while not responses and time.monotonic() < deadline:
            time.sleep(0.05)
        assert responses and responses[0][1] is None
        time.sleep(IDLE_SECONDS + 1.0)
        # another stream's chunk lets the model free the idle one
        client.async_stream_infer(spec.STREAMING_MODEL, [chunk_input(8000)], sequence_id=4343,
                                  sequence_start=True, sequence_end=True)
        client.async_stream_infer(spec.STREAMING_MODEL, [chunk_input(8000)], sequence_id=4242)
        while len(responses) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.stop_stream()
        client.close()
    errors = [str(error) for _, error in responses[1:] if error is not None]
    assert len(errors) == 1 and "START" in errors[0]      # the idle stream is gone
    log = server.log_path.read_text()
    assert "stream 4242 idle for more than" in log and "freed" in log


def test_stream_cli_prints_partials_then_final(server, tmp_path):
    import soundfile

    audio = speechlike(8, 1.6)
    path = tmp_path / "clip.wav"
    soundfile.write(path, audio, SR, subtype="FLOAT")
    run = subprocess.run([sys.executable, "-m", "client", "--stream", "--url", server.grpc_url,
                          "--chunk-seconds", "0.4", "--realtime", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = [line.split("\t") for line in run.stdout.splitlines()]
    assert [kind for _, kind, _ in lines] == ["partial"] * (len(lines) - 1) + ["final"]
    assert len(lines) == 4
    with TranscriptionClient(server.grpc_url, "grpc") as asr:
        assert lines[-1][2] == asr.transcribe(audio)
    http = subprocess.run([sys.executable, "-m", "client", "--stream", "--url", "127.0.0.1:9", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert http.returncode == 3 and "cannot reach" in http.stderr
