"""The `streaming_asr` model in a real tritonserver (tiny model, silero VAD, 2 s idle timeout, at
most 3 live streams): every chunk's partial and events equal the in-process recognizer's on real
speech, segment finals arrive during the stream in responses of their own (after the closing
chunk's answer, in segment order, END's response last), concurrent streams do not mix, a bad chunk fails
its own stream only, one stream too many is refused at once, idle streams are freed by the timer,
the client sends END on any exit, 1,000 short streams leak nothing, the --stream CLI."""
from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from client import ClientError, StreamUpdate, TranscriptionClient, stream_transcript
from w2v_triton.serving import spec
from w2v_triton.serving.audio import load_audio
from w2v_triton.serving.pipeline import model_parameters
from w2v_triton.serving.streaming import build_recognizer, transcript, version_dir

pytestmark = pytest.mark.integration

SR = spec.SAMPLE_RATE
IDLE_SECONDS = 2.0
MAX_STREAMS = 3


def live_streams(metrics_port: int) -> float:
    """The streaming model's live-streams gauge, read from Triton's metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    found = re.search(r"^w2v_streaming_live_streams\{[^}]*\} (\S+)$", text, re.M)
    assert found, "the streaming model's gauge is missing from /metrics"
    return float(found.group(1))


def wait_for_live(metrics_port: int, count: float, within: float) -> float:
    """Seconds until the gauge reads `count` (fails after `within`)."""
    began = time.monotonic()
    while live_streams(metrics_port) != count:
        assert time.monotonic() - began < within, f"live streams still {live_streams(metrics_port)}, not {count}"
        time.sleep(0.02)
    return time.monotonic() - began


@pytest.fixture(scope="module")
def stream_repository(build_tiny, tmp_path_factory) -> Path:
    from w2v_triton.build.repository import RepositoryOptions

    options = RepositoryOptions(decoder_instances=1, streaming={"idle_seconds": str(IDLE_SECONDS),
                                                                "max_streams": str(MAX_STREAMS)})
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


@pytest.fixture(scope="module")
def speech(real_speech) -> list[np.ndarray]:
    """Real utterances; the first with a 1 s pause and a second utterance after it."""
    clips = [load_audio(real_speech[i].audio) for i in (3, 40, 7, 11)]
    return [np.concatenate([clips[0], np.zeros(SR, np.float32), clips[1]])] + clips[2:]


def split(updates) -> tuple[list, list]:
    """(chunk answers, segment finals' own responses) as (text, is_final, events), each in arrival
    order; in-process StreamResults are told apart by the client's own rule (StreamUpdate.kind)."""
    updates = list(updates)
    kinds = [u.kind if isinstance(u, StreamUpdate) else StreamUpdate(u.text, u.is_final, 0, 0.0, 0.0, u.events).kind
             for u in updates]
    rows = [(u.text, u.is_final, u.events) for u in updates]
    return ([r for r, k in zip(rows, kinds) if k == "chunk"], [r for r, k in zip(rows, kinds) if k == "final"])


def test_updates_equal_in_process_with_segment_finals_during_the_stream(server, recognizer, speech):
    """Every chunk's answer equals the in-process one; each segment's final comes in a response of
    its own, after the answer of the chunk that closed the segment, in segment order, equal to the
    in-process final; END's answer is the last response."""
    audio = speech[0]
    with TranscriptionClient(server.grpc_url, "grpc") as asr:
        updates = list(asr.stream(audio, chunk_seconds=0.5))
    expected = recognizer.recognize(audio, chunk_seconds=0.5)
    answers, finals = split(updates)
    assert (answers, finals) == split(expected)
    chunk_answers = [u for u in updates if u.kind == "chunk"]
    assert [u.chunk for u in chunk_answers] == list(range(len(chunk_answers)))
    assert updates[-1].is_final and sum(u.is_final for u in updates) == 1
    closed_by = {e["segment"]: u.chunk for u in chunk_answers for e in u.events if e["type"] == "speech_stopped"}
    own = [u for u in updates if u.kind == "final"]
    assert own and [u.finals[0]["segment"] for u in own] == sorted(u.finals[0]["segment"] for u in own)
    for u in own:   # the closing chunk's answer came first; the final names that chunk
        segment = u.finals[0]["segment"]
        assert u.chunk == closed_by[segment]
        assert updates.index(u) > updates.index(chunk_answers[u.chunk])
    assert stream_transcript(updates) == transcript(expected) != ""
    assert any(e["type"] == "delta" for u in updates for e in u.events)
    assert live_streams(server.ports.metrics) == 0


def test_concurrent_streams_do_not_mix(server, recognizer, speech):
    results: dict[int, tuple | Exception] = {}

    def run(i: int) -> None:
        try:
            with TranscriptionClient(server.grpc_url, "grpc") as asr:
                results[i] = split(asr.stream(speech[i + 1], chunk_seconds=0.32))
        except Exception as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(MAX_STREAMS - 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for i in range(MAX_STREAMS - 1):
        assert results[i] == split(recognizer.recognize(speech[i + 1], 0.32))


def test_bad_chunk_fails_its_own_stream_only(server, recognizer, speech):
    good = speech[1][: 3 * SR]
    bad = speech[2][: 3 * SR].copy()
    bad[SR + 10] = np.nan
    outcome: dict[str, object] = {}

    def run(name: str, audio: np.ndarray) -> None:
        try:
            with TranscriptionClient(server.grpc_url, "grpc") as asr:
                outcome[name] = split(asr.stream(audio, chunk_seconds=0.25))
        except ClientError as exc:
            outcome[name] = exc

    threads = [threading.Thread(target=run, args=a) for a in (("good", good), ("bad", bad))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert isinstance(outcome["bad"], ClientError) and "NaN" in str(outcome["bad"])
    assert outcome["good"] == split(recognizer.recognize(good, 0.25))
    assert server.is_ready()
    wait_for_live(server.ports.metrics, 0, within=2.0)


def test_one_stream_too_many_is_refused_at_once(server, speech):
    chunk = speech[1][:8000]
    with TranscriptionClient(server.grpc_url, "grpc") as a, TranscriptionClient(server.grpc_url, "grpc") as b, \
            TranscriptionClient(server.grpc_url, "grpc") as c, TranscriptionClient(server.grpc_url, "grpc") as d:
        opened = [client.open_stream() for client in (a, b, c)]
        for live in opened:
            live.send(chunk)
            assert live.get() is not None
        extra = d.open_stream()
        began = time.monotonic()
        extra.send(chunk)
        with pytest.raises(ClientError, match=f"too many live streams \\({MAX_STREAMS}\\)"):
            extra.get()
        assert time.monotonic() - began < 1.0               # refused, not queued for a slot
        extra.close()
        opened[0].close()                                   # END frees a slot at once
        again = d.open_stream()
        again.send(chunk)
        assert again.get() is not None
        for live in (again, *opened[1:]):
            live.close()
    wait_for_live(server.ports.metrics, 0, within=2.0)


def test_idle_stream_is_freed_by_the_timer(server, speech):
    import tritonclient.grpc as grpcclient

    def chunk_input() -> grpcclient.InferInput:
        tensor = grpcclient.InferInput(spec.AUDIO, [1, 8000], "FP32")
        tensor.set_data_from_numpy(speech[1][:8000].reshape(1, -1))
        return tensor

    responses: list = []
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.start_stream(callback=lambda result, error: responses.append((result, error)))
    try:   # a client that vanishes without END: only the timer can free its stream
        client.async_stream_infer(spec.STREAMING_MODEL, [chunk_input()], sequence_id=4242, sequence_start=True)
        wait_for_live(server.ports.metrics, 1, within=20)
        freed_after = wait_for_live(server.ports.metrics, 0, within=IDLE_SECONDS + 3)
        assert freed_after <= IDLE_SECONDS + 1.5             # no other request was needed to free it
        client.async_stream_infer(spec.STREAMING_MODEL, [chunk_input()], sequence_id=4242)
        deadline = time.monotonic() + 20
        while len(responses) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.stop_stream()
        client.close()
    errors = [str(error) for _, error in responses[1:] if error is not None]
    assert len(errors) == 1 and "START" in errors[0]      # the idle stream is gone
    log = server.log_path.read_text()
    assert "stream 4242 idle for more than" in log and "freed" in log


def test_the_client_sends_end_on_any_exit(server, speech):
    with TranscriptionClient(server.grpc_url, "grpc") as asr:
        with pytest.raises(KeyboardInterrupt):
            for update in asr.stream(speech[1], chunk_seconds=0.5):
                assert live_streams(server.ports.metrics) == 1
                raise KeyboardInterrupt   # the user stops the program mid-stream
        assert wait_for_live(server.ports.metrics, 0, within=1.0) < 1.0


def test_a_thousand_short_streams_leak_nothing(server, speech):
    """1,000 streams of one chunk (START and END together), 3 at a time (the cap): the stub's memory
    and the live-streams gauge return to where they were."""
    import psutil
    import tritonclient.grpc as grpcclient

    stub = next(p for p in psutil.Process(server.process.pid).children(recursive=True)
                if spec.STREAMING_MODEL in " ".join(p.cmdline()))
    clip = speech[1][: SR // 2].reshape(1, -1)

    def streams(count: int, first_id: int) -> int:
        errors = 0
        done = threading.Semaphore(0)

        def callback(result, error) -> None:
            nonlocal errors
            errors += error is not None
            done.release()

        client = grpcclient.InferenceServerClient(server.grpc_url)
        client.start_stream(callback=callback)
        try:
            for k in range(count):
                tensor = grpcclient.InferInput(spec.AUDIO, list(clip.shape), "FP32")
                tensor.set_data_from_numpy(clip)
                client.async_stream_infer(spec.STREAMING_MODEL, [tensor], sequence_id=first_id + k,
                                          sequence_start=True, sequence_end=True)
                if k >= MAX_STREAMS - 1:
                    assert done.acquire(timeout=30)   # at most MAX_STREAMS in flight
            for _ in range(min(count, MAX_STREAMS - 1)):
                assert done.acquire(timeout=30)
        finally:
            client.stop_stream()
            client.close()
        return errors

    assert streams(100, 10_000) == 0                       # warm: allocator pools, onnxruntime arenas
    before = stub.memory_info().rss
    assert streams(1000, 20_000) == 0
    grown = (stub.memory_info().rss - before) / 2**20
    assert grown < 16, f"the streaming model grew by {grown:.1f} MiB over 1,000 streams"
    assert live_streams(server.ports.metrics) == 0


def test_stream_cli_prints_partials_and_finals(server, speech, tmp_path):
    import soundfile

    audio = speech[0]
    path = tmp_path / "clip.wav"
    soundfile.write(path, audio, SR, subtype="FLOAT")
    run = subprocess.run([sys.executable, "-m", "client", "--stream", "--url", server.grpc_url,
                          "--chunk-seconds", "0.5", str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = [line.split("\t") for line in run.stdout.splitlines()]
    assert {kind for _, kind, _ in lines} == {"partial", "final"} and lines[-1][1] == "final"
    with TranscriptionClient(server.grpc_url, "grpc") as asr:
        expected = stream_transcript(asr.stream(audio, chunk_seconds=0.5))
    assert " ".join(text for _, kind, text in lines if kind == "final" and text) == expected
    http = subprocess.run([sys.executable, "-m", "client", "--stream", "--url", "127.0.0.1:9", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert http.returncode == 3 and "cannot reach" in http.stderr
