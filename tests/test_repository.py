"""The rendered repository (built by the library), and the command line over it: its flags as a
typed request, its exit codes and messages."""
import json
from pathlib import Path

import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from builders.repository import build_request, main as build_repository_cli, parse_args
from w2v_triton.build.builder import BuildRequest
from w2v_triton.build.repository import RepositoryOptions
from w2v_triton.build.tuning import TUNED_KEYS
from w2v_triton.serving import spec
from w2v_triton.serving.ctc_decoding import DecoderConfig
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


def test_ngc_onnxruntime_repository_matches_the_onnx_graph(tmp_path, build_tiny):
    out = build_tiny(tmp_path / "ngc", options=RepositoryOptions(platform="onnxruntime_onnx"))
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
    assert build_repository_cli(["--model", "tiny", "--output", str(tmp_path / "r"), "--lm-dir", str(tmp_path)]) == 2
    assert "make lm" in capsys.readouterr().err


def test_the_command_line_is_a_typed_request():
    """What the tests and benchmarks build through the library, `make build-models` asks for with
    flags: each flag lands in its BuildRequest field; a decoder value given on the command line is
    kept out of `tuned_fields` (it wins over decoder/tuning.json)."""
    args = ["--model", "tiny", "--output", "out", "--platform", "onnxruntime_onnx", "--onnx", "m.onnx",
            "--variant", "int8-mm", "--profile", "throughput", "--intra-op-threads", "2", "--decoder-instances", "1",
            "--decoder-mode", "beam", "--decoder-backend", "pyctcdecode", "--beam-width", "16", "--alpha", "0.8",
            "--lm-dir", "lm", "--stream", "idle_seconds=2.5", "--no-warmup"]
    decoder = DecoderConfig(mode="beam", backend="pyctcdecode", beam_width=16, alpha=0.8)
    options = RepositoryOptions.for_profile("throughput", platform="onnxruntime_onnx", intra_op_threads=2,
                                            decoder_instances=1, decoder=decoder, warmup=False,
                                            streaming={"idle_seconds": "2.5"})
    assert build_request(parse_args(args)) == BuildRequest(
        model="tiny", output=Path("out"), options=options, variant="int8-mm", onnx=Path("m.onnx"), lm_dir=Path("lm"),
        tuned_fields=tuple(k for k in TUNED_KEYS if k not in ("beam_width", "alpha")))
    assert build_request(parse_args([])) == BuildRequest()   # no flags: the library's defaults


@pytest.mark.parametrize("flags, message", [
    (["--stream", "normalization=global"], "normalization"),
    (["--stream", "idle_seconds"], "KEY=VALUE"),
])
def test_a_bad_request_is_one_line_and_exit_code_2(tmp_path, capsys, flags, message):
    assert build_repository_cli(["--model", "tiny", "--output", str(tmp_path / "r"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
