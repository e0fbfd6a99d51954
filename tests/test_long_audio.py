"""Long audio: windows, seams and stitching (exact arithmetic), bounded model calls, and a real
~85 s clip through the tiny model compared with one full pass."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from w2v_triton.serving import spec
from w2v_triton.serving.acoustic import AcousticModel
from w2v_triton.serving.long_audio import LongAudioConfig, frame_count, run_long, seams, window_starts

STRIDE = spec.FRAME_STRIDE_SAMPLES


def local_model(rows: list[np.ndarray]) -> list[np.ndarray]:
    """A stand-in acoustic model whose frame t depends only on its receptive field
    (samples 320t .. 320t+400): stitching must reproduce its full-pass output exactly."""
    out = []
    for row in rows:
        frames = frame_count(row.size)
        index = np.arange(frames)[:, None] * STRIDE + np.arange(spec.MIN_SAMPLES)[None]
        field = row[index]
        out.append(np.stack([field.sum(1), field.max(1), field[:, 0]], axis=1))
    return out


SMALL = LongAudioConfig(window_seconds=2.0, overlap_seconds=0.5, batch_windows=2, max_single_seconds=2.0)


@pytest.mark.parametrize("samples", [400, 32000, 32001, 32320, 40000, 95_999, 160_000, 1_000_003])
def test_windows_cover_the_audio_on_frame_boundaries(samples):
    starts = window_starts(samples, SMALL)
    assert starts[0] == 0 and all(s % STRIDE == 0 for s in starts)
    assert starts == sorted(set(starts))
    assert starts[-1] + SMALL.window >= samples
    ranges = seams(starts, samples, SMALL)
    assert ranges[0][0] == 0 and ranges[-1][1] == frame_count(samples)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    for start, (lo, hi) in zip(starts, ranges):
        first = start // STRIDE
        assert first <= lo <= hi <= first + frame_count(min(SMALL.window, samples - start))


@pytest.mark.parametrize("samples", [32000, 40000, 95_999, 160_000, 1_000_003])
def test_stitching_is_exact_for_a_local_model(samples, rng):
    audio = rng.standard_normal(samples).astype(np.float32)
    calls = []

    def spy(rows):
        calls.append([r.size for r in rows])
        return local_model(rows)

    stitched = run_long(spy, audio, SMALL)
    np.testing.assert_array_equal(stitched, local_model([audio])[0])
    assert all(len(c) <= SMALL.batch_windows and max(c) <= SMALL.window for c in calls)


@pytest.mark.parametrize("samples", [40000, 95_999, 160_000])
def test_stitching_a_squeeze_model_keeps_its_whole_windows(samples, rng):
    """A SEW model emits (T // 2) * 2 frames per window: the interior seams do not need the
    missing last frame, and the stitched result ends where the last window's output does."""
    audio = rng.standard_normal(samples).astype(np.float32)

    def squeezed(rows):
        return [out[: out.shape[0] // 2 * 2] for out in local_model(rows)]

    stitched = run_long(squeezed, audio, SMALL)
    full = local_model([audio])[0]
    last = window_starts(samples, SMALL)[-1]
    expected = frame_count(samples) - frame_count(samples - last) % 2
    assert stitched.shape[0] == expected
    np.testing.assert_array_equal(stitched, full[:expected])


def test_config_validation():
    with pytest.raises(ValueError):
        LongAudioConfig(window_seconds=10, overlap_seconds=6)
    with pytest.raises(ValueError):
        LongAudioConfig(window_seconds=30, max_single_seconds=20)
    from w2v_triton.serving.acoustic import AcousticSettings

    config = AcousticSettings.from_parameters({
        "long_audio_window_seconds": "20", "long_audio_overlap_seconds": "2",
        "long_audio_batch_windows": "3", "long_audio_max_single_seconds": "25"}).long_audio
    assert (config.window, config.hop, config.batch_windows, config.max_single) == (320_000, 288_000, 3, 400_000)


@pytest.fixture(scope="module")
def tiny_onnx() -> Path:
    from w2v_triton.paths import onnx_dir_for
    from w2v_triton.build.checkpoints import resolve_checkpoint
    from w2v_triton.build.onnx_export import build_onnx

    checkpoint = resolve_checkpoint("tiny")
    return build_onnx(checkpoint, onnx_dir_for(checkpoint))[0]


class SessionSpy:
    """Records the [B, N] shape of every onnxruntime call."""

    def __init__(self, session):
        self.session, self.shapes = session, []

    def run(self, outputs, feeds, *options):
        self.shapes.append(feeds[spec.AUDIO].shape)
        return self.session.run(outputs, feeds, *options)


def test_acoustic_model_windows_long_rows_only(tiny_onnx, rng):
    config = LongAudioConfig(window_seconds=4.0, overlap_seconds=1.0, batch_windows=2, max_single_seconds=5.0)
    model = AcousticModel(tiny_onnx, 1, config)
    spy = model.runner.session = SessionSpy(model.runner.session)
    short = [rng.standard_normal(n).astype(np.float32) for n in (32000, 40000)]  # one length bucket
    long = rng.standard_normal(30 * 16000 + 123).astype(np.float32)
    # short utterances: one call, unchanged behaviour
    assert len(model.run(short)) == 2 and spy.shapes == [(2, 40000)]
    spy.shapes.clear()
    logits = model.run(short + [long])
    assert [x.shape[0] for x in logits] == [frame_count(u.size) for u in short + [long]]
    assert all(b <= config.batch_windows and n <= max(config.window, 40000) for b, n in spy.shapes)
    assert max(n for _, n in spy.shapes[1:]) <= config.window       # every windowed call is bounded
    # short rows are exactly what they were
    reference = AcousticModel(tiny_onnx, 1).run(short)
    for got, ref in zip(logits, reference):
        np.testing.assert_array_equal(got, ref)


def test_no_call_holds_more_than_one_long_audio_batch(tiny_onnx, rng):
    """A dynamic batch of many utterances just under the single-pass limit is split so that no
    onnxruntime call holds more than `batch_samples` of padded audio; results are unchanged."""
    config = LongAudioConfig(window_seconds=4.0, overlap_seconds=1.0, batch_windows=2, max_single_seconds=5.0)
    model = AcousticModel(tiny_onnx, 1, config)
    spy = model.runner.session = SessionSpy(model.runner.session)
    batch = [rng.standard_normal(n).astype(np.float32) for n in [60000, 62000, 64000, 66000, 70000, 72000, 30000]]
    logits = model.run(batch)
    assert all(b * n <= config.batch_samples for b, n in spy.shapes), spy.shapes
    # batch_samples = 2 x 64000: 60k+62k share a call, every longer row runs alone (2 x 64k would fit
    # exactly, but 64k is the start of its own bucket and 66k cannot join it), 30k alone (length ratio)
    assert sorted(spy.shapes) == [(1, 30000), (1, 64000), (1, 66000), (1, 70000), (1, 72000), (2, 62000)]
    for got, utterance in zip(logits, batch):   # a padded row equals itself alone up to float rounding
        np.testing.assert_allclose(got, AcousticModel(tiny_onnx, 1, config).run([utterance])[0], atol=1e-5)


@pytest.fixture(scope="module")
def long_clip(real_speech) -> np.ndarray:
    """~85 s of real speech: consecutive LibriSpeech test-other utterances, normalised as one."""
    from w2v_triton.serving.audio import load_audio
    from w2v_triton.serving.preprocessing import preprocess

    rows = [u for u in real_speech if "librispeech_test_other" in str(u.audio)] or list(real_speech)
    audio, total = [], 0
    for u in rows:
        audio.append(load_audio(u.audio))
        total += audio[-1].size
        if total >= 80 * spec.SAMPLE_RATE:
            break
    return preprocess(np.concatenate(audio), True)


def test_long_real_clip_chunked_vs_full_pass(tiny_onnx, long_clip):
    """Random weights attend almost uniformly over the whole input, so a window changes every
    frame a little (not only near seams); a trained model's attention is local. The bound here is
    what the random tiny model gives; docs/optimization.md reports the measured figures."""
    from w2v_triton.build.checkpoints import read_checkpoint_info, resolve_checkpoint
    from w2v_triton.eval.metrics import error_rates
    from w2v_triton.eval.evaluation import greedy_transcripts

    assert long_clip.size > 60 * spec.SAMPLE_RATE
    full = AcousticModel(tiny_onnx, 1, LongAudioConfig(max_single_seconds=10_000)).run([long_clip])[0]
    config = LongAudioConfig()          # 30 s windows, 3 s overlap
    model = AcousticModel(tiny_onnx, 1, config)
    spy = model.runner.session = SessionSpy(model.runner.session)
    chunked = model.run([long_clip])[0]
    assert chunked.shape == full.shape
    assert all(n <= config.window and b <= config.batch_windows for b, n in spy.shapes)
    diff = np.abs(chunked - full)
    assert diff.max() < 5 * full.std(), diff.max()
    assert (chunked.argmax(-1) == full.argmax(-1)).mean() > 0.75
    vocab = read_checkpoint_info(resolve_checkpoint("tiny")).vocab
    reference, hypothesis = greedy_transcripts([full, chunked], vocab)
    _, cer = error_rates([reference], [hypothesis])
    print(f"long clip {long_clip.size / spec.SAMPLE_RATE:.1f} s: CER chunked vs full {cer:.3f}, "
          f"max |dlogit| {diff.max():.3f} (logit std {full.std():.3f})")
    assert cer < 0.25


@pytest.mark.integration
def test_server_transcribes_long_audio_like_the_pipeline(tiny_server, tiny_repository, long_clip):
    """An ~85 s request (longer than max_single_seconds) through Triton: windowed in the
    acoustic model, same transcript as the in-process pipeline (which windows the same way)."""
    from client import TranscriptionClient
    from w2v_triton.serving.pipeline import ReferencePipeline

    raw = long_clip / np.abs(long_clip).max() * 0.5       # any float32 in [-1, 1]; re-normalised
    expected = ReferencePipeline(tiny_repository).transcribe(raw)
    with TranscriptionClient(tiny_server.grpc_url, "grpc") as asr:
        served = asr.transcribe(raw)
    assert served == expected and len(served) > 100


def test_compare_with_full_pass_report(tiny_onnx, long_clip):
    from w2v_triton.build.checkpoints import read_checkpoint_info, resolve_checkpoint
    from w2v_triton.eval.evaluation import compare_with_full_pass

    vocab = read_checkpoint_info(resolve_checkpoint("tiny")).vocab
    report = compare_with_full_pass(tiny_onnx, long_clip[: 70 * spec.SAMPLE_RATE], vocab)
    assert report["windows"] == 3 and report["frames"] == frame_count(70 * spec.SAMPLE_RATE)
    assert sum(b["frames"] for b in report["by_seam_distance"].values()) == report["frames"]
    assert 0.75 < report["argmax_agreement"] <= 1.0 and 0.0 <= report["cer_vs_full"] < 0.25
