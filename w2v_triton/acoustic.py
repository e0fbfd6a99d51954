"""Run the exported acoustic model with onnxruntime on a ragged list of utterances.

The Triton `acoustic_model` (python backend) and the in-process pipeline both use
`AcousticModel`, so padding, batching and slicing happen in one place.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from w2v_triton import spec


class AcousticModel:
    """onnxruntime session over the (AUDIO, AUDIO_LENGTHS) -> (LOGITS, LOGIT_LENGTHS) graph."""

    def __init__(self, onnx_path: str | Path, intra_op_threads: int = 0) -> None:
        import onnxruntime as ort

        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise FileNotFoundError(
                f"acoustic model file {onnx_path} is missing: run `make build-models` first")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def run_padded(self, audio: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One onnxruntime call on a zero-padded [B, N] batch; exact per row (masked front-end)."""
        logits, frames = self.session.run(
            None, {spec.AUDIO: audio.astype(np.float32, copy=False),
                   spec.AUDIO_LENGTHS: lengths.astype(np.int64, copy=False)})
        return logits, frames

    def run(self, utterances: list[np.ndarray]) -> list[np.ndarray]:
        """Pad the utterances into one batch, run once, return each one's [T_i, V] logits."""
        audio, lengths = pad_batch(utterances)
        logits, frames = self.run_padded(audio, lengths)
        return [logits[i, : frames[i]] for i in range(len(utterances))]


def pad_batch(utterances: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad 1-D float32 arrays with zeros into [B, max N]; also return the lengths."""
    lengths = np.array([u.size for u in utterances], dtype=np.int64)
    batch = np.zeros((len(utterances), int(lengths.max())), dtype=np.float32)
    for row, utterance in enumerate(utterances):
        batch[row, : utterance.size] = utterance
    return batch, lengths
