import json

import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from builders.repository import main as build_repository
from w2v_triton.serving import spec
from w2v_triton.serving.tritonserver import ServerError, check_repository


def load_config(path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_python_platform_repository(tiny_repository):
    configs = {m: load_config(tiny_repository / m / "config.pbtxt")
               for m in ("preprocessor", "acoustic_model", "decoder", "asr")}
    assert configs["asr"].platform == "ensemble"
    assert [i.name for i in configs["asr"].input] == [spec.AUDIO, spec.AUDIO_FILE, spec.HOTWORDS, spec.PROMPT]
    assert all(i.optional for i in configs["asr"].input)   # AUDIO or AUDIO_FILE: the preprocessor checks
    assert [i.name for i in configs["preprocessor"].input] == [spec.AUDIO, spec.AUDIO_FILE]
    assert all(i.optional for i in configs["preprocessor"].input)
    assert float(configs["preprocessor"].parameters["max_audio_seconds"].string_value) == spec.MAX_AUDIO_SECONDS
    assert [o.name for o in configs["asr"].output] == [spec.TRANSCRIPT, spec.WORD_TIMESTAMPS, spec.AUDIO_LENGTHS]
    assert configs["asr"].output[0].data_type == model_config_pb2.TYPE_STRING
    for name in ("preprocessor", "acoustic_model", "decoder"):
        assert configs[name].backend == "python"
        assert (tiny_repository / name / "1" / "model.py").is_file()
    steps = [s.model_name for s in configs["asr"].ensemble_scheduling.step]
    assert steps == ["preprocessor", "acoustic_model", "decoder"]
    assert (tiny_repository / "asr" / "1").is_dir()
    vocab = json.loads((tiny_repository / "decoder" / "vocab.json").read_text())
    assert configs["decoder"].input[0].dims == [-1, len(vocab)]
    check_repository(tiny_repository)


def test_ngc_onnxruntime_repository_matches_the_onnx_graph(tmp_path, tiny_repository):
    out = tmp_path / "ngc"
    onnx_file = tiny_repository / "acoustic_model" / "1" / "model.onnx"
    assert build_repository(["--model", "tiny", "--output", str(out), "--platform", "onnxruntime_onnx",
                             "--onnx", str(onnx_file)]) == 0
    config = load_config(out / "acoustic_model" / "config.pbtxt")
    assert config.platform == "onnxruntime_onnx" and not config.backend
    assert config.default_model_filename == "model.onnx"
    assert not (out / "acoustic_model" / "1" / "model.py").exists()
    graph = onnx.load(str(out / "acoustic_model" / "1" / "model.onnx")).graph
    assert [i.name for i in config.input] == [i.name for i in graph.input]
    assert [o.name for o in config.output] == [o.name for o in graph.output]
    by_name = {i.name: i for i in config.input}
    # Triton adds the batch dimension; lengths are [batch] in the graph, so dims [1] + reshape [].
    assert list(by_name[spec.AUDIO].dims) == [-1]
    assert by_name[spec.AUDIO_LENGTHS].HasField("reshape") and not by_name[spec.AUDIO_LENGTHS].reshape.shape
    assert not any(i.allow_ragged_batch for i in config.input)  # Triton batches equal shapes only


def test_missing_model_file_is_reported_before_start(tmp_path, tiny_repository):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_repository, broken)
    (broken / "acoustic_model" / "1" / "model.onnx").unlink()
    with pytest.raises(ServerError, match="model.onnx is missing"):
        check_repository(broken)


def test_acoustic_model_missing_file_message(tmp_path):
    from w2v_triton.serving.acoustic import AcousticModel

    with pytest.raises(FileNotFoundError, match="make build-models"):
        AcousticModel(tmp_path / "model.onnx")


def test_lm_dir_without_lm_is_an_error(tmp_path, capsys):
    assert build_repository(["--model", "tiny", "--output", str(tmp_path / "r"), "--lm-dir", str(tmp_path)]) == 2
    assert "make lm" in capsys.readouterr().err
