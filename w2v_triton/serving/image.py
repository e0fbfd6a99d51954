"""The server image (docker/Dockerfile.server): what it installs, what it must import, what it serves.

One place for the three questions a deploy depends on, so that the Dockerfile, `gcp/deploy.sh` and
the tests cannot disagree:
  * which pyproject extras each image variant installs, from which generated pins, with which pip
    command lines (`wheels`, `install`: the Dockerfile runs them, and so does the image-environment
    test, tests/test_image_env.py, in a venv of its own);
  * which modules the Triton models import at load time in every flavour the image serves: the
    closure of `model_repository/*/1/model.py` through `w2v_triton.serving`, computed from the
    source (`check-imports`: the Dockerfile's import check), so a package missing from an extra
    fails the image build instead of a deployed decoder's load;
  * which extras a built repository needs (`required_extras`, from its build_info.json), so that
    `gcp/deploy.sh` refuses in one line a repository its image cannot serve (`check-repository`).

Standard library only: the Dockerfile runs it before anything is installed, deploy.sh with the venv's
Python, and the image (Python 3.10) after.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

PROJECT = "w2v-triton"
VARIANTS = ("cpu", "gpu")
# What `docker build --build-arg VARIANT=...` installs (pyproject.toml [project.optional-dependencies]).
IMAGE_EXTRAS: Mapping[str, tuple[str, ...]] = {"cpu": ("serve",), "gpu": ("serve-gpu",)}
IMAGE_PYTHON = "3.10"        # nvcr.io/nvidia/tritonserver:24.10-py3
PINS_DIR = "requirements"
BUILD_INFO = "build_info.json"   # written by w2v_triton.build.repository (its options: what a repository needs)
# The extra each acoustic runtime needs (onnxruntime: by device), and the module AcousticModel imports
# for it (acoustic.py; onnxruntime runs in acoustic.py itself).
RUNTIME_EXTRAS: Mapping[str, Mapping[str, str]] = {
    "onnxruntime": {"cpu": "serve", "gpu": "serve-gpu"},
    "torch": {"cpu": "torch", "gpu": "torch"},
    "openvino": {"cpu": "openvino"},
}
RUNTIME_MODULES: Mapping[str, str] = {"torch": "w2v_triton.serving.acoustic_torch",
                                      "openvino": "w2v_triton.serving.acoustic_openvino"}
DECODER_EXTRA = "serve-base"     # the preprocessor, decoder and streaming models, every backend
# Triton provides these to a python-backend model; nothing installs them.
SERVER_PROVIDED = frozenset({"triton_python_backend_utils"})
_OWN_EXTRA = re.compile(r"^w2v[-_]triton\s*\[([^\]]+)\]\s*;\s*extra\s*==\s*['\"]([^'\"]+)['\"]\s*$")


class ImageError(RuntimeError):
    """The image cannot install or serve something; the message is the one line a user reads."""


def pins_file(name: str, python: str) -> str:
    """requirements/<name>-py<XY>.txt: the pins tools/dev/pins.py generates for one install target."""
    return f"{PINS_DIR}/{name}-py{python.replace('.', '')}.txt"


def server_pins(variant: str, python: str) -> str:
    return pins_file(f"server-{variant}", python)


def running_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _extras(variant: str) -> str:
    if variant not in IMAGE_EXTRAS:
        raise ImageError(f"image variant {variant!r}: expected one of {VARIANTS}")
    return ",".join(IMAGE_EXTRAS[variant])


def wheel_command(variant: str, root: Path, wheel_dir: Path, python: str = sys.executable) -> list[str]:
    """The image's build stage: wheels of the project and of its extras' closure, versions from the pins
    (kenlm has no wheel on PyPI: pip compiles it here)."""
    pins = Path(root) / server_pins(variant, running_python())
    if not pins.is_file():
        raise ImageError(f"{pins} is missing: `make pins` generates the pins of every install target")
    return [python, "-m", "pip", "wheel", "--wheel-dir", str(wheel_dir), "-c", str(pins),
            f"{Path(root).resolve()}[{_extras(variant)}]"]


def install_command(variant: str, root: Path, wheel_dir: Path, python: str = sys.executable) -> list[str]:
    """The image's install: the project with its extras, only from the wheels built by wheel_command."""
    pins = Path(root) / server_pins(variant, running_python())
    return [python, "-m", "pip", "install", "--no-cache-dir", "--no-index", "--find-links", str(wheel_dir),
            "-c", str(pins), f"{PROJECT}[{_extras(variant)}]"]


# --- which extras a repository needs ------------------------------------------------------------

def required_extras(build_info: Mapping[str, Any]) -> dict[str, str]:
    """extra -> the build choice that needs it, for a repository's build_info.json (written by
    w2v_triton.build.repository). The variant enters through the runtime it runs in (ov-* variants:
    openvino; every ONNX variant: onnxruntime)."""
    options = build_info.get("options")
    if not isinstance(options, Mapping):
        raise ImageError(f"{BUILD_INFO} has no build options: rebuild the repository (`make build-models`)")
    runtime, device = str(options.get("runtime", "onnxruntime")), str(options.get("device", "cpu"))
    platform = str(options.get("platform", "python"))
    decoder = options.get("decoder") or {}
    needs = {DECODER_EXTRA: "the preprocessor and the decoder (python models)"}
    if decoder.get("mode") == "beam":
        needs[DECODER_EXTRA] = f"decoder beam, backend {decoder.get('backend', 'flashlight')}" + (
            " + KenLM" if decoder.get("lm_path") else "")
    if platform == "onnxruntime_onnx":
        return needs   # the acoustic model runs in Triton's own onnxruntime backend (NGC image)
    if runtime not in RUNTIME_EXTRAS or device not in RUNTIME_EXTRAS[runtime]:
        raise ImageError(f"acoustic runtime {runtime!r} on {device!r} is unknown to this version: rebuild the repository")
    variant = " (variant ov-int8)" if options.get("openvino_ir") else ""
    needs[RUNTIME_EXTRAS[runtime][device]] = f"acoustic runtime {runtime} on {device}{variant}"
    return needs


def declared_extras(distribution: str = PROJECT) -> dict[str, set[str]]:
    """extra -> the project's own extras it includes (`w2v-triton[serve-base]`), from the installed
    metadata (the image's wheel, the venv's editable install): pyproject.toml, as installed."""
    try:
        requires = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        raise ImageError(f"{distribution} is not installed here (`make venv`)") from None
    graph: dict[str, set[str]] = {}
    for line in requires:
        match = _OWN_EXTRA.match(line.strip())
        if match:
            graph.setdefault(match[2], set()).update(e.strip() for e in match[1].split(","))
        elif "extra ==" in line:
            graph.setdefault(re.findall(r"extra\s*==\s*['\"]([^'\"]+)", line)[0], set())
    return graph


def covered(extras: Sequence[str], graph: Mapping[str, set[str]]) -> set[str]:
    """The extras installed by installing `extras` (with the ones they include)."""
    seen: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop()
        if extra not in seen:
            seen.add(extra)
            todo.extend(graph.get(extra, ()))
    return seen


def uncovered(build_info: Mapping[str, Any], variant: str, graph: Mapping[str, set[str]]) -> dict[str, str]:
    """The extras (-> why) a repository needs that the image variant does not install."""
    have = covered(IMAGE_EXTRAS[variant], graph)
    return {extra: why for extra, why in required_extras(build_info).items() if extra not in have}


def served_runtimes(variant: str, graph: Mapping[str, set[str]]) -> set[str]:
    have = covered(IMAGE_EXTRAS[variant], graph)
    return {runtime for runtime, by_device in RUNTIME_EXTRAS.items() if set(by_device.values()) & have}


def check_repository(build_info_path: Path | None, build_info_text: str | None, variant: str) -> str:
    """'' when the variant's image serves the repository, else the one line that says why not."""
    where = str(build_info_path) if build_info_path else BUILD_INFO
    if build_info_path is not None:
        if not build_info_path.is_file():
            return (f"{build_info_path} is missing: build the repository with `make build-models` "
                    "(it records what the repository needs from the image)")
        build_info_text = build_info_path.read_text()
    try:
        info = json.loads(build_info_text or "")
        missing = uncovered(info, variant, declared_extras())
    except (json.JSONDecodeError, ImageError) as exc:
        return f"{where}: {exc}"
    if not missing:
        return ""
    needs = "; ".join(f"{why} needs extra {extra}" for extra, why in missing.items())
    return (f"the {variant} server image (extras {', '.join(IMAGE_EXTRAS[variant])}) cannot serve this repository: "
            f"{needs} (docs/deploy-gcp.md, \"The images\")")


# --- what the image must import -----------------------------------------------------------------

@dataclass
class Closure:
    """The modules Triton's python models import at load time (module -> who imports it first)."""
    own: dict[str, str] = field(default_factory=dict)          # w2v_triton.* modules
    external: dict[str, str] = field(default_factory=dict)     # third-party modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _guards_import_error(node: ast.Try) -> bool:
    names = [ast.unparse(h.type) for h in node.handlers if h.type is not None]
    return any("ImportError" in n or "ModuleNotFoundError" in n for n in names)


def imports_of(source: str, package: str) -> list[tuple[str, tuple[str, ...]]]:
    """(module, imported names) of every import in `source`, at module level or inside a function,
    except those only for type checkers (TYPE_CHECKING) and optional ones (try/except ImportError)."""
    found: list[tuple[str, tuple[str, ...]]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Try) and _guards_import_error(child):
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, ()) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - child.level + 1] + ([base] if base else []))
                found.append((base, tuple(alias.name for alias in child.names)))
            visit(child)

    visit(ast.parse(source))
    return found


def _top(name: str) -> str:
    return name.split(".")[0]


def _submodules(package: str, names: Sequence[str]) -> list[str]:
    """The names of `from package import a, b` that are modules of the package (files, not attributes)."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec else []
    return [f"{package}.{n}" for n in names
            if any((Path(d) / f"{n}.py").is_file() or (Path(d) / n / "__init__.py").is_file() for d in locations)]


def load_closure(model_files: Sequence[Path], runtimes: set[str]) -> Closure:
    """Follow the imports of the Triton models' model.py files through w2v_triton, leaving out the
    acoustic runtime modules of runtimes not in `runtimes`. Third-party modules are recorded, not
    followed (their own imports are their packaging's business)."""
    skipped = {module for runtime, module in RUNTIME_MODULES.items() if runtime not in runtimes}
    closure = Closure()
    queue: list[tuple[str, str, str]] = []   # (module, source text, its package)
    for path in model_files:
        queue.append((str(path), path.read_text(), ""))
    while queue:
        name, source, package = queue.pop()
        for module, names in imports_of(source, package):
            if module == "__future__" or _top(module) in sys.stdlib_module_names or module in SERVER_PROVIDED:
                continue
            if _top(module) != "w2v_triton":
                closure.external.setdefault(module, name)
                continue
            for target in [module, *_submodules(module, names)]:
                if target in skipped or target in closure.own:
                    continue
                spec = importlib.util.find_spec(target)   # imports its parent packages, not itself
                if spec is None or spec.origin is None:
                    raise ImageError(f"{name} imports {target}, which is not in the package")
                closure.own[target] = name
                is_package = spec.submodule_search_locations is not None
                queue.append((target, Path(spec.origin).read_text(), target if is_package else target.rpartition(".")[0]))
    return closure


def check_imports(variant: str, models: Path) -> list[str]:
    """Import every module of the load-time closure for the image variant's runtimes; the failures,
    one line each (module, who imports it, why)."""
    runtimes = served_runtimes(variant, declared_extras())
    closure = load_closure(sorted(Path(models).glob("*/1/model.py")), runtimes)
    if not closure.own:
        return [f"no model.py files under {models}/*/1/: nothing to check"]
    failures = []
    for module, importer in [*closure.own.items(), *closure.external.items()]:
        try:
            importlib.import_module(module)
        except Exception as exc:   # any failure to import is what the check is for
            failures.append(f"{module} (imported by {importer}): {type(exc).__name__}: {exc}")
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m w2v_triton.serving.image", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("wheels", "build the wheels the image installs (the Dockerfile's build stage)"),
                       ("install", "install the project + the variant's extras from those wheels only")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--variant", choices=VARIANTS, required=True)
        cmd.add_argument("--wheel-dir", type=Path, required=True)
        cmd.add_argument("--root", type=Path, default=Path("."), help="the project source (pyproject.toml, requirements/)")
    check = sub.add_parser("check-imports", help="import every module the models load in the variant's flavours")
    check.add_argument("--variant", choices=VARIANTS, required=True)
    check.add_argument("--models", type=Path, required=True, help="a folder of <model>/1/model.py (model_repository)")
    repo = sub.add_parser("check-repository", help="exit 1 with one line when the variant's image cannot serve it")
    repo.add_argument("--variant", choices=VARIANTS, required=True)
    source = repo.add_mutually_exclusive_group(required=True)
    source.add_argument("--repository", type=Path, help="a local repository folder (its build_info.json)")
    source.add_argument("--build-info-stdin", action="store_true", help="build_info.json on stdin (from gs://)")
    args = parser.parse_args(argv)
    try:
        if args.command in ("wheels", "install"):
            make = wheel_command if args.command == "wheels" else install_command
            command = make(args.variant, args.root, args.wheel_dir)
            print("+ " + " ".join(command), flush=True)
            return subprocess.run(command).returncode
        if args.command == "check-imports":
            failures = check_imports(args.variant, args.models)
            for line in failures:
                print(f"error: {line}", file=sys.stderr)
            if not failures:
                print(f"image {args.variant}: every module the models load imports")
            return 1 if failures else 0
        problem = check_repository(args.repository / BUILD_INFO if args.repository else None,
                                   None if args.repository else sys.stdin.read(), args.variant)
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
