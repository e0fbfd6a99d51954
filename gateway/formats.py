"""A transcription as each OpenAI `response_format`: json, text, srt, vtt, verbose_json.

Segments come from the pauses of the CTC alignment (w2v_triton.serving.segments). verbose_json
always carries them; `words` only when `timestamp_granularities[]` asks for word (as OpenAI).
Fields of Whisper's segments that a CTC model has no counterpart for get values that are true
of this service, documented in docs/gateway.md:
    seek 0 (one pass over the whole file, no 30 s windows), tokens [] (no text tokens: the model
    emits characters), temperature 0.0 (decoding is deterministic), avg_logprob (the decoder's per
    frame log-probability of the segment's words), compression_ratio (Whisper's definition: text
    bytes over their zlib size), no_speech_prob 0.0 (a segment exists only where words were decoded).
"""
from __future__ import annotations

import textwrap
import zlib
from typing import Any

from w2v_triton.serving.ctc_output import WordTime
from w2v_triton.serving.segments import Segment, SegmentRule, segment_words

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


def words_of(raw: list[dict[str, Any]]) -> list[WordTime]:
    """The decoder's WORD_TIMESTAMPS entries as WordTime."""
    return [WordTime(w["word"], w["start_s"], w["end_s"], w["logprob"]) for w in raw]


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def verbose_json(text: str, duration: float | None, language: str, segments: list[Segment],
                 words: list[WordTime] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"task": "transcribe", "language": language, "duration": duration, "text": text,
                            "segments": [{"id": i, "seek": 0, "start": s.start_s, "end": s.end_s, "text": s.text,
                                          "tokens": [], "temperature": 0.0, "avg_logprob": round(s.avg_logprob, 4),
                                          "compression_ratio": round(compression_ratio(s.text), 4),
                                          "no_speech_prob": 0.0}
                                         for i, s in enumerate(segments)]}
    if words is not None:
        body["words"] = [{"word": w.word, "start": w.start_s, "end": w.end_s} for w in words]
    return body


def _clock(seconds: float, decimal: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{decimal}{ms % 1000:03d}"


def _lines(text: str, rule: SegmentRule) -> str:
    return "\n".join(textwrap.wrap(text, rule.line_chars, break_long_words=False)) or text


def srt(segments: list[Segment], rule: SegmentRule) -> str:
    """SubRip: numbered cues, HH:MM:SS,mmm, a blank line after each."""
    return "".join(f"{i}\n{_clock(s.start_s, ',')} --> {_clock(s.end_s, ',')}\n{_lines(s.text, rule)}\n\n"
                   for i, s in enumerate(segments, 1))


def vtt(segments: list[Segment], rule: SegmentRule) -> str:
    """WebVTT: the header, then cues with HH:MM:SS.mmm."""
    return "WEBVTT\n\n" + "".join(f"{_clock(s.start_s, '.')} --> {_clock(s.end_s, '.')}\n{_lines(s.text, rule)}\n\n"
                                  for s in segments)


def segments_of(raw_words: list[dict[str, Any]], rule: SegmentRule) -> tuple[list[WordTime], list[Segment]]:
    words = words_of(raw_words)
    return words, segment_words(words, rule)
