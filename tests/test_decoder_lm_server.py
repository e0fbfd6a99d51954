"""Against a real tritonserver: the beam+LM decoder, HOTWORDS and WORD_TIMESTAMPS through the
`asr` ensemble equal the in-process pipeline; a bad LM fails the server start with its message.

The LM is a small word-bigram ARPA made from the real-speech transcripts (loads in
milliseconds); the CMU LM (`make lm`) behaves the same but takes ~10 s per decoder instance.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from client import TranscriptionClient
from client.__main__ import main as client_main
from w2v_triton.build.lm_sentences import write_lm_dir
from w2v_triton.build.repository import RepositoryOptions
from w2v_triton.serving import spec
from w2v_triton.serving.audio import load_audio
from w2v_triton.serving.ctc_decoding import DecoderConfig
from w2v_triton.serving.pipeline import ReferencePipeline
from w2v_triton.serving.tritonserver import Ports, ServerError, TritonServer

pytestmark = pytest.mark.integration


def build(tmp_path_factory, build_tiny, name: str, lm_dir, **decoder: float):
    decoder_config = DecoderConfig(mode="beam", beam_width=16, **decoder)
    return build_tiny(tmp_path_factory.mktemp(name), lm_dir=lm_dir,
                      options=RepositoryOptions(decoder=decoder_config, decoder_instances=2))


@pytest.fixture(scope="module")
def lm_texts(real_speech):
    return [u.text for u in real_speech if u.text]


@pytest.fixture(scope="module")
def lm_repository(tmp_path_factory, build_tiny, lm_texts):
    lm = write_lm_dir(tmp_path_factory.mktemp("lm"), lm_texts)
    return build(tmp_path_factory, build_tiny, "lm_repository", lm, alpha=0.8, beta=1.5)


@pytest.fixture(scope="module")
def lm_server(lm_repository, tmp_path_factory):
    server = TritonServer(lm_repository, Ports.free(), log_path=tmp_path_factory.mktemp("lm_log") / "server.log")
    server.start(timeout=180)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lm_pipeline(lm_repository):
    return ReferencePipeline(lm_repository)


@pytest.fixture(scope="module")
def speech(real_speech):
    return [load_audio(u.audio) for u in real_speech[::15][:12]]


def infer(url: str, audio: np.ndarray, hotwords: str | None = None) -> tuple[str, list[dict]]:
    """Through the project's client (gRPC): transcript + word timestamps, optional HOTWORDS input."""
    with TranscriptionClient(url, "grpc") as asr:
        result = asr.transcribe_full(audio, hotwords)
    return result.text, result.words


def expected(pipeline: ReferencePipeline, audio: np.ndarray, hotwords: str | None = None):
    decoder = pipeline.decoder
    decoded = decoder.decode_full(pipeline.logits([audio])[0], decoder.parse_hotwords(hotwords) or None)
    return decoded.text, json.loads(decoded.words_json())


def test_lm_decoder_matches_in_process_pipeline(lm_server, lm_pipeline, speech, lm_texts):
    served = [infer(lm_server.grpc_url, a) for a in speech]
    assert [s for s in served] == [expected(lm_pipeline, a) for a in speech]
    assert [text for text, _ in served] == [lm_pipeline.transcribe(a) for a in speech]
    lm_words = {w for t in lm_texts for w in t.split()}
    words = [w for text, _ in served for w in text.split()]
    assert len(words) >= 12
    # The LM steers the gibberish of the random tiny model towards its own words.
    assert sum(w in lm_words for w in words) > len(words) // 2


def test_word_timestamps_through_the_ensemble(lm_server, speech):
    for audio in speech[:4]:
        text, words = infer(lm_server.grpc_url, audio)
        assert " ".join(w["word"] for w in words) == text
        duration = audio.size / spec.SAMPLE_RATE
        starts = [w["start_s"] for w in words]
        assert starts == sorted(starts)
        assert all(0 <= w["start_s"] < w["end_s"] <= duration + 0.02 for w in words)


def test_hotwords_through_the_ensemble(lm_server, lm_pipeline, speech):
    audio = speech[0]
    plain = infer(lm_server.grpc_url, audio)
    hot = "zebra, quixotic"
    with_hotwords = infer(lm_server.grpc_url, audio, hot)
    assert with_hotwords == expected(lm_pipeline, audio, hot)
    assert with_hotwords[0] != plain[0] and {"ZEBRA", "QUIXOTIC"} & set(with_hotwords[0].split())
    assert infer(lm_server.grpc_url, audio, "") == plain  # empty hotwords = none


def test_greedy_server_gives_word_timestamps_and_ignores_hotwords(tiny_server, speech):
    pipeline = ReferencePipeline(tiny_server.repository)
    text, words = infer(tiny_server.grpc_url, speech[1])
    assert (text, words) == expected(pipeline, speech[1])
    assert infer(tiny_server.grpc_url, speech[1], "zebra") == (text, words)


@pytest.mark.parametrize("breakage, message", [
    ("lower", "LM words are lower case but the acoustic model's vocabulary is upper case"),
    ("missing", "lm.arpa does not exist"),
])
def test_bad_lm_fails_the_server_start_with_the_reason(tmp_path_factory, build_tiny, lm_texts,
                                                       breakage, message):
    lm = write_lm_dir(tmp_path_factory.mktemp("bad_lm"), lm_texts, case="lower" if breakage == "lower" else "upper")
    repo = build(tmp_path_factory, build_tiny, f"bad_{breakage}", lm)
    if breakage == "missing":
        (repo / "decoder" / "lm.arpa").unlink()
    server = TritonServer(repo, Ports.free(), log_path=tmp_path_factory.mktemp("bad_log") / "server.log")
    with pytest.raises(ServerError, match="failed to load") as error:
        server.start(timeout=180)
    assert message in str(error.value)
    assert server.process.poll() is not None  # stopped, nothing left running
    shutil.rmtree(repo)


def test_concurrent_requests_with_and_without_hotwords(lm_server, lm_pipeline, speech):
    """Requests with and without the optional input are batched/scheduled together correctly."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(audio[:n], hot) for audio in speech[:4] for n in (8000, 24000) for hot in (None, "zebra")]
    wanted = [expected(lm_pipeline, audio, hot) for audio, hot in jobs]
    with ThreadPoolExecutor(6) as pool:
        served = list(pool.map(lambda job: infer(lm_server.grpc_url, *job), jobs * 2))
    assert served == wanted * 2


def test_client_cli_sends_hotwords_and_prints_word_timestamps(lm_server, lm_pipeline, speech, tmp_path, capsys):
    import soundfile as sf

    path = tmp_path / "speech.flac"
    sf.write(path, speech[0], spec.SAMPLE_RATE, subtype="PCM_16")
    audio = load_audio(path)
    hot = "zebra, quixotic"
    assert client_main([str(path), "--url", lm_server.http_url, "--hotwords", hot, "--timestamps"]) == 0
    name, text, words = capsys.readouterr().out.strip().split("\t")
    assert name == str(path) and (text, json.loads(words)) == expected(lm_pipeline, audio, hot)
    assert {"ZEBRA", "QUIXOTIC"} & set(text.split())
    assert client_main([str(path), "--url", lm_server.http_url]) == 0     # plain: no hotwords, 2 columns
    name, plain = capsys.readouterr().out.strip().split("\t")
    assert plain == lm_pipeline.transcribe(audio)
