"""Where build artifacts live: one home for every path the builders, benchmarks and tests share.

Everything generated goes under build/ (git-ignored); the served repository defaults to
model_repository/ (its templates are tracked, its rendered files ignored).
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO_ROOT / "build"
CHECKPOINT_CACHE = BUILD_DIR / "checkpoints"        # offline checkpoints, students
ONNX_ROOT = BUILD_DIR / "onnx"                      # <checkpoint name>/model[.<variant>].onnx
REPOS_DIR = BUILD_DIR / "repos"                     # benchmark and experiment repositories
DEFAULT_REPOSITORY = REPO_ROOT / "model_repository"
REFERENCE_MODEL_DIR = REPO_ROOT / "models" / "reference"
# real read speech beside the checkout (../shared; absent on most machines: then no real-speech figures)
REAL_SPEECH_GLOB = str(REPO_ROOT.parent / "shared" / "data" / "speech" / "*" / "manifest.jsonl")
LM_FILES = ("lm.bin", "lm.arpa")                    # what `make lm` may write, preferred first
UNIGRAMS_FILE = "unigrams.txt"


def onnx_dir_for(checkpoint: Path) -> Path:
    """build/onnx/<checkpoint folder name>: the exported model and its variants."""
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
