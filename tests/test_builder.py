"""`build_repository(BuildRequest)`: the library call behind `make build-models` (the command line's
own exit codes and messages are tested in test_repository.py)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from w2v_triton.build.builder import BuildError, BuildRequest, build_repository
from w2v_triton.build.repository import RepositoryOptions
from w2v_triton.serving import spec
from w2v_triton.serving.ctc_decoding import DecoderConfig


def test_a_request_returns_what_it_built(tiny_repository):
    info = json.loads((tiny_repository / "build_info.json").read_text())
    assert info["options"]["decoder_instances"] == 2
    assert (tiny_repository / spec.ACOUSTIC_MODEL / "1" / "model.onnx").is_file()


def test_built_repository_describes_itself(tmp_path):
    built = build_repository(BuildRequest(model="tiny", output=tmp_path / "r",
                                          options=RepositoryOptions.for_profile("throughput", cpu_count=2)))
    assert built.path == tmp_path / "r" and built.served_file.name == "model.onnx"
    assert built.export_report is not None and built.export_report.ok()
    assert built.options.acoustic_instances == 2 and built.options.intra_op_threads == 1
    assert built.tuned == {}
    assert "profile throughput" in built.describe() and "2 acoustic instance(s) x 1 thread(s)" in built.describe()


@pytest.mark.parametrize(("request_", "message"), [
    (BuildRequest(variant="ov-bf16"), "runs in OpenVINO"),
    (BuildRequest(variant="int8", options=RepositoryOptions(runtime="openvino")), "an onnxruntime variant"),
    (BuildRequest(variant="int8", options=RepositoryOptions(runtime="torch")), "runs the checkpoint itself"),
    (BuildRequest(variant="nope"), "variant 'nope'"),
    (BuildRequest(tuned_fields=("mode",)), "tuning chooses only"),
])
def test_contradictions_fail_before_any_work(request_, message):
    with pytest.raises(BuildError, match=message):
        request_.check()


def test_missing_files_are_one_line_build_errors(tmp_path):
    with pytest.raises(BuildError, match="make lm"):
        build_repository(BuildRequest(model="tiny", output=tmp_path / "r", lm_dir=tmp_path))
    with pytest.raises(BuildError, match="no such|does not exist|not found|No such"):
        build_repository(BuildRequest(model=str(tmp_path / "missing-checkpoint"), output=tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_an_lm_needs_beam_search(tmp_path):
    from w2v_triton.build.lm_sentences import write_lm_dir

    lm_dir = write_lm_dir(tmp_path / "lm", ["HELLO WORLD"])
    greedy = BuildRequest(model="tiny", output=tmp_path / "r", lm_dir=lm_dir)
    with pytest.raises(BuildError, match="needs --decoder-mode beam"):
        build_repository(greedy)
    beam = replace(greedy, options=RepositoryOptions(decoder=DecoderConfig(mode="beam")))
    built = build_repository(beam)
    assert built.options.decoder.lm_path.startswith("lm.") and (built.path / "decoder" / built.options.decoder.lm_path).is_file()
