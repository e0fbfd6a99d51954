"""The GPU serving kit: what a lent GPU machine without a package registry needs to serve the
ensemble and measure it, in one xz file that travels with the working tree (docs/gpu.md).

Why: the lent machine's image has CUDA PyTorch, transformers, onnx, onnxruntime (CPU), numpy and
grpcio, but no tritonserver, no tritonclient and no registry; everything that travels there
(tracked and untracked files, carried paths) is limited to 64 MiB and the tracked tree is ~40 MB.
The wheels (nvidia-pytriton ~55 MB, tritonclient ~14 MB) do not fit; only what the run uses does.
Built from this venv's installed wheels (one source of versions: the pins the venv was made from):

  pytriton/tritonserver/  tritonserver, the python backend, its stubs for STUB_VERSIONS (the
                          wheel's layout, so the binaries' RPATHs still hold)
  nvidia_pytriton.libs/   the libraries those load (readelf closure); ICU's 29 MB locale data is an
                          empty stub: libxml2 links ICU for cloud-storage repositories only
  bin/perf_analyzer       tritonclient's (its wheel ships the binary), with libb64/libcudart from the libraries above
  client/tritonclient/    tritonclient's gRPC client, pure Python (the image has grpcio)
  site-cp<XY>/            SITE_WHEELS installed for the image's CPython (pip --target, no deps)
  speech/                 a real-speech subset laid out like ../shared/data/speech
  libpython/              optional: a shared libpython for an image whose Python has none
  kit.json                what the kit holds (versions, sizes), read back by the set-up

ELF files are stripped, and the tar is xz with the x86 filter (~15 % smaller on executables).
`setup_kit` is the other end: it unpacks, checks the libraries (libpython first) and the imports,
and makes a venv whose .pth puts the kit, the repository and the image's packages on the path,
because the python backend stub ignores PYTHONPATH and finds its packages through that venv.
"""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import importlib.util
import json
import logging
import lzma
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import venv
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from w2v_triton.build.manifest import SPEECH_DIR_ENV, read_rows
from w2v_triton.paths import GPU_KIT_FILE, REPO_ROOT
from w2v_triton.serving.tritonserver import TRITON_HOME_ENV, TritonInstall, missing_libraries

logger = logging.getLogger(__name__)

TRAVEL_LIMIT_MIB = 60.0        # the device tool's limit is 64 MiB: keep room for results and notes
STUB_VERSIONS = ("3.11", "3.12")   # this machine's Python (the CPU check) and the lent image's
IMAGE_PYTHON = "3.12"
# What the served models and the benchmark import that the lent image lacks (KINDS.md's package
# list): audio decoding (soundfile + cffi + pycparser), resampling, the upload-type message, and the
# JSON parser tritonclient.grpc imports. Versions: this venv's. kenlm has no binary wheel and the
# image has no compiler: beam search with a KenLM through pyctcdecode cannot run there (greedy can).
SITE_WHEELS = ("soundfile", "soxr", "cffi", "pycparser", "filetype", "python-rapidjson")
MANYLINUX = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# Libraries whose only content is data the run never reads: replaced by an empty library that
# defines the same symbols (the loader needs the symbols, ICU would refuse the empty data).
DATA_ONLY_LIBRARIES = ("libicudata",)
CLIENT_SKIP = ("http", "__pycache__", "shared_memory", "cuda_shared_memory")   # HTTP client, CUDA IPC
PTH_FILE = "w2v_gpu_kit.pth"


class KitError(RuntimeError):
    """The kit cannot be built or set up; the message says what is missing in one line."""


@dataclass
class KitOptions:
    out: Path = GPU_KIT_FILE
    stub_versions: tuple[str, ...] = STUB_VERSIONS
    image_python: str = IMAGE_PYTHON
    wheels: tuple[str, ...] = SITE_WHEELS
    speech_dir: Path | None = None      # a folder like ../shared/data/speech; None: no speech
    speech_mb: float = 2.0
    libpython: Path | None = None       # carry this libpython<image_python>.so.1.0 too
    preset: int = 9                     # xz preset (9: also extreme); the CPU check uses 0


@dataclass
class KitContents:
    """kit.json: what went in, so the set-up and the report can say what ran."""

    created: str
    stub_versions: list[str]
    image_python: str
    versions: dict[str, str]
    site_wheels: dict[str, str] = field(default_factory=dict)
    speech: dict[str, float] = field(default_factory=dict)
    libpython: str = ""
    files: int = 0
    unpacked_bytes: int = 0


# ---------------------------------------------------------------------------------------- building

def _run(command: list[str], what: str) -> str:
    tool = shutil.which(command[0])
    if tool is None:
        raise KitError(f"{command[0]} not found: {what} needs it (Debian: apt-get install binutils gcc)")
    result = subprocess.run([tool, *command[1:]], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise KitError(f"{' '.join(command[:3])} ... failed ({what}): {result.stderr.strip()[-300:]}")
    return result.stdout


def needed(path: Path) -> list[str]:
    """The DT_NEEDED names of an ELF file."""
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                      _run(["readelf", "-d", str(path)], "the library closure"))


def library_closure(roots: list[Path], libs: Path) -> list[Path]:
    """The files of `libs` that `roots` load, directly or through each other (names outside
    `libs`, e.g. libc or libpython, come from the machine)."""
    found: dict[str, Path] = {}
    todo = list(roots)
    while todo:
        for name in needed(todo.pop()):
            if name not in found and (libs / name).is_file():
                found[name] = libs / name
                todo.append(libs / name)
    return sorted(found.values())


def is_elf(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x7fELF"


def strip(path: Path) -> None:
    """Drop symbol tables and debug sections (the code and the dynamic symbols stay)."""
    _run(["strip", "--strip-unneeded", str(path)], "stripping the kit's binaries")


def data_stub(library: Path, target: Path) -> None:
    """An empty library with `library`'s soname and exported data symbols."""
    symbols = [line.split()[-1] for line in _run(["nm", "-D", "--defined-only", str(library)],
                                                  "the data-library stub").splitlines()
               if len(line.split()) == 3 and line.split()[1] in "RDB"]
    if not symbols:
        raise KitError(f"{library.name} exports no data symbols: cannot stand in for it")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "stub.c"
        source.write_text("".join(f"const char {s}[64] __attribute__((aligned(16))) = {{0}};\n"
                                  for s in symbols))
        _run(["cc", "-shared", "-fPIC", "-O2", f"-Wl,-soname,{library.name}", "-o", str(target), str(source)],
             "the data-library stub")


def server_files(install: TritonInstall, stub_versions: tuple[str, ...]) -> dict[str, Path]:
    """Kit path -> source for tritonserver, the python backend, the stubs, perf_analyzer and the
    libraries they load, in the wheel's layout."""
    files: dict[str, Path] = {}
    server = "pytriton/tritonserver"
    files[f"{server}/bin/tritonserver"] = install.server_binary
    for source in (install.server_dir / "backends" / "python").iterdir():
        if source.is_file():
            files[f"{server}/backends/python/{source.name}"] = source
    for version in stub_versions:
        stub = install.stub(version)
        if not stub.is_file():
            raise KitError(f"the nvidia-pytriton wheel has no python backend stub for Python {version}")
        files[f"{server}/python_backend_stubs/{version}/{stub.name}"] = stub
    if not install.perf_analyzer.is_file():
        raise KitError(f"{install.perf_analyzer} missing: the tritonclient wheel ships it (make venv)")
    files["bin/perf_analyzer"] = install.perf_analyzer
    roots = [source for source in files.values() if is_elf(source)]
    for library in library_closure(roots, install.libs):
        files[f"nvidia_pytriton.libs/{library.name}"] = library
    return files


def client_files() -> dict[str, Path]:
    """tritonclient's Python files without the HTTP client and the shared-memory helpers."""
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        raise KitError("tritonclient is not installed here (make venv)")
    root = Path(list(spec.submodule_search_locations)[0])
    return {f"client/tritonclient/{p.relative_to(root)}": p for p in sorted(root.rglob("*.py"))
            if not set(p.relative_to(root).parts[:-1]) & set(CLIENT_SKIP)}


def install_site_wheels(names: tuple[str, ...], python: str, target: Path) -> dict[str, str]:
    """pip-install `names` at this venv's versions for CPython `python` on manylinux x86-64 into
    `target` (binary wheels only, no dependencies: SITE_WHEELS names them all). Needs PyPI."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            raise KitError(f"{name} is not installed here, so its version is unknown (make venv)") from None
    platforms = [flag for p in MANYLINUX for flag in ("--platform", p)]
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--only-binary=:all:",
               "--target", str(target), "--python-version", python, "--implementation", "cp", *platforms,
               *(f"{n}=={v}" for n, v in versions.items())]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise KitError(f"pip could not fetch the cp{python.replace('.', '')} wheels (PyPI reachable?): "
                       f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    shutil.rmtree(target / "bin", ignore_errors=True)
    return versions


def speech_subset(speech_dir: Path, budget_bytes: int) -> dict[str, list[dict[str, Any]]]:
    """Source folder -> manifest rows: utterances taken in turn from every source (each in its
    manifest's order) while they fit in `budget_bytes`, so every voice and recording is present."""
    sources = {m.parent.name: read_rows(m) for m in sorted(speech_dir.glob("*/manifest.jsonl"))}
    chosen: dict[str, list[dict[str, Any]]] = {name: [] for name in sources}
    used, turn = 0, 0
    while any(turn < len(rows) for rows in sources.values()):
        for name, rows in sources.items():
            if turn < len(rows):
                size = Path(rows[turn]["audio"]).stat().st_size
                if used + size <= budget_bytes:
                    chosen[name].append(rows[turn])
                    used += size
        turn += 1
    return {name: rows for name, rows in chosen.items() if rows}


def write_tar_xz(stage: Path, out: Path, preset: int) -> None:
    """tar of `stage` (sorted, root-owned) compressed with xz: x86 filter + LZMA2 at `preset`, the
    best (9) also "extreme"; a low preset is for quick checks (extreme makes even 0 slow)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    level = preset | (lzma.PRESET_EXTREME if preset == 9 else 0)
    filters = [{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2, "preset": level}]

    def owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    partial = out.with_name(out.name + ".partial")
    with lzma.open(partial, "wb", format=lzma.FORMAT_XZ, filters=filters) as raw, \
            tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in stage.rglob("*") if p.is_file()):
            tar.add(path, arcname=str(path.relative_to(stage)), filter=owner)
    os.replace(partial, out)


def build_kit(options: KitOptions) -> KitContents:
    """Stage, strip and pack the kit into `options.out`; returns what went in."""
    install = TritonInstall.find()
    versions = {d: importlib.metadata.version(d) for d in ("nvidia-pytriton", "tritonclient")}
    with tempfile.TemporaryDirectory(prefix="gpu-kit-") as tmp:
        stage = Path(tmp) / "kit"
        files = {**server_files(install, options.stub_versions), **client_files()}
        for name, source in files.items():
            target = stage / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.parent.name == "nvidia_pytriton.libs" and name.split("/")[-1].startswith(DATA_ONLY_LIBRARIES):
                data_stub(source, target)
                continue
            shutil.copy2(source, target)
            if is_elf(target):
                strip(target)
        contents = KitContents(created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                               stub_versions=list(options.stub_versions), image_python=options.image_python,
                               versions=versions)
        if options.wheels:
            site = stage / f"site-cp{options.image_python.replace('.', '')}"
            contents.site_wheels = install_site_wheels(options.wheels, options.image_python, site)
            for library in site.rglob("*.so*"):
                if is_elf(library):
                    strip(library)
        if options.speech_dir is not None:
            subset = speech_subset(options.speech_dir, int(options.speech_mb * 2**20))
            seconds = 0.0
            for name, rows in subset.items():
                folder = stage / "speech" / name
                folder.mkdir(parents=True)
                for row in rows:
                    shutil.copy2(row["audio"], folder / Path(row["audio"]).name)
                    seconds += float(row.get("duration", 0.0))
                (folder / "manifest.jsonl").write_text("".join(
                    json.dumps({**row, "audio": Path(row["audio"]).name}) + "\n" for row in rows))
            contents.speech = {"utterances": sum(len(r) for r in subset.values()), "seconds": round(seconds, 1)}
        if options.libpython is not None:
            target = stage / "libpython" / f"libpython{options.image_python}.so.1.0"
            target.parent.mkdir()
            shutil.copy2(options.libpython, target)
            strip(target)
            contents.libpython = target.name
        staged = [p for p in stage.rglob("*") if p.is_file()]
        contents.files = len(staged) + 1
        contents.unpacked_bytes = sum(p.stat().st_size for p in staged)
        (stage / "kit.json").write_text(json.dumps(asdict(contents), indent=2))
        write_tar_xz(stage, options.out, options.preset)
    return contents


def travelling_bytes(root: Path = REPO_ROOT) -> dict[str, int]:
    """What the device tool sends besides carried paths: tracked files, untracked files that git
    does not ignore, and a shared/ folder inside the checkout."""
    def listed(*flags: str) -> int:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", *flags], capture_output=True,
                             check=True).stdout.decode()
        paths = [root / p for p in out.split("\0") if p]
        return sum(p.stat().st_size for p in paths if p.is_file() and not p.is_symlink())

    shared = root / "shared"
    return {"tracked": listed("--cached"), "untracked": listed("--others", "--exclude-standard"),
            "shared": sum(p.stat().st_size for p in shared.rglob("*") if p.is_file()) if shared.is_dir() else 0}


def size_record(kit: Path, contents: KitContents, tree: dict[str, int], limit_mib: float,
                command: str) -> dict[str, Any]:
    """What travels, in MiB, as a docs table record ({"columns", "rows", ...}: docs_tables' `table`
    renderer), with the kit's contents; `total_mib` and `over_limit` for the caller."""
    mib = 2**20
    kit_bytes = kit.stat().st_size
    total = kit_bytes + sum(tree.values())
    parts = [("tracked files", tree["tracked"]), ("untracked files git does not ignore", tree["untracked"]),
             ("shared/ in the checkout", tree["shared"]),
             (f"the kit ({kit.name}: {contents.files} files, {contents.unpacked_bytes / mib:.1f} MiB unpacked)",
              kit_bytes)]
    return {"date": contents.created, "command": command, "kit": asdict(contents),
            "columns": ["what travels", "MiB"],
            "rows": [[name, f"{size / mib:.2f}"] for name, size in parts]
            + [[f"together (limit {limit_mib:g} MiB; the device tool's: 64)", f"{total / mib:.2f}"]],
            "total_mib": round(total / mib, 2), "over_limit": total > limit_mib * mib}


# ---------------------------------------------------------------------------------------- setting up

@dataclass
class KitEnvironment:
    """What the set-up exports: the kit for tritonserver.py and the benchmarks, and the python
    to run them with (the kit's venv)."""

    home: Path
    python: Path
    speech: Path | None
    ld_library_path: str

    def exports(self) -> str:
        values = {TRITON_HOME_ENV: str(self.home), "PYTHON": str(self.python),
                  "LD_LIBRARY_PATH": self.ld_library_path}
        if self.speech is not None:
            values[SPEECH_DIR_ENV] = str(self.speech)
        return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items() if v)


def unpack(kit: Path, into: Path) -> KitContents:
    """Unpack `kit` into the fresh folder `into`."""
    if into.exists() and any(into.iterdir()):
        raise KitError(f"{into} is not empty: unpack a kit into a fresh folder")
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(kit, "r:xz") as tar:
        tar.extractall(into, filter="data")
    return KitContents(**json.loads((into / "kit.json").read_text()))


def make_venv(home: Path, contents: KitContents) -> Path:
    """A venv over this interpreter whose .pth adds, in order, the kit's client, its site wheels
    (when built for this Python), the repository and this interpreter's own package folders.
    The stub runs the models in it: it ignores PYTHONPATH but reads a venv's .pth files."""
    target = home / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(target)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    site = home / f"site-cp{version.replace('.', '')}"
    folders = [home / "client"] + ([site] if version == contents.image_python and site.is_dir() else [])
    folders += [REPO_ROOT] + [Path(p) for p in sys.path if p.endswith(("site-packages", "dist-packages"))
                              and Path(p).is_dir()]
    purelib = Path(subprocess.run([str(target / "bin" / "python"), "-c",
                                   "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    # addsitedir (not a bare path line) so that the image's own .pth files are read too
    (purelib / PTH_FILE).write_text("import site; " + "; ".join(f"site.addsitedir({str(f)!r})" for f in folders)
                                    + "\n")
    return target / "bin" / "python"


def link_fallbacks(missing: dict[str, list[str]], libs: Path, target: Path) -> Path | None:
    """Links under the plain names ldd could not find (libssl.so.3) to the kit's renamed copies
    (libssl-<hash>.so.3); only for names the machine lacks, so that no process ever gets a second
    copy of a library the machine has. The folder, or None when nothing was linked."""
    linked = False
    for name in sorted({n for names in missing.values() for n in names}):
        stem, _, soversion = name.partition(".so")
        copies = sorted(libs.glob(f"{stem}-*.so{soversion}*"))
        if copies:
            target.mkdir(parents=True, exist_ok=True)
            (target / name).unlink(missing_ok=True)
            (target / name).symlink_to(copies[0])
            linked = True
    return target if linked else None


IMPORT_CHECK = """
import importlib, json, sys
found, failed = {}, {}
for name in sys.argv[1:]:
    try:
        found[name] = getattr(importlib.import_module(name), "__file__", "") or ""
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"found": found, "failed": failed}))
"""
# what the served models, the repository builder and the benchmark import (greedy decoder, torch
# or onnxruntime acoustic model, perf_analyzer driver)
REQUIRED_MODULES = ("soundfile", "soxr", "numpy", "torch", "transformers", "onnx", "onnxruntime",
                    "w2v_triton.serving.acoustic_torch", "w2v_triton.serving.preprocessing",
                    "w2v_triton.serving.ctc_decoding", "builders.repository", "benchmarks.run")
CLIENT_MODULE = "tritonclient.grpc"   # `python -m client`; the benchmark itself needs only perf_analyzer


def check_libraries(install: TritonInstall) -> None:
    """Fail with one line when the server, the backend, the stub for this Python or perf_analyzer
    lacks a shared library; a missing libpython (the stub embeds CPython) is named first."""
    missing = missing_libraries(install)
    stub_missing = missing.get(str(install.stub()), [])
    if any(name.startswith("libpython") for name in stub_missing):
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        raise KitError(f"this Python ({sys.executable}) has no shared {stub_missing[0]} for the stub: rebuild "
                       f"the kit with --libpython <a libpython{version}.so.1.0> (docs/gpu.md)")
    if missing:
        raise KitError("libraries not found: " + "; ".join(f"{Path(f).name}: {', '.join(n)}"
                                                           for f, n in missing.items()))


def setup_kit(kit: Path, into: Path) -> KitEnvironment:
    """Unpack `kit` and check that everything the run loads is there; the environment to export.
    Checks, in order: the shared libpython the stub for this Python needs (the kit's own when it
    carries one and the machine has none), every library of the server, the backend, the stub and
    perf_analyzer (links to the kit's copies for plain names the machine lacks, e.g. libssl.so.3),
    then the Python imports in the kit's venv (tritonclient from the kit)."""
    contents = unpack(kit, into)
    home = into.resolve()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if version not in contents.stub_versions:
        raise KitError(f"the kit has stubs for Python {', '.join(contents.stub_versions)}, not {version}")
    ld_path = os.environ.get("LD_LIBRARY_PATH", "")
    if contents.libpython:   # after the machine's LIBDIR (server_environment puts that first)
        ld_path = os.pathsep.join(filter(None, (ld_path, str(home / "libpython"))))
    os.environ["LD_LIBRARY_PATH"] = ld_path
    os.environ[TRITON_HOME_ENV] = str(home)
    install = TritonInstall.find()
    fallback = link_fallbacks(missing_libraries(install), install.libs, home / "fallback_libs")
    if fallback:
        ld_path = os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, (ld_path, str(fallback))))
    check_libraries(install)
    python = make_venv(home, contents)
    result = subprocess.run([str(python), "-c", IMPORT_CHECK, *REQUIRED_MODULES, CLIENT_MODULE],
                            capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    if result.returncode != 0:
        raise KitError(f"the kit's venv does not start: {result.stderr.strip()[-300:]}")
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    found, failed = probe["found"], probe["failed"]
    required = [m for m in REQUIRED_MODULES if m in failed]
    if required:
        raise KitError(f"{required[0]} does not import in the kit's venv: {failed[required[0]]}")
    if CLIENT_MODULE in failed:   # said, not fatal: the measurements do not use it
        logger.warning("%s does not import (%s): `python -m client` will not work here; the benchmark "
                       "does not need it", CLIENT_MODULE, failed[CLIENT_MODULE])
    elif not found[CLIENT_MODULE].startswith(str(home)):
        raise KitError(f"{CLIENT_MODULE} comes from {found[CLIENT_MODULE]}, not the kit")
    logger.info("kit set up in %s: nvidia-pytriton %s (tritonserver), tritonclient %s from the kit; %s", home,
                contents.versions.get("nvidia-pytriton"), contents.versions.get("tritonclient"),
                ", ".join(f"{m} from {Path(f).parent}" for m, f in found.items() if m in ("soundfile", "torch")))
    speech = home / "speech"
    return KitEnvironment(home, python, speech if speech.is_dir() else None, ld_path)
