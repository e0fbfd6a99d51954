# shellcheck shell=bash
# Offline environment for the synthetic-corpus tools on the GPU machines.
#
# Why: the GPU machines here reach no package registry (no apt, no PyPI), and their image
# lacks espeak-ng, flite, the Debian fortunes files, soundfile, soxr and jiwer. A "carry" folder
# prepared on a networked machine holds them (see the layout below); this script makes them
# usable without root and without touching / .
#
# Usage (bash, from the repository root):
#     source tools/gpu/gpu_offline_env.sh .devcarry
# then e.g.  python3 -m builders.corpus --fortune-dir "$W2V_FORTUNE_DIR" ...
#
# Carry folder layout:
#   debs/*.deb          espeak-ng, libespeak-ng1, espeak-ng-data, libsonic0 (Debian 12, amd64);
#                       optionally flite, libflite1, libasound2 (then FLITE is set)
#   pcaudio/libpcaudio.so.0 (+ noop_pcaudio.c)  no-op stand-in for libpcaudio0 (no ALSA/Pulse)
#   fortunes/ or fortunes.tar.xz   fortune text files read by w2v_triton/train/text.py
#   whl/*.whl           cp312 manylinux wheels: soundfile soxr jiwer cffi pycparser rapidfuzz
#
# Sets: ESPEAK_NG, ESPEAK_DATA_PATH, FLITE (when carried), LD_LIBRARY_PATH (prepended), PYTHONPATH
#       (prepended), W2V_FORTUNE_DIR (the carry's fortunes, for --fortune-dir).
# Overridable: GPU_OFFLINE_PREFIX (default /tmp/espeak-prefix), GPU_OFFLINE_SITE (default /tmp/site),
#       GPU_OFFLINE_WHEELS=0 (skip the wheels: a Python that has those packages, e.g. the project's venv).
# Returns non-zero (never exits the calling shell) when a step or the self-check fails.

_gpu_offline_env() {
    local carry="${1:-}"
    if [ -z "$carry" ] || [ ! -d "$carry" ]; then
        echo "gpu_offline_env: usage: source tools/gpu/gpu_offline_env.sh <carry-folder> (got '${carry}')" >&2
        return 2
    fi
    carry="$(cd "$carry" && pwd)" || return 2
    local prefix="${GPU_OFFLINE_PREFIX:-/tmp/espeak-prefix}"
    local site="${GPU_OFFLINE_SITE:-/tmp/site}"
    local py="${PYTHON:-python3}"

    # 1. Debian packages -> private prefix (dpkg -x needs no root and never runs maintainer scripts).
    local debs=("$carry"/debs/*.deb)
    if [ ! -e "${debs[0]}" ]; then
        echo "gpu_offline_env: no .deb files in $carry/debs" >&2; return 1
    fi
    mkdir -p "$prefix" || { echo "gpu_offline_env: cannot create $prefix" >&2; return 1; }
    local d
    for d in "${debs[@]}"; do
        dpkg -x "$d" "$prefix" || { echo "gpu_offline_env: dpkg -x failed for $d" >&2; return 1; }
    done
    local libdir="$prefix/usr/lib/x86_64-linux-gnu"
    if [ ! -x "$prefix/usr/bin/espeak-ng" ] || [ ! -d "$libdir/espeak-ng-data" ]; then
        echo "gpu_offline_env: espeak-ng binary or espeak-ng-data missing under $prefix" >&2; return 1
    fi
    if [ ! -f "$carry/pcaudio/libpcaudio.so.0" ]; then
        echo "gpu_offline_env: $carry/pcaudio/libpcaudio.so.0 missing" >&2; return 1
    fi

    # 2. Environment. The no-op libpcaudio goes first so it wins over any real one.
    # (entries already present are removed first, so sourcing twice does not grow the path)
    local want="$carry/pcaudio:$libdir:$prefix/usr/lib" rest="" e
    local IFS=:
    for e in ${LD_LIBRARY_PATH:-}; do
        case ":$want:" in *":$e:"*) ;; *) [ -n "$e" ] && rest="${rest:+$rest:}$e" ;; esac
    done
    unset IFS
    export LD_LIBRARY_PATH="$want${rest:+:$rest}"
    # espeak-ng 1.51 accepts either the folder that *contains* espeak-ng-data (checked first)
    # or espeak-ng-data itself; use the containing folder, the documented form.
    export ESPEAK_DATA_PATH="$libdir"
    export ESPEAK_NG="$prefix/usr/bin/espeak-ng"
    if [ -x "$prefix/usr/bin/flite" ]; then export FLITE="$prefix/usr/bin/flite"; fi
    export W2V_FORTUNE_DIR="$carry/fortunes"
    if [ -f "$carry/fortunes.tar.xz" ]; then
        mkdir -p "$prefix/fortunes" || return 1
        tar xJf "$carry/fortunes.tar.xz" -C "$prefix/fortunes" \
            || { echo "gpu_offline_env: cannot unpack $carry/fortunes.tar.xz" >&2; return 1; }
        W2V_FORTUNE_DIR="$prefix/fortunes"
    fi

    # 3. Wheels -> private site folder.
    if [ "${GPU_OFFLINE_WHEELS:-1}" != 0 ]; then
        local whls=("$carry"/whl/*.whl)
        if [ ! -e "${whls[0]}" ]; then
            echo "gpu_offline_env: no wheels in $carry/whl" >&2; return 1
        fi
        "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$site" "${whls[@]}" \
            || { echo "gpu_offline_env: pip install of $carry/whl/*.whl into $site failed" >&2; return 1; }
        case ":${PYTHONPATH:-}:" in
            *":$site:"*) ;;
            *) export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" ;;
        esac
    fi

    # 4. Self-check.
    local nbytes
    nbytes=$("$ESPEAK_NG" -v en-us+f2 --stdout "offline check, one two three." 2>/dev/null | wc -c)
    if [ "${nbytes:-0}" -le 44 ]; then
        echo "gpu_offline_env: FAIL: $ESPEAK_NG produced ${nbytes:-0} bytes for voice en-us+f2" >&2
        "$ESPEAK_NG" -v en-us+f2 --stdout "x" >/dev/null   # show its error message
        return 1
    fi
    if [ -n "${FLITE:-}" ]; then
        nbytes=$("$FLITE" -voice slt -t "offline check" -o /dev/stdout 2>/dev/null | wc -c)
        if [ "${nbytes:-0}" -le 44 ]; then
            echo "gpu_offline_env: FAIL: $FLITE produced ${nbytes:-0} bytes for voice slt" >&2
            "$FLITE" -voice slt -t "x" -o /dev/null   # show its error message
            return 1
        fi
    fi
    if ! "$py" -c 'import soundfile, soxr, jiwer' ; then
        echo "gpu_offline_env: FAIL: python3 cannot import soundfile, soxr, jiwer (PYTHONPATH=$PYTHONPATH)" >&2
        return 1
    fi
    if [ ! -d "$W2V_FORTUNE_DIR" ]; then
        echo "gpu_offline_env: WARNING: no fortunes/ folder in $carry" >&2
    fi
    echo "gpu_offline_env: OK (espeak-ng${FLITE:+ and flite} speak; soundfile/soxr/jiwer import)"
    echo "gpu_offline_env: ESPEAK_NG=$ESPEAK_NG ESPEAK_DATA_PATH=$ESPEAK_DATA_PATH${FLITE:+ FLITE=$FLITE}"
    echo "gpu_offline_env: use --fortune-dir $W2V_FORTUNE_DIR"
    return 0
}

_gpu_offline_env "$@"
_gpu_offline_env_rc=$?
unset -f _gpu_offline_env
if (return 0 2>/dev/null); then   # sourced: never exit the caller's shell
    return "$_gpu_offline_env_rc"
else
    exit "$_gpu_offline_env_rc"
fi
