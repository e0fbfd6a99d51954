"""Run the exported acoustic model with onnxruntime on a ragged list of utterances.

The Triton `acoustic_model` (python backend) and the in-process pipeline both use
`AcousticModel`, so padding, batching and slicing happen in one place. Utterances longer than
`long_audio.max_single_seconds` are run in overlapping windows (w2v_triton.long_audio), so
memory stays bounded for inputs of any length.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from w2v_triton import spec
from w2v_triton.long_audio import LongAudioConfig, run_long


class AcousticModel:
    """onnxruntime session over the (AUDIO, AUDIO_LENGTHS) -> (LOGITS, LOGIT_LENGTHS) graph."""

    def __init__(self, onnx_path: str | Path, intra_op_threads: int = 0,
                 long_audio: LongAudioConfig | None = None, bucket_ratio: float = 1.3) -> None:
        import onnxruntime as ort

        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise FileNotFoundError(
                f"acoustic model file {onnx_path} is missing: run `make build-models` first")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        # idle onnxruntime threads sleep instead of spinning: in Triton the preprocessor and decoder
        # processes share these cores and run while the acoustic model waits for its next batch
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.long_audio = long_audio or LongAudioConfig()
        self.bucket_ratio = bucket_ratio
        stamped = self.session.get_modelmeta().custom_metadata_map.get(BATCH_COUPLED_KEY)
        # files built here carry the answer (stamp_batch_coupling); others are scanned once
        self.batch_coupled = stamped == "1" if stamped in ("0", "1") else batch_coupled(onnx_path)

    def _session_run(self, audio: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, frames = self.session.run(
            None, {spec.AUDIO: audio.astype(np.float32, copy=False),
                   spec.AUDIO_LENGTHS: lengths.astype(np.int64, copy=False)})
        return logits, frames

    def _run_short(self, utterances: list[np.ndarray]) -> list[np.ndarray]:
        """Run in length buckets: padding a 2 s clip to 30 s would waste 15x its compute.
        A batch-coupled model runs each utterance alone (its result must not depend on its
        neighbours in a dynamic batch)."""
        results: list[np.ndarray | None] = [None] * len(utterances)
        if self.batch_coupled:
            buckets = [[i] for i in range(len(utterances))]
        else:
            buckets = length_buckets([u.size for u in utterances], self.bucket_ratio)
        for bucket in buckets:
            audio, lengths = pad_batch([utterances[i] for i in bucket])
            logits, frames = self._session_run(audio, lengths)
            for row, i in enumerate(bucket):
                results[i] = logits[row, : frames[row]]
        return results

    def run(self, utterances: list[np.ndarray]) -> list[np.ndarray]:
        """Each utterance's [T_i, V] logits: short ones in padded length buckets (see _run_short),
        long ones windowed (w2v_triton.long_audio)."""
        limit = self.long_audio.max_single
        short = [i for i, u in enumerate(utterances) if u.size <= limit]
        results: list[np.ndarray | None] = [None] * len(utterances)
        if short:
            for i, logits in zip(short, self._run_short([utterances[i] for i in short])):
                results[i] = logits
        for i, utterance in enumerate(utterances):
            if results[i] is None:
                results[i] = run_long(self._run_short, utterance, self.long_audio)
        return results


# Ops whose result for one row depends on the whole batch: dynamic quantisation takes one
# activation scale over the whole tensor (onnxruntime fuses it into the other two).
BATCH_COUPLED_OPS = frozenset({"DynamicQuantizeLinear", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM"})


BATCH_COUPLED_KEY = "w2v_triton.batch_coupled"   # ONNX metadata: "1" / "0"
_MAX_INLINE_BYTES = 1_900_000_000                  # onnx.save of one file stops at 2 GB


def _graph_is_coupled(graph) -> bool:
    return any(node.op_type in BATCH_COUPLED_OPS for node in graph.node)


def batch_coupled(onnx_path: str | Path) -> bool:
    """True when a padded batch would not give each row its own logits (dynamic int8 models).
    Parses the whole graph (0.5-1 s for a base-size file): the fallback for unstamped files."""
    import onnx

    return _graph_is_coupled(onnx.load(str(onnx_path), load_external_data=False).graph)


def stamp_batch_coupling(onnx_path: str | Path) -> bool:
    """Write batch_coupled()'s answer into the file's metadata (BATCH_COUPLED_KEY), so that
    AcousticModel reads it from the session instead of parsing the graph at every start-up.
    Called by the builders on every ONNX file they write; returns the value."""
    import onnx

    onnx_path = Path(onnx_path)
    if onnx_path.stat().st_size > _MAX_INLINE_BYTES:
        return batch_coupled(onnx_path)   # too big to rewrite as one file: left to the scan
    model = onnx.load(str(onnx_path))
    coupled = _graph_is_coupled(model.graph)
    kept = [p for p in model.metadata_props if p.key != BATCH_COUPLED_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=BATCH_COUPLED_KEY, value="1" if coupled else "0")
    onnx.save(model, str(onnx_path))
    return coupled


def pad_batch(utterances: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad 1-D float32 arrays with zeros into [B, max N]; also return the lengths."""
    lengths = np.array([u.size for u in utterances], dtype=np.int64)
    batch = np.zeros((len(utterances), int(lengths.max())), dtype=np.float32)
    for row, utterance in enumerate(utterances):
        batch[row, : utterance.size] = utterance
    return batch, lengths


def pad_logits(per_row: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack [T_i, V] logits into a zero-padded [B, max T, V] array; also return the T_i."""
    frames = np.array([x.shape[0] for x in per_row], dtype=np.int64)
    logits = np.zeros((len(per_row), int(frames.max()), per_row[0].shape[1]), dtype=np.float32)
    for i, x in enumerate(per_row):
        logits[i, : x.shape[0]] = x
    return logits, frames


def length_buckets(lengths: list[int], ratio: float) -> list[list[int]]:
    """Indices grouped so that within a group the longest is at most `ratio` x the shortest.

    Results are exact either way (the front-end is length-aware); this only avoids spending
    compute on padding when a dynamic batch mixes short and long requests."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    buckets: list[list[int]] = []
    for i in order:
        if buckets and lengths[i] <= ratio * lengths[buckets[-1][0]]:
            buckets[-1].append(i)
        else:
            buckets.append([i])
    return buckets
