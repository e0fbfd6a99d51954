"""Every rendered config, for every platform x device x runtime x decoder, parsed with Triton's own
model-config protobuf (tritonclient's model_config_pb2) and checked for instance kind, batching,
warm-up and the ensemble wiring. The NGC-only native platform is covered here at config level."""
from __future__ import annotations

import itertools
import json

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from w2v_triton.serving import spec
from w2v_triton.serving.acoustic import AcousticSettings
from w2v_triton.serving.batch_coupling import batch_coupled
from w2v_triton.build.checkpoints import read_checkpoint_info, resolve_checkpoint
from w2v_triton.serving.ctc_decoding import DecoderConfig
from w2v_triton.build.repository import RepositoryOptions, render_repository

PB = model_config_pb2.ModelConfig
COMBINATIONS = [
    (platform, device, runtime, decoder)
    for platform, device, runtime, decoder in itertools.product(
        ("python", "onnxruntime_onnx"), ("cpu", "gpu"), ("onnxruntime", "torch", "openvino"), ("greedy", "beam"))
    if not (platform == "onnxruntime_onnx" and runtime != "onnxruntime")
    and not (runtime == "openvino" and device == "gpu")     # OpenVINO runs on the CPU here
]


def parse(path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), PB())


@pytest.fixture(scope="module")
def tiny_onnx(tiny_repository):
    return tiny_repository / spec.ACOUSTIC_MODEL / "1" / "model.onnx"


@pytest.fixture(scope="module")
def tiny_int8(tiny_onnx, tmp_path_factory):
    from w2v_triton.serving.batch_coupling import stamp_batch_coupling
    from w2v_triton.build.variants import quantize_int8

    out = tmp_path_factory.mktemp("int8") / "model.int8.onnx"
    quantize_int8(tiny_onnx, out)
    stamp_batch_coupling(out)
    assert batch_coupled(out)
    return out


def render(tmp_path, onnx_path, **options):
    info = read_checkpoint_info(resolve_checkpoint("tiny"))
    output = render_repository(info, onnx_path, tmp_path / "repo", RepositoryOptions(**options))
    return {m: parse(output / m / "config.pbtxt") for m in
            (spec.PREPROCESSOR_MODEL, spec.ACOUSTIC_MODEL, spec.DECODER_MODEL, spec.ENSEMBLE_MODEL)}, output


def check_ensemble_wiring(ensemble: model_config_pb2.ModelConfig, configs: dict) -> None:
    """Every step input is an ensemble input or an earlier step's output, names exist on the
    composing models, and the ensemble's outputs come from the last step."""
    available = {i.name for i in ensemble.input}
    for step in ensemble.ensemble_scheduling.step:
        model = configs[step.model_name]
        assert set(step.input_map) <= {i.name for i in model.input}, step.model_name
        assert set(step.output_map) <= {o.name for o in model.output}, step.model_name
        assert set(step.input_map.values()) <= available, step.model_name
        required = {i.name for i in model.input if not i.optional}
        assert required <= set(step.input_map), step.model_name
        available |= set(step.output_map.values())
    assert {o.name for o in ensemble.output} <= available


@pytest.mark.parametrize("platform, device, runtime, decoder", COMBINATIONS)
def test_rendered_configs(tmp_path, tiny_onnx, platform, device, runtime, decoder):
    configs, output = render(tmp_path, tiny_onnx, platform=platform, device=device, runtime=runtime,
                             decoder=DecoderConfig(mode=decoder))
    am = configs[spec.ACOUSTIC_MODEL]
    kind = model_config_pb2.ModelInstanceGroup.KIND_GPU if device == "gpu" else \
        model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert [g.kind for g in am.instance_group] == [kind]
    for name in (spec.PREPROCESSOR_MODEL, spec.DECODER_MODEL):   # python pre/post run on the CPU
        assert [g.kind for g in configs[name].instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
    assert am.max_batch_size == spec.MAX_BATCH_SIZE and am.HasField("dynamic_batching")
    pre = {k: v.string_value for k, v in configs[spec.PREPROCESSOR_MODEL].parameters.items()}
    if platform == "python":
        assert am.backend == "python" and all(i.allow_ragged_batch for i in am.input)
        settings = AcousticSettings.from_parameters({k: v.string_value for k, v in am.parameters.items()})
        assert (settings.device, settings.runtime, settings.warmup) == (device, runtime, True)
        model_file = output / spec.ACOUSTIC_MODEL / "1" / settings.model_file
        assert model_file.is_dir() if runtime == "torch" else model_file.is_file()
        assert float(pre["max_audio_seconds"]) == spec.MAX_AUDIO_SECONDS     # long audio is windowed
    else:
        assert am.platform == "onnxruntime_onnx" and not any(i.allow_ragged_batch for i in am.input)
        assert float(pre["max_audio_seconds"]) == settings_default_max_single()
        warmups = list(am.model_warmup)
        assert [w.batch_size for w in warmups] == [1, 1]
        for warmup in warmups:
            audio = warmup.inputs[spec.AUDIO]
            data = output / spec.ACOUSTIC_MODEL / "warmup" / audio.input_data_file
            assert data.stat().st_size == 4 * audio.dims[0]
    decoder_params = {k: v.string_value for k, v in configs[spec.DECODER_MODEL].parameters.items()}
    assert decoder_params["mode"] == decoder
    vocab = json.loads((output / spec.DECODER_MODEL / "vocab.json").read_text())
    assert list(am.output[0].dims) == [-1, len(vocab)] == list(configs[spec.DECODER_MODEL].input[0].dims)
    check_ensemble_wiring(configs[spec.ENSEMBLE_MODEL], configs)


def settings_default_max_single() -> float:
    return AcousticSettings().long_audio.max_single_seconds


def test_native_platform_serves_a_batch_coupled_file_one_request_at_a_time(tmp_path, tiny_int8):
    configs, _ = render(tmp_path, tiny_int8, platform="onnxruntime_onnx")
    assert not configs[spec.ACOUSTIC_MODEL].HasField("dynamic_batching")
    configs, _ = render(tmp_path, tiny_int8, platform="python")   # AcousticModel runs such rows alone
    assert configs[spec.ACOUSTIC_MODEL].HasField("dynamic_batching")


def test_invalid_combinations_are_refused(tmp_path, tiny_onnx):
    with pytest.raises(ValueError, match="runtime torch needs platform python"):
        RepositoryOptions(platform="onnxruntime_onnx", runtime="torch")
    with pytest.raises(ValueError, match="device 'tpu'"):
        RepositoryOptions(device="tpu")
    with pytest.raises(ValueError, match="runtime openvino needs platform python"):
        RepositoryOptions(platform="onnxruntime_onnx", runtime="openvino")
    with pytest.raises(ValueError, match="runtime openvino runs on the CPU"):
        RepositoryOptions(runtime="openvino", device="gpu")
    with pytest.raises(ValueError, match="need runtime openvino"):
        RepositoryOptions(openvino_ir=True)
    with pytest.raises(ValueError, match="openvino_precision 'f16'"):
        RepositoryOptions(runtime="openvino", openvino_precision="f16")


@pytest.mark.parametrize("precision", ["f32", "bf16"])
def test_openvino_settings_reach_the_acoustic_model(tmp_path, tiny_onnx, precision):
    configs, output = render(tmp_path, tiny_onnx, runtime="openvino", openvino_precision=precision)
    am = configs[spec.ACOUSTIC_MODEL]
    settings = AcousticSettings.from_parameters({k: v.string_value for k, v in am.parameters.items()})
    assert (settings.runtime, settings.openvino_precision, settings.model_file) == ("openvino", precision, "model.onnx")
    streaming = {k: v.string_value for k, v in parse(output / spec.STREAMING_MODEL / "config.pbtxt").parameters.items()}
    assert (streaming["runtime"], streaming["openvino_precision"]) == ("openvino", precision)
