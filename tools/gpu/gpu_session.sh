#!/usr/bin/env bash
# shellcheck disable=SC2317  # gpu_offline_env.sh ends in return-or-exit; what follows is reachable
# The reference model's whole GPU run, in one call of a lent machine that reaches no package registry
# (docs/reference-model.md, "GPU run v2"):
#   1. offline tools from the carry folder (tools/gpu/gpu_offline_env.sh: espeak-ng + flite debs, wheels,
#      fortunes) and what travelled (tools/gpu/gpu_travel.py: tree + carry, 64 MiB at most);
#   2. the corpus (builders/corpus.py, the default espeak-ng + flite mix, same seed => the same held-out
#      splits as any other machine): held-out splits complete, training utterances for CORPUS_MAX_S;
#   3. training (builders/train_reference.py, gpu preset) from INIT_FROM's weights for what is left of
#      BUDGET_S minus RESERVE_S, the lr annealed by time so it ends annealed whatever the speed;
#      exported in fp16, in shards of at most 15 MB;
#   4. promote-if-better (builders/promote_reference.py): the candidate and the tree's models/reference
#      evaluated on the same splits; if promoted, the docs' tables are re-rendered;
#   5. packing into OUT, files of at most 15 MB (the tool returns 16 MiB per file):
#      result.tgz.part-* = the files the promotion changed (models/reference/, docs/) + build/gpu-run/
#      (logs, the gate's report, and the candidate when it was kept). Land it here with
#      `bash tools/gpu/gpu_land.sh <the folder the files came back to>`.
#
# On the machine that calls the device tool (the checkout the tool sends, with this branch in it):
#   bash tools/gpu/build_gpu_carry.sh .devcarry      # once; prints what a call sends (must be <= 64 MiB)
# then ONE call:  run(command="bash tools/gpu/gpu_session.sh .devcarry $OUT", carry=[".devcarry"], timeout_s=600)
# (device time: the start, ~1-2 min, + BUDGET_S + the transfers: ~12 of the 15 minutes; there is no
# time for a second try). The machine has no real speech: the gate compares test_seen and test_unseen
# there; `make corpus CORPUS_N_TRAIN=0 && make eval-reference` here adds the real-speech row.
#
#   bash tools/gpu/gpu_session.sh <carry-folder|''> <out-folder>
# Environment: BUDGET_S (wall seconds for the whole script, default 540: the call's 600 s less a
# margin), N_TRAIN (32000 utterances: 24000 espeak-ng + 8000 flite), CORPUS_MAX_S (90), RESERVE_S
# (seconds kept after training for export, evaluation of both models, promotion and packing: 120),
# INIT_FROM (models/reference: continue the committed model; '' = from scratch with the preset's
# lr), LR / WARMUP (5e-4 / 200 when continuing), TRAIN_EXTRA (more train_reference.py arguments).
# SMOKE=1: the same steps at a tiny size on the CPU in seconds (tests/test_tools.py): the current
# Python stands in for the GPU image, the system's synthesisers for the carried debs when the carry
# is '', a tiny model for the gpu preset. The tree (models/reference, docs/) is the current directory;
# the code is this script's checkout.
set -uo pipefail
carry=${1?carry folder or ''}
out=${2:?out folder}
code=$(cd "$(dirname "$0")/../.." && pwd)
tree=$PWD
smoke=${SMOKE:-0}
budget=${BUDGET_S:-540}
init_from=${INIT_FROM-models/reference}
work=${WORK:-/tmp/w2v}
run=$work/gpu-run                   # what comes back besides the promoted files: build/gpu-run/ when landed
mkdir -p "$out" "$run"
t0=$SECONDS
say() { echo "[$((SECONDS - t0))s] $*"; }
export PYTHONPATH="$code${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
py=${PYTHON:-python3}

# --- 1. offline tools, what travelled -------------------------------------------------------------
travel=(--root "$code")           # the checkout the device tool sends (on the machine: the tree itself)
if [ -n "$carry" ]; then
  # shellcheck source=tools/gpu/gpu_offline_env.sh
  source "$code/tools/gpu/gpu_offline_env.sh" "$carry" || exit 3
  travel+=(--carry "$carry")
fi
"$py" "$code/tools/gpu/gpu_travel.py" "${travel[@]}" | tee "$run/travel.txt"
if [ "$smoke" = 1 ]; then
  n_train=${N_TRAIN:-24}; per_split=4; corpus_max_s=${CORPUS_MAX_S:-120}; workers=2
  train_args=(--tiny --preset cpu --batch-seconds 8 --workers 0 --eval-every 10 --save-every 10 --max-steps 30)
  reserve=${RESERVE_S:-60}; lr=${LR:-3e-3}; warmup=${WARMUP:-5}
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || exit 3
  n_train=${N_TRAIN:-32000}; per_split=200; corpus_max_s=${CORPUS_MAX_S:-90}
  workers=$(( $(nproc) > 4 ? $(nproc) - 2 : $(nproc) ))
  train_args=(--preset gpu --eval-every 250 --save-every 250 --max-steps 30000)
  reserve=${RESERVE_S:-120}; lr=${LR:-5e-4}; warmup=${WARMUP:-200}
fi
"$py" -c "import torch, transformers, numpy; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'numpy', numpy.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() \
else 'cpu')" || exit 3

# --- 2. corpus -----------------------------------------------------------------------------------
say "corpus: $n_train training utterances at most, ${corpus_max_s}s"
fortunes=()
if [ -n "${W2V_FORTUNE_DIR:-}" ]; then fortunes=(--fortune-dir "$W2V_FORTUNE_DIR"); fi
"$py" -m builders.corpus --out "$work/corpus" --workers "$workers" "${fortunes[@]}" --n-train "$n_train" \
  --n-dev "$per_split" --n-test-seen "$per_split" --n-test-unseen "$per_split" --max-seconds "$corpus_max_s" \
  > "$run/corpus.log" 2>&1 || { tail -20 "$run/corpus.log"; exit 4; }
cp "$work/corpus/corpus.json" "$run/"
"$py" -c "import json, sys; s = json.load(open(sys.argv[1]))['stats']; \
print({k: (v['utterances'], v['hours']) for k, v in s.items()})" "$work/corpus/corpus.json"

# --- 3. training, boxed by time ------------------------------------------------------------------
init=()
if [ -n "$init_from" ]; then
  init=(--init-from "$tree/$init_from" --lr "$lr" --warmup "$warmup")
fi
train_s=$(( budget - (SECONDS - t0) - reserve ))
if [ "$train_s" -lt 10 ]; then say "only ${train_s}s left for training: stopping"; exit 5; fi
say "training for ${train_s}s${init_from:+ from $init_from}"
read -r -a extra <<< "${TRAIN_EXTRA:-}"
train_cmd=("$py" -m builders.train_reference "${train_args[@]}" --corpus "$work/corpus" --out "$work/train"
           --model-out "$run/model" --fp16-export --max-shard-size 15MB --no-eval --dev-limit 100
           --plot "$run/training.png" --no-progress)
timeout $(( train_s + 90 )) "${train_cmd[@]}" --anneal-by-time "${init[@]}" \
  --max-time-min "$("$py" -c "print(round($train_s / 60, 3))")" "${extra[@]}" 2>&1 \
  | grep -v "Loading weights\|Writing model shards"
rc=${PIPESTATUS[0]}
if [ "$rc" != 0 ]; then
  say "training exited with $rc: exporting the latest checkpoint"
  "${train_cmd[@]}" --export-only "${init[@]}" "${extra[@]}" 2>&1 | tail -8
fi
cp "$work/train/train_log.jsonl" "$run/" || exit 6

# --- 4. promote if better ------------------------------------------------------------------------
say "gate: candidate vs $tree/models/reference on the same splits"
touch "$run/.stamp"
"$py" -m builders.promote_reference --candidate "$run/model" --corpus "$work/corpus" \
  --reference "$tree/models/reference" --train-log "$run/train_log.jsonl" --plot "$run/training.png" \
  --docs-log "$tree/docs/reference-training-log.jsonl" --docs-plot "$tree/docs/reference-training.png" \
  --real-speech '' --report "$run/promotion.json" --no-progress 2>&1 | grep -v "Loading weights\|Writing model"
gate=${PIPESTATUS[0]}
if [ "$gate" = 0 ]; then
  "$py" -m benchmarks.docs_tables --root "$tree" || say "docs tables: see above"
  rm -rf "$run/model"              # it is models/reference now
elif [ "$gate" != 1 ]; then
  say "the gate could not compare (exit $gate)"
fi

# --- 5. pack -------------------------------------------------------------------------------------
(
  cd "$tree" || exit 1
  changed=()
  if [ "$gate" = 0 ]; then         # the promoted folder whole, and the docs files written since the gate began
    mapfile -t changed < <(echo models/reference; find README.md docs -type f -newer "$run/.stamp")
  fi
  rm -f "$run/.stamp"
  tar czf - --transform 's,^gpu-run,build/gpu-run,' "${changed[@]}" -C "$work" gpu-run
) | split -b 15m -d - "$out/result.tgz.part-"
ls -l "$out"
say "done: $(case $gate in 0) echo promoted;; 1) echo kept;; *) echo "not compared";; esac) (gate exit $gate)"
exit "$gate"
