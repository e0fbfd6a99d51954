"""OpenVINO as the acoustic model's second CPU runtime (RUNTIME=openvino): the ov-* variants of the tiny
model agree with onnxruntime fp32, ov-int8 (NNCF) is an IR with dynamic axes built once, a missing IR
file fails the load with one clear line, and a served RUNTIME=openvino repository gives the
onnxruntime repository's transcripts on real speech."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino", reason="openvino is not installed")

from w2v_triton.eval import evaluation; from w2v_triton.serving import spec; from w2v_triton.build import variants# noqa: E402
from w2v_triton.serving.acoustic import AcousticModel, AcousticSettings, AcousticSettingsError  # noqa: E402

# Max |logit diff| vs onnxruntime fp32 on random audio, with margin over the tiny model's measurement
# (2026-12-03, 3 seeds: ov-fp32 5e-7, ov-bf16 6.7e-3, ov-int8 0.59 against a logit std of 0.11: static
# int8 calibrated on 6 noise clips moves this random model's near-tie logits far; on the trained
# reference model ov-int8 agrees with fp32 about as well as int8-mm: benchmarks/results/*/openvino-*.json).
RANDOM_INPUT_BOUND = {"ov-fp32": 1e-4, "ov-bf16": 0.03, "ov-int8": 1.0}


def calibration(n: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.standard_normal(8000 + 4000 * i).astype(np.float32) for i in range(n)]


@pytest.fixture(scope="module")
def tiny_ov_int8(tiny_fp32) -> Path:
    return variants.build_variant(tiny_fp32, "ov-int8", calibration=calibration())


def test_openvino_variant_paths(tmp_path):
    fp32 = tmp_path / "model.onnx"
    assert variants.variant_path(fp32, "ov-fp32") == fp32 == variants.variant_path(fp32, "ov-bf16")
    assert variants.variant_path(fp32, "ov-int8") == tmp_path / "model.ov-int8.xml"


def test_ov_int8_is_an_ir_built_once_with_dynamic_axes(tiny_fp32, tiny_ov_int8):
    import openvino as ov

    assert tiny_ov_int8.is_file() and tiny_ov_int8.with_suffix(".bin").is_file()
    mtime = tiny_ov_int8.stat().st_mtime_ns
    assert variants.build_variant(tiny_fp32, "ov-int8").stat().st_mtime_ns == mtime   # no calibration needed
    assert not list(tiny_fp32.parent.glob("tmp.*")), "temporary files left behind"
    model = ov.Core().read_model(str(tiny_ov_int8))
    assert all(i.get_partial_shape().is_dynamic for i in model.inputs)
    assert any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())   # quantised, not a copy


def test_ov_int8_needs_calibration_audio(tmp_path, tiny_fp32):
    fresh = tmp_path / "model.onnx"
    shutil.copy2(tiny_fp32, fresh)
    with pytest.raises(ValueError, match="calibration"):
        variants.build_variant(fresh, "ov-int8")
    assert not list(tmp_path.glob("*.xml")) and not list(tmp_path.glob("*.bin"))
    with pytest.raises(FileNotFoundError, match="make corpus"):
        variants.calibration_audio(tmp_path / "dev.jsonl", 4, True)


@pytest.mark.parametrize("name", variants.OPENVINO_VARIANTS)
def test_openvino_variants_agree_with_onnxruntime(tiny_fp32, tiny_ov_int8, name, rng):
    """Ragged batches (padded, length buckets) through AcousticModel's openvino runtime: same shapes
    as onnxruntime fp32, logits within the measured bound."""
    path = tiny_ov_int8 if name == "ov-int8" else tiny_fp32
    utterances = [rng.standard_normal(n).astype(np.float32) for n in (400, 8000, 9000, 23456)]
    reference = evaluation.session(tiny_fp32, 1).run(utterances)
    runner = evaluation.openvino_runner(path, name, 1)
    assert runner.provider.startswith("openvino:CPU:") and not runner.batch_coupled
    for ref, got in zip(reference, runner.run(utterances)):
        assert got.shape == ref.shape and got.dtype == np.float32 and np.isfinite(got).all()
        assert float(np.abs(ref - got).max()) < RANDOM_INPUT_BOUND[name], name


def test_openvino_settings_are_checked():
    assert AcousticSettings.from_parameters(AcousticSettings(runtime="openvino", openvino_precision="bf16")
                                            .to_parameters()).openvino_precision == "bf16"
    with pytest.raises(AcousticSettingsError, match="openvino_precision 'f16'"):
        AcousticSettings(runtime="openvino", openvino_precision="f16")
    with pytest.raises(AcousticSettingsError, match="runs on the CPU"):
        AcousticSettings(runtime="openvino", device="gpu")


def test_a_missing_ir_file_fails_the_load_with_one_clear_line(tmp_path, tiny_ov_int8):
    xml = tmp_path / "model.xml"
    shutil.copy2(tiny_ov_int8, xml)      # no model.bin next to it
    with pytest.raises(FileNotFoundError) as failure:
        AcousticModel(xml, 1, runtime="openvino")
    assert len(str(failure.value).splitlines()) == 1 and "model.bin are missing" in str(failure.value)
    with pytest.raises(FileNotFoundError, match="model.xml is missing"):
        AcousticModel(tmp_path / "gone" / "model.xml", 1)


def test_builder_refuses_mixed_runtimes_and_variants(tmp_path, capsys):
    from builders.repository import main as build_repository_cli

    assert build_repository_cli(["--model", "tiny", "--output", str(tmp_path / "a"), "--variant", "ov-bf16"]) == 2
    assert "add --runtime openvino" in capsys.readouterr().err
    assert build_repository_cli(["--model", "tiny", "--output", str(tmp_path / "b"), "--runtime", "openvino",
                                 "--variant", "int8-mm"]) == 2
    assert "an onnxruntime variant" in capsys.readouterr().err


def test_builder_serves_the_ov_int8_ir(tmp_path, tiny_ov_int8):
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.build.repository import RepositoryOptions
    from w2v_triton.serving.pipeline import model_parameters

    repo = tmp_path / "repo"
    build_repository(BuildRequest(model="tiny", output=repo, onnx=tiny_ov_int8,
                                  options=RepositoryOptions(runtime="openvino")))
    version = repo / spec.ACOUSTIC_MODEL / "1"
    settings = AcousticSettings.from_parameters(model_parameters(repo, spec.ACOUSTIC_MODEL))
    assert (settings.runtime, settings.model_file) == ("openvino", "model.xml")
    assert (version / "model.xml").is_file() and (version / "model.bin").is_file()
    assert not (version / "model.onnx").exists()
    streaming = repo / spec.STREAMING_MODEL / "1" / "acoustic"
    assert {p.name for p in streaming.iterdir()} == {"model.xml", "model.bin"}
    # rebuilt for onnxruntime into the same folder: the IR goes
    build_repository(BuildRequest(model="tiny", output=repo))
    assert not (version / "model.xml").exists() and (version / "model.onnx").is_file()


@pytest.mark.integration
def test_openvino_runtime_serves_the_onnx_runtimes_transcripts(tiny_repository, real_speech, tmp_path):
    """RUNTIME=openvino (the fp32 ONNX file, f32 precision) against the onnxruntime repository,
    in-process and through a real tritonserver: the same transcripts (bf16 and int8 change some of
    the tiny random model's near-tie frames; their agreement is measured, docs/optimization.md)."""
    from client import TranscriptionClient
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.build.repository import RepositoryOptions
    from w2v_triton.serving.audio import load_audio
    from w2v_triton.serving.pipeline import ReferencePipeline
    from w2v_triton.serving.tritonserver import Ports, TritonServer

    repo = tmp_path / "openvino_repo"
    build_repository(BuildRequest(model="tiny", output=repo, options=RepositoryOptions(runtime="openvino")))
    clips = [load_audio(u.audio) for u in real_speech[::20][:8]]
    expected = [ReferencePipeline(tiny_repository).transcribe(c) for c in clips]   # onnxruntime
    pipeline = ReferencePipeline(repo)
    assert pipeline.acoustic.provider.startswith("openvino:CPU")
    assert [pipeline.transcribe(c) for c in clips] == expected
    with TritonServer(repo, Ports.free(), log_path=tmp_path / "server.log") as server, \
            TranscriptionClient(server.grpc_url, "grpc") as asr:
        served = [asr.transcribe(c) for c in clips]
    assert served == expected and any(served)


@pytest.mark.integration
def test_a_repository_missing_its_ir_weights_fails_to_start_with_one_clear_line(tmp_path, tiny_ov_int8,
                                                                                  load_failure):
    from w2v_triton.build.builder import BuildRequest, build_repository
    from w2v_triton.build.repository import RepositoryOptions

    repo = tmp_path / "ir_repo"
    build_repository(BuildRequest(model="tiny", output=repo, onnx=tiny_ov_int8,
                                  options=RepositoryOptions(runtime="openvino")))
    for model, folder in ((spec.ACOUSTIC_MODEL, "1"), (spec.STREAMING_MODEL, "1/acoustic")):
        (repo / model / folder / "model.bin").unlink()
    first_line = load_failure(repo)
    assert re.match(r"a model failed to load: (acoustic_model|streaming_asr): ", first_line), first_line
    assert "model.bin are missing" in first_line and "make build-models RUNTIME=openvino" in first_line
