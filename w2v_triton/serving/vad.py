"""Voice activity: speech probabilities (silero-vad) and the endpointer that turns them into segments.

Why silero-vad, and why its ONNX file through onnxruntime: it is a maintained, MIT-licensed model
(the `silero-vad` wheel ships it) that separates speech from noise far better than the energy and
GMM features of webrtcvad, and it runs in the runtime the acoustic model already uses, batched
over every stream of an execution (its recurrent state is 2 x 128 floats per stream). Only the
ONNX file is read: the package's Python code imports torch: the repository builder copies the ONNX file from the build
environment's silero-vad into the streaming model's folder (`vad/`), so the server needs neither. Cost: 0.2-0.6 ms of one core per
32 ms window and stream (batched vs alone), about 1-2 % of a core per live stream.

`Endpointer` is the state machine of silero's own VADIterator, in samples: speech starts at a
window whose probability reaches `threshold` (the segment opens `pad` before it), and ends when
the probability has stayed under `threshold - 0.15` for `min_silence`; the segment then closes
`pad` after the last speech window. A segment that reaches `max_segment` is cut at its least
speech-like window of its second half (the speech goes on in a new segment), so every segment's
final can re-run the acoustic model over at most `max_segment` of audio.
"""
from __future__ import annotations

import importlib.util
import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
import numpy as np

from w2v_triton.serving import spec
from w2v_triton.serving.typing import AnyArray

logger = logging.getLogger(__name__)

WINDOW = 512           # samples per silero window at 16 kHz (32 ms)
CONTEXT = 64           # samples of the previous window silero sees in front of each window
HYSTERESIS = 0.15      # speech ends below threshold - HYSTERESIS (silero's neg_threshold)
SILERO_FILE = "silero_vad.onnx"


class VadUnavailable(RuntimeError):
    """The VAD model cannot be loaded; fails the streaming model's load with the message."""


def silero_model_path() -> Path:
    """The ONNX file inside the installed `silero-vad` package (found without importing it: its
    __init__ imports torch)."""
    found = importlib.util.find_spec("silero_vad")
    if found is None or not found.submodule_search_locations:
        raise VadUnavailable("the streaming model's VAD comes from the silero-vad package (the build extra; "
                             "only its ONNX file is used), or build with --stream vad=none")
    path = Path(list(found.submodule_search_locations)[0]) / "data" / SILERO_FILE
    if not path.is_file():
        raise VadUnavailable(f"{path} is missing: reinstall silero-vad")
    return path


@dataclass
class VadState:
    """One stream's VAD state: the model's recurrent state, the last CONTEXT samples, samples not
    yet a full window, and the stream position (samples) of the first of those."""

    rnn: AnyArray = field(default_factory=lambda: np.zeros((2, 128), np.float32))
    context: AnyArray = field(default_factory=lambda: np.zeros(CONTEXT, np.float32))
    pending: AnyArray = field(default_factory=lambda: np.zeros(0, np.float32))
    position: int = 0


class SileroVAD:
    """Speech probability per 32 ms window for many streams, one batched onnxruntime call per step."""

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        model = path or silero_model_path()
        if not model.is_file():
            raise VadUnavailable(f"{model} is missing: rebuild the repository (`make build-models`) to copy the VAD")
        try:
            self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:   # onnxruntime raises its own exception types
            raise VadUnavailable(f"cannot load the VAD model {model}: {exc}") from exc
        self.rate = np.array(spec.SAMPLE_RATE, dtype=np.int64)

    def probabilities(self, states: list[VadState], chunks: list[AnyArray],
                      ends: list[bool] | None = None) -> list[AnyArray]:
        """Add each chunk to its stream and return the probabilities of the stream's new full
        windows (window i starts at the stream's `position` before the call + i x WINDOW); at a
        stream's end (`ends`) its last partial window is completed with silence."""
        windows = []
        for state, chunk, end in zip(states, chunks, ends or [False] * len(states)):
            audio = np.concatenate([state.pending, chunk.astype(np.float32, copy=False)])
            if end and audio.size % WINDOW:
                audio = np.concatenate([audio, np.zeros(WINDOW - audio.size % WINDOW, np.float32)])
            count = audio.size // WINDOW
            windows.append(audio[: count * WINDOW].reshape(count, WINDOW))
            state.pending = audio[count * WINDOW:].copy()
        probs = [np.zeros(w.shape[0], np.float32) for w in windows]
        for step in range(max((w.shape[0] for w in windows), default=0)):
            rows = [i for i, w in enumerate(windows) if w.shape[0] > step]
            batch = np.stack([np.concatenate([states[i].context, windows[i][step]]) for i in rows])
            rnn = np.stack([states[i].rnn for i in rows], axis=1)
            out, rnn = self.session.run(None, {"input": batch, "state": rnn, "sr": self.rate})
            for k, i in enumerate(rows):
                probs[i][step] = out[k, 0]
                states[i].rnn = np.ascontiguousarray(rnn[:, k])
                states[i].context = windows[i][step][-CONTEXT:].copy()
        for state, p in zip(states, probs):
            state.position += p.size * WINDOW
        return probs


@dataclass(frozen=True)
class SegmentEvent:
    """`start`: a segment opens at `sample` (speech detected); `stop`: the open segment ends at
    `sample` (its audio is [start, stop))."""

    kind: str
    sample: int


class Endpointer:
    """Segments of one stream from its window probabilities (module docstring); memory is bounded
    by the probabilities of one segment."""

    def __init__(self, threshold: float, min_silence: int, pad: int, max_segment: int) -> None:
        self.threshold, self.min_silence, self.pad, self.max_segment = threshold, min_silence, pad, max_segment
        self.open_at: int | None = None        # start sample of the open segment
        self.last_boundary = 0                 # no segment starts before the previous one's end
        self.silence_from: int | None = None   # start of the current run of silence inside speech
        self.history: deque[tuple[int, float]] = deque()   # (window end, probability) of the open segment

    def feed(self, probs: AnyArray, first: int) -> list[SegmentEvent]:
        """Events of the windows starting at sample `first` (consecutive, WINDOW apart)."""
        events: list[SegmentEvent] = []
        for i, p in enumerate(probs.tolist()):
            start = first + i * WINDOW
            end = start + WINDOW
            if self.open_at is None:
                if p >= self.threshold:
                    self.open_at = max(self.last_boundary, start - self.pad)
                    self.silence_from = None
                    events.append(SegmentEvent("start", self.open_at))
                    self.history.clear()
                else:
                    continue
            self.history.append((end, p))
            if p >= self.threshold:
                self.silence_from = None
            elif p < self.threshold - HYSTERESIS and self.silence_from is None:
                self.silence_from = start
            if self.silence_from is not None and end - self.silence_from >= self.min_silence:
                events.append(self._close(min(self.silence_from + self.pad, end)))
            elif end - self.open_at >= self.max_segment:
                cut = self._least_speech_like()
                after = [(e, q) for e, q in self.history if e > cut]
                events += [self._close(cut), SegmentEvent("start", cut)]
                self.open_at = cut
                self.history.extend(after)
        return events

    def finish(self, samples: int) -> list[SegmentEvent]:
        """The stream ended after `samples`: close the open segment there."""
        return [self._close(samples)] if self.open_at is not None else []

    def _close(self, at: int) -> SegmentEvent:
        at = at // spec.FRAME_STRIDE_SAMPLES * spec.FRAME_STRIDE_SAMPLES   # on a frame boundary
        self.open_at, self.silence_from, self.last_boundary = None, None, at
        self.history.clear()
        return SegmentEvent("stop", at)

    def _least_speech_like(self) -> int:
        """End of the window with the lowest probability in the second half of the open segment."""
        assert self.open_at is not None
        half = self.open_at + self.max_segment // 2
        candidates = [(p, -end) for end, p in self.history if end >= half] or [(0.0, -self.history[-1][0])]
        return -min(candidates)[1] // spec.FRAME_STRIDE_SAMPLES * spec.FRAME_STRIDE_SAMPLES   # ties: the latest


class NoVAD:
    """`vad: none`: every window is speech, so a stream is one segment, cut at max_segment (and
    ended by the stream's end); for clients that segment themselves, and for exact tests."""

    def probabilities(self, states: list[VadState], chunks: list[AnyArray],
                      ends: list[bool] | None = None) -> list[AnyArray]:
        probs = []
        for state, chunk, end in zip(states, chunks, ends or [False] * len(states)):
            total = state.pending.size + chunk.size
            count = -(-total // WINDOW) if end else total // WINDOW
            state.pending = np.zeros(total - min(total, count * WINDOW), np.float32)
            state.position += count * WINDOW
            probs.append(np.ones(count, np.float32))
        return probs


VADS = ("silero", "none")


def build_vad(kind: str, path: Path | None = None, threads: int = 1) -> SileroVAD | NoVAD:
    """The VAD a streaming config names (VADS); `path`: silero's ONNX file (default: the installed
    package's)."""
    return NoVAD() if kind == "none" else SileroVAD(path, threads=threads)
