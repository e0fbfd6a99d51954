"""Against a real tritonserver: Triton's transcripts equal the in-process pipeline's."""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from client import ClientError, TranscriptionClient
from w2v_triton.serving.audio import load_audio
from w2v_triton.serving.pipeline import ReferencePipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(tiny_repository):
    return ReferencePipeline(tiny_repository)


@pytest.fixture(scope="module")
def speech(real_speech):
    """12 real utterances from every source folder, 0.5-12 s."""
    picked = real_speech[::15][:12]
    return [(u.audio, load_audio(u.audio)) for u in picked]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_server_matches_in_process_pipeline_on_real_speech(tiny_server, pipeline, speech, protocol):
    url = tiny_server.http_url if protocol == "http" else tiny_server.grpc_url
    with TranscriptionClient(url, protocol) as asr:
        served = [asr.transcribe(audio) for _, audio in speech]
    expected = [pipeline.transcribe(audio) for _, audio in speech]
    assert len(served) >= 10
    assert served == expected
    assert all(served)  # the tiny random model still emits letters: the comparison is not vacuous


def test_concurrent_mixed_lengths_equal_single_requests(tiny_server, pipeline, speech):
    """Ragged dynamic batching under concurrency gives exactly the single-request transcripts."""
    clips = [audio[: n] for _, audio in speech for n in (4000, 12345, 40000)]
    expected = [pipeline.transcribe(c) for c in clips]

    def send(clip):
        with TranscriptionClient(tiny_server.grpc_url, "grpc") as asr:
            return asr.transcribe(clip)

    with ThreadPoolExecutor(8) as pool:
        served = list(pool.map(send, clips * 2))
    assert served == expected * 2


@pytest.mark.parametrize("audio, message", [
    (np.zeros(0, np.float32), "empty"),
    (np.zeros(399, np.float32), "too short"),
    (np.full(8000, np.nan, np.float32), "NaN/Inf"),
    (np.concatenate([np.zeros(8000, np.float32), [np.inf]]).astype(np.float32), "NaN/Inf"),
])
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_audio_gets_a_clear_error_and_server_stays_ready(tiny_server, audio, message, protocol):
    url = tiny_server.http_url if protocol == "http" else tiny_server.grpc_url
    with TranscriptionClient(url, protocol) as asr:
        with pytest.raises(ClientError, match=message):
            asr.transcribe(audio)
        assert asr.transcribe(np.zeros(8000, np.float32)) is not None
    assert tiny_server.is_ready()


def test_wrong_dtype_is_rejected_by_triton(tiny_server):
    import tritonclient.http as http

    with http.InferenceServerClient(tiny_server.http_url) as raw:
        data = np.zeros((1, 8000), np.int16)
        request = http.InferInput("AUDIO", list(data.shape), "INT16")
        request.set_data_from_numpy(data)
        with pytest.raises(Exception, match="(?i)data.?type|FP32|INT16"):
            raw.infer("asr", [request])
    assert tiny_server.is_ready()


def test_client_cli_prints_transcripts_and_clear_errors(tiny_server, pipeline, speech, tmp_path):
    path, audio = speech[0]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"not audio at all")
    result = subprocess.run(
        [sys.executable, "-m", "client", "--url", tiny_server.http_url, str(path),
         str(tmp_path / "missing.flac"), str(corrupt)], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == f"{path}\t{pipeline.transcribe(audio)}"
    assert "missing.flac: no such file" in result.stderr
    assert "corrupt.wav: cannot decode audio" in result.stderr
    assert result.returncode == 1 and "Traceback" not in result.stderr


def test_unreachable_server_is_reported(speech):
    from w2v_triton.serving.tritonserver import free_port

    result = subprocess.run(
        [sys.executable, "-m", "client", "--url", f"127.0.0.1:{free_port()}", str(speech[0][0])],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 3
    assert "cannot reach a Triton server" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def int8_server(tmp_path_factory):
    """The tiny model served as the int8-mm variant (block-MatMul front-end, dynamic int8)."""
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.serving.tritonserver import Ports, TritonServer

    repository = tmp_path_factory.mktemp("int8_repository")
    build_repository(BuildRequest(model="tiny", output=repository, variant="int8-mm"))
    server = TritonServer(repository, Ports.free(), log_path=tmp_path_factory.mktemp("int8_log") / "triton.log")
    server.start(timeout=180)
    yield server, ReferencePipeline(repository)
    server.stop()


def test_int8_variant_served_under_concurrency_equals_single_requests(int8_server, speech):
    """Dynamic int8 couples the rows of a batch; the acoustic model runs them alone, so batched
    and concurrent transcripts still equal the in-process single-request ones."""
    server, pipeline = int8_server
    clips = [audio[: n] for _, audio in speech[:6] for n in (4000, 40000)]
    expected = [pipeline.transcribe(c) for c in clips]
    assert pipeline.acoustic.batch_coupled and any(expected)

    def send(clip):
        with TranscriptionClient(server.grpc_url, "grpc") as asr:
            return asr.transcribe(clip)

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(send, clips * 2)) == expected * 2
