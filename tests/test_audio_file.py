"""The ensemble's AUDIO_FILE input against a real tritonserver: encoded files decoded in Triton.

Every format must give exactly the transcript of the float32 path fed with the samples that
file decodes to (lossy formats decode to slightly different samples than the original), through
the raw ensemble, the client (API and `--send-file`) and the in-process pipeline. Bad files get
one clear INVALID_ARG error each and the server stays ready.
"""
from __future__ import annotations

import io
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

from client import RequestRejected, TranscriptionClient
from w2v_triton.serving import spec
from w2v_triton.serving.audio import decode_audio_bytes, load_audio
from w2v_triton.serving.pipeline import ReferencePipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(tiny_repository):
    return ReferencePipeline(tiny_repository)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_every_format_equals_the_float32_path_of_its_decoded_samples(tiny_server, pipeline, encoded_speech, protocol):
    url = tiny_server.http_url if protocol == "http" else tiny_server.grpc_url
    with TranscriptionClient(url, protocol) as asr:
        for label, data in encoded_speech:
            decoded = decode_audio_bytes(data)
            as_file, as_float = asr.transcribe(data), asr.transcribe(decoded)
            assert as_file == as_float == pipeline.transcribe(data) == pipeline.transcribe(decoded), label
            assert as_file, label  # the tiny model emits letters: the comparison is not vacuous


def test_lossless_files_equal_the_original_samples(tiny_server, real_speech, encoded_speech):
    """A 16 kHz 16-bit FLAC holds exactly the original samples: same transcript as the original."""
    originals = {u.audio.stem: load_audio(u.audio) for u in real_speech}
    with TranscriptionClient(tiny_server.http_url) as asr:
        for label, data in encoded_speech:
            if label.endswith(".flac"):
                assert asr.transcribe(data) == asr.transcribe(originals[label.split(".")[0]])
        path = real_speech[0].audio          # a file of the shared set, sent exactly as stored
        assert asr.transcribe_file(path, send_file=True) == asr.transcribe_file(path)


def test_word_times_and_duration_of_a_file(tiny_server, encoded_speech):
    label, data = encoded_speech[3]
    with TranscriptionClient(tiny_server.http_url) as asr:
        as_file, as_float = asr.transcribe_full(data), asr.transcribe_full(decode_audio_bytes(data))
    assert as_file == as_float and as_file.words
    assert as_file.duration_s == pytest.approx(decode_audio_bytes(data).size / spec.SAMPLE_RATE)
    assert 0 <= as_file.words[0]["start_s"] <= as_file.words[-1]["end_s"] <= as_file.duration_s + 0.02


def test_several_files_in_one_request_and_mixed_concurrent_requests(tiny_server, pipeline, encoded_speech):
    """Rows of different lengths in one request are padded; AUDIO and AUDIO_FILE requests in
    flight together (dynamic batching) each get their own transcript."""
    import tritonclient.grpc as grpc

    files = [data for _, data in encoded_speech]
    expected = [pipeline.transcribe(d) for d in files]
    with grpc.InferenceServerClient(tiny_server.grpc_url) as raw:
        request = grpc.InferInput(spec.AUDIO_FILE, [3, 1], "BYTES")
        request.set_data_from_numpy(np.array([[d] for d in files[:3]], dtype=np.object_))
        result = raw.infer(spec.ENSEMBLE_MODEL, [request])
        assert [t.decode() for t in result.as_numpy(spec.TRANSCRIPT).reshape(-1)] == expected[:3]

    work = [(d if i % 2 else decode_audio_bytes(d), e) for i, (d, e) in enumerate(zip(files, expected))] * 2

    def send(item):
        with TranscriptionClient(tiny_server.grpc_url, "grpc") as asr:
            return asr.transcribe(item[0])

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(send, work)) == [e for _, e in work]


def _flac(samples: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


BAD_FILES = [
    (b"", "empty"),
    (bytes(range(256)) * 8, "not a recognised audio file"),
    (b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A mp42isom" + bytes(2000), "unsupported audio format audio/mp4"),
    (b"\x1aE\xdf\xa3\x9fB\x86\x81\x01" + bytes(2000), "not a recognised audio file"),   # WebM/Matroska
    (_flac(np.sin(np.arange(32000) / 5).astype(np.float32) * 0.5)[:3000], "corrupt or truncated"),
    (_flac(np.zeros(601 * 16000, np.int16)), r"too long \(601.0 s; the limit is 600 s\)"),
    (_flac(np.zeros(200, np.int16)), "too short"),
]


@pytest.mark.parametrize("data, message", BAD_FILES, ids=["empty", "garbage", "m4a", "webm", "truncated",
                                                          "too-long", "too-short"])
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_files_get_one_clear_error_and_the_server_stays_ready(tiny_server, data, message, protocol):
    url = tiny_server.http_url if protocol == "http" else tiny_server.grpc_url
    with TranscriptionClient(url, protocol) as asr:
        with pytest.raises(RequestRejected, match=message):
            asr.transcribe(data)
        assert asr.transcribe(_flac(np.zeros(8000, np.int16))) is not None
    assert tiny_server.is_ready()


def _raw_infer(url: str, inputs: dict):
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    requests = []
    for name, (value, dtype) in inputs.items():
        requests.append(http.InferInput(name, list(value.shape), dtype))
        requests[-1].set_data_from_numpy(value)
    with http.InferenceServerClient(url) as raw:
        with pytest.raises(InferenceServerException) as error:
            raw.infer(spec.ENSEMBLE_MODEL, requests)
    return error.value


def test_a_1_hz_wav_is_refused_with_invalid_arg(tiny_server, wav_declaring):
    """100 bytes declaring 1 Hz were resampled into 100 s of audio (issue 27): now INVALID_ARG,
    over HTTP (400) and gRPC, with the accepted range in one line."""
    import tritonclient.grpc as grpc
    from tritonclient.utils import InferenceServerException

    file = np.array([[wav_declaring(1)]], dtype=np.object_)
    refused = _raw_infer(tiny_server.http_url, {spec.AUDIO_FILE: (file, "BYTES")})
    message = "sample rate 1 Hz is not accepted: audio files must be recorded at 8000-192000 Hz"
    assert refused.status() == "400" and message in refused.message()
    request = grpc.InferInput(spec.AUDIO_FILE, [1, 1], "BYTES")
    request.set_data_from_numpy(file)
    with grpc.InferenceServerClient(tiny_server.grpc_url) as raw:
        with pytest.raises(InferenceServerException) as error:
            raw.infer(spec.ENSEMBLE_MODEL, [request])
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT" and message in error.value.message()
    assert tiny_server.is_ready()


def test_both_or_neither_input_is_rejected(tiny_server):
    audio = (np.zeros((1, 8000), np.float32), "FP32")
    file = (np.array([[_flac(np.zeros(8000, np.int16))]], dtype=np.object_), "BYTES")
    hotwords = (np.array([[b"HELLO"]], dtype=np.object_), "BYTES")
    both = _raw_infer(tiny_server.http_url, {spec.AUDIO: audio, spec.AUDIO_FILE: file})
    assert both.status() == "400" and "both inputs were sent: send exactly one of AUDIO" in both.message()
    # Neither: Triton's core refuses a step without inputs before the preprocessor runs, with its
    # own message (docs/gateway.md); still a 400 and the server stays ready.
    for inputs in ({}, {spec.HOTWORDS: hotwords}):
        neither = _raw_infer(tiny_server.http_url, inputs)
        assert neither.status() == "400" and "0 inputs" in neither.message()
    assert tiny_server.is_ready()


def test_client_cli_send_file(tiny_server, encoded_speech, tmp_path):
    paths = []
    for label, data in encoded_speech[:5]:
        paths.append(tmp_path / label)
        paths[-1].write_bytes(data)
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(b"ID3" + bytes(range(256)) * 4)
    runs = {}
    for flag in ([], ["--send-file"]):
        runs[bool(flag)] = subprocess.run(
            [sys.executable, "-m", "client", "--url", tiny_server.http_url, *flag, *map(str, paths), str(corrupt)],
            capture_output=True, text=True, timeout=120)
    plain, sent = runs[False], runs[True]
    # Decoding here (soundfile) or in Triton (the same soundfile) gives the same samples.
    assert sent.stdout == plain.stdout and len(sent.stdout.splitlines()) == 5
    assert "corrupt.mp3: cannot decode audio" in plain.stderr
    assert "corrupt.mp3: server rejected the request" in sent.stderr and "cannot decode audio" in sent.stderr
    assert sent.returncode == plain.returncode == 1 and "Traceback" not in sent.stderr
