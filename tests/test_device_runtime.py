"""Device and runtime of the acoustic model: DEVICE=gpu without a GPU fails the load with one
clear line (no silent CPU fallback); the torch runtime gives the ONNX runtime's transcripts."""
from __future__ import annotations

import re

import numpy as np
import pytest

from w2v_triton.serving.acoustic import (AcousticModel, AcousticSettings, AcousticSettingsError, DeviceUnavailable,
                                 onnx_providers)
from w2v_triton.build.checkpoints import resolve_checkpoint


def test_cpu_uses_only_the_cpu_provider():
    assert onnx_providers("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_gpu_prefers_tensorrt_then_cuda_and_keeps_cpu_for_uncovered_ops():
    providers = onnx_providers("gpu", ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                       "CPUExecutionProvider"], device_id=1)
    assert [p[0] if isinstance(p, tuple) else p for p in providers] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers[0][1] == {"device_id": "1"}


def test_gpu_without_a_gpu_provider_is_refused():
    with pytest.raises(DeviceUnavailable, match="DEVICE=gpu, but onnxruntime here offers only CPUExecutionProvider"):
        onnx_providers("gpu", ["CPUExecutionProvider"])


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_gpu_on_this_machine_fails_the_load(tiny_repository, runtime):
    import onnxruntime
    import torch

    if runtime == "onnxruntime" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has a GPU onnxruntime")
    if runtime == "torch" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = tiny_repository / "acoustic_model" / "1" / "model.onnx"
    if runtime == "torch":
        path = resolve_checkpoint("tiny")
    with pytest.raises(DeviceUnavailable, match="DEVICE=gpu"):
        AcousticModel(path, runtime=runtime, device="gpu")


def test_settings_write_and_read_their_parameters():
    settings = AcousticSettings(runtime="torch", model_file="checkpoint", device="gpu", intra_op_threads=2,
                                torch_dtype="bfloat16", torch_compile="reduce-overhead", warmup=False)
    assert AcousticSettings.from_parameters(settings.to_parameters()) == settings
    assert AcousticSettings.from_parameters(AcousticSettings().to_parameters()).torch_compile == ""
    with pytest.raises(AcousticSettingsError, match="torch_compile 'default' needs runtime torch"):
        AcousticSettings(torch_compile="default")
    with pytest.raises(AcousticSettingsError, match="unknown acoustic model parameter 'onnx_file'"):
        AcousticSettings.from_parameters({"onnx_file": "model.onnx"})
    with pytest.raises(AcousticSettingsError, match="device 'tpu'"):
        AcousticSettings.from_parameters({"device": "tpu"})


def test_torch_runtime_equals_the_onnx_runtime_in_padded_batches(tiny_repository, rng):
    onnx_model = AcousticModel(tiny_repository / "acoustic_model" / "1" / "model.onnx", 1)
    torch_model = AcousticModel(resolve_checkpoint("tiny"), 1, runtime="torch")
    assert torch_model.provider == "torch:cpu:float32"
    clips = [rng.standard_normal(n).astype(np.float32) for n in (400, 5000, 16000, 33333)]
    for a, b in zip(onnx_model.run(clips), torch_model.run(clips)):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-4


def test_compiled_torch_runtime_pads_to_few_shapes_and_keeps_every_rows_logits(rng, monkeypatch):
    """torch.compile itself is not run here (minutes on 2 cores; the GPU run compiles): its stand-in
    records what it was asked for and which shapes reach the network."""
    import torch

    from w2v_triton.serving.acoustic_torch import quantize_batch

    audio = rng.standard_normal((3, 20_001)).astype(np.float32)
    padded, lengths = quantize_batch(audio, np.array([20_001, 15_000, 9_000]))
    assert padded.shape == (4, 32_000) and lengths.tolist() == [20_001, 15_000, 9_000, 20_001]
    assert np.array_equal(padded[3, :20_001], audio[0]) and not padded[:3, 20_001:].any()
    assert quantize_batch(audio[:1], np.array([20_001]))[0].shape == (2, 32_000)   # never one row

    calls, shapes = [], []

    def compile_stand_in(fn, **options):
        calls.append(options)
        return lambda audio, lengths: shapes.append(tuple(audio.shape)) or fn(audio, lengths)

    monkeypatch.setattr(torch, "compile", compile_stand_in)
    compiled = AcousticModel(resolve_checkpoint("tiny"), 1, runtime="torch", torch_compile="reduce-overhead")
    plain = AcousticModel(resolve_checkpoint("tiny"), 1, runtime="torch")
    assert calls == [{"mode": "reduce-overhead", "dynamic": True}]
    assert compiled.provider == "torch:cpu:float32:compiled-reduce-overhead"
    clips = [rng.standard_normal(n).astype(np.float32) for n in (5000, 16000, 16500, 33333)]
    for a, b in zip(plain.run(clips), compiled.run(clips)):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-5
    assert all(rows >= 2 and rows & (rows - 1) == 0 and samples % 16_000 == 0 for rows, samples in shapes)


def test_torch_runtime_windows_long_audio_like_the_onnx_runtime(tiny_repository, rng):
    from w2v_triton.serving.long_audio import LongAudioConfig

    windows = LongAudioConfig(window_seconds=4.0, overlap_seconds=1.0, batch_windows=2, max_single_seconds=5.0)
    long_clip = rng.standard_normal(13 * 16000 + 77).astype(np.float32)
    onnx_logits = AcousticModel(tiny_repository / "acoustic_model" / "1" / "model.onnx", 1, windows).run([long_clip])
    torch_logits = AcousticModel(resolve_checkpoint("tiny"), 1, windows, runtime="torch").run([long_clip])
    assert onnx_logits[0].shape == torch_logits[0].shape and np.abs(onnx_logits[0] - torch_logits[0]).max() < 1e-4


@pytest.mark.integration
def test_torch_runtime_serves_the_onnx_runtimes_transcripts(tiny_repository, real_speech, tmp_path):
    from client import TranscriptionClient
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.build.repository import RepositoryOptions
    from w2v_triton.serving.audio import load_audio
    from w2v_triton.serving.pipeline import ReferencePipeline
    from w2v_triton.serving.tritonserver import Ports, TritonServer

    repo = tmp_path / "torch_repo"
    build_repository(BuildRequest(model="tiny", output=repo, options=RepositoryOptions(runtime="torch")))
    clips = [load_audio(u.audio) for u in real_speech[::20][:8]]
    expected = [ReferencePipeline(tiny_repository).transcribe(c) for c in clips]   # ONNX runtime
    assert [ReferencePipeline(repo).transcribe(c) for c in clips] == expected
    with TritonServer(repo, Ports.free(), log_path=tmp_path / "server.log") as server, \
            TranscriptionClient(server.grpc_url, "grpc") as asr:
        served = [asr.transcribe(c) for c in clips]
    assert served == expected and any(served)


@pytest.mark.integration
@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_a_gpu_repository_on_a_cpu_machine_fails_to_start_with_one_clear_line(tmp_path, runtime, load_failure):
    import onnxruntime
    import torch

    if torch.cuda.is_available() or "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has a GPU runtime")
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.build.repository import RepositoryOptions

    repo = tmp_path / "gpu_repo"
    build_repository(BuildRequest(model="tiny", output=repo, options=RepositoryOptions(device="gpu", runtime=runtime)))
    first_line = load_failure(repo)
    # Triton refuses KIND_GPU instances itself on a machine without a GPU; where a GPU exists but
    # no GPU runtime, the acoustic model's load fails with DeviceUnavailable ("DEVICE=gpu, but ...")
    assert re.match(r"a model failed to load: (acoustic_model|streaming_asr): ", first_line), first_line
    assert "KIND_GPU but no GPUs are available" in first_line or "DEVICE=gpu, but" in first_line


@pytest.mark.integration
@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_a_gpu_without_a_gpu_runtime_fails_the_acoustic_model_load(tmp_path, runtime):
    """Where Triton sees a GPU but the runtime has none (e.g. CPU-only onnxruntime on a GPU machine):
    simulated by a KIND_CPU instance of a DEVICE=gpu model. No silent CPU fallback."""
    import onnxruntime
    import torch

    if torch.cuda.is_available() or "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has a GPU runtime")
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.build.repository import RepositoryOptions
    from w2v_triton.serving.tritonserver import Ports, ServerError, TritonServer

    repo = tmp_path / "gpu_repo"
    build_repository(BuildRequest(model="tiny", output=repo, options=RepositoryOptions(device="gpu", runtime=runtime)))
    for model in ("acoustic_model", "streaming_asr"):   # both run the acoustic model on DEVICE
        config = repo / model / "config.pbtxt"
        config.write_text(config.read_text().replace("kind: KIND_GPU", "kind: KIND_CPU"))
    with pytest.raises(ServerError) as failure:
        TritonServer(repo, Ports.free(), log_path=tmp_path / "server.log").start(timeout=120)
    first_line = str(failure.value).splitlines()[0]
    assert re.match(r"a model failed to load: (acoustic_model|streaming_asr): ", first_line), first_line
    assert "DEVICE=gpu, but" in first_line
