"""Render the Triton model repository from its templates, and read it back.

Templates (`config*.pbtxt.template`, `1/model.py`) are tracked in `model_repository/`;
rendered configs, the ONNX file and the vocabulary are generated next to them. The
in-process pipeline reads the rendered configs through `model_parameters`, so it runs
with exactly the settings the server runs with.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from string import Template

from w2v_triton import spec
from w2v_triton.checkpoints import REPO_ROOT, CheckpointInfo

TEMPLATE_ROOT = REPO_ROOT / "model_repository"
MODELS = (spec.PREPROCESSOR_MODEL, spec.ACOUSTIC_MODEL, spec.DECODER_MODEL, spec.ENSEMBLE_MODEL)
PLATFORMS = ("python", "onnxruntime_onnx")
ONNX_FILE = "model.onnx"
BUILD_INFO = "build_info.json"


# The decoder model's parameters when a build does not set them (older build_info.json files may
# lack later keys, e.g. hotword_weight: they get these values too).
DECODER_DEFAULTS = {"mode": "greedy", "beam_width": "32", "alpha": "0.5", "beta": "1.0",
                    "lm_path": "", "unigrams_path": "", "hotword_weight": "10.0", "backend": "flashlight",
                    "beam_prune_logp": "-10.0", "token_min_logp": "-5.0"}


@dataclass
class RepositoryOptions:
    """Everything a repository build can vary; defaults suit the 2-core CPU machines here."""

    platform: str = "python"
    max_batch_size: int = spec.MAX_BATCH_SIZE
    queue_delay_us: int = 0            # batch what is already queued; never wait (latency)
    preprocessor_instances: int = 1
    acoustic_instances: int = 1
    decoder_instances: int = 2
    intra_op_threads: int = 0          # 0 = onnxruntime default (all cores)
    instance_kind: str = "KIND_CPU"    # onnxruntime_onnx only: KIND_GPU on a GPU image
    decoder: dict = field(default_factory=lambda: dict(DECODER_DEFAULTS))


def _substitutions(info: CheckpointInfo, options: RepositoryOptions) -> dict[str, str]:
    names = {k: v for k, v in vars(spec).items() if k.isupper() and isinstance(v, str)}
    decoder = {**DECODER_DEFAULTS, **options.decoder}
    return {
        **names,
        "MAX_BATCH_SIZE": str(options.max_batch_size),
        "QUEUE_DELAY_US": str(options.queue_delay_us),
        "PREPROCESSOR_INSTANCES": str(options.preprocessor_instances),
        "ACOUSTIC_INSTANCES": str(options.acoustic_instances),
        "DECODER_INSTANCES": str(options.decoder_instances),
        "INTRA_OP_THREADS": str(options.intra_op_threads),
        "INSTANCE_KIND": options.instance_kind,
        "ONNX_FILE": ONNX_FILE,
        "VOCAB_SIZE": str(len(info.vocab)),
        "DO_NORMALIZE": "true" if info.do_normalize else "false",
        "DECODER_MODE": decoder["mode"],
        "BEAM_WIDTH": str(decoder["beam_width"]),
        "LM_ALPHA": str(decoder["alpha"]),
        "LM_BETA": str(decoder["beta"]),
        "LM_PATH": decoder["lm_path"],
        "UNIGRAMS_PATH": decoder["unigrams_path"],
        "HOTWORD_WEIGHT": str(decoder["hotword_weight"]),
        "DECODER_BACKEND": decoder["backend"],
        "BEAM_PRUNE_LOGP": str(decoder["beam_prune_logp"]),
        "TOKEN_MIN_LOGP": str(decoder["token_min_logp"]),
    }


def render_repository(info: CheckpointInfo, onnx_path: Path, output: Path,
                      options: RepositoryOptions, lm_files: list[Path] = ()) -> Path:
    """Write a complete, servable repository into `output` (may be the template folder)."""
    if options.platform not in PLATFORMS:
        raise ValueError(f"platform {options.platform!r}: expected one of {PLATFORMS}")
    if info.sample_rate != spec.SAMPLE_RATE:
        raise ValueError(f"checkpoint expects {info.sample_rate} Hz audio; the service is {spec.SAMPLE_RATE} Hz")
    values = _substitutions(info, options)
    output.mkdir(parents=True, exist_ok=True)
    for model in MODELS:
        source, target = TEMPLATE_ROOT / model, output / model
        (target / "1").mkdir(parents=True, exist_ok=True)
        template = source / "config.pbtxt.template"
        if model == spec.ACOUSTIC_MODEL and options.platform == "onnxruntime_onnx":
            template = source / "config.onnxruntime.pbtxt.template"
        (target / "config.pbtxt").write_text(Template(template.read_text()).substitute(values))
        model_py = source / "1" / "model.py"
        python_model = model_py.is_file() and not (
            model == spec.ACOUSTIC_MODEL and options.platform == "onnxruntime_onnx")
        if python_model and source.resolve() != target.resolve():
            shutil.copy2(model_py, target / "1" / "model.py")
        elif not python_model and source.resolve() != target.resolve():
            (target / "1" / "model.py").unlink(missing_ok=True)
    am_version = output / spec.ACOUSTIC_MODEL / "1"
    target_onnx = am_version / ONNX_FILE
    if not (target_onnx.exists() and Path(onnx_path).resolve() == target_onnx.resolve()):
        shutil.copy2(onnx_path, target_onnx)
    (output / spec.DECODER_MODEL / "vocab.json").write_text(json.dumps(info.vocab, indent=0))
    for lm_file in lm_files:
        shutil.copy2(lm_file, output / spec.DECODER_MODEL / Path(lm_file).name)
    (output / BUILD_INFO).write_text(json.dumps(
        {"checkpoint": str(info.path), "onnx": str(onnx_path), "options": asdict(options)}, indent=2))
    return output


def model_parameters(repository: Path, model: str) -> dict[str, str]:
    """The `parameters` map of a rendered config.pbtxt, as the python backend sees it."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    path = Path(repository) / model / "config.pbtxt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make build-models` first")
    config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    parameters = json_format.MessageToDict(config).get("parameters", {})
    return {key: value.get("stringValue", "") for key, value in parameters.items()}
