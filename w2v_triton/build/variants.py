"""Faster variants of the exported acoustic model, and their verification against fp32.

Every variant is an ONNX file (or a TensorRT engine) written next to the fp32
`model.onnx` as `model.<variant>.onnx`, with the same inputs and outputs
(AUDIO, AUDIO_LENGTHS) -> (LOGITS, LOGIT_LENGTHS), so any of them can be served with
`builders/repository.py --onnx <file>`.

Variants (`VARIANTS`):
  ort-extended   onnxruntime graph optimisation saved offline (ORT_ENABLE_EXTENDED): portable
  ort-all        ORT_ENABLE_ALL saved offline: may hold CPU-layout ops (NCHWc); CPU EP only
  ort-fused      onnxruntime.transformers optimizer: fused Attention / SkipLayerNormalization
  int8           dynamic int8 quantisation of MatMul weights (activations quantised per call)
  int8-pc        as int8, per-channel weight scales
  mm             the conv front-end as block MatMuls (masked_frontend.BlockMatMulConv1d), fp32:
                 exported from the checkpoint, exact
  int8-mm        mm with the MatMuls quantised per channel: front-end (but its first layer) and
                 transformer run as int8 GEMMs (onnxruntime's ConvInteger, tried first, was slower
                 than the fp32 Conv)
  int8-fused     ort-fused, then MatMul and Attention quantised (QAttention)
  fp16           float16 weights/compute, fp32 inputs/outputs (keep_io_types): for GPUs
  trt            TensorRT engine (fp16) when `tensorrt` is importable; skipped otherwise

OpenVINO variants (`OPENVINO_VARIANTS`; a second CPU runtime, run by evaluation.openvino_runner):
  ov-fp32        the fp32 `model.onnx` itself, compiled by OpenVINO's CPU plugin (f32 inference precision)
  ov-bf16        the same file with inference precision bf16 (AVX512-BF16 / AMX)
  ov-int8        NNCF post-training quantisation with calibration audio, saved as OpenVINO IR
                 `model.ov-int8.xml` (+ `.bin`); dynamic batch and time axes kept

Verification against fp32 (agreement, speed) is w2v_triton.eval.evaluation.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from w2v_triton.serving import spec
from w2v_triton.serving.batch_coupling import INT8_REDUCE_RANGE_KEY, stamp_batch_coupling, stamp_metadata
from w2v_triton.serving.devices import int8_saturates
from w2v_triton.serving.typing import AnyArray

logger = logging.getLogger(__name__)

ONNX_VARIANTS = ("ort-extended", "ort-all", "ort-fused", "int8", "int8-pc", "mm", "int8-mm", "int8-fused", "fp16")
OPENVINO_VARIANTS = ("ov-fp32", "ov-bf16", "ov-int8")
VARIANTS = (*ONNX_VARIANTS, "trt", *OPENVINO_VARIANTS)
# OpenVINO's INFERENCE_PRECISION_HINT per variant (ov-int8's quantised ops run int8 whatever the hint;
# f32 keeps the rest of its graph as calibrated)
OPENVINO_PRECISION = {"ov-fp32": "f32", "ov-bf16": "bf16", "ov-int8": "f32"}
EXACT_VARIANTS = ("ort-extended", "ort-all", "ort-fused", "mm")   # must give 0 differing transcripts
NEEDS_CHECKPOINT = ("mm", "int8-mm")   # exported from the checkpoint, not derived from model.onnx
# int8-mm keeps the first conv layer (raw audio in, 10 taps: <1% of the FLOPs) in float: per-tensor
# uint8 audio cost the most agreement (reference model, 60 utterances: WER vs fp32 15.7% -> 10.1%).
INT8_MM_FLOAT_NODES = ("/block_convs.0/",)
# fp16 keeps these ops in fp32: the masked group norm sums over all frames of an utterance
# (sum of squares over minutes of audio overflows fp16's 65504).
FP16_FP32_OPS = ("ReduceSum", "Pow", "Sqrt")


class VariantUnavailable(RuntimeError):
    """The variant cannot be built here (e.g. TensorRT is not installed); the message says why."""


def variant_path(fp32_path: Path, variant: str) -> Path:
    """`build/onnx/<ckpt>/model.onnx` -> `build/onnx/<ckpt>/model.<variant>.onnx` (`.plan` for trt,
    `.xml` + `.bin` for ov-int8; ov-fp32 and ov-bf16 read the fp32 file itself)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: expected one of {VARIANTS}")
    if variant in ("ov-fp32", "ov-bf16"):
        return Path(fp32_path)
    suffix = {"trt": ".plan", "ov-int8": ".xml"}.get(variant, ".onnx")
    return Path(fp32_path).with_name(f"{Path(fp32_path).stem}.{variant}{suffix}")


# --- building -----------------------------------------------------------------------------

def optimize_graph(src: Path, dst: Path, level: str = "extended") -> Path:
    """Let onnxruntime optimise the graph once and save it (`optimized_model_filepath`)."""
    import onnxruntime as ort

    levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    return dst


def fuse_transformer(src: Path, dst: Path, num_heads: int = 0, hidden_size: int = 0) -> Path:
    """onnxruntime.transformers fusions (BERT patterns: Attention, SkipLayerNormalization, BiasGelu).
    Attention is fused only when num_heads and hidden_size are given (the checkpoint's config)."""
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                           opt_level=0)
    model.save_model_to_file(str(dst))
    return dst


def quantize_int8(src: Path, dst: Path, op_types: tuple[str, ...] = ("MatMul",), per_channel: bool = False,
                  exclude_prefixes: tuple[str, ...] = (), reduce_range: bool | None = None) -> Path:
    """Dynamic quantisation: int8 weights, activations quantised at run time (uint8).
    Nodes whose name starts with one of `exclude_prefixes` stay float. `reduce_range` (7-bit
    weights; None: when this CPU's int8 kernels would saturate, devices.int8_saturates) is stamped
    into the file (INT8_REDUCE_RANGE_KEY), so a CPU that serves it can tell."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    reduce = int8_saturates() if reduce_range is None else reduce_range
    excluded = [node.name for node in onnx.load(str(src), load_external_data=False).graph.node
                if exclude_prefixes and node.name.startswith(exclude_prefixes)]
    quantize_dynamic(str(src), str(dst), op_types_to_quantize=list(op_types), nodes_to_exclude=excluded,
                     per_channel=per_channel, reduce_range=reduce, weight_type=QuantType.QInt8,
                     # contrib ops (fused graphs) defeat shape inference; their outputs are float
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    stamp_metadata(dst, INT8_REDUCE_RANGE_KEY, "1" if reduce else "0")
    return dst


def export_matmul_frontend(checkpoint: Path, dst: Path) -> Path:
    """Export the checkpoint with the block-MatMul front-end and verify it against PyTorch."""
    from w2v_triton.build.checkpoints import load_ctc_model
    from w2v_triton.build.onnx_export import export_onnx, verify_onnx

    model = load_ctc_model(checkpoint)
    report = verify_onnx(model, export_onnx(model, dst, matmul_frontend=True))
    if not report.ok():
        raise RuntimeError(f"block-MatMul export of {checkpoint} drifts from PyTorch: {report}")
    return dst


def convert_fp16(src: Path, dst: Path) -> Path:
    """float16 everywhere except FP16_FP32_OPS; inputs and outputs stay float32."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(src))
    model = convert_float_to_float16(model, keep_io_types=True,
                                     op_block_list=list(DEFAULT_OP_BLOCK_LIST) + list(FP16_FP32_OPS))
    onnx.save(model, str(dst))
    return dst


def build_tensorrt(src: Path, dst: Path, fp16: bool = True, max_batch: int = spec.MAX_BATCH_SIZE,
                   max_seconds: float = 30.0, workspace_gib: int = 4) -> Path:
    """Build a TensorRT engine with a dynamic (batch, samples) profile; needs tensorrt + a GPU."""
    try:
        import tensorrt as trt
    except ImportError:
        raise VariantUnavailable("tensorrt is not installed (needs an NVIDIA GPU image)") from None
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(src)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {src}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_gib << 30)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    longest, typical = int(max_seconds * spec.SAMPLE_RATE), 10 * spec.SAMPLE_RATE
    profile = builder.create_optimization_profile()
    profile.set_shape(spec.AUDIO, (1, spec.MIN_SAMPLES), (max(1, max_batch // 2), typical), (max_batch, longest))
    profile.set_shape(spec.AUDIO_LENGTHS, (1,), (max(1, max_batch // 2),), (max_batch,))
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {src}")
    Path(dst).write_bytes(bytes(engine))
    return dst


def calibration_audio(manifest: Path, count: int, do_normalize: bool) -> list[AnyArray]:
    """`count` utterances spread over a JSONL manifest, preprocessed as the service does: ov-int8's
    calibration set (default: the synthetic corpus dev set, never a test set)."""
    from w2v_triton.build.manifest import read_manifest
    from w2v_triton.serving.audio import load_audio
    from w2v_triton.serving.preprocessing import preprocess

    if not Path(manifest).is_file():
        raise FileNotFoundError(f"calibration manifest {manifest} is missing (`make corpus` writes build/corpus/dev.jsonl)")
    rows = read_manifest(manifest)
    rows = rows[:: max(1, len(rows) // count)][:count] if count else rows
    return [preprocess(load_audio(u.audio), do_normalize) for u in rows]


def quantize_openvino(src: Path, dst: Path, calibration: Sequence[AnyArray], subset_size: int = 0) -> Path:
    """NNCF post-training int8 quantisation of the fp32 ONNX, calibrated on `calibration` (preprocessed
    utterances, each run alone: batch 1, its own length, so both axes stay dynamic); saved as IR."""
    import nncf
    import numpy as np
    import openvino as ov

    if not calibration:
        raise ValueError("ov-int8 needs calibration audio: pass calibration= (a list of utterances)")
    model = ov.Core().read_model(str(src))
    dataset = nncf.Dataset(list(calibration), lambda audio: {
        spec.AUDIO: np.asarray(audio, np.float32)[None],
        spec.AUDIO_LENGTHS: np.array([audio.size], np.int64)})
    quantized = nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=subset_size or len(calibration))
    ov.save_model(quantized, str(dst), compress_to_fp16=False)
    return dst


def _replace_ir(tmp: Path, dst: Path) -> None:
    """Move an IR pair (tmp.xml + tmp.bin) into place; the .bin first, so a complete .xml means a complete pair."""
    tmp.with_suffix(".bin").replace(dst.with_suffix(".bin"))
    tmp.replace(dst)


def build_variant(fp32_path: Path, variant: str, force: bool = False, checkpoint: Path | None = None,
                  calibration: Sequence[AnyArray] | None = None) -> Path:
    """Write `variant_path(fp32_path, variant)` unless it is newer than the fp32 file.
    `checkpoint` (the one model.onnx was exported from) is needed by NEEDS_CHECKPOINT variants;
    its config.json gives ort-fused its head count and width. `calibration` (preprocessed
    utterances) is needed to build ov-int8."""
    import json

    fp32_path = Path(fp32_path)
    dst = variant_path(fp32_path, variant)
    if dst == fp32_path:
        return dst      # ov-fp32 / ov-bf16: nothing to build
    if not force and dst.is_file() and dst.stat().st_mtime >= fp32_path.stat().st_mtime:
        return dst
    if variant in NEEDS_CHECKPOINT and checkpoint is None:
        raise ValueError(f"variant {variant!r} is exported from the checkpoint: pass checkpoint=")
    config = json.loads((Path(checkpoint) / "config.json").read_text()) if checkpoint else {}
    tmp = dst.with_name(f"tmp.{dst.name}")   # keeps the suffix (.onnx/.plan): ORT picks the format by it
    builders = {
        "ort-extended": lambda: optimize_graph(fp32_path, tmp, "extended"),
        "ort-all": lambda: optimize_graph(fp32_path, tmp, "all"),
        "ort-fused": lambda: fuse_transformer(fp32_path, tmp, int(config.get("num_attention_heads", 0)),
                                              int(config.get("hidden_size", 0))),
        "int8": lambda: quantize_int8(fp32_path, tmp, ("MatMul",)),
        "int8-pc": lambda: quantize_int8(fp32_path, tmp, ("MatMul",), per_channel=True),
        "mm": lambda: export_matmul_frontend(Path(cast(Path, checkpoint)), tmp),   # checked above
        "int8-mm": lambda: quantize_int8(build_variant(fp32_path, "mm", force, checkpoint), tmp, ("MatMul",),
                                         per_channel=True, exclude_prefixes=INT8_MM_FLOAT_NODES),
        "int8-fused": lambda: quantize_int8(build_variant(fp32_path, "ort-fused", force, checkpoint), tmp,
                                            ("MatMul", "Attention")),
        "fp16": lambda: convert_fp16(fp32_path, tmp),
        "trt": lambda: build_tensorrt(fp32_path, tmp),
        "ov-int8": lambda: quantize_openvino(fp32_path, tmp, calibration or []),
    }
    tmp.unlink(missing_ok=True)
    try:
        builders[variant]()
        if tmp.suffix == ".onnx":
            stamp_batch_coupling(tmp)
        if tmp.suffix == ".xml":
            _replace_ir(tmp, dst)
        else:
            tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
        if tmp.suffix == ".xml":
            tmp.with_suffix(".bin").unlink(missing_ok=True)
    return dst


def op_domains(onnx_path: Path) -> dict[str, int]:
    """Operator domains used by a model file ('' = standard ONNX): tells whether it is portable."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.domain or "ai.onnx"] = counts.get(node.domain or "ai.onnx", 0) + 1
    return counts
