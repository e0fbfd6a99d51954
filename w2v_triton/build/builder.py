"""One call builds a servable repository: checkpoint -> ONNX export -> variant -> LM -> rendered configs.

Why one function: `make build-models`, the tests and the benchmarks all build repositories the same
way; following a build means reading this file top to bottom (each step lives in its own module:
checkpoints, onnx_export, variants, lm files, tuning, repository). A `BuildRequest` says what to build,
`build_repository` returns what it built, and a request that cannot work raises `BuildError` with one
line before anything is written.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from w2v_triton.build.checkpoints import read_checkpoint_info, resolve_checkpoint
from w2v_triton.build.onnx_export import ExportReport, build_onnx
from w2v_triton.build.repository import RepositoryOptions, render_repository
from w2v_triton.build.tuning import TUNED_KEYS, TUNING_FILE, load_tuning
from w2v_triton.build.variants import (
    ONNX_VARIANTS,
    OPENVINO_PRECISION,
    OPENVINO_VARIANTS,
    build_variant,
    calibration_audio,
)
from w2v_triton.paths import CORPUS_DIR, DEFAULT_REPOSITORY, lm_files, onnx_dir_for
from w2v_triton.serving import spec
from w2v_triton.serving.ctc_model import CheckpointUnavailable
from w2v_triton.serving.ctc_output import DecoderConfigError

logger = logging.getLogger(__name__)

VARIANT_CHOICES = ("fp32", *ONNX_VARIANTS, *OPENVINO_VARIANTS)
DEFAULT_CALIBRATION = CORPUS_DIR / "dev.jsonl"               # what `make corpus` writes
DEFAULT_CALIBRATION_SIZE = 64


class BuildError(ValueError):
    """A request that cannot be built (missing checkpoint or file, contradictory options): one line."""


@dataclass(frozen=True)
class BuildRequest:
    """What to build. `options` holds everything the rendered repository varies (profile, device,
    runtime, instances, decoder, streaming); its decoder's `lm_path`/`unigrams_path` are set from
    `lm_dir`. Decoder fields named in `tuned_fields` take the value `make tune-lm` chose for this
    checkpoint and LM (`<output>/decoder/tuning.json`, when there is one): leave a field out to keep
    the value in `options.decoder` (the command line leaves out what it was given)."""

    model: str = ""                       # hub id, local dir, random-base, tiny, reference ("" = default)
    output: Path = DEFAULT_REPOSITORY
    options: RepositoryOptions = field(default_factory=RepositoryOptions)
    variant: str = "fp32"                 # an optimised variant of the exported model (docs/optimization.md)
    onnx: Path | None = None              # serve this ONNX file instead of exporting the checkpoint
    lm_dir: Path | None = None            # output of `make lm` (lm.arpa|lm.bin + unigrams.txt)
    calibration: Path = DEFAULT_CALIBRATION   # ov-int8: calibration audio (a JSONL manifest)
    calibration_size: int = DEFAULT_CALIBRATION_SIZE
    allow_weight_mismatch: bool = False
    tuned_fields: tuple[str, ...] = TUNED_KEYS

    def check(self) -> None:
        """The contradictions that need no file: raise BuildError before any work."""
        options = self.options
        openvino = options.runtime == "openvino"
        if self.variant not in VARIANT_CHOICES:
            raise BuildError(f"variant {self.variant!r}: expected one of {VARIANT_CHOICES}")
        if self.variant in OPENVINO_VARIANTS and not openvino:
            raise BuildError(f"--variant {self.variant} runs in OpenVINO: add --runtime openvino (RUNTIME=openvino)")
        if openvino and self.variant not in ("fp32", *OPENVINO_VARIANTS):
            raise BuildError(f"--runtime openvino serves fp32 or {', '.join(OPENVINO_VARIANTS)}, not {self.variant} "
                             "(an onnxruntime variant)")
        if options.runtime == "torch" and (self.variant != "fp32" or self.onnx):
            raise BuildError("--runtime torch runs the checkpoint itself: --variant/--onnx are ONNX files")
        unknown = set(self.tuned_fields) - set(TUNED_KEYS)
        if unknown:
            raise BuildError(f"tuned_fields {sorted(unknown)}: tuning chooses only {TUNED_KEYS}")


@dataclass(frozen=True)
class BuiltRepository:
    """What `build_repository` wrote, and from what."""

    path: Path
    checkpoint: Path
    served_file: Path                     # the ONNX file / OpenVINO IR rendered into the acoustic model
    options: RepositoryOptions            # as rendered (tuned decoder values, OpenVINO precision applied)
    export_report: ExportReport | None    # None when the request gave its own ONNX file
    tuned: dict[str, Any]                 # decoder values taken from tuning.json

    def describe(self) -> str:
        """The one line `make build-models` prints when it is done."""
        options = self.options
        overridden = options.profile_overrides()
        return (f"model repository ready: {self.path} (checkpoint {self.checkpoint}, platform {options.platform}, "
                f"acoustic model {options.runtime} on {options.device}, decoder {options.decoder.mode}, "
                f"profile {options.profile}{f' with {overridden}' if overridden else ''}: "
                f"{options.acoustic_instances} acoustic instance(s) x {options.intra_op_threads or 'all'} thread(s))")


def build_repository(request: BuildRequest) -> BuiltRepository:
    """Resolve the checkpoint, export and verify the ONNX model (cached per checkpoint version), build
    the variant, apply tuned decoder values, and render every config into `request.output`."""
    request.check()
    try:
        checkpoint = resolve_checkpoint(request.model)
        info = read_checkpoint_info(checkpoint)
        lm, lm_name, unigram_name = lm_files(request.lm_dir)
        if lm and request.options.decoder.mode != "beam":
            raise BuildError("--lm-dir needs --decoder-mode beam (greedy decoding uses no LM)")
        report = None
        if request.onnx is not None:
            served = Path(request.onnx)
        else:
            served, report = build_onnx(checkpoint, onnx_dir_for(checkpoint),
                                        allow_weight_mismatch=request.allow_weight_mismatch)
            logger.info("ONNX verified against PyTorch: max |logit diff| %.2e (single), %.2e (padded batch)",
                        report.max_abs_diff_single, report.max_abs_diff_batched)
            if request.variant != "fp32":
                calibration = (calibration_audio(request.calibration, request.calibration_size, info.do_normalize)
                               if request.variant == "ov-int8" else None)
                served = build_variant(served, request.variant, checkpoint=checkpoint, calibration=calibration)
                logger.info("serving variant %s: %s", request.variant, served)
    except FileNotFoundError as exc:
        prefix = "--variant ov-int8: " if request.variant == "ov-int8" and "manifest" in str(exc).lower() else ""
        raise BuildError(f"{prefix}{exc}") from exc
    except CheckpointUnavailable as exc:
        raise BuildError(str(exc)) from exc
    tuned = {k: v for k, v in load_tuning(request.output / spec.DECODER_MODEL, checkpoint, lm[0] if lm else None).items()
             if k in request.tuned_fields}
    if tuned:
        logger.info("decoder: using tuned %s from %s", tuned, request.output / spec.DECODER_MODEL / TUNING_FILE)
    openvino = request.options.runtime == "openvino"
    try:
        decoder = replace(request.options.decoder, lm_path=lm_name, unigrams_path=unigram_name, **tuned)
        decoder.validate(check_files=False)
        options = replace(request.options, decoder=decoder,
                          openvino_precision=(OPENVINO_PRECISION.get(request.variant, request.options.openvino_precision)
                                              if openvino else request.options.openvino_precision),
                          openvino_ir=openvino and served.suffix == ".xml")
    except (DecoderConfigError, ValueError) as exc:
        raise BuildError(str(exc)) from exc
    path = render_repository(info, served, request.output, options, lm)
    return BuiltRepository(path=path, checkpoint=checkpoint, served_file=served, options=options,
                           export_report=report, tuned=tuned)
