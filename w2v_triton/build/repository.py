"""Render the Triton model repository from its templates, and read it back.

Templates (`config*.pbtxt.template`, `1/model.py`) are tracked in the checkout's `model_repository/`
and ship in the wheel as package data of `w2v_triton.serving.model_repository` (`template_root`);
rendered configs, the ONNX file and the vocabulary are written into the output folder (in the
checkout by default next to the templates). The in-process pipeline reads the rendered configs
through `pipeline.model_parameters`, so it runs with exactly the settings the server runs with.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from w2v_triton.build.checkpoints import CheckpointInfo
from w2v_triton.paths import REPO_ROOT
from w2v_triton.serving import spec
from w2v_triton.serving.acoustic import (
    ONNX_FILE,
    OPENVINO_IR_FILE,
    OPENVINO_PRECISIONS,
    RUNTIMES,
    TORCH_CHECKPOINT_DIR,
    WARMUP_SECONDS,
    AcousticSettings,
)
from w2v_triton.serving.batch_coupling import batch_coupled
from w2v_triton.serving.ctc_decoding import DecoderConfig
from w2v_triton.serving.devices import DEVICES
from w2v_triton.serving.image import BUILD_INFO as BUILD_INFO  # the deploy reads it to check the image
from w2v_triton.serving.long_audio import LongAudioConfig
from w2v_triton.serving.preprocessing import PreprocessorSettings
from w2v_triton.serving.streaming import ACOUSTIC_FILES, DECODER_FILES, DECODER_PREFIX, VAD_FILES, StreamingConfig
from w2v_triton.serving.vad import SILERO_FILE, silero_model_path

TEMPLATE_PACKAGE = "model_repository"     # w2v_triton.serving.model_repository in a wheel (setup.py)


def template_root() -> Path:
    """The folder of the templates: in an installed wheel the package data of w2v_triton.serving
    (setup.py maps the checkout's model_repository/ there); in a checkout its model_repository/,
    which an editable install does not map into the package (setuptools' editable finder cannot
    import a mapped folder without an __init__.py, and an __init__.py would become a __pycache__
    model folder that Triton tries to load)."""
    packaged = Path(str(resources.files("w2v_triton.serving").joinpath(TEMPLATE_PACKAGE)))
    return packaged if packaged.is_dir() else REPO_ROOT / TEMPLATE_PACKAGE


TEMPLATE_ROOT = template_root()
# streaming_asr: chunks in, partials out (docs/streaming.md); it runs the acoustic model's file and
# the decoder's files with their settings, in its own process
MODELS = (spec.PREPROCESSOR_MODEL, spec.ACOUSTIC_MODEL, spec.DECODER_MODEL, spec.ENSEMBLE_MODEL,
          spec.STREAMING_MODEL)
# python: the acoustic model in a python-backend model (AcousticModel: long-audio windowing, length
# buckets, exact int8 batches, onnxruntime or torch, CPU or GPU): the default everywhere, NGC too.
# onnxruntime_onnx: Triton's native onnxruntime backend (NGC container only), an explicit opt-in
# whose limits are rendered into its config (see the template and docs/architecture.md).
PLATFORMS = ("python", "onnxruntime_onnx")
WARMUP_DIR = "warmup"


@dataclass(frozen=True)
class ServingProfile:
    """How the serving processes share the CPU cores, tuned for one goal (docs/optimization.md,
    "Serving profiles", has the measurements behind each value). `latency`: one request at a time
    finishes soonest, so one acoustic instance runs every core's intra-op thread on it and nothing
    waits to batch. `throughput`: many requests at once, so one single-threaded acoustic instance
    per core (rows run side by side, no thread hand-offs; dynamically quantised int8 rows cannot
    share a batch anyway)."""

    name: str
    acoustic_instances: int          # 0 = one per CPU core of the build machine
    intra_op_threads: int            # 0 = onnxruntime default (all cores)
    queue_delay_us: int
    preprocessor_instances: int
    decoder_instances: int

    def settings(self, cpu_count: int | None = None) -> dict[str, int]:
        """The RepositoryOptions fields this profile sets, "one per core" resolved."""
        cores = cpu_count or os.cpu_count() or 1
        return {"acoustic_instances": self.acoustic_instances or cores,
                "intra_op_threads": self.intra_op_threads, "queue_delay_us": self.queue_delay_us,
                "preprocessor_instances": self.preprocessor_instances,
                "decoder_instances": self.decoder_instances}


PROFILES = {p.name: p for p in (
    ServingProfile("latency", acoustic_instances=1, intra_op_threads=0, queue_delay_us=0,
                   preprocessor_instances=1, decoder_instances=2),
    ServingProfile("throughput", acoustic_instances=0, intra_op_threads=1, queue_delay_us=0,
                   preprocessor_instances=1, decoder_instances=2),
)}
DEFAULT_PROFILE = PROFILES["latency"]
PROFILE_FIELDS = tuple(DEFAULT_PROFILE.settings(1))


@dataclass
class RepositoryOptions:
    """Everything a repository build can vary. The fields a serving profile sets default to the
    default (latency) profile's values; `for_profile` starts from another profile's, and any field
    given explicitly overrides it (the rendered ensemble config names the profile and the overrides)."""

    platform: str = "python"
    max_batch_size: int = spec.MAX_BATCH_SIZE
    profile: str = DEFAULT_PROFILE.name
    queue_delay_us: int = DEFAULT_PROFILE.queue_delay_us        # 0: batch what is queued, never wait
    preprocessor_instances: int = DEFAULT_PROFILE.preprocessor_instances
    acoustic_instances: int = DEFAULT_PROFILE.acoustic_instances
    decoder_instances: int = DEFAULT_PROFILE.decoder_instances
    intra_op_threads: int = DEFAULT_PROFILE.intra_op_threads    # 0 = onnxruntime default (all cores)
    device: str = "cpu"                # gpu: KIND_GPU acoustic instances, GPU runtime or a failed load
    runtime: str = "onnxruntime"       # torch: the checkpoint in (CUDA) PyTorch; openvino: OpenVINO on the
    torch_dtype: str = "auto"          # CPU (the ONNX file or an IR); both python platform only
    torch_compile: str = ""            # runtime torch: a torch.compile mode ("reduce-overhead": CUDA graphs)
    openvino_precision: str = "f32"    # runtime openvino: f32 or bf16 inference precision
    openvino_ir: bool = False          # runtime openvino: the served file is an IR (model.xml + .bin)
    warmup: bool = True                # run requests before the acoustic model reports ready
    cpu_arena: bool = AcousticSettings.cpu_arena            # onnxruntime's CPU memory arena
    release_memory: bool = AcousticSettings.release_memory  # give working memory back after every request
    max_audio_seconds: float = spec.MAX_AUDIO_SECONDS   # longest accepted audio (samples or a file)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)   # LM paths relative to decoder/
    streaming: dict[str, Any] = field(default_factory=dict)   # StreamingConfig field -> value overrides

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"serving profile {self.profile!r}: expected one of {tuple(PROFILES)}")
        counts = (self.preprocessor_instances, self.acoustic_instances, self.decoder_instances)
        if min(counts) < 1 or self.queue_delay_us < 0 or self.intra_op_threads < 0:
            raise ValueError(f"instances must be >= 1 and queue delay / intra-op threads >= 0 (0 = all "
                             f"cores): got instances {counts}, queue delay {self.queue_delay_us} us, "
                             f"intra-op threads {self.intra_op_threads}")
        if self.platform not in PLATFORMS:
            raise ValueError(f"platform {self.platform!r}: expected one of {PLATFORMS}")
        if self.device not in DEVICES or self.runtime not in RUNTIMES:
            raise ValueError(f"device {self.device!r} / runtime {self.runtime!r}: expected {DEVICES} / {RUNTIMES}")
        if self.platform == "onnxruntime_onnx" and self.runtime != "onnxruntime":
            raise ValueError(f"runtime {self.runtime} needs platform python (the native backend runs ONNX only)")
        if self.runtime == "openvino" and self.device != "cpu":
            raise ValueError("runtime openvino runs on the CPU: build with DEVICE=cpu")
        if self.openvino_precision not in OPENVINO_PRECISIONS or (self.openvino_ir and self.runtime != "openvino"):
            raise ValueError(f"openvino_precision {self.openvino_precision!r} (expected one of {OPENVINO_PRECISIONS}) "
                             f"/ openvino_ir {self.openvino_ir} need runtime openvino")
        self.acoustic_settings()   # e.g. torch_compile without runtime torch fails the build, not the load
        self.streaming_config()   # an invalid streaming setting fails the build, not the server

    @classmethod
    def for_profile(cls, profile: str, cpu_count: int | None = None, **overrides: Any) -> RepositoryOptions:
        """The profile's settings (instances resolved for `cpu_count`, default this machine's), then
        `overrides` (any field, profile fields included)."""
        if profile not in PROFILES:
            raise ValueError(f"serving profile {profile!r}: expected one of {tuple(PROFILES)}")
        return cls(profile=profile, **{**PROFILES[profile].settings(cpu_count), **overrides})

    def profile_overrides(self, cpu_count: int | None = None) -> dict[str, int]:
        """The profile fields whose value is not the profile's (explicit flags)."""
        wanted = PROFILES[self.profile].settings(cpu_count)
        return {k: getattr(self, k) for k in PROFILE_FIELDS if getattr(self, k) != wanted[k]}

    def streaming_config(self) -> StreamingConfig:
        return StreamingConfig.from_parameters({f"stream_{k}": str(v) for k, v in self.streaming.items()})

    @property
    def instance_kind(self) -> str:
        return "KIND_GPU" if self.device == "gpu" else "KIND_CPU"

    def acoustic_settings(self) -> AcousticSettings:
        model_file = (TORCH_CHECKPOINT_DIR if self.runtime == "torch" else
                      OPENVINO_IR_FILE if self.openvino_ir else ONNX_FILE)
        return AcousticSettings(
            runtime=self.runtime, model_file=model_file, device=self.device, intra_op_threads=self.intra_op_threads,
            torch_dtype=self.torch_dtype, torch_compile=self.torch_compile,
            openvino_precision=self.openvino_precision, warmup=self.warmup, cpu_arena=self.cpu_arena,
            release_memory=self.release_memory)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RepositoryOptions:
        """From a build_info.json; keys of other versions (e.g. instance_kind) are dropped."""
        known = {f.name for f in fields(cls)}
        kept = {k: v for k, v in values.items() if k in known}
        if isinstance(kept.get("decoder"), dict):   # typed values (this version) or strings (older)
            kept["decoder"] = DecoderConfig.from_parameters(
                {k: str(v) for k, v in kept["decoder"].items()}, check_files=False)
        return cls(**kept)


def parameters_block(values: dict[str, str]) -> str:
    """A config.pbtxt `parameters` block, one line per key (what the settings classes write)."""
    return "\n".join(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in values.items())


def max_audio_seconds(options: RepositoryOptions) -> float:
    """The preprocessor's length limit: the builder's, and on the native onnxruntime platform (which
    cannot window long audio) no more than what the acoustic model runs in one pass."""
    if options.platform == "python":
        return options.max_audio_seconds
    return min(options.max_audio_seconds, LongAudioConfig().max_single_seconds)


def profile_parameters(options: RepositoryOptions) -> dict[str, str]:
    """What the ensemble config says about how it was tuned (read by people and tools, not by a
    model): the serving profile and the fields set against it."""
    overrides = options.profile_overrides()
    return {"serving_profile": options.profile,
            "serving_overrides": ",".join(f"{k}={v}" for k, v in overrides.items()) or "none"}


def _substitutions(info: CheckpointInfo, options: RepositoryOptions) -> dict[str, str]:
    names = {k: v for k, v in vars(spec).items() if k.isupper() and isinstance(v, str)}
    decoder = options.decoder.to_parameters()
    stream = options.streaming_config()
    return {
        **names,
        "MAX_BATCH_SIZE": str(options.max_batch_size),
        "QUEUE_DELAY_US": str(options.queue_delay_us),
        "PREPROCESSOR_INSTANCES": str(options.preprocessor_instances),
        "ACOUSTIC_INSTANCES": str(options.acoustic_instances),
        "DECODER_INSTANCES": str(options.decoder_instances),
        "INTRA_OP_THREADS": str(options.intra_op_threads),
        "ACOUSTIC_KIND": options.instance_kind,
        "ACOUSTIC_PARAMETERS": parameters_block(options.acoustic_settings().to_parameters()),
        "ONNX_FILE": ONNX_FILE,
        "VOCAB_SIZE": str(info.vocabulary.size),
        "DO_NORMALIZE": "true" if info.do_normalize else "false",   # streaming_asr normalises itself
        "PREPROCESSOR_PARAMETERS": parameters_block(PreprocessorSettings(
            do_normalize=info.do_normalize, max_audio_seconds=max_audio_seconds(options)).to_parameters()),
        "DECODER_PARAMETERS": parameters_block(decoder),
        "STREAM_DECODER_PARAMETERS": parameters_block({DECODER_PREFIX + k: str(v) for k, v in decoder.items()}),
        "STREAM_PARAMETERS": parameters_block(stream.to_parameters()),
        "STREAM_IDLE_US": str(int(stream.idle_seconds * 1_000_000)),
        "STREAM_CANDIDATES": str(stream_candidates(stream)),
        "ENSEMBLE_PARAMETERS": parameters_block(profile_parameters(options)),
    }


def stream_candidates(stream: StreamingConfig) -> int:
    """The sequence batcher's candidate slots for streaming_asr: twice the model's stream cap, so
    that START of one stream too many reaches the model and is refused at once (Triton 2.51's
    sequence batcher has no backlog limit: with slots == cap it would queue the stream until a
    slot frees); the spare slots also absorb refused streams whose client never sends END."""
    return 2 * stream.max_streams


def render_repository(info: CheckpointInfo, onnx_path: Path, output: Path,
                      options: RepositoryOptions, lm_files: Sequence[Path] = ()) -> Path:
    """Write a complete, servable repository into `output` (may be the template folder)."""
    if info.sample_rate != spec.SAMPLE_RATE:
        raise ValueError(f"checkpoint expects {info.sample_rate} Hz audio; the service is {spec.SAMPLE_RATE} Hz")
    values = _substitutions(info, options)
    native = options.platform == "onnxruntime_onnx"
    # Triton's native backend batches equal-shaped requests into one padded-free batch; a
    # batch-coupled (dynamically quantised) file must see one request at a time to stay exact
    values["ACOUSTIC_BATCHING"] = ("" if native and batch_coupled(onnx_path) else
                                   f"dynamic_batching {{ max_queue_delay_microseconds: {options.queue_delay_us} }}")
    values["ACOUSTIC_WARMUP"] = native_warmup_block() if native and options.warmup else ""
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
    ir = (am_version / OPENVINO_IR_FILE, (am_version / OPENVINO_IR_FILE).with_suffix(".bin"))
    if options.runtime == "torch":
        copy_checkpoint_weights(info.path, am_version / TORCH_CHECKPOINT_DIR)
        for stale in (am_version / ONNX_FILE, *ir):
            stale.unlink(missing_ok=True)
    elif options.openvino_ir:
        for source, target in zip((Path(onnx_path), Path(onnx_path).with_suffix(".bin")), ir, strict=True):
            if not (target.exists() and source.resolve() == target.resolve()):
                shutil.copy2(source, target)
        (am_version / ONNX_FILE).unlink(missing_ok=True)
        shutil.rmtree(am_version / TORCH_CHECKPOINT_DIR, ignore_errors=True)
    else:
        target_onnx = am_version / ONNX_FILE
        if not (target_onnx.exists() and Path(onnx_path).resolve() == target_onnx.resolve()):
            shutil.copy2(onnx_path, target_onnx)
        shutil.rmtree(am_version / TORCH_CHECKPOINT_DIR, ignore_errors=True)
        for stale in ir:
            stale.unlink(missing_ok=True)
    if native and options.warmup:
        write_warmup_files(output / spec.ACOUSTIC_MODEL / WARMUP_DIR)
    info.vocabulary.save_to_dir(output / spec.DECODER_MODEL)
    for lm_file in lm_files:
        shutil.copy2(lm_file, output / spec.DECODER_MODEL / Path(lm_file).name)
    link_streaming_files(output, options)
    (output / BUILD_INFO).write_text(json.dumps(
        {"checkpoint": str(info.path), "onnx": str(onnx_path), "options": asdict(options)}, indent=2))
    return output


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link (no second copy on disk), or a copy across file systems."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def link_streaming_files(output: Path, options: RepositoryOptions) -> None:
    """Give streaming_asr its own copies (hard links) of the acoustic model's file(s) and the
    decoder's files: Triton fetches each model folder on its own from cloud storage (gs://), so
    a model cannot read its neighbours' folders. The VAD's ONNX file is copied from the silero-vad
    package of the build environment, so the server needs neither that package nor torch."""
    version = output / spec.STREAMING_MODEL / "1"
    acoustic, decoder, vad = version / ACOUSTIC_FILES, version / DECODER_FILES, version / VAD_FILES
    for folder in (acoustic, decoder, vad):
        shutil.rmtree(folder, ignore_errors=True)
    for folder in (acoustic, decoder):
        folder.mkdir(parents=True)
    if options.streaming_config().vad == "silero":
        vad.mkdir(parents=True)
        shutil.copy2(silero_model_path(), vad / SILERO_FILE)
    model_file = options.acoustic_settings().model_file
    source = output / spec.ACOUSTIC_MODEL / "1" / model_file
    if source.is_dir():
        shutil.copytree(source, acoustic / model_file, copy_function=lambda a, b: _link_or_copy(Path(a), Path(b)))
    else:
        # model.onnx and any external data; an OpenVINO IR's model.xml and its model.bin
        extra = [source.with_suffix(".bin")] if source.suffix == ".xml" else []
        for path in [*source.parent.glob(model_file + "*"), *extra]:
            _link_or_copy(path, acoustic / path.name)
    for path in (output / spec.DECODER_MODEL).iterdir():
        if path.is_file() and path.name != "config.pbtxt":
            _link_or_copy(path, decoder / path.name)


def copy_checkpoint_weights(checkpoint: Path, target: Path) -> None:
    """The files the torch runtime loads: config.json and the weights (not tokenizer or docs)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for file in Path(checkpoint).iterdir():
        if file.name == "config.json" or file.suffix in (".safetensors", ".bin") or file.name.endswith(".index.json"):
            shutil.copy2(file, target / file.name)


def native_warmup_block() -> str:
    """model_warmup for the native onnxruntime backend: Triton runs these before the model is ready."""
    entries = []
    for seconds in WARMUP_SECONDS:
        samples = int(seconds * spec.SAMPLE_RATE)
        entries.append(
            f'{{ name: "{seconds:g}s" batch_size: 1 inputs [\n'
            f'    {{ key: "{spec.AUDIO}" value: {{ data_type: TYPE_FP32 dims: [ {samples} ] '
            f'input_data_file: "audio_{samples}" }} }},\n'
            f'    {{ key: "{spec.AUDIO_LENGTHS}" value: {{ data_type: TYPE_INT64 dims: [ 1 ] '
            f'input_data_file: "lengths_{samples}" }} }} ] }}')
    return "model_warmup [\n  " + ",\n  ".join(entries) + "\n]"


def write_warmup_files(folder: Path) -> None:
    """Raw little-endian tensor contents named by native_warmup_block (Triton reads them from
    <model>/warmup/)."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for seconds in WARMUP_SECONDS:
        samples = int(seconds * spec.SAMPLE_RATE)
        (folder / f"audio_{samples}").write_bytes(rng.standard_normal(samples).astype("<f4").tobytes())
        (folder / f"lengths_{samples}").write_bytes(np.array([samples], "<i8").tobytes())
