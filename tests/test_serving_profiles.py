"""Serving profiles (w2v_triton.build.repository.PROFILES): defaults defined once, explicit values override,
the rendered configs (parsed with Triton's model-config protobuf) carry the profile's settings and name
it, and `builders.repository --profile` / `make build-models PROFILE=` reach them."""
from __future__ import annotations

import json
import subprocess
from dataclasses import asdict

import pytest

from tests.test_config_matrix import parse
from w2v_triton.serving import spec
from w2v_triton.serving.acoustic import AcousticSettings
from w2v_triton.build.repository import (DEFAULT_PROFILE, PROFILE_FIELDS, PROFILES, BUILD_INFO, RepositoryOptions,
                                   profile_parameters)


def test_default_options_are_the_default_profile():
    assert RepositoryOptions() == RepositoryOptions.for_profile(DEFAULT_PROFILE.name)
    assert RepositoryOptions().profile_overrides() == {}


def test_throughput_profile_runs_one_single_threaded_instance_per_core():
    options = RepositoryOptions.for_profile("throughput", cpu_count=4)
    assert (options.acoustic_instances, options.intra_op_threads) == (4, 1)
    assert options.profile_overrides(cpu_count=4) == {}
    latency = RepositoryOptions.for_profile("latency", cpu_count=4)
    assert (latency.acoustic_instances, latency.intra_op_threads) == (1, 0)   # all cores on one request


def test_explicit_values_override_the_profile_and_are_listed():
    options = RepositoryOptions.for_profile("throughput", intra_op_threads=2, decoder_instances=3)
    assert options.intra_op_threads == 2 and options.decoder_instances == 3
    assert options.profile_overrides() == {"intra_op_threads": 2, "decoder_instances": 3}
    assert profile_parameters(options) == {"serving_profile": "throughput",
                                           "serving_overrides": "intra_op_threads=2,decoder_instances=3"}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_options_round_trip_through_build_info(profile):
    options = RepositoryOptions.for_profile(profile, queue_delay_us=500)
    assert RepositoryOptions.from_dict(json.loads(json.dumps(asdict(options)))) == options


def test_bad_profiles_and_counts_are_refused():
    with pytest.raises(ValueError, match="serving profile 'fast'"):
        RepositoryOptions.for_profile("fast")
    with pytest.raises(ValueError, match="serving profile 'fast'"):
        RepositoryOptions(profile="fast")
    with pytest.raises(ValueError, match="instances must be >= 1"):
        RepositoryOptions.for_profile("latency", acoustic_instances=0)
    with pytest.raises(ValueError, match="queue delay"):
        RepositoryOptions(queue_delay_us=-1)


def _configs(output):
    return {m: parse(output / m / "config.pbtxt") for m in
            (spec.PREPROCESSOR_MODEL, spec.ACOUSTIC_MODEL, spec.DECODER_MODEL, spec.ENSEMBLE_MODEL)}


@pytest.mark.parametrize("profile, flags, overrides", [
    ("latency", [], {}),
    ("throughput", [], {}),
    ("throughput", ["--intra-op-threads", "2", "--queue-delay-us", "100"], {"intra_op_threads": 2, "queue_delay_us": 100}),
])
def test_builder_renders_the_profile(tmp_path, build_tiny, profile, flags, overrides):
    from builders.repository import build_request, parse_args

    options = RepositoryOptions.for_profile(profile, **overrides)
    assert build_request(parse_args(["--profile", profile, *flags])).options == options   # what the flags ask for
    output = build_tiny(tmp_path / "repo", options=options)
    want = {**PROFILES[profile].settings(), **overrides}
    configs = _configs(output)
    am = configs[spec.ACOUSTIC_MODEL]
    assert [g.count for g in am.instance_group] == [want["acoustic_instances"]]
    assert [g.count for g in configs[spec.DECODER_MODEL].instance_group] == [want["decoder_instances"]]
    assert [g.count for g in configs[spec.PREPROCESSOR_MODEL].instance_group] == [want["preprocessor_instances"]]
    for model in (spec.ACOUSTIC_MODEL, spec.DECODER_MODEL, spec.PREPROCESSOR_MODEL):
        assert configs[model].dynamic_batching.max_queue_delay_microseconds == want["queue_delay_us"]
    settings = AcousticSettings.from_parameters({k: v.string_value for k, v in am.parameters.items()})
    assert settings.intra_op_threads == want["intra_op_threads"]
    ensemble = {k: v.string_value for k, v in configs[spec.ENSEMBLE_MODEL].parameters.items()}
    assert ensemble["serving_profile"] == profile
    assert ensemble["serving_overrides"] == (",".join(f"{k}={v}" for k, v in overrides.items()) or "none")
    built = RepositoryOptions.from_dict(json.loads((output / BUILD_INFO).read_text())["options"])
    assert built.profile == profile and {k: getattr(built, k) for k in PROFILE_FIELDS} == want


def test_builder_refuses_an_unknown_profile(tiny_repository, tmp_path, capsys):
    from builders.repository import main as build_repository_cli

    with pytest.raises(SystemExit):
        build_repository_cli(["--model", "tiny", "--output", str(tmp_path / "r"), "--profile", "fast"])
    assert "invalid choice: 'fast'" in capsys.readouterr().err
    onnx = tiny_repository / spec.ACOUSTIC_MODEL / "1" / "model.onnx"
    assert build_repository_cli(["--model", "tiny", "--onnx", str(onnx), "--output", str(tmp_path / "r"),
                                 "--decoder-instances", "0"]) == 2
    assert "instances must be >= 1" in capsys.readouterr().err


def test_make_build_models_passes_the_profile(repo_root):
    out = subprocess.run(["make", "-n", "build-models", "PROFILE=throughput", "REPO_FLAGS=--intra-op-threads 2"],
                         cwd=repo_root, capture_output=True, text=True, check=True).stdout
    assert "--profile throughput --intra-op-threads 2" in out
