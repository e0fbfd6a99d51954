"""The library's layers hold (import-linter contracts in pyproject.toml, run by `make lint`): train ->
eval -> build -> serving -> paths and never back, the library imports no command line, the client
and the gateway use the serving layer alone, builders are independent. Here: the contracts catch a
planted back import, the files import-linter cannot see (the Triton models, tools) keep to their
layer, and the onnxruntime serving path imports without torch or transformers (the server image
does not need them)."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from w2v_triton.paths import REPO_ROOT

ROOT_PACKAGES = ("w2v_triton", "builders", "benchmarks", "gateway", "client")
# The onnxruntime path: must import with torch and transformers absent.
WITHOUT_TORCH = ["spec", "typing", "settings", "vocabulary", "audio", "preprocessing", "batch_coupling", "devices",
                 "long_audio", "acoustic", "acoustic_openvino", "ctc_output", "ctc_incremental", "ctc_decoding",
                 "vad", "streaming"]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def imported_modules(path: Path) -> set[str]:
    """Absolute module names a file imports anywhere (module level and inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
                          capture_output=True, text=True, cwd=root, timeout=300,
                          env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(root)})


def copy_sources(target: Path) -> Path:
    shutil.copy2(REPO_ROOT / "pyproject.toml", target / "pyproject.toml")
    for package in ROOT_PACKAGES:
        shutil.copytree(REPO_ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__", "static"))
    return target


@pytest.mark.parametrize(("module", "back_import"), [
    ("serving/spec.py", "import w2v_triton.build.checkpoints"),            # serving -> build
    ("build/manifest.py", "from w2v_triton.eval import metrics"),          # build -> eval
    ("serving/audio.py", "import builders.repository"),                    # library -> command line
    ("serving/vocabulary.py", "import w2v_triton.train.text"),             # serving -> train
])
def test_the_contracts_fail_on_a_planted_back_import(tmp_path, module, back_import):
    assert lint_imports(copy_sources(tmp_path)).returncode == 0, "the unchanged tree keeps its contracts"
    planted = tmp_path / "w2v_triton" / module
    planted.write_text(planted.read_text() + f"\n{back_import}  # planted\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout[-2000:]


def test_every_library_module_sits_in_a_layer():
    """`exhaustive = true` in the layers contract: a new top-level module outside the layers fails
    the lint; here the layers are the packages the tree shows."""
    children = sorted(p.stem if p.is_file() else p.name for p in (REPO_ROOT / "w2v_triton").iterdir()
                      if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file())
    assert children == ["build", "eval", "paths", "serving", "train"]


def test_triton_models_import_only_the_serving_layer():
    offenders = {}
    for model_py in (REPO_ROOT / "model_repository").glob("*/1/model.py"):
        bad = sorted(m for m in imported_modules(model_py)
                     if m.split(".")[0] == "w2v_triton" and not m.startswith("w2v_triton.serving"))
        if bad:
            offenders[model_py.parent.parent.name] = bad
    assert not offenders, f"a Triton model imports outside w2v_triton.serving: {offenders}"


def test_tools_import_no_test_code():
    offenders = [f"{path.relative_to(REPO_ROOT)}: {name}" for folder in ("builders", "tools", "benchmarks", "client")
                 for path in (REPO_ROOT / folder).rglob("*.py") for name in imported_modules(path)
                 if name.split(".")[0] in ("tests", "conftest") or name.startswith("test_")]
    assert not offenders, offenders


def test_the_onnxruntime_serving_path_needs_neither_torch_nor_transformers(tiny_repository):
    code = f"""
import importlib, importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"{{name}} is blocked")
sys.meta_path.insert(0, Block())
import numpy as np
for module in {WITHOUT_TORCH!r}:
    importlib.import_module("w2v_triton.serving." + module)
from w2v_triton.serving.acoustic import AcousticModel
from w2v_triton.serving.ctc_decoding import CTCDecoder
from w2v_triton.serving.vocabulary import Vocabulary
model = AcousticModel({str(tiny_repository / "acoustic_model" / "1" / "model.onnx")!r}, 1)
logits = model.run([np.zeros(8000, np.float32)])[0]
print(repr(CTCDecoder(Vocabulary.load_from_dir({str(tiny_repository / "decoder")!r})).decode(logits)))
assert not any(m.split(".")[0] in ("torch", "transformers") for m in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
