"""Segments (subtitle cues) from word times: the pause rule and the length limits (no server)."""
from __future__ import annotations

import numpy as np
import pytest

from w2v_triton.serving.ctc_output import WordTime
from w2v_triton.serving.segments import Segment, SegmentRule, segment_words


def words_at(*spans: tuple[str, float, float], logprob: float = -0.1) -> list[WordTime]:
    return [WordTime(w, a, b, logprob) for w, a, b in spans]


def texts(segments: list[Segment]) -> list[str]:
    return [s.text for s in segments]


def test_a_pause_ends_a_segment_and_a_short_gap_does_not():
    words = words_at(("HELLO", 0.0, 0.4), ("THERE", 0.5, 0.9), ("GENERAL", 1.5, 2.0), ("KENOBI", 2.1, 2.6))
    assert texts(segment_words(words)) == ["HELLO THERE", "GENERAL KENOBI"]      # 0.6 s pause >= 0.5
    assert texts(segment_words(words, SegmentRule(pause_s=0.7))) == ["HELLO THERE GENERAL KENOBI"]
    first = segment_words(words)[0]
    assert (first.start_s, first.end_s) == (0.0, 0.9)
    assert segment_words([]) == []


def test_a_long_stretch_is_cut_at_its_longest_pause():
    # 10 s of speech without a 0.5 s pause: the 0.3 s pause after word 6 is the natural cut
    spans, t = [], 0.0
    for i in range(12):
        spans.append((f"W{i}", t, t + 0.7))
        t += 0.7 + (0.3 if i == 5 else 0.1)
    segments = segment_words(words_at(*spans))
    assert texts(segments) == [" ".join(f"W{i}" for i in range(6)), " ".join(f"W{i}" for i in range(6, 12))]
    assert all(s.end_s - s.start_s <= 7.0 for s in segments)


def test_equal_pauses_are_cut_nearest_the_middle():
    spans = [(f"W{i}", i * 1.0, i * 1.0 + 0.9) for i in range(10)]   # 10 s, every pause 0.1 s
    assert texts(segment_words(words_at(*spans))) == [" ".join(f"W{i}" for i in range(5)),
                                                      " ".join(f"W{i}" for i in range(5, 10))]


def test_character_limit_and_one_long_word():
    spans = [("ABCDEFGHIJ", i * 0.6, i * 0.6 + 0.5) for i in range(12)]   # 131 characters in 7 s
    segments = segment_words(words_at(*spans), SegmentRule(max_chars=40))
    assert all(len(s.text) <= 40 for s in segments) and len(segments) == 4
    giant = words_at(("X" * 100, 0.0, 9.0))
    assert texts(segment_words(giant, SegmentRule(max_chars=10, max_seconds=1.0))) == ["X" * 100]


def test_random_words_keep_order_and_limits():
    rng = np.random.default_rng(7)
    rule = SegmentRule(pause_s=0.6, max_seconds=4.0, max_chars=30)
    for _ in range(50):
        spans, t = [], 0.0
        for i in range(int(rng.integers(1, 60))):
            t += float(rng.choice([0.02, 0.04, 0.1, 0.3, 0.8]))
            length = float(rng.uniform(0.1, 1.2))
            spans.append(("W" * int(rng.integers(1, 12)), round(t, 2), round(t + length, 2)))
            t += length
        words = words_at(*spans)
        segments = segment_words(words, rule)
        assert [w for s in segments for w in s.words] == words
        for s in segments:
            assert len(s.words) == 1 or (s.end_s - s.start_s <= 4.0 and len(s.text) <= 30), s
        segment_of = {id(w): k for k, s in enumerate(segments) for w in s.words}
        for a, b in zip(words, words[1:]):   # a pause of 0.6 s or more always ends a segment
            if b.start_s - a.end_s >= 0.6:
                assert segment_of[id(a)] != segment_of[id(b)]
        assert segment_words(words, rule) == segments


def test_avg_logprob_weights_words_by_their_frames():
    segment = Segment(tuple([WordTime("A", 0.0, 0.2, -1.0), WordTime("BB", 0.2, 1.0, 0.0)]))   # 10 and 40 frames
    assert segment.avg_logprob == pytest.approx(-0.2)


@pytest.mark.parametrize("bad", [{"pause_s": 0}, {"max_seconds": -1}, {"max_chars": 0}, {"line_chars": 0}])
def test_a_rule_without_positive_limits_is_refused(bad):
    with pytest.raises(ValueError, match="positive limits"):
        SegmentRule(**bad)
