"""Streaming recognition in process (w2v_triton.serving.streaming): frame arithmetic against a local
stand-in model, a one-segment stream's final == offline on the tiny repository, each VAD segment's
final == offline over that segment, a chunk that closes a segment answered without its final (the
final computed apart, by the FinalWorker's thread in order), bounded work and state on long
streams, idle eviction by the timer, errors isolated to their stream, streams that do not mix."""
from __future__ import annotations

import time
from dataclasses import replace

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
                                          StreamingConfigError, StreamRegistry, build_recognizer, split_parameters,
                                          transcript, version_dir)

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
                             config=StreamingConfig(**{"vad": "none", **config}))


@pytest.fixture(scope="module")
def tiny_vad_recognizer(tiny_repository) -> ChunkedRecognizer:
    """The tiny repository's streaming model as rendered (silero VAD)."""
    return build_recognizer(model_parameters(tiny_repository, spec.STREAMING_MODEL), version_dir(tiny_repository),
                            warmup=False)


@pytest.fixture(scope="module")
def tiny_recognizer(tiny_vad_recognizer) -> ChunkedRecognizer:
    """The same with vad none: a stream under max_segment_seconds is one segment (random-noise
    test audio has no speech for a VAD to find)."""
    r = tiny_vad_recognizer
    return ChunkedRecognizer(r.acoustic, r.decoder, r.do_normalize, replace(r.config, vad="none"))


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_repository) -> ReferencePipeline:
    return ReferencePipeline(tiny_repository)


@pytest.mark.parametrize("samples", [400, 7999, 16000, 40_321, 97_000])
@pytest.mark.parametrize("chunk", [0.16, 0.5, 0.64])
def test_chunk_frames_equal_the_full_pass_for_a_local_model(samples, chunk, rng):
    recognizer = local_recognizer(left_context_seconds=0.3, right_context_seconds=0.1)
    audio = rng.standard_normal(samples).astype(np.float32)
    state = recognizer.new_stream()
    step = int(chunk * SR)
    starts = list(range(0, samples, step))
    full = recognizer.acoustic.run([audio])[0]
    for k, s in enumerate(starts):
        end = k == len(starts) - 1
        result = recognizer.process([(state, audio[s: s + step], end)])[0]
        assert not isinstance(result, Exception) and result.is_final == end
        expected = frame_count(samples) if end else frame_count(state.received - recognizer.config.right)
        assert state.emitted == expected
        if not end and state.emitted:   # the open segment's frames are the full pass's, and never change
            np.testing.assert_array_equal(state.recent, full[state.recent_start: state.emitted])
    # every window: at most left context + one chunk + look-ahead (+ one frame of rounding)
    longest = max(size for call in recognizer.acoustic.calls[1:-1] for size in call) if samples > step else 0
    assert longest <= recognizer.config.left + step + recognizer.config.right + 2 * STRIDE
    # one segment (vad none, < max_segment): END's answer carries its final, the offline decode of
    # the whole stream, computed apart from the chunk (`complete`)
    assert [p.segment for p in result.pending] == [0] and not result.finals
    (answer,) = recognizer.complete(result)
    assert transcript([answer]) == recognizer.decoder.decode(full) and answer.is_final and not answer.pending
    assert answer.events[-1]["type"] == "final" and answer.events[-1]["end_s"] == samples // STRIDE * STRIDE / SR


def test_one_segment_stream_final_equals_offline_on_the_tiny_repository(tiny_recognizer, tiny_pipeline, rng):
    audio = (0.1 * rng.standard_normal(int(3.3 * SR))).astype(np.float32)
    results = tiny_recognizer.recognize(audio, chunk_seconds=0.5)
    assert [r.is_final for r in results] == [False] * (len(results) - 1) + [True]
    assert [e["type"] for r in results for e in r.events if e["type"] != "delta"] == [
        "speech_started", "speech_stopped", "final"]
    assert transcript(results) == tiny_pipeline.transcribe(audio)
    final = results[-1].finals[0]
    assert final["start_s"] == 0.0 and final["text"] == tiny_pipeline.transcribe(audio)


def test_each_vad_segment_final_is_offline_over_that_segment(tiny_vad_recognizer, tiny_pipeline, real_speech):
    """Real speech with a pause: segments close during the stream (not only at END), and each
    final is the offline transcript of exactly that segment's audio."""
    from w2v_triton.serving.audio import load_audio

    audio = np.concatenate([load_audio(real_speech[3].audio), np.zeros(SR, np.float32),
                            load_audio(real_speech[40].audio)])
    results = tiny_vad_recognizer.recognize(audio, 0.32)
    finals = [(k, f) for k, r in enumerate(results) for f in r.finals]
    assert len(finals) >= 2 and finals[0][0] < len(results) - 1        # a final before the stream ended
    for _, f in finals:
        a, b = int(round(f["start_s"] * SR)), int(round(f["end_s"] * SR))
        assert 0 <= a < b <= audio.size and b - a <= tiny_vad_recognizer.config.max_segment_seconds * SR
        assert f["text"] == tiny_pipeline.transcribe(audio[a:b])
    starts = [e for r in results for e in r.events if e["type"] == "speech_started"]
    assert [e["segment"] for e in starts] == list(range(len(finals)))


def test_long_stream_has_bounded_work_and_state(rng):
    """60 s of speech-like audio, no pause: segments are cut at max_segment_seconds; the audio and
    logits kept, every acoustic row and every decoder step stay bounded, the finals cover it all."""
    recognizer = local_recognizer(max_segment_seconds=4.0, left_context_seconds=1.0, right_context_seconds=0.2)
    audio = rng.standard_normal(60 * SR).astype(np.float32)
    state = recognizer.new_stream()
    step = SR // 4
    finals = []
    for k, s in enumerate(range(0, audio.size, step)):
        result = recognizer.process([(state, audio[s: s + step], s + step >= audio.size)])[0]
        finals += [f for r in recognizer.complete(result) for f in r.finals]
        limit = recognizer.config.left + 4 * SR + step + 2 * STRIDE
        assert state.audio.size <= limit and state.recent.shape[0] * STRIDE <= limit
    assert max(size for call in recognizer.acoustic.calls for size in call) <= 4 * SR + STRIDE
    assert len(finals) >= 60 // 4 and finals[0]["start_s"] == 0.0
    assert all(a["end_s"] == b["start_s"] for a, b in zip(finals, finals[1:]))    # contiguous, nothing lost
    assert finals[-1]["end_s"] == pytest.approx(60.0, abs=0.03)


def test_a_chunk_that_closes_segments_is_answered_before_their_finals(rng):
    """The chunk path never runs a segment's final: the chunk's answer says speech_stopped, the
    closed segment comes back pending (its own audio, preprocessed like offline), and its final is
    computed apart; `complete` gives the responses the server sends, in order."""
    recognizer = local_recognizer(max_segment_seconds=2.0, left_context_seconds=0.5, right_context_seconds=0.1)
    audio = rng.standard_normal(5 * SR).astype(np.float32)
    state = recognizer.new_stream()
    step = SR // 4
    responses = []
    for s in range(0, audio.size, step):
        end = s + step >= audio.size
        result = recognizer.process([(state, audio[s: s + step], end)])[0]
        window_rows = recognizer.acoustic.calls[-1]
        assert all(size <= recognizer.config.left + step + recognizer.config.right + 2 * STRIDE for size in window_rows)
        assert not result.finals      # never in the chunk's own answer
        stopped = [e["segment"] for e in result.events if e["type"] == "speech_stopped"]
        assert [p.segment for p in result.pending] == stopped
        for p in result.pending:
            np.testing.assert_array_equal(p.audio, audio[p.start: p.stop])   # do_normalize False: as sent
        completed = recognizer.complete(result)
        if end:
            assert len(completed) == 1 and completed[0].is_final
            assert [f["segment"] for f in completed[0].finals] == stopped
        else:
            assert completed[0].events == result.events and not completed[0].pending
            assert [(r.text, r.is_final, [e["segment"] for e in r.events]) for r in completed[1:]] == [
                ("", False, [k]) for k in stopped]
        responses += completed
    finals = [f for r in responses for f in r.finals]
    assert len(finals) == 3 and [f["segment"] for f in finals] == [0, 1, 2]
    for f in finals:
        a, b = int(round(f["start_s"] * SR)), int(round(f["end_s"] * SR))
        assert f["text"] == recognizer.decoder.decode(recognizer.acoustic.run([audio[a:b]])[0])


def test_the_final_worker_delivers_in_order_off_the_caller_thread(rng):
    """FinalWorker: each job's finals go to its callback in submission order, from the worker's
    thread; jobs waiting together share one acoustic call; an empty job (END) waits for those
    before it; a failure reaches only the job whose segment caused it, and the worker goes on."""
    import threading

    from w2v_triton.serving.stream_finals import FinalWorker

    recognizer = local_recognizer(max_segment_seconds=1.0)
    audio = rng.standard_normal(int(3.5 * SR)).astype(np.float32)
    state = recognizer.new_stream()
    results = [recognizer.process([(state, audio[s: s + SR // 2], s + SR // 2 >= audio.size)])[0]
               for s in range(0, audio.size, SR // 2)]
    pending = [r.pending for r in results]
    assert sum(len(p) for p in pending) == 4
    gate = threading.Event()
    real_finals = recognizer.finals
    calls: list[int] = []

    def gated(jobs):
        gate.wait(10)
        calls.append(len(jobs))
        if any(p.segment == 99 for p in jobs):
            raise RuntimeError("acoustic model failed")
        return real_finals(jobs)

    recognizer.finals = gated   # type: ignore[method-assign]
    delivered: list[tuple[int, object, str]] = []
    worker = FinalWorker(recognizer)
    try:
        for k, p in enumerate(pending):
            worker.submit(p, lambda out, k=k: delivered.append((k, out, threading.current_thread().name)))
        gate.set()
        deadline = time.monotonic() + 10
        while len(delivered) < len(pending) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [k for k, _, _ in delivered] == list(range(len(pending)))
        assert {name for _, _, name in delivered} == {"segment-finals"}
        got = [f["segment"] for _, out, _ in delivered for f in out]   # type: ignore[union-attr]
        assert got == [0, 1, 2, 3] and sum(calls) == 4 and len(calls) < len(pending)   # batched
        expected = [f for r in results for f in real_finals(r.pending)]
        assert [f for _, out, _ in delivered for f in out] == expected                 # type: ignore[union-attr]
        # a batch with a failing segment: computed again job by job, only that job's stream is told
        some = next(p for p in pending if p)
        broken = replace(some[0], segment=99)
        gate.clear()
        failed: list[object] = []
        worker.submit(some, failed.append)          # the worker holds this one at the gate...
        deadline = time.monotonic() + 10
        while worker.queued() and time.monotonic() < deadline:
            time.sleep(0.01)
        worker.submit([broken], failed.append)      # ...while these three wait, to run together
        worker.submit(some, failed.append)
        worker.submit([], failed.append)
        gate.set()
        deadline = time.monotonic() + 10
        while len(failed) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert failed[0] == real_finals(some) and isinstance(failed[1], RuntimeError)
        assert failed[2] == real_finals(some) and failed[3] == []
        worker.submit(some, failed.append)          # the worker goes on
        worker.stop()
        assert failed[-1] == real_finals(some)
    finally:
        worker.stop()


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


def test_too_short_stream_is_an_error():
    registry = StreamRegistry(local_recognizer())
    short = registry.handle([ChunkRequest(1, np.zeros(100, np.float32), True, True)])[0]
    assert isinstance(short, InvalidAudio) and "too short" in str(short)


def test_idle_streams_are_freed_and_live_streams_capped():
    now = [0.0]
    counts: list[int] = []
    registry = StreamRegistry(local_recognizer(idle_seconds=5, max_streams=2), clock=lambda: now[0],
                              on_change=counts.append)
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
    assert counts[-1] == 2 and 1 in counts


def test_the_reaper_frees_idle_streams_without_a_call():
    registry = StreamRegistry(local_recognizer(idle_seconds=0.3))
    registry.handle([ChunkRequest(7, np.zeros(SR // 2, np.float32), True, False)])
    freed: list[list[int]] = []
    registry.start_reaper(on_evict=freed.append, interval=0.05)
    try:
        deadline = time.monotonic() + 5
        while registry.streams and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        registry.stop_reaper()
    assert not registry.streams and freed == [[7]]


def test_interleaved_streams_do_not_mix(tiny_recognizer, rng):
    audios = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (int(2.1 * SR), int(3.4 * SR))]
    alone = [tiny_recognizer.recognize(a, 0.5) for a in audios]
    assert all(transcript(r) for r in alone)
    registry = StreamRegistry(tiny_recognizer)
    step = SR // 2
    together: dict[int, list] = {0: [], 1: []}
    for k in range(max(-(-a.size // step) for a in audios)):
        requests = [ChunkRequest(i + 10, a[k * step:(k + 1) * step], k == 0, (k + 1) * step >= a.size)
                    for i, a in enumerate(audios) if k * step < a.size]
        for request, result in zip(requests, registry.handle(requests)):
            together[request.stream_id - 10] += [(r.text, r.events) for r in tiny_recognizer.complete(result)]
    for i in (0, 1):
        assert together[i] == [(r.text, r.events) for r in alone[i]]
    assert not registry.streams


def test_same_stream_twice_in_one_call_runs_in_order(rng):
    registry = StreamRegistry(local_recognizer())
    audio = rng.standard_normal(SR).astype(np.float32)
    results = registry.handle([ChunkRequest(5, audio[:8000], True, False), ChunkRequest(5, audio[8000:], False, True)])
    assert results[1].is_final and not registry.streams
    assert frame_count(SR) * STRIDE / SR == pytest.approx(results[1].emitted_seconds)


def test_running_normalisation_uses_the_stream_so_far(rng):
    recognizer = local_recognizer()
    recognizer.do_normalize = True
    state = recognizer.new_stream()
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
    with pytest.raises(StreamingConfigError, match="unknown streaming setting 'max_stream_seconds'"):
        StreamingConfig.from_parameters({"stream_max_stream_seconds": "600"})   # removed: streams have no limit
    with pytest.raises(StreamingConfigError, match="max_segment_seconds"):
        StreamingConfig(max_segment_seconds=60)
    with pytest.raises(StreamingConfigError, match="vad"):
        StreamingConfig(vad="webrtc")
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
    assert config.sequence_batching.max_sequence_idle_microseconds == 15_000_000
    # more batcher slots than the model's cap: one stream too many is refused by the model at once
    assert config.sequence_batching.oldest.max_candidate_sequences == 2 * StreamingConfig().max_streams
    assert [o.name for o in config.output] == [spec.TRANSCRIPT, spec.IS_FINAL, spec.STREAM_EVENTS]
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
        results += recognizer.complete(registry.handle([request])[0])
    offline = tiny_pipeline.logits([audio])[0]
    assert results[-1].is_final
    assert transcript(results) == beam.decode(offline, ["KUBERNETES", "TRITON"])
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
    recognizer = ChunkedRecognizer(recognizer.acoustic, recognizer.decoder, recognizer.do_normalize,
                                   replace(recognizer.config, vad="none"))
    assert transcript(recognizer.recognize(audio, 0.5)) == tiny_pipeline.transcribe(audio)
    assert (alone / "1" / "vad" / "silero_vad.onnx").is_file()   # the VAD travels with the folder
    linked = version_dir(tiny_repository) / "acoustic" / "model.onnx"
    original = tiny_repository / spec.ACOUSTIC_MODEL / "1" / "model.onnx"
    assert linked.stat().st_ino == original.stat().st_ino     # a hard link, not a second copy


def test_flashlight_stream_with_hotwords_gives_the_offline_result(tiny_recognizer, tiny_pipeline, tmp_path, rng):
    """Beam + LM on flashlight: the stream's segment decoder holds a hotword search of its own, and
    the final is the offline hotword decode of the same audio."""
    from test_decoder_lm import TEXTS

    from w2v_triton.build.lm_sentences import write_lm_dir
    from w2v_triton.serving.ctc_decoding import DecoderConfig
    from w2v_triton.serving.ctc_incremental import FlashlightSegment

    lm = write_lm_dir(tmp_path / "lm", TEXTS)
    beam = CTCDecoder(spec.BASE_960H_VOCAB, DecoderConfig(mode="beam", beam_width=8, lm_path=str(lm / "lm.arpa"),
                                                          unigrams_path=str(lm / "unigrams.txt")))
    recognizer = ChunkedRecognizer(tiny_recognizer.acoustic, beam, tiny_recognizer.do_normalize, tiny_recognizer.config)
    registry = StreamRegistry(recognizer)
    audio = (0.1 * rng.standard_normal(int(2.6 * SR))).astype(np.float32)
    step = SR // 2
    results = []
    for k, s in enumerate(range(0, audio.size, step)):
        results += recognizer.complete(registry.handle([ChunkRequest(3, audio[s: s + step], k == 0,
                                                                     s + step >= audio.size,
                                                                     hotwords=b"mat, rat" if k == 0 else None)])[0])
        if k == 0:
            assert isinstance(registry.streams[3].decoder, FlashlightSegment)
    offline = tiny_pipeline.logits([audio])[0]
    assert transcript(results) == beam.decode(offline, ["MAT", "RAT"]) != beam.decode(offline)
