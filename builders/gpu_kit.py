"""The GPU serving kit (`make gpu-kit`, docs/gpu.md): build it here, set it up on a lent GPU machine.

    python -m builders.gpu_kit build [--out build/gpu-kit/w2v-gpu-kit.tar.xz]
        tritonserver + python backend + stubs + perf_analyzer + tritonclient's gRPC client + the
        image's missing wheels + a real-speech subset, stripped, one xz file; prints its size and
        the size of what travels with it (also written beside the kit, <kit>.json, as a docs table
        record), and fails when together they pass the limit.
    eval "$(python3 -m builders.gpu_kit setup KIT --into /tmp/w2v-kit)"
        unpack into a fresh folder, check libpython, every library and the imports, and print the
        exports (W2V_TRITON_HOME, W2V_SPEECH_DIR, PYTHON = the kit's venv) for the benchmark.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from w2v_triton.build.gpu_kit import (IMAGE_PYTHON, SITE_WHEELS, STUB_VERSIONS, TRAVEL_LIMIT_MIB,
                                      KitError, KitOptions, build_kit, setup_kit, size_record, travelling_bytes)
from w2v_triton.build.manifest import shared_speech_dir
from w2v_triton.paths import GPU_KIT_FILE, REPO_ROOT
from w2v_triton.serving.tritonserver import ServerError

def build(args: argparse.Namespace) -> int:
    speech = None if args.no_speech else args.speech_dir or shared_speech_dir(REPO_ROOT)
    if speech is not None and not any(speech.glob("*/manifest.jsonl")):
        print(f"gpu-kit: no real speech in {speech}: the kit carries none (the benchmark then uses "
              "synthetic clips); --speech-dir names another folder", file=sys.stderr)
        speech = None
    options = KitOptions(out=args.out, stub_versions=tuple(args.stubs.split(",")), image_python=args.image_python,
                         wheels=() if args.no_wheels else SITE_WHEELS, speech_dir=speech, speech_mb=args.speech_mb,
                         libpython=args.libpython, preset=args.preset)
    contents = build_kit(options)
    record = size_record(options.out, contents, travelling_bytes(), args.limit_mib,
                         "python -m builders.gpu_kit " + " ".join(args.argv))
    record_path = options.out.with_suffix("").with_suffix(".json")
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"gpu-kit: {options.out} (xz -{args.preset}{'e' if args.preset == 9 else ''}): speech {contents.speech or 'none'}; "
          f"wheels {contents.site_wheels or 'none'}")
    for name, mib in record["rows"]:
        print(f"gpu-kit: {mib:>7} MiB  {name}")
    print(f"gpu-kit: what travels: {record_path}")
    if record["over_limit"]:
        print(f"gpu-kit: {record['total_mib']} MiB would travel, over {args.limit_mib:g} MiB: carry less "
              "(--speech-mb, untracked files)", file=sys.stderr)
        return 1
    return 0


def setup(args: argparse.Namespace) -> int:
    print(setup_kit(args.kit, args.into).exports(), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="make the kit here (needs PyPI for the wheels, binutils, cc)")
    make.add_argument("--out", type=Path, default=GPU_KIT_FILE)
    make.add_argument("--stubs", default=",".join(STUB_VERSIONS), help="python backend stubs to carry")
    make.add_argument("--image-python", default=IMAGE_PYTHON, help="the lent image's Python (its wheels)")
    make.add_argument("--speech-dir", type=Path, help="real speech (default: ../shared/data/speech)")
    make.add_argument("--speech-mb", type=float, default=KitOptions.speech_mb, help="size of the speech subset")
    make.add_argument("--no-speech", action="store_true")
    make.add_argument("--no-wheels", action="store_true", help="leave out the site wheels (no PyPI needed)")
    make.add_argument("--libpython", type=Path, help="also carry this shared libpython of the image's version")
    make.add_argument("--preset", type=int, default=KitOptions.preset, choices=range(10),
                      help="xz preset (9, the default, is also extreme); 0 for a quick check")
    make.add_argument("--limit-mib", type=float, default=TRAVEL_LIMIT_MIB,
                      help="fail when the kit and the travelling tree pass this")
    make.set_defaults(run=build)
    unpack = commands.add_parser("setup", help="unpack and check on the target; prints shell exports")
    unpack.add_argument("kit", type=Path)
    unpack.add_argument("--into", type=Path, required=True, help="a fresh folder")
    unpack.set_defaults(run=setup)
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="gpu-kit: %(message)s", stream=sys.stderr)
    try:
        return int(args.run(args))
    except (KitError, ServerError) as exc:
        print(f"gpu-kit: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
