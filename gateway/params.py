"""The multipart form of POST /v1/audio/transcriptions, checked against what the ensemble can do.

What OpenAI's parameters mean here (docs/gateway.md):
    response_format   json | text | srt | vtt | verbose_json
    timestamp_granularities[]   word and/or segment (verbose_json; segments always come with it)
    prompt            sent unchanged as the ensemble's PROMPT: the decoder boosts its words that
                      the LM does not know (names, terms; docs/decoding.md). A CTC model reads no
                      text: boosting the words the caller expects is the nearest honest meaning
    temperature       0..1, accepted and ignored: CTC decoding is deterministic
    language          accepted and ignored: the model transcribes the language it was trained on
Ignored or shortened parameters are named in the X-Gateway-Note header.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from starlette.datastructures import FormData, UploadFile

from gateway.errors import APIError
from gateway.formats import RESPONSE_FORMATS

KNOWN = {"file", "model", "language", "prompt", "response_format", "temperature",
         "timestamp_granularities[]", "timestamp_granularities", "stream"}
GRANULARITIES = ("segment", "word")


@dataclass
class TranscriptionParams:
    upload: UploadFile
    response_format: str
    granularities: tuple[str, ...]
    prompt: str = ""
    notes: list[str] = field(default_factory=list)


def parse(form: FormData) -> TranscriptionParams:
    unknown = sorted(set(form.keys()) - KNOWN)
    if unknown:
        raise APIError(f"unsupported field(s): {', '.join(unknown)}; this gateway accepts "
                       f"{', '.join(sorted(KNOWN))}", unknown[0])
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise APIError("'file' is required: the audio file as a multipart upload", "file")
    if not str(form.get("model") or "").strip():
        raise APIError("'model' is required (any name: this gateway serves one model)", "model")
    response_format = str(form.get("response_format") or "json")
    if response_format not in RESPONSE_FORMATS:
        raise APIError(f"response_format '{response_format}' is not supported; use one of "
                       f"{', '.join(RESPONSE_FORMATS)}", "response_format")
    if str(form.get("stream") or "false").lower() not in ("false", "0"):
        raise APIError("'stream' is not supported: the transcript comes in one response", "stream")
    notes = []
    temperature = form.get("temperature")
    if temperature not in (None, ""):
        value = _float(str(temperature), "temperature")
        if not 0.0 <= value <= 1.0:
            raise APIError(f"'temperature' must be between 0 and 1, got {value:g}", "temperature")
        if value != 0.0:
            notes.append("'temperature' is ignored: CTC decoding is deterministic")
    granularities = tuple(str(g) for g in form.getlist("timestamp_granularities[]")
                          + form.getlist("timestamp_granularities"))
    bad = sorted(set(granularities) - set(GRANULARITIES))
    if bad:
        raise APIError(f"timestamp_granularities[] '{bad[0]}' is not supported; use word and/or segment",
                       "timestamp_granularities[]")
    if granularities and response_format != "verbose_json":
        notes.append("'timestamp_granularities[]' applies to response_format verbose_json only")
    if str(form.get("language") or "").strip():
        notes.append("'language' is ignored: the model transcribes the language it was trained on "
                     "and is not told one")
    return TranscriptionParams(upload, response_format, granularities, str(form.get("prompt") or "").strip(), notes)


def _float(value: str, param: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise APIError(f"'{param}' must be a number, got {value!r}", param) from None
