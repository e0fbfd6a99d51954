"""Export a Wav2Vec2ForCTC to ONNX (dynamic batch and time) and verify it against PyTorch.

The export configuration (names, axes, opset) is data; verification is part of the export:
a model whose ONNX logits drift from PyTorch's is not written as a success.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from w2v_triton.serving import spec
from w2v_triton.serving.batch_coupling import stamp_batch_coupling
from w2v_triton.serving.masked_frontend import LengthAwareCTC, squeeze_factor
from w2v_triton.serving.typing import FloatArray

OPSET = 17
INPUT_NAMES = [spec.AUDIO, spec.AUDIO_LENGTHS]
OUTPUT_NAMES = [spec.LOGITS, spec.LOGIT_LENGTHS]
DYNAMIC_AXES = {
    spec.AUDIO: {0: "batch", 1: "samples"},
    spec.AUDIO_LENGTHS: {0: "batch"},
    spec.LOGITS: {0: "batch", 1: "frames"},
    spec.LOGIT_LENGTHS: {0: "batch"},
}
VERIFY_LENGTHS = (400, 8000, 16000, 48000)  # samples: shortest legal, 0.5 s, 1 s, 3 s
FP32_TOLERANCE = 1e-4


@dataclass
class ExportReport:
    onnx_path: str
    opset: int
    max_abs_diff_single: float   # ONNX vs HF PyTorch, one unpadded utterance at a time (SEW: see hf_reference)
    max_abs_diff_batched: float  # ONNX padded batch vs HF PyTorch per utterance
    lengths: tuple[int, ...]

    def ok(self, tolerance: float = FP32_TOLERANCE) -> bool:
        return max(self.max_abs_diff_single, self.max_abs_diff_batched) < tolerance


def export_onnx(model: torch.nn.Module, onnx_path: Path, opset: int = OPSET, matmul_frontend: bool = False) -> Path:
    """Trace LengthAwareCTC(model) to ONNX with dynamic batch/time axes (`matmul_frontend`:
    the conv front-end as block MatMuls, see masked_frontend)."""
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = LengthAwareCTC(model, matmul_frontend).eval()
    example = (torch.randn(2, 16000), torch.tensor([16000, 12000], dtype=torch.int64))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, example, str(onnx_path), input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
            dynamic_axes=DYNAMIC_AXES, opset_version=opset, do_constant_folding=True, dynamo=False,
        )
    return onnx_path


def whole_window_samples(model: torch.nn.Module, samples: int) -> int:
    """Audio samples whose conv frames fill whole squeeze windows: the frames a SEW model's ONNX
    counts as valid ((T // s) * s, masked_frontend); `samples` for every other family."""
    factor = squeeze_factor(model)
    frames = int(model._get_feat_extract_output_lengths(torch.tensor(samples)))   # type: ignore[operator]
    if factor == 1 or frames % factor == 0:
        return samples
    whole = frames // factor * factor
    if whole == 0:
        return 0
    config: Any = model.config   # a transformers config: torch types a Module's attributes as Tensor | Module
    needed = whole
    for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride, strict=True))):
        needed = (needed - 1) * stride + kernel
    return needed


def hf_reference(model: torch.nn.Module, audio: FloatArray) -> FloatArray:
    """The HF model's logits for one unpadded utterance. A SEW model gets an attention mask
    covering the samples of whole squeeze windows (whole_window_samples): the exported graph
    treats the last T mod s frames as padding, and so does HF with that mask."""
    x = torch.from_numpy(audio)[None]
    valid = whole_window_samples(model, audio.size)
    if valid == 0:   # no whole window: no valid frame (and SEW cannot pool less than one window)
        config: Any = model.config
        return np.zeros((0, int(config.vocab_size)), np.float32)
    mask = None if valid == audio.size else (torch.arange(audio.size) < valid)[None].long()
    logits: FloatArray = model(x, attention_mask=mask).logits[0].numpy()
    return logits


def verify_onnx(model: torch.nn.Module, onnx_path: Path, lengths: Sequence[int] = VERIFY_LENGTHS,
                seed: int = 0) -> ExportReport:
    """Compare ONNX logits with the HF model run on each unpadded utterance."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    audios = [rng.standard_normal(n).astype(np.float32) for n in lengths]
    with torch.no_grad():
        references = [hf_reference(model, a) for a in audios]
    single = 0.0
    for audio, ref in zip(audios, references, strict=True):
        logits, frames = session.run(None, {spec.AUDIO: audio[None], spec.AUDIO_LENGTHS: np.array([audio.size])})
        if frames[0] > 0:   # the frames the decoder reads (a SEW clip shorter than one window has none)
            single = max(single, float(np.abs(logits[0, : frames[0]] - ref[: frames[0]]).max()))
    batch = np.zeros((len(audios), max(lengths)), np.float32)
    for row, audio in enumerate(audios):
        batch[row, : audio.size] = audio
    logits, frames = session.run(None, {spec.AUDIO: batch, spec.AUDIO_LENGTHS: np.array(lengths, np.int64)})
    batched = max((float(np.abs(logits[i, : frames[i]] - ref[: frames[i]]).max())
                   for i, ref in enumerate(references) if frames[i] > 0), default=0.0)
    return ExportReport(str(onnx_path), OPSET, single, batched, tuple(lengths))


# Bumped when build_onnx writes something new into the file (2: the batch-coupling metadata), so
# files exported by an older version are rebuilt once.
EXPORT_FORMAT = 2


def checkpoint_fingerprint(checkpoint: Path) -> str:
    """Changes when the checkpoint's config or weights change (size + mtime, cheap), or EXPORT_FORMAT."""
    import hashlib

    digest = hashlib.sha256(f"format:{EXPORT_FORMAT}".encode())
    for path in sorted(Path(checkpoint).glob("*")):
        if path.suffix in (".json", ".safetensors", ".bin"):
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def build_onnx(checkpoint: Path, out_dir: Path, force: bool = False,
               allow_weight_mismatch: bool = False) -> tuple[Path, ExportReport]:
    """Export + verify once per checkpoint version; reuse the verified file on reruns.
    The checkpoint loads with its family's class and every weight (checkpoints.load_ctc_model)."""
    from w2v_triton.build.checkpoints import load_ctc_model

    onnx_path, report_path = out_dir / "model.onnx", out_dir / "export_report.json"
    fingerprint = checkpoint_fingerprint(checkpoint)
    if not force and onnx_path.is_file() and report_path.is_file():
        saved = json.loads(report_path.read_text())
        if saved.get("fingerprint") == fingerprint:
            saved.pop("fingerprint")
            return onnx_path, ExportReport(**{**saved, "lengths": tuple(saved["lengths"])})
    model = load_ctc_model(checkpoint, allow_weight_mismatch)
    export_onnx(model, onnx_path)
    stamp_batch_coupling(onnx_path)
    report = verify_onnx(model, onnx_path)
    if not report.ok():
        raise RuntimeError(f"ONNX export of {checkpoint} drifts from PyTorch: {report}")
    report_path.write_text(json.dumps({**report.__dict__, "fingerprint": fingerprint}, indent=2))
    return onnx_path, report
