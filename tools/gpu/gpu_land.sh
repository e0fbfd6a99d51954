#!/usr/bin/env bash
# Land what tools/gpu/gpu_session.sh sent back (result.tgz.part-*) in this checkout:
#   bash tools/gpu/gpu_land.sh <folder with result.tgz.part-*>
# A promoted run replaces models/reference/ and the docs files it changed (then review `git status`
# and commit); every run leaves its logs, the gate's report (promotion.json) and, when the model was
# kept, the candidate under build/gpu-run/ (e.g. for --init-from build/gpu-run/model next time).
set -euo pipefail
from=${1:?folder with result.tgz.part-*}
parts=("$from"/result.tgz.part-*)
[ -e "${parts[0]}" ] || { echo "gpu_land: no result.tgz.part-* in $from" >&2; exit 2; }
listing=$(cat "${parts[@]}" | tar tzf -) || { echo "gpu_land: the parts in $from do not make one archive" >&2; exit 2; }
rm -rf build/gpu-run
if grep -qx 'models/reference/config.json' <<< "$listing"; then
  rm -rf models/reference       # the promoted folder replaces the old one whole (no stale files)
fi
cat "${parts[@]}" | tar xzf -
python3 -c "import json; d = json.load(open('build/gpu-run/promotion.json')); print(d['reason'])" \
  2>/dev/null || echo "gpu_land: no gate report (build/gpu-run/promotion.json): the gate did not run"
git status --short -- models docs 2>/dev/null || true
