#!/usr/bin/env bash
# The Debian packages some tests and builds use, checked, installed or named (make corpus-deps,
# test-deps, browser-deps, and all of them at once for `make test`: system-deps).
#   tools/dev/system_deps.sh WHAT CHECK=PACKAGE[,PACKAGE...] ...
# CHECK is a command looked up on PATH, or an absolute path that must exist (a file or folder);
# PACKAGEs are what provide it. All present: says so. Else, as root with apt-get: installs what is
# missing and checks again. Else: prints the one command to run and exits 1.
set -euo pipefail
what="$1"
shift

missing_packages() {
  local spec check packages
  for spec in "$@"; do
    check="${spec%%=*}"
    packages="${spec#*=}"
    if [[ "$check" == /* ]]; then
      [[ -e "$check" ]] && continue
    else
      command -v "$check" >/dev/null 2>&1 && continue
    fi
    printf '%s\n' "${packages//,/ }"
  done
}

missing="$(missing_packages "$@" | tr '\n' ' ' | xargs -r -n1 | sort -u | paste -sd' ' - || true)"
if [[ -z "$missing" ]]; then
  echo "${what}: present"
  exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "${what}: installing ${missing}"
  # shellcheck disable=SC2086  # one word per package
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing}
  still="$(missing_packages "$@" | paste -sd' ' - || true)"
  if [[ -n "$still" ]]; then
    echo "${what}: still missing after apt-get install: ${still}" >&2
    exit 1
  fi
  exit 0
fi
echo "${what}: missing ${missing}; install with: sudo apt-get install -y ${missing}" >&2
exit 1
