#!/usr/bin/env bash
# Build the carry folder that tools/gpu/gpu_offline_env.sh expects, on a machine WITH package access
# (Debian apt + PyPI), for a lent GPU machine without any (Python 3.12, x86-64):
#   debs/      espeak-ng, libespeak-ng1, espeak-ng-data, libsonic0; flite, libflite1, libasound2
#              (apt-get download; the corpus' two synthesisers, w2v_triton/train/synthesizers.py)
#   pcaudio/   libpcaudio.so.0 compiled from tools/gpu/noop_pcaudio.c (no ALSA/PulseAudio chain)
#   fortunes.tar.xz  the fortune text files the corpus reads (w2v_triton/train/text.py; 0.8 MB, 2.6 unpacked)
#   whl/       cp312 manylinux wheels: soundfile soxr jiwer cffi pycparser rapidfuzz
# ~24 MB; it ends by printing what a call would send (tools/gpu/gpu_travel.py: this checkout's tree + the
# folder, 64 MiB at most) and fails when that is over. Usage: bash tools/gpu/build_gpu_carry.sh [.devcarry];
# then name the folder in the device tool's `carry` and run `bash tools/gpu/gpu_session.sh .devcarry $OUT` there.
# It carries nothing for serving (no tritonserver, no tritonclient, no perf_analyzer): the served
# benchmark (tools/gpu/gpu_serving_bench.sh) takes the serving kit of `make gpu-kit` (docs/gpu.md).
set -euo pipefail
out=${1:-.devcarry}
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$out"/fortunes
mkdir -p "$out"/debs "$out"/pcaudio "$out"/whl
out=$(cd "$out" && pwd)

(cd "$out/debs" && apt-get download espeak-ng libespeak-ng1 espeak-ng-data libsonic0 flite libflite1 libasound2)

cp "$here/noop_pcaudio.c" "$out/pcaudio/"
gcc -shared -fPIC -O2 -Wl,-soname,libpcaudio.so.0 -o "$out/pcaudio/libpcaudio.so.0" "$here/noop_pcaudio.c"

src=/usr/share/games/fortunes
test -d "$src" || { echo "missing $src: apt-get install fortunes fortunes-min" >&2; exit 1; }
(cd "$src" && find . -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' -printf '%P\0' \
  | tar cJf "$out/fortunes.tar.xz" --null -T -)

platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$out/whl" soundfile==0.14.0 soxr==1.1.0 jiwer==4.0.0 cffi==2.1.1 \
  pycparser==3.12 rapidfuzz==3.14.6
du -sh "$out"
python3 "$here/gpu_travel.py" --root "$here/../.." --carry "$out"
