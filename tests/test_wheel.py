"""The package works from an installed wheel, nothing bound to the checkout: the wheel carries the Triton
model templates (package data), and a repository built with it in a folder outside the checkout has
its outputs and caches in the work directory (docs/architecture.md, "Package data and the work
directory"). The wheel is installed into a fresh venv that borrows this venv's dependencies through a
plain path entry (its editable finder, which maps w2v_triton to the checkout, is not loaded)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from test_layers import copy_sources
from w2v_triton.build.repository import MODELS, TEMPLATE_ROOT
from w2v_triton.paths import REPO_ROOT, WORK_DIR_ENV, work_dir
from w2v_triton.serving import spec

pytestmark = pytest.mark.slow

BUILD = """
import json, sys
from pathlib import Path
import w2v_triton
from w2v_triton import paths
from w2v_triton.build.builder import BuildRequest, build_repository
from w2v_triton.build.repository import TEMPLATE_ROOT

built = build_repository(BuildRequest(model="tiny", output=Path(sys.argv[1])))
print(json.dumps({"package": w2v_triton.__file__, "templates": str(TEMPLATE_ROOT), "work_dir": str(paths.WORK_DIR),
                  "served_file": str(built.served_file), "checkpoint": str(built.checkpoint)}))
"""


def run(python: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", WORK_DIR_ENV)}
    return subprocess.run([str(python), *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def wheel_python(tmp_path_factory) -> Path:
    """The python of a fresh venv outside the checkout with the project's wheel installed."""
    root = tmp_path_factory.mktemp("wheel")
    (root / "src").mkdir()
    source = copy_sources(root / "src")
    shutil.copy2(REPO_ROOT / "setup.py", source / "setup.py")
    for template in [*TEMPLATE_ROOT.glob("*/config*.pbtxt.template"), *TEMPLATE_ROOT.glob("*/1/model.py")]:
        target = source / "model_repository" / template.relative_to(TEMPLATE_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(template, target)
    built = run(Path(sys.executable), "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                "-w", str(root / "dist"), str(source), cwd=root)
    assert built.returncode == 0, built.stderr
    wheel = next((root / "dist").glob("w2v_triton-*.whl"))
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    installed = run(Path(sys.executable), "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    str(wheel), cwd=root)
    assert installed.returncode == 0, installed.stderr
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root).stdout.strip())
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_the_wheel_ships_every_template_and_model(wheel_python, tmp_path):
    listing = run(wheel_python, "-c", "from w2v_triton.build.repository import TEMPLATE_ROOT as t; "
                  "print('\\n'.join(sorted(str(p.relative_to(t)) for p in t.rglob('*') if p.is_file() and p.suffix != '.pyc')))", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    shipped = set(listing.stdout.split())
    tracked = {str(p.relative_to(TEMPLATE_ROOT)) for pattern in ("*/config*.pbtxt.template", "*/1/model.py")
               for p in TEMPLATE_ROOT.glob(pattern)}
    assert shipped == tracked and {name.split("/")[0] for name in shipped} == set(MODELS)


def test_a_wheel_builds_a_repository_outside_the_checkout(wheel_python, tmp_path):
    """Outside a checkout the work directory defaults to the user's cache folder (XDG_CACHE_HOME
    here); W2V_TRITON_WORK_DIR moves it; the checkout is neither read nor written."""
    cache = tmp_path / "cache"
    result = run(wheel_python, "-c", BUILD, str(tmp_path / "repo"), cwd=tmp_path, XDG_CACHE_HOME=str(cache))
    assert result.returncode == 0, result.stderr
    built = json.loads(result.stdout.splitlines()[-1])
    site = wheel_python.parent.parent
    assert Path(built["package"]).is_relative_to(site) and Path(built["templates"]).is_relative_to(site)
    assert built["work_dir"] == str(cache / "w2v-triton")
    assert Path(built["served_file"]).is_relative_to(cache / "w2v-triton" / "onnx")
    assert Path(built["checkpoint"]).is_relative_to(cache / "w2v-triton" / "checkpoints")
    repo = tmp_path / "repo"
    for model in MODELS:
        assert (repo / model / "config.pbtxt").is_file()
    assert (repo / spec.ACOUSTIC_MODEL / "1" / "model.onnx").is_file()
    assert (repo / spec.DECODER_MODEL / "1" / "model.py").read_text() == \
        (TEMPLATE_ROOT / spec.DECODER_MODEL / "1" / "model.py").read_text()

    reference = run(wheel_python, "-c", "from w2v_triton.build.checkpoints import resolve_checkpoint; "
                    "resolve_checkpoint('reference')", cwd=tmp_path, XDG_CACHE_HOME=str(cache))
    assert "models/reference), not in an installed package" in reference.stderr   # found in a checkout only

    elsewhere = tmp_path / "work"
    moved = run(wheel_python, "-c", "from w2v_triton import paths; print(paths.WORK_DIR, paths.DEFAULT_REPOSITORY)",
                cwd=tmp_path, **{WORK_DIR_ENV: str(elsewhere)})
    assert moved.stdout.split() == [str(elsewhere), str(elsewhere / "model_repository")]


@pytest.mark.integration
def test_a_repository_built_from_the_wheel_is_served_from_it(wheel_python, tmp_path, rng):
    """The wheel's venv runs tritonserver (its python stub imports the wheel's w2v_triton) on the
    repository the wheel built, and serves the transcripts the checkout's in-process pipeline gives."""
    from w2v_triton.serving.audio import load_audio
    from w2v_triton.serving.pipeline import ReferencePipeline

    work = tmp_path / "work"
    built = run(wheel_python, "-c", BUILD, str(tmp_path / "repo"), cwd=tmp_path, **{WORK_DIR_ENV: str(work)})
    assert built.returncode == 0, built.stderr
    clips = []
    for n in (8000, 23456, 40000):   # random weights emit letters on noise: the comparison is not vacuous
        clips.append(str(tmp_path / f"{n}.wav"))
        sf.write(clips[-1], (0.1 * rng.standard_normal(n)).astype(np.float32), spec.SAMPLE_RATE, subtype="FLOAT")
    serve = ("import json, sys\n"
             "from client import TranscriptionClient\n"
             "from w2v_triton.serving.audio import load_audio\n"
             "from w2v_triton.serving.tritonserver import Ports, TritonServer\n"
             "server = TritonServer(sys.argv[1], Ports.free())\n"
             "server.start(timeout=180)\n"
             "try:\n"
             "    with TranscriptionClient(server.grpc_url, 'grpc') as asr:\n"
             "        print(json.dumps([asr.transcribe(load_audio(c)) for c in sys.argv[2:]]))\n"
             "finally:\n"
             "    server.stop()\n")
    served = run(wheel_python, "-c", serve, str(tmp_path / "repo"), *clips, cwd=tmp_path, **{WORK_DIR_ENV: str(work)})
    assert served.returncode == 0, served.stderr
    assert (work / "triton_backends" / "python").is_dir() and (work / "tritonserver.log").is_file()
    pipeline = ReferencePipeline(tmp_path / "repo")
    expected = [pipeline.transcribe(load_audio(c)) for c in clips]
    assert json.loads(served.stdout.splitlines()[-1]) == expected and all(expected)


def test_the_work_directory_is_one_setting(tmp_path):
    assert work_dir({WORK_DIR_ENV: str(tmp_path)}) == tmp_path
    assert work_dir({}) == REPO_ROOT / "build"          # running from the checkout: as it always was
