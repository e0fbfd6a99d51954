"""The library's layers hold: serving modules (what runs inside Triton) import only serving
modules, the import graph of w2v_triton has no cycle, builders and tools import no builder or
test, and the onnxruntime serving path imports without torch or transformers (the server image
does not need them)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from w2v_triton.checkpoints import REPO_ROOT

PACKAGE = REPO_ROOT / "w2v_triton"
# What runs inside Triton (and the runtimes it may load), plus the ARPA reader the decoder uses.
SERVING = {
    "spec", "typing", "settings", "vocabulary", "audio", "preprocessing", "batch_coupling", "devices", "long_audio", "acoustic",
    "acoustic_torch", "acoustic_openvino", "masked_frontend", "ctc_model", "ctc_output", "ctc_decoding", "ctc_flashlight",
    "lm", "lm.arpa", "lm.sphinx_binary",
}
# The onnxruntime path: must import with torch and transformers absent.
WITHOUT_TORCH = ["spec", "typing", "settings", "vocabulary", "audio", "preprocessing", "batch_coupling", "devices", "long_audio", "acoustic",
                 "acoustic_openvino", "ctc_output", "ctc_decoding"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """w2v_triton modules imported anywhere in the file (module level and inside functions)."""
    found: set[str] = set()
    package = module_name(path).split(".")[:-1] if path.name != "__init__.py" else module_name(path).split(".")
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                   for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:   # `if TYPE_CHECKING:` imports never run
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("w2v_triton")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: from .arpa import x
                base = ".".join(["w2v_triton", *package[: len(package) - node.level + 1]])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.startswith("w2v_triton"):
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m.removeprefix("w2v_triton.") for m in found if m.removeprefix("w2v_triton.") in modules}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) - {module_name(p)} for p in PACKAGE.rglob("*.py") if module_name(p)}


def test_serving_modules_import_only_serving_modules():
    edges = graph()
    leaks = {m: sorted(edges[m] - SERVING) for m in SERVING if edges[m] - SERVING}
    assert not leaks, f"serving -> build/evaluation imports: {leaks}"


def test_the_import_graph_has_no_cycle():
    edges = graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(path[path.index(nxt):] + [nxt])}")
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_builders_and_tools_import_only_the_library():
    offenders = []
    for folder in ("builders", "tools", "benchmarks", "client"):
        for path in (REPO_ROOT / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                bad = [n for n in names if n.split(".")[0] in ("tests", "conftest") or n.startswith("test_")
                       or (folder == "builders" and n.startswith("builders"))]
                offenders += [f"{path.relative_to(REPO_ROOT)}: {n}" for n in bad]
    assert not offenders, offenders


def test_the_onnxruntime_serving_path_needs_neither_torch_nor_transformers(tiny_repository):
    code = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"{{name}} is blocked")
sys.meta_path.insert(0, Block())
import numpy as np
for module in {WITHOUT_TORCH!r}:
    importlib.import_module("w2v_triton." + module)
from w2v_triton.acoustic import AcousticModel
from w2v_triton.ctc_decoding import CTCDecoder
from w2v_triton.vocabulary import Vocabulary
model = AcousticModel({str(tiny_repository / "acoustic_model" / "1" / "model.onnx")!r}, 1)
logits = model.run([np.zeros(8000, np.float32)])[0]
print(repr(CTCDecoder(Vocabulary.load_from_dir({str(tiny_repository / "decoder")!r})).decode(logits)))
assert not any(m.split(".")[0] in ("torch", "transformers") for m in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
