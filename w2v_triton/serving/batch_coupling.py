"""Whether an ONNX file's rows depend on each other within a batch, stamped into the file (and the
other facts builders stamp into ONNX metadata for serving to read: `stamp_metadata`).

Dynamic int8 quantisation takes one activation scale over the whole input tensor, so a padded
batch would change each row's logits with its neighbours: such "batch-coupled" files must run
each request alone (AcousticModel does; the native backend config drops dynamic batching). The
builders stamp the answer into every file they write, so serving reads it from the session's
metadata instead of parsing the graph at start-up.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

# Ops whose result for one row depends on the whole batch: dynamic quantisation takes one
# activation scale over the whole tensor (onnxruntime fuses it into the other two).
BATCH_COUPLED_OPS = frozenset({"DynamicQuantizeLinear", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM"})


BATCH_COUPLED_KEY = "w2v_triton.batch_coupled"   # ONNX metadata: "1" / "0"
# int8 files: "1" when built with 7-bit weights (reduce_range), "0" with 8-bit (devices.int8_saturates)
INT8_REDUCE_RANGE_KEY = "w2v_triton.int8_reduce_range"
_MAX_INLINE_BYTES = 1_900_000_000                  # onnx.save of one file stops at 2 GB


def _graph_is_coupled(graph: onnx.GraphProto) -> bool:
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
    _set(model, BATCH_COUPLED_KEY, "1" if coupled else "0")
    onnx.save(model, str(onnx_path))
    return coupled


def stamp_metadata(onnx_path: str | Path, key: str, value: str) -> None:
    """Write one metadata entry into an ONNX file (replacing the key's earlier value); a file too
    big to rewrite as one is left as it is."""
    import onnx

    if Path(onnx_path).stat().st_size > _MAX_INLINE_BYTES:
        return
    model = onnx.load(str(onnx_path))
    _set(model, key, value)
    onnx.save(model, str(onnx_path))


def _set(model: onnx.ModelProto, key: str, value: str) -> None:
    kept = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=key, value=value)
