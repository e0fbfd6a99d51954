"""Where things live: the one home of every path the library, builders, benchmarks and tests share.

Everything generated (build outputs, the checkpoint and ONNX caches, Triton's backend folder, logs)
goes under one work directory: `$W2V_TRITON_WORK_DIR` when set, else `<checkout>/build` when the
package runs from a checkout (as it always did), else `$XDG_CACHE_HOME/w2v-triton` (~/.cache) for an
installed wheel, whose own folder is read-only site-packages. The served repository defaults to the
checkout's `model_repository/` (its templates are tracked there, its rendered files git-ignored), and
to `<work dir>/model_repository` outside one. What only a checkout has (`models/reference`, docs,
benchmark results) is found from REPO_ROOT and is simply absent from a wheel.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

WORK_DIR_ENV = "W2V_TRITON_WORK_DIR"
# The checkout this package runs from (editable install, or a `python -m` in the checkout). Installed
# from a wheel this is site-packages, where none of the checkout's files exist.
REPO_ROOT = Path(__file__).resolve().parent.parent
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "model_repository").is_dir()


def work_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The work directory (module docstring): the environment variable, the checkout's build/, or
    the user's cache folder."""
    if environ.get(WORK_DIR_ENV):
        return Path(environ[WORK_DIR_ENV]).expanduser().resolve()
    if IN_CHECKOUT:
        return REPO_ROOT / "build"
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "w2v-triton"


WORK_DIR = work_dir()
CHECKPOINT_CACHE = WORK_DIR / "checkpoints"         # offline checkpoints, students
ONNX_ROOT = WORK_DIR / "onnx"                       # <checkpoint name>/model[.<variant>].onnx
REPOS_DIR = WORK_DIR / "repos"                      # benchmark and experiment repositories
CORPUS_DIR = WORK_DIR / "corpus"                    # what `make corpus` writes (train/dev/test_*.jsonl)
LM_DIR = WORK_DIR / "lm"                            # what `make lm` writes
LOGITS_DIR = WORK_DIR / "logits"                    # cached acoustic logits of decoder/LM studies
KENLM_CACHE = WORK_DIR / "kenlm"                    # KenLM's build_binary, compiled once
TRITON_BACKENDS = WORK_DIR / "triton_backends"      # the python backend + its stub for this interpreter
TRITON_LIBS = WORK_DIR / "triton_libs"              # library links perf_analyzer and the stub look for
SERVER_LOG = WORK_DIR / "tritonserver.log"
GPU_KIT_FILE = WORK_DIR / "gpu-kit" / "w2v-gpu-kit.tar.xz"   # `make gpu-kit` (docs/gpu.md); the device tool carries it
DEFAULT_REPOSITORY = REPO_ROOT / "model_repository" if IN_CHECKOUT else WORK_DIR / "model_repository"
REFERENCE_MODEL_DIR = REPO_ROOT / "models" / "reference"   # committed in the checkout only
LM_FILES = ("lm.bin", "lm.arpa")                    # what `make lm` may write, preferred first
UNIGRAMS_FILE = "unigrams.txt"


def onnx_dir_for(checkpoint: Path) -> Path:
    """<work dir>/onnx/<checkpoint folder name>: the exported model and its variants."""
    return ONNX_ROOT / Path(checkpoint).resolve().name


def lm_files(lm_dir: Path | None) -> tuple[list[Path], str, str]:
    """The LM and unigram files of a `make lm` folder to copy next to the decoder, and their
    names for its config; ([], "", "") without a folder."""
    if lm_dir is None:
        return [], "", ""
    model = next((lm_dir / n for n in LM_FILES if (lm_dir / n).is_file()), None)
    unigrams = lm_dir / UNIGRAMS_FILE
    if model is None:
        raise FileNotFoundError(f"{lm_dir} holds no {' or '.join(LM_FILES)}: run `make lm` first")
    files = [model] + ([unigrams] if unigrams.is_file() else [])
    return files, model.name, unigrams.name if unigrams.is_file() else ""
