"""Streaming recognition in process (w2v_triton.serving.streaming): frame arithmetic against a local
stand-in model, final == offline on the tiny repository, bounded state, idle eviction, errors
isolated to their stream, streams that do not mix."""
from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from w2v_triton.serving import spec
from w2v_triton.serving.ctc_decoding import CTCDecoder
from w2v_triton.serving.long_audio import frame_count
from w2v_triton.serving.pipeline import ReferencePipeline
from w2v_triton.serving.preprocessing import InvalidAudio
from w2v_triton.serving.pipeline import model_parameters
from w2v_triton.serving.streaming import (ChunkedRecognizer, ChunkRequest, StreamError, StreamingConfig,
                                  StreamingConfigError, StreamRegistry, StreamState, build_recognizer,
                                  split_parameters, version_dir)

STRIDE = spec.FRAME_STRIDE_SAMPLES
SR = spec.SAMPLE_RATE


class LocalAcoustic:
    """Frame t depends only on samples 320t .. 320t+400 (like the conv front-end, without
    attention): chunked windows must then give exactly the full pass's frames."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size, self.calls = vocab_size, []

    def run(self, rows: list[np.ndarray]) -> list[np.ndarray]:
        self.calls.append([r.size for r in rows])
        out = []
        for row in rows:
            frames = frame_count(row.size)
            index = np.arange(frames)[:, None] * STRIDE + np.arange(spec.MIN_SAMPLES)[None]
            field = row[index] if frames else np.zeros((0, spec.MIN_SAMPLES), np.float32)
            logits = np.zeros((frames, self.vocab_size), np.float32)
            logits[np.arange(frames), (np.abs(field).sum(1) * 7).astype(int) % self.vocab_size] = 1.0
            logits[:, 0] += field.max(1) if frames else 0
            out.append(logits)
        return out


def local_recognizer(**config) -> ChunkedRecognizer:
    acoustic = LocalAcoustic(len(spec.BASE_960H_VOCAB))
    return ChunkedRecognizer(acoustic, CTCDecoder(spec.BASE_960H_VOCAB), do_normalize=False,
                             config=StreamingConfig(**config))


@pytest.fixture(scope="module")
def tiny_recognizer(tiny_repository) -> ChunkedRecognizer:
    return build_recognizer(model_parameters(tiny_repository, spec.STREAMING_MODEL), version_dir(tiny_repository),
                             warmup=False)


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_repository) -> ReferencePipeline:
    return ReferencePipeline(tiny_repository)


@pytest.mark.parametrize("samples", [400, 7999, 16000, 40_321, 97_000])
@pytest.mark.parametrize("chunk", [0.16, 0.5, 0.64])
def test_chunk_frames_equal_the_full_pass_for_a_local_model(samples, chunk, rng):
    recognizer = local_recognizer(final_pass="streamed", left_context_seconds=0.3, right_context_seconds=0.1)
    audio = rng.standard_normal(samples).astype(np.float32)
    state = StreamState()
    step = int(chunk * SR)
    starts = list(range(0, samples, step))
    emitted_before = None
    for k, s in enumerate(starts):
        end = k == len(starts) - 1
        result = recognizer.process([(state, audio[s: s + step], end)])[0]
        assert not isinstance(result, Exception)
        expected = frame_count(samples) if end else frame_count(state.received - recognizer.config.right)
        assert state.emitted == expected
        logits = recognizer.emitted_logits(state)
        if emitted_before is not None:   # emitted frames never change
            np.testing.assert_array_equal(logits[: emitted_before.shape[0]], emitted_before)
        emitted_before = logits.copy()
        assert result.is_final == end
    full = recognizer.acoustic.run([audio])[0]
    np.testing.assert_array_equal(recognizer.emitted_logits(state), full)
    # every window: at most left context + one chunk + look-ahead (+ one frame of rounding)
    longest = max(size for call in recognizer.acoustic.calls[:-1] for size in call)
    assert longest <= recognizer.config.left + step + recognizer.config.right + 2 * STRIDE


def test_final_equals_offline_on_the_tiny_repository(tiny_recognizer, tiny_pipeline, rng):
    audio = (0.1 * rng.standard_normal(int(3.3 * SR))).astype(np.float32)
    results = tiny_recognizer.recognize(audio, chunk_seconds=0.5)
    assert [r.is_final for r in results] == [False] * (len(results) - 1) + [True]
    assert results[-1].text == tiny_pipeline.transcribe(audio)
    offline = tiny_pipeline.logits([audio])[0]
    state = StreamState()
    step = SR // 2
    for k, s in enumerate(range(0, audio.size, step)):
        tiny_recognizer.process([(state, audio[s: s + step], s + step >= audio.size)])
    np.testing.assert_array_equal(tiny_recognizer.emitted_logits(state), offline)


def test_real_speech_final_equals_offline(tiny_recognizer, tiny_pipeline, real_speech):
    from w2v_triton.serving.audio import load_audio

    for utterance in real_speech[:3]:
        audio = load_audio(utterance.audio)
        assert tiny_recognizer.recognize(audio, 0.64)[-1].text == tiny_pipeline.transcribe(audio)


def test_long_stream_keeps_bounded_audio_and_finishes_from_its_chunks(rng):
    recognizer = local_recognizer(max_full_seconds=2.0, left_context_seconds=0.5, right_context_seconds=0.2)
    audio = rng.standard_normal(10 * SR).astype(np.float32)
    state = StreamState()
    step = SR // 4
    for k, s in enumerate(range(0, audio.size, step)):
        recognizer.process([(state, audio[s: s + step], s + step >= audio.size)])
        if state.received > 2 * SR:
            assert not state.complete
            assert state.audio.size <= recognizer.config.left + recognizer.config.right + step + STRIDE
        else:
            assert state.complete
    np.testing.assert_array_equal(recognizer.emitted_logits(state), recognizer.acoustic.run([audio])[0])


@pytest.mark.parametrize("chunk, message", [
    (np.array([0.1, np.nan], np.float32), "NaN"),
    (np.zeros(800, np.float64), "float32"),
    (np.zeros((2, 800), np.float32), "mono"),
    (np.zeros(6 * SR, np.float32), "longer than"),
])
def test_bad_chunk_fails_its_stream_only(chunk, message, rng):
    registry = StreamRegistry(local_recognizer())
    good = rng.standard_normal(SR).astype(np.float32)
    results = registry.handle([ChunkRequest(1, good, True, False), ChunkRequest(2, chunk, True, False)])
    assert not isinstance(results[0], Exception)
    assert isinstance(results[1], (InvalidAudio, StreamError)) and message in str(results[1])
    assert set(registry.streams) == {1}                       # the failed stream is freed
    again = registry.handle([ChunkRequest(2, good, False, False), ChunkRequest(1, good, False, True)])
    assert isinstance(again[0], StreamError) and "START" in str(again[0])
    assert again[1].is_final and not registry.streams


def test_too_short_utterance_and_too_long_stream_are_errors():
    registry = StreamRegistry(local_recognizer(max_stream_seconds=1.0))
    short = registry.handle([ChunkRequest(1, np.zeros(100, np.float32), True, True)])[0]
    assert isinstance(short, InvalidAudio) and "too short" in str(short)
    registry.handle([ChunkRequest(2, np.zeros(SR // 2, np.float32), True, False)])
    long = registry.handle([ChunkRequest(2, np.zeros(SR, np.float32), False, False)])[0]
    assert isinstance(long, StreamError) and "longer than" in str(long)


def test_idle_streams_are_freed_and_live_streams_capped():
    now = [0.0]
    registry = StreamRegistry(local_recognizer(idle_seconds=5, max_streams=2), clock=lambda: now[0])
    chunk = np.zeros(SR // 2, np.float32)
    registry.handle([ChunkRequest(1, chunk, True, False), ChunkRequest(2, chunk, True, False)])
    full = registry.handle([ChunkRequest(3, chunk, True, False)])[0]
    assert isinstance(full, StreamError) and "too many" in str(full)
    now[0] = 4.0
    registry.handle([ChunkRequest(2, chunk, False, False)])   # stream 2 stays active
    now[0] = 7.0
    assert registry.evict_idle() == [1] and set(registry.streams) == {2}
    late = registry.handle([ChunkRequest(1, chunk, False, False)])[0]
    assert isinstance(late, StreamError) and "idle" in str(late)
    assert not isinstance(registry.handle([ChunkRequest(3, chunk, True, False)])[0], Exception)


def test_interleaved_streams_do_not_mix(tiny_recognizer, rng):
    audios = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (int(2.1 * SR), int(3.4 * SR))]
    alone = [tiny_recognizer.recognize(a, 0.5) for a in audios]
    registry = StreamRegistry(tiny_recognizer)
    step = SR // 2
    together: dict[int, list] = {0: [], 1: []}
    for k in range(max(-(-a.size // step) for a in audios)):
        requests = [ChunkRequest(i + 10, a[k * step:(k + 1) * step], k == 0, (k + 1) * step >= a.size)
                    for i, a in enumerate(audios) if k * step < a.size]
        for request, result in zip(requests, registry.handle(requests)):
            together[request.stream_id - 10].append(result.text)
    for i in (0, 1):
        assert together[i] == [r.text for r in alone[i]]
    assert not registry.streams


def test_same_stream_twice_in_one_call_runs_in_order(rng):
    registry = StreamRegistry(local_recognizer(final_pass="streamed"))
    audio = rng.standard_normal(SR).astype(np.float32)
    results = registry.handle([ChunkRequest(5, audio[:8000], True, False), ChunkRequest(5, audio[8000:], False, True)])
    assert results[1].is_final and not registry.streams
    assert frame_count(SR) * STRIDE / SR == pytest.approx(results[1].emitted_seconds)


def test_running_normalisation_uses_the_stream_so_far(rng):
    recognizer = local_recognizer()
    recognizer.do_normalize = True
    state = StreamState()
    audio = (3 + 2 * rng.standard_normal(SR)).astype(np.float32)
    recognizer.process([(state, audio, False)])
    window = recognizer._normalized(state, audio)
    assert abs(window.mean()) < 1e-3 and abs(window.std() - 1) < 1e-3


def test_config_parameters_round_trip_and_errors():
    config = StreamingConfig(left_context_seconds=2.0, normalization="none", max_streams=3)
    assert StreamingConfig.from_parameters(config.to_parameters()) == config
    with pytest.raises(StreamingConfigError, match="normalization"):
        StreamingConfig(normalization="global")
    with pytest.raises(StreamingConfigError, match="not a number"):
        StreamingConfig.from_parameters({"stream_max_streams": "many"})
    acoustic, decoder, streaming, normalize = split_parameters(
        {"runtime": "onnxruntime", "decoder_mode": "beam", "stream_idle_seconds": "3", "do_normalize": "false"})
    assert acoustic == {"runtime": "onnxruntime"} and decoder == {"mode": "beam"}
    assert streaming == {"stream_idle_seconds": "3"} and normalize is False


def test_streaming_model_is_rendered_with_the_offline_settings(tiny_repository):
    config = text_format.Parse((tiny_repository / spec.STREAMING_MODEL / "config.pbtxt").read_text(),
                               model_config_pb2.ModelConfig())
    assert config.model_transaction_policy.decoupled
    controls = {c.name for c in config.sequence_batching.control_input}
    assert controls == {spec.STREAM_START, spec.STREAM_END, spec.STREAM_CORRID}
    assert config.sequence_batching.max_sequence_idle_microseconds == 60_000_000
    params = model_parameters(tiny_repository, spec.STREAMING_MODEL)
    acoustic, decoder, _, normalize = split_parameters(params)
    assert acoustic == model_parameters(tiny_repository, spec.ACOUSTIC_MODEL)
    assert decoder == model_parameters(tiny_repository, spec.DECODER_MODEL)
    assert normalize == (model_parameters(tiny_repository, spec.PREPROCESSOR_MODEL)["do_normalize"] == "true")
    assert (tiny_repository / spec.STREAMING_MODEL / "1" / "model.py").is_file()


def test_builder_takes_streaming_settings(tmp_path, build_tiny):
    from w2v_triton.build.repository import RepositoryOptions

    out = build_tiny(tmp_path / "repo", options=RepositoryOptions(
        streaming={"idle_seconds": "2.5", "left_context_seconds": "1"}))
    params = model_parameters(out, spec.STREAMING_MODEL)
    assert params["stream_idle_seconds"] == "2.5" and params["stream_left_context_seconds"] == "1.0"
    assert "max_sequence_idle_microseconds: 2500000" in (out / spec.STREAMING_MODEL / "config.pbtxt").read_text()
    with pytest.raises(StreamingConfigError):   # refused before anything is built
        RepositoryOptions(streaming={"normalization": "global"})


def test_beam_decoder_with_hotwords_gives_the_offline_beam_result(tiny_recognizer, tiny_pipeline, rng):
    from w2v_triton.serving.ctc_decoding import DecoderConfig

    beam = CTCDecoder(spec.BASE_960H_VOCAB, DecoderConfig(mode="beam", beam_width=8))
    recognizer = ChunkedRecognizer(tiny_recognizer.acoustic, beam, tiny_recognizer.do_normalize,
                                   tiny_recognizer.config)
    registry = StreamRegistry(recognizer)
    audio = (0.1 * rng.standard_normal(int(2.2 * SR))).astype(np.float32)
    step = SR // 2
    results = []
    for k, s in enumerate(range(0, audio.size, step)):
        request = ChunkRequest(9, audio[s: s + step], k == 0, s + step >= audio.size,
                               hotwords=b"kubernetes, triton" if k == 0 else None)
        results.append(registry.handle([request])[0])
    offline = tiny_pipeline.logits([audio])[0]
    assert results[-1].is_final
    assert results[-1].text == beam.decode(offline, ["KUBERNETES", "TRITON"])
    assert all(isinstance(r.text, str) for r in results)


def test_streaming_model_folder_is_self_contained(tmp_path, tiny_repository, tiny_pipeline, rng):
    """Triton fetches each model folder on its own from cloud storage: streaming_asr must work
    from a copy of its own folder alone (its acoustic and decoder files are linked into it)."""
    import shutil

    alone = tmp_path / "only" / spec.STREAMING_MODEL
    shutil.copytree(tiny_repository / spec.STREAMING_MODEL, alone)
    recognizer = build_recognizer(model_parameters(tmp_path / "only", spec.STREAMING_MODEL), alone / "1",
                                  warmup=False)
    audio = (0.1 * rng.standard_normal(int(1.7 * SR))).astype(np.float32)
    assert recognizer.recognize(audio, 0.5)[-1].text == tiny_pipeline.transcribe(audio)
    linked = version_dir(tiny_repository) / "acoustic" / "model.onnx"
    original = tiny_repository / spec.ACOUSTIC_MODEL / "1" / "model.onnx"
    assert linked.stat().st_ino == original.stat().st_ino     # a hard link, not a second copy
