"""The acoustic model on a ragged list of utterances: one interface, two runtimes, CPU or GPU.

The Triton `acoustic_model` (python backend) and the in-process pipeline both use
`AcousticModel`, so padding, length buckets, long-audio windowing and slicing happen in one place
whatever runs the network:
  onnxruntime  the exported ONNX file (any variant); execution providers chosen by `device`:
               cpu -> CPU; gpu -> TensorRT, then CUDA (whichever onnxruntime offers)
  torch        the checkpoint in PyTorch (w2v_triton.serving.acoustic_torch): the same length-aware graph
               (masked_frontend.LengthAwareCTC); on a GPU in float16/bfloat16. For machines with
               CUDA PyTorch but no onnxruntime-gpu.
  openvino     the fp32 ONNX file (f32 or bf16 inference precision) or an OpenVINO IR (the NNCF int8
               variant) in OpenVINO's CPU plugin (w2v_triton.serving.acoustic_openvino); CPU only.
A GPU asked for and not there fails the load with one clear line (DeviceUnavailable): never a
silent CPU fallback. Utterances longer than `long_audio.max_single_seconds` run in overlapping
windows (w2v_triton.serving.long_audio), and no runtime call holds more than one long-audio batch of
padded audio (`LongAudioConfig.batch_samples`; length buckets are split to fit), so peak memory is
bounded for inputs and batches of any length. With `release_memory` (the default) the runtime gives
back what a request needed beyond the warm-up's working set (onnxruntime's arena otherwise keeps
the largest working set it ever saw, issue 27); requests no larger than the warm-up's keep their
memory and pay nothing. docs/optimization.md, "Memory", has the figures the defaults come from.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from w2v_triton.serving import spec
from w2v_triton.serving.batch_coupling import BATCH_COUPLED_KEY, INT8_REDUCE_RANGE_KEY, batch_coupled
from w2v_triton.serving.devices import DEVICES, GPU_PROVIDERS, DeviceUnavailable, int8_saturates, onnx_providers
from w2v_triton.serving.long_audio import LongAudioConfig, run_long
from w2v_triton.serving.memory import release_heap
from w2v_triton.serving.settings import parse_parameters, to_parameters, unknown_keys
from w2v_triton.serving.typing import AnyArray

if TYPE_CHECKING:
    from w2v_triton.serving.acoustic_openvino import OpenVinoRunner
    from w2v_triton.serving.acoustic_torch import TorchRunner

logger = logging.getLogger(__name__)

RUNTIMES = ("onnxruntime", "torch", "openvino")
OPENVINO_PRECISIONS = ("f32", "bf16")    # = acoustic_openvino.PRECISIONS (not imported: openvino is optional)
TORCH_DTYPES = ("auto", "float32", "float16", "bfloat16")   # auto: float16 on a GPU, float32 on a CPU
# torch.compile modes of the torch runtime ("": not compiled; reduce-overhead adds CUDA graphs)
TORCH_COMPILE_MODES = ("", "default", "max-autotune-no-cudagraphs", "reduce-overhead")
ONNX_FILE = "model.onnx"
OPENVINO_IR_FILE = "model.xml"            # + model.bin: runtime openvino serving an IR (the ov-int8 variant)
TORCH_CHECKPOINT_DIR = "checkpoint"
WARMUP_SECONDS = (1.0, 10.0)
# A request whose largest runtime call held more padded audio than the warm-up's largest gives its
# working memory back afterwards (release_memory); smaller ones reuse what the warm-up sized.
RELEASE_ABOVE_SAMPLES = int(max(WARMUP_SECONDS) * spec.SAMPLE_RATE)
LONG_AUDIO_PREFIX = "long_audio_"     # one short and one typical request before the model reports ready
# onnxruntime run option that frees the CPU arena's unused regions at the end of a run
ARENA_SHRINKAGE = "memory.enable_memory_arena_shrinkage"

# (audio [B, N] float32, lengths [B] int64) -> (logits [B, T, V] float32, frames [B] int64)
BatchRunner = Callable[[AnyArray, AnyArray], tuple[AnyArray, AnyArray]]


class AcousticSettingsError(ValueError):
    """Acoustic model parameters that cannot work; fails the model load with the message."""


@dataclass(frozen=True)
class AcousticSettings:
    """Everything the acoustic model reads from its Triton `parameters`; written by the repository
    builder with `to_parameters` and read back by model.py and the pipeline with `from_parameters`."""

    runtime: str = "onnxruntime"
    model_file: str = ONNX_FILE          # relative to the model version folder (torch: a checkpoint dir)
    device: str = "cpu"
    intra_op_threads: int = 0            # 0 = the runtime's default (all cores)
    torch_dtype: str = "auto"
    torch_compile: str = ""              # runtime torch: a torch.compile mode (TORCH_COMPILE_MODES)
    openvino_precision: str = "f32"      # runtime openvino: inference precision (bf16 on AVX512-BF16/AMX)
    bucket_ratio: float = 1.3
    warmup: bool = True
    # onnxruntime's CPU memory arena (its default); off: malloc for every tensor, whose large blocks
    # go back at once but cost page faults in every operator (docs/optimization.md, "Memory")
    cpu_arena: bool = True
    # after a request larger than the warm-up's (RELEASE_ABOVE_SAMPLES in one call) give the runtime's
    # working memory back (onnxruntime arena shrinkage, OpenVINO release_memory, glibc malloc_trim);
    # off: the largest working set ever needed stays resident for good
    release_memory: bool = True
    long_audio: LongAudioConfig = field(default_factory=LongAudioConfig)

    def __post_init__(self) -> None:
        for name, value, allowed in (("runtime", self.runtime, RUNTIMES), ("device", self.device, DEVICES),
                                     ("torch_dtype", self.torch_dtype, TORCH_DTYPES),
                                     ("torch_compile", self.torch_compile, TORCH_COMPILE_MODES),
                                     ("openvino_precision", self.openvino_precision, OPENVINO_PRECISIONS)):
            if value not in allowed:
                raise AcousticSettingsError(f"acoustic {name} {value!r}: expected one of {allowed}")
        if self.runtime == "openvino" and self.device != "cpu":
            raise AcousticSettingsError("acoustic runtime openvino runs on the CPU: build with DEVICE=cpu")
        if self.torch_compile and self.runtime != "torch":
            raise AcousticSettingsError(f"torch_compile {self.torch_compile!r} needs runtime torch, not {self.runtime}")
        if self.bucket_ratio < 1 or self.intra_op_threads < 0:
            raise AcousticSettingsError(f"invalid acoustic settings: {self}")

    def to_parameters(self) -> dict[str, str]:
        own = {k: v for k, v in to_parameters(self).items() if k != "long_audio"}
        return {**own, **to_parameters(self.long_audio, prefix=LONG_AUDIO_PREFIX)}

    @classmethod
    def from_parameters(cls, parameters: dict[str, str]) -> AcousticSettings:
        """Typed settings from Triton's string parameters; an unknown key is an error (a
        repository rendered by another version: rebuild it)."""
        known = {f.name for f in fields(cls) if f.name != "long_audio"}
        known |= {LONG_AUDIO_PREFIX + f.name for f in fields(LongAudioConfig)}
        unknown = unknown_keys(parameters, known)
        if unknown:
            raise AcousticSettingsError(
                f"unknown acoustic model parameter {unknown[0]!r}: rebuild the repository (`make build-models`)")
        own = {k: v for k, v in parameters.items() if not k.startswith(LONG_AUDIO_PREFIX)}
        values = parse_parameters(cls, own, AcousticSettingsError)
        values.pop("long_audio", None)
        long_audio = parse_parameters(LongAudioConfig, parameters, AcousticSettingsError, LONG_AUDIO_PREFIX)
        return cls(**values, long_audio=LongAudioConfig(**long_audio))


class OnnxRunner:
    """An onnxruntime session over the (AUDIO, AUDIO_LENGTHS) -> (LOGITS, LOGIT_LENGTHS) graph."""

    def __init__(self, onnx_path: Path, device: str = "cpu", intra_op_threads: int = 0,
                 device_id: int = 0, cpu_arena: bool = True, release_memory: bool = True) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = cpu_arena
        self.shrink: ort.RunOptions | None = None
        if cpu_arena and release_memory:   # shrinkage names only arenas that exist (onnxruntime refuses others)
            self.shrink = ort.RunOptions()
            self.shrink.add_run_config_entry(ARENA_SHRINKAGE, "cpu:0")
        # idle onnxruntime threads sleep instead of spinning: in Triton the preprocessor and decoder
        # processes share these cores and run while the acoustic model waits for its next batch
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = onnx_providers(device, ort.get_available_providers(), device_id)
        self.session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        self.provider = self.session.get_providers()[0]
        if device == "gpu" and self.provider not in GPU_PROVIDERS:
            # onnxruntime falls back to the CPU when a GPU provider cannot start (no device, no driver)
            raise DeviceUnavailable(f"DEVICE=gpu, but onnxruntime could not start {providers[0][0]} "
                                    f"(running on {self.provider}): is an NVIDIA GPU with its driver visible?")
        metadata = self.session.get_modelmeta().custom_metadata_map
        stamped = metadata.get(BATCH_COUPLED_KEY)
        # files built here carry the answer (stamp_batch_coupling); others are scanned once
        self.batch_coupled = stamped == "1" if stamped in ("0", "1") else batch_coupled(onnx_path)
        if metadata.get(INT8_REDUCE_RANGE_KEY) == "0" and self.provider == "CPUExecutionProvider" and int8_saturates():
            logger.warning("%s has 8-bit int8 weights and this CPU has no VNNI: onnxruntime's int8 kernels "
                           "saturate here (logits several times further from fp32); rebuild the variant on "
                           "this machine (it then uses 7-bit weights) or serve fp32", onnx_path)

    def __call__(self, audio: AnyArray, lengths: AnyArray) -> tuple[AnyArray, AnyArray]:
        logits, frames = self._run(audio, lengths)
        # onnxruntime's outputs are views into its arena: copies, so that no result pins an arena
        # region the next shrinkage would otherwise free (the logits are small)
        return np.array(logits, copy=True), np.array(frames, copy=True)

    def _run(self, audio: AnyArray, lengths: AnyArray, options: object = None) -> tuple[AnyArray, AnyArray]:
        logits, frames = self.session.run(
            None, {spec.AUDIO: audio.astype(np.float32, copy=False),
                   spec.AUDIO_LENGTHS: lengths.astype(np.int64, copy=False)}, options)
        return logits, frames

    def release(self) -> None:
        """Free the arena regions no tensor uses. onnxruntime shrinks its arena only at the end of a
        run that asks for it (the run option), so this is one minimal run that does."""
        if self.shrink is not None:
            self._run(np.zeros((1, spec.MIN_SAMPLES), np.float32), np.array([spec.MIN_SAMPLES]), self.shrink)


class AcousticModel:
    """Ragged utterances in, each one's [T_i, V] logits out, whatever the runtime and device."""

    def __init__(self, model_path: str | Path, intra_op_threads: int = 0,
                 long_audio: LongAudioConfig | None = None, bucket_ratio: float = 1.3,
                 runtime: str | None = None, device: str = "cpu", torch_dtype: str = "auto",
                 device_id: int = 0, openvino_precision: str = "f32", torch_compile: str = "",
                 cpu_arena: bool = True, release_memory: bool = True) -> None:
        model_path = Path(model_path)
        if not model_path.exists():
            raise FileNotFoundError(
                f"acoustic model file {model_path} is missing: run `make build-models` first")
        runtime = runtime or ("torch" if model_path.is_dir() else "openvino" if model_path.suffix == ".xml"
                              else "onnxruntime")
        self.settings = AcousticSettings(runtime=runtime, device=device, intra_op_threads=intra_op_threads,
                                         torch_dtype=torch_dtype, torch_compile=torch_compile,
                                         openvino_precision=openvino_precision, bucket_ratio=bucket_ratio,
                                         cpu_arena=cpu_arena, release_memory=release_memory,
                                         long_audio=long_audio or LongAudioConfig())
        self.runner: OnnxRunner | TorchRunner | OpenVinoRunner
        if runtime == "torch":
            from w2v_triton.serving.acoustic_torch import TorchRunner

            self.runner = TorchRunner(model_path, device, torch_dtype, intra_op_threads, device_id, torch_compile)
        elif runtime == "openvino":
            from w2v_triton.serving.acoustic_openvino import OpenVinoRunner

            self.runner = OpenVinoRunner(model_path, openvino_precision, intra_op_threads)
        else:
            self.runner = OnnxRunner(model_path, device, intra_op_threads, device_id, cpu_arena, release_memory)
        self.long_audio = self.settings.long_audio
        self.bucket_ratio = bucket_ratio
        self.release_memory = release_memory
        self.batch_coupled = self.runner.batch_coupled
        logger.info("acoustic model %s: runtime %s on %s", model_path.name, runtime, self.runner.provider)

    @classmethod
    def from_settings(cls, version_dir: Path, settings: AcousticSettings, device_id: int = 0) -> AcousticModel:
        return cls(Path(version_dir) / settings.model_file, settings.intra_op_threads, settings.long_audio,
                   settings.bucket_ratio, settings.runtime, settings.device, settings.torch_dtype, device_id,
                   settings.openvino_precision, settings.torch_compile, settings.cpu_arena,
                   settings.release_memory)

    @property
    def provider(self) -> str:
        """What actually runs the network, e.g. CPUExecutionProvider, CUDAExecutionProvider, torch:cuda:0."""
        return self.runner.provider

    def warmup(self, seconds: tuple[float, ...] = WARMUP_SECONDS) -> None:
        """Run a short and a typical request once, so that the first real request does not pay for
        memory arenas, kernel selection or CUDA context set-up (called before a model reports ready)."""
        rng = np.random.default_rng(0)
        for duration in seconds:
            self.run([rng.standard_normal(int(duration * spec.SAMPLE_RATE)).astype(np.float32)])

    def _run_short(self, utterances: list[AnyArray], calls: list[int] | None = None) -> list[AnyArray]:
        """Run in length buckets: padding a 2 s clip to 30 s would waste 15x its compute.
        A batch-coupled model runs each utterance alone (its result must not depend on its
        neighbours in a dynamic batch). `calls` collects each runtime call's padded size."""
        results: list[AnyArray | None] = [None] * len(utterances)
        if self.batch_coupled:
            buckets = [[i] for i in range(len(utterances))]
        else:
            buckets = length_buckets([u.size for u in utterances], self.bucket_ratio, self.long_audio.batch_samples)
        for bucket in buckets:
            audio, lengths = pad_batch([utterances[i] for i in bucket])
            if calls is not None:
                calls.append(audio.size)
            logits, frames = self.runner(audio, lengths)
            for row, i in enumerate(bucket):
                results[i] = logits[row, : frames[row]]
        return cast(list[AnyArray], results)  # every index was filled above

    def run(self, utterances: list[AnyArray]) -> list[AnyArray]:
        """Each utterance's [T_i, V] logits: short ones in padded length buckets (see _run_short),
        long ones windowed (w2v_triton.serving.long_audio); then, with release_memory, what a call
        larger than the warm-up's needed goes back to the OS. The call sizes are this run's own: the
        streaming model runs its chunks and its segment finals from two threads at once."""
        calls: list[int] = []
        limit = self.long_audio.max_single
        short = [i for i, u in enumerate(utterances) if u.size <= limit]
        results: list[AnyArray | None] = [None] * len(utterances)
        if short:
            for i, logits in zip(short, self._run_short([utterances[i] for i in short], calls), strict=True):
                results[i] = logits
        for i, utterance in enumerate(utterances):
            if results[i] is None:
                results[i] = run_long(functools.partial(self._run_short, calls=calls), utterance, self.long_audio)
        if self.release_memory and max(calls, default=0) > RELEASE_ABOVE_SAMPLES:
            self.runner.release()
            release_heap()
        return cast(list[AnyArray], results)  # every index was filled above


def pad_batch(utterances: list[AnyArray]) -> tuple[AnyArray, AnyArray]:
    """Right-pad 1-D float32 arrays with zeros into [B, max N]; also return the lengths."""
    lengths = np.array([u.size for u in utterances], dtype=np.int64)
    batch = np.zeros((len(utterances), int(lengths.max())), dtype=np.float32)
    for row, utterance in enumerate(utterances):
        batch[row, : utterance.size] = utterance
    return batch, lengths


def pad_logits(per_row: list[AnyArray]) -> tuple[AnyArray, AnyArray]:
    """Stack [T_i, V] logits into a zero-padded [B, max T, V] array; also return the T_i."""
    frames = np.array([x.shape[0] for x in per_row], dtype=np.int64)
    logits = np.zeros((len(per_row), int(frames.max()), per_row[0].shape[1]), dtype=np.float32)
    for i, x in enumerate(per_row):
        logits[i, : x.shape[0]] = x
    return logits, frames


def length_buckets(lengths: list[int], ratio: float, max_samples: int | None = None) -> list[list[int]]:
    """Indices grouped so that within a group the longest is at most `ratio` x the shortest, and
    (with `max_samples`) the group padded to its longest holds at most that many samples (a
    longer utterance still gets a group of its own).

    Results are exact either way (the front-end is length-aware); the ratio avoids spending
    compute on padding when a dynamic batch mixes short and long requests, the cap bounds one
    runtime call's memory when a batch holds many long ones (16 x 40 s would be 640 s at once)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    buckets: list[list[int]] = []
    for i in order:   # ascending: i is the longest of the group it joins
        if (buckets and lengths[i] <= ratio * lengths[buckets[-1][0]]
                and (max_samples is None or (len(buckets[-1]) + 1) * lengths[i] <= max_samples)):
            buckets[-1].append(i)
        else:
            buckets.append([i])
    return buckets
