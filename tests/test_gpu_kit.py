"""The GPU serving kit (issue 33, docs/gpu.md): what goes in, how it is found, and the CPU proof.

The integration test is `make gpu-kit-check`: a kit built here (quick compression, no site wheels:
this venv stands in for the lent image's packages) is unpacked into a fresh folder and
tools/gpu/gpu_serving_bench.sh runs SMOKE=1 with the kit's tritonserver, python-backend stub (this
Python's), perf_analyzer and tritonclient: server up, ensemble and acoustic model served,
perf_analyzer measured, results packed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from w2v_triton.build import gpu_kit
from w2v_triton.build.gpu_kit import KitError, TritonInstall
from w2v_triton.serving.tritonserver import TRITON_HOME_ENV, ServerError

ROOT = Path(__file__).resolve().parents[1]
BINUTILS = ("readelf", "strip", "nm", "cc")
# The lent image's packages (/work/.library/device/KINDS.md, "Python packages already there", read
# on 2026-11-17), by distribution name, lower case, '-' for '_'.
IMAGE_PACKAGES = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt
jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx
onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions
pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil
pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six
sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics
torchvision tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp""".split())


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (binutils, gcc)")


def test_the_kit_takes_the_server_its_libraries_and_perf_analyzer_from_the_wheels():
    _need("readelf")
    files = gpu_kit.server_files(TritonInstall.find(), ("3.11", "3.12"))
    libs = {name.split("/")[-1].split("-")[0] for name in files if name.startswith("nvidia_pytriton.libs/")}
    assert {"libtritonserver", "libcudart", "libb64", "libicudata", "libarchive"} <= libs
    assert "libpython3" not in libs          # the wheel's own libpython3.13: the stubs use the machine's
    assert {"bin/perf_analyzer", "pytriton/tritonserver/bin/tritonserver",
            "pytriton/tritonserver/backends/python/libtriton_python.so",
            "pytriton/tritonserver/python_backend_stubs/3.12/triton_python_backend_stub"} <= set(files)
    client = gpu_kit.client_files()
    assert "client/tritonclient/grpc/__init__.py" in client
    assert not any(f"/{skipped}/" in name for name in client for skipped in ("http", "shared_memory")), client


def test_the_speech_subset_takes_every_source_in_turn_within_its_budget(tmp_path):
    for source, sizes in (("a", [300, 300, 300]), ("b", [500, 100])):
        folder = tmp_path / source
        folder.mkdir()
        rows = []
        for i, size in enumerate(sizes):
            (folder / f"{i}.flac").write_bytes(b"x" * size)
            rows.append(json.dumps({"audio": f"{i}.flac", "text": "T", "duration": 1.0}))
        (folder / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    chosen = gpu_kit.speech_subset(tmp_path, budget_bytes=1000)
    # turn 0: a0 (300) + b0 (500); turn 1: a1 would pass 1000, b1 (100) fits; turn 2: a2 does not
    assert {k: [Path(r["audio"]).name for r in v] for k, v in chosen.items()} == {"a": ["0.flac"],
                                                                                 "b": ["0.flac", "1.flac"]}


def test_what_travels_counts_tracked_and_untracked_files_but_not_ignored_ones(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("build/\n")
    (tmp_path / "tracked.txt").write_bytes(b"t" * 100)
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    (tmp_path / "untracked.txt").write_bytes(b"u" * 50)
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "kit.tar.xz").write_bytes(b"k" * 1000)
    assert gpu_kit.travelling_bytes(tmp_path) == {"tracked": 100 + len("build/\n"), "untracked": 50, "shared": 0}


def test_w2v_triton_home_names_the_kit_and_never_falls_back_to_the_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv(TRITON_HOME_ENV, str(tmp_path))
    with pytest.raises(ServerError, match=TRITON_HOME_ENV):
        TritonInstall.find()
    binary = tmp_path / "pytriton" / "tritonserver" / "bin" / "tritonserver"
    binary.parent.mkdir(parents=True)
    binary.write_text("")
    install = TritonInstall.find()
    assert install.server_binary == binary and install.perf_analyzer == tmp_path / "bin" / "perf_analyzer"
    assert install.libs == tmp_path / "nvidia_pytriton.libs" and install.backend_root.parent == tmp_path


def test_plain_names_the_machine_lacks_are_linked_to_the_kits_renamed_copies(tmp_path):
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "libssl-57118d4e.so.3").write_text("")
    target = gpu_kit.link_fallbacks({"perf_analyzer": ["libssl.so.3", "libnothere.so.1"]}, libs, tmp_path / "fb")
    assert target == tmp_path / "fb" and os.readlink(target / "libssl.so.3") == str(libs / "libssl-57118d4e.so.3")
    assert not (target / "libnothere.so.1").exists()
    assert gpu_kit.link_fallbacks({}, libs, tmp_path / "none") is None


def test_a_missing_libpython_is_named_first_with_the_way_out(tmp_path, monkeypatch):
    install = TritonInstall(tmp_path, tmp_path, tmp_path / "perf_analyzer", tmp_path, tmp_path)
    missing = {str(tmp_path / "perf_analyzer"): ["libssl.so.3"], str(install.stub()): ["libpython3.12.so.1.0"]}
    monkeypatch.setattr(gpu_kit, "missing_libraries", lambda _: missing)
    with pytest.raises(KitError, match=r"no shared libpython3\.12\.so\.1\.0 .*--libpython"):
        gpu_kit.check_libraries(install)
    monkeypatch.setattr(gpu_kit, "missing_libraries", lambda _: {str(tmp_path / "perf_analyzer"): ["libssl.so.3"]})
    with pytest.raises(KitError, match="perf_analyzer: libssl.so.3"):
        gpu_kit.check_libraries(install)


def test_the_served_models_and_the_benchmark_import_only_what_the_image_or_the_kit_has():
    """Module-level imports of the three served models, the torch runtime, the repository and
    student builders and the benchmark, made by this project's code, by distribution."""
    probe = """
import builtins, importlib.util, json, sys, types
sys.modules["triton_python_backend_utils"] = types.ModuleType("triton_python_backend_utils")
first_party = ("w2v_triton", "benchmarks", "builders", "model_")
seen, real_import = set(), builtins.__import__
def record(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and str((globals or {}).get("__name__", "")).startswith(first_party):
        seen.add(name.split(".")[0])
    return real_import(name, globals, locals, fromlist, level)
builtins.__import__ = record
for model in ("preprocessor", "acoustic_model", "decoder"):
    spec = importlib.util.spec_from_file_location(f"model_{model}", f"model_repository/{model}/1/model.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
import w2v_triton.serving.acoustic_torch, builders.repository, builders.student, builders.gpu_kit
import benchmarks.run, benchmarks.gpu_summary
print(json.dumps(sorted(seen - set(sys.stdlib_module_names))))
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    import importlib.metadata

    owners = importlib.metadata.packages_distributions()
    first_party = {"w2v_triton", "benchmarks", "builders", "triton_python_backend_utils"}
    imported = {d.lower().replace("_", "-") for m in json.loads(result.stdout) if m not in first_party
                for d in owners.get(m, [m])}
    carried = {w.lower() for w in gpu_kit.SITE_WHEELS}
    assert imported - IMAGE_PACKAGES - carried == set()
    assert {"soundfile", "soxr"} <= imported     # the probe sees the served models' imports


@pytest.mark.integration
def test_the_kit_serves_the_ensemble_from_a_fresh_folder_on_the_cpu(tmp_path):
    """make gpu-kit-check: build (xz -0), unpack into a fresh folder, SMOKE=1 benchmark."""
    _need(*BINUTILS)
    import soundfile

    speech = tmp_path / "speech" / "noise"
    speech.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i, seconds in enumerate((1.5, 2.5)):
        soundfile.write(speech / f"{i}.flac", rng.standard_normal(int(seconds * 16000)).astype(np.float32) * 0.1,
                        16000)
        rows.append(json.dumps({"audio": f"{i}.flac", "text": "", "duration": seconds}))
    (speech / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    kit = tmp_path / "kit.tar.xz"
    build = subprocess.run([sys.executable, "-m", "builders.gpu_kit", "build", "--out", str(kit), "--preset", "0",
                            "--no-wheels", "--speech-dir", str(tmp_path / "speech"), "--limit-mib", "1000"],
                           cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stderr[-3000:]
    assert "together (limit 1000 MiB" in build.stdout and "'utterances': 2" in build.stdout
    record = json.loads(kit.with_suffix("").with_suffix(".json").read_text())
    assert record["rows"][-1][1] == f"{record['total_mib']:.2f}" and record["total_mib"] > kit.stat().st_size / 2**20

    kit_dir, out = tmp_path / "unpacked", tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in (TRITON_HOME_ENV, "W2V_SPEECH_DIR")}
    env.update(SMOKE="1", KIT=str(kit), KIT_DIR=str(kit_dir), PYTHON=sys.executable)
    run = subprocess.run(["bash", "tools/gpu/gpu_serving_bench.sh", str(out)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1500)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    assert "does not import" not in log     # tritonclient.grpc imported, from the kit (set-up checks where)
    assert f"tritonserver {kit_dir}/pytriton/tritonserver/bin/tritonserver" in log
    assert f"perf_analyzer {kit_dir}/bin/perf_analyzer" in log
    assert (kit_dir / "triton_backends" / "python" / "triton_python_backend_stub").is_file()   # the kit's stub
    with tarfile.open(out / "results.tar.gz") as tar:
        report = json.load(tar.extractfile("benchmarks/results/smoke-cpu/gpu-served-tiny.json"))  # type: ignore[arg-type]
    assert (ROOT / report["audio"]).resolve() == kit_dir.resolve() / "speech"   # the kit's speech, not ../shared
    sweeps = report["served"]["tiny"]["sweeps"]
    assert set(sweeps) == {"clips_2s", "acoustic_model_clips_2s"}
    for sweep in sweeps.values():
        row = sweep["rows"][0]
        assert row["infer_per_sec"] > 0 and row["per_model"]["acoustic_model"]["requests"] > 0
    assert "| tiny | clips_2s |" in log    # the summary table the GPU run ends with
