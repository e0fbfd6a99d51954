"""Voice activity (w2v_triton.serving.vad): the endpointer's segments from known probabilities, and
silero-vad on real speech with a pause (batched streams give each stream's own probabilities)."""
from __future__ import annotations

import numpy as np
import pytest

from w2v_triton.serving import spec
from w2v_triton.serving.vad import WINDOW, Endpointer, NoVAD, SegmentEvent, SileroVAD, VadState, silero_model_path

SR = spec.SAMPLE_RATE


def endpointer(max_segment: float = 30.0) -> Endpointer:
    return Endpointer(threshold=0.5, min_silence=int(0.5 * SR), pad=int(0.1 * SR), max_segment=int(max_segment * SR))


def windows(*runs: tuple[float, float]) -> np.ndarray:
    """Probabilities: (seconds, probability) runs, one value per 32 ms window."""
    return np.concatenate([np.full(int(round(s * SR / WINDOW)), p, np.float32) for s, p in runs])


def frame(sample: int) -> int:
    return sample // spec.FRAME_STRIDE_SAMPLES * spec.FRAME_STRIDE_SAMPLES


def test_speech_then_silence_opens_and_closes_a_segment():
    ep = endpointer()
    probs = windows((1.0, 0.05), (2.0, 0.9), (1.0, 0.05))
    events = ep.feed(probs, 0)
    speech_at = int(round(1.0 * SR / WINDOW)) * WINDOW
    silence_at = speech_at + int(round(2.0 * SR / WINDOW)) * WINDOW
    assert events == [SegmentEvent("start", speech_at - int(0.1 * SR)),
                      SegmentEvent("stop", frame(silence_at + int(0.1 * SR)))]
    assert ep.open_at is None and ep.finish(10 * SR) == []


def test_short_pauses_and_middling_probabilities_keep_the_segment_open():
    ep = endpointer()
    # a 0.3 s pause (< min_silence) and a stretch between threshold - 0.15 and threshold
    probs = windows((1.0, 0.9), (0.3, 0.1), (1.0, 0.9), (2.0, 0.4), (0.5, 0.9))
    events = ep.feed(probs, 0)
    assert [e.kind for e in events] == ["start"] and ep.open_at == 0
    assert ep.finish(123_456) == [SegmentEvent("stop", frame(123_456))]


def test_events_do_not_depend_on_how_windows_are_fed():
    probs = windows((0.5, 0.0), (1.5, 0.95), (0.8, 0.02), (2.0, 0.8), (1.0, 0.0))
    whole = endpointer().feed(probs, 0)
    ep = endpointer()
    parts = [e for k in range(0, probs.size, 7) for e in ep.feed(probs[k:k + 7], k * WINDOW)]
    assert parts == whole and [e.kind for e in whole] == ["start", "stop", "start", "stop"]


def test_a_long_segment_is_cut_at_its_least_speech_like_window():
    ep = endpointer(max_segment=4.0)
    probs = windows((2.5, 0.9), (0.1, 0.3), (3.0, 0.9))     # the dip is in the second half
    events = ep.feed(probs, 0)
    dip_end = (int(round(2.5 * SR / WINDOW)) + 3) * WINDOW    # the last of the three dip windows (ties: the latest)
    assert events[:3] == [SegmentEvent("start", 0), SegmentEvent("stop", frame(dip_end)),
                          SegmentEvent("start", frame(dip_end))]
    assert all(b.sample - a.sample <= 4 * SR for a, b in zip(events[::2], events[1::2]))


def test_no_vad_is_one_segment_cut_at_max_length():
    vad, state = NoVAD(), VadState()
    probs = vad.probabilities([state], [np.zeros(10 * SR + 100, np.float32)])[0]
    assert probs.size == (10 * SR + 100) // WINDOW and state.position == probs.size * WINDOW
    events = endpointer(max_segment=4.0).feed(probs, 0)
    assert [e.kind for e in events] == ["start", "stop", "start", "stop", "start"]
    assert [e.sample for e in events if e.kind == "stop"] == [frame(4 * SR), frame(8 * SR)]


@pytest.fixture(scope="module")
def silero() -> SileroVAD:
    silero_model_path()   # the package is a pinned requirement: its absence is an install error
    return SileroVAD()


def test_silero_finds_the_pause_in_real_speech_and_batching_keeps_streams_apart(silero, real_speech):
    from w2v_triton.serving.audio import load_audio

    first, second = load_audio(real_speech[3].audio), load_audio(real_speech[40].audio)
    audio = np.concatenate([np.zeros(SR // 2, np.float32), first, np.zeros(SR, np.float32), second])
    noise = (0.01 * np.random.default_rng(0).standard_normal(3 * SR)).astype(np.float32)
    alone = [np.concatenate(silero.probabilities([s], [a])) for s, a in ((VadState(), audio), (VadState(), noise))]
    states = [VadState(), VadState()]
    step = 8000
    together: list[list[np.ndarray]] = [[], []]
    for k in range(0, audio.size, step):
        chunks = [audio[k:k + step], noise[k:k + step]]
        for i, p in enumerate(silero.probabilities(states, chunks)):
            together[i].append(p)
    for i in (0, 1):
        np.testing.assert_allclose(np.concatenate(together[i]), alone[i], atol=1e-5)
    assert alone[1].max() < 0.5                                   # quiet noise is not speech
    events = endpointer().feed(alone[0], 0)
    pause = (SR // 2 + first.size, SR // 2 + first.size + SR)   # the 1 s of zeros between the utterances
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and SR // 4 < events[0].sample < SR // 2 + SR
    assert kinds == ["start", "stop"] * (len(events) // 2)       # alternating, all closed by silence
    # a segment ends in the pause (or in the utterance's own trailing silence just before it) and the
    # next one opens after it, within the second utterance's first second
    around = [(a.sample, b.sample) for a, b in zip(events[1::2], events[2::2])]
    assert any(pause[0] - SR <= stop <= pause[1] and pause[1] - SR // 2 <= start <= pause[1] + SR
               for stop, start in around), [(e.kind, e.sample / SR) for e in events]
