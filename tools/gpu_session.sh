#!/usr/bin/env bash
# shellcheck disable=SC2317  # gpu_offline_env.sh ends in return-or-exit; what follows is reachable
# One time-boxed session on a lent GPU machine that reaches no package registry:
#   1. offline tools from the carry folder (tools/gpu_offline_env.sh),
#   2. the synthetic corpus on all cores (make corpus's builder, same seed => the same held-out
#      test splits as any other machine), with BENCH=1 the GPU in-process benchmark beside it,
#   3. the reference model trained with the gpu preset for whatever time is left (the lr decay
#      is annealed by time, so it ends annealed whatever the speed), exported as 15 MB shards,
#      evaluated on the held-out splits,
#   4. everything packed into OUT: model shards + meta.tgz (configs, logs, curves, bench).
#
#   bash tools/gpu_session.sh <carry-folder> <out-folder>     (carry folder: tools/build_gpu_carry.sh)
# Environment: BUDGET_S (wall seconds for the whole script, default 520), N_TRAIN (40000),
# BENCH (1 = also run the GPU in-process benchmark beside the corpus; training waits for it, which
# cost ~75 s of training on 2026-11-26; default 0), TRAIN_EXTRA (more train_reference.py arguments,
# e.g. "--init-from models/reference" to continue the committed model in a later session).
set -uo pipefail
carry=${1:?carry folder}
out=${2:?out folder}
budget=${BUDGET_S:-520}
n_train=${N_TRAIN:-40000}
work=/tmp/w2v
mkdir -p "$out" "$work"
t0=$SECONDS
say() { echo "[$((SECONDS - t0))s] $*"; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

# shellcheck source=tools/gpu_offline_env.sh
source tools/gpu_offline_env.sh "$carry" || exit 3
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, numpy; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'numpy', numpy.__version__, torch.cuda.get_device_name(0))" || exit 3

# --- 2. corpus (all cores but two) + GPU benchmark (beside it) -----------------------------------
bench_pid=""
if [ "${BENCH:-0}" = 1 ]; then
  (
    set -e
    python3 -c "from w2v_triton.build.checkpoints import make_offline_checkpoint as m; print(m('random-base'))"
    python3 -m builders.student --teacher build/checkpoints/random-base \
      --out build/checkpoints/random-base-student6 --num-layers 6
    for clip in 10 0.5; do
      python3 -m benchmarks.run --title "bench-gpu-inprocess-${clip}s" --device cuda --dtypes fp32,fp16 \
        --baseline teacher=build/checkpoints/random-base \
        --baseline student6=build/checkpoints/random-base-student6 \
        --clip-seconds "$clip" --clips 8 --repeats 5 --threads 2 --out "$work/bench"
    done
  ) > "$work/bench.log" 2>&1 &
  bench_pid=$!
fi
say "corpus: $n_train training utterances"
workers=$(( $(nproc) > 4 ? $(nproc) - 2 : $(nproc) ))
corpus_cmd=(python3 -m builders.corpus --out "$work/corpus" --workers "$workers" --fortune-dir "$carry/fortunes")
timeout "${CORPUS_MAX_S:-150}" "${corpus_cmd[@]}" --n-train "$n_train" > "$work/corpus.log" 2>&1
rc=$?
if [ "$rc" = 124 ]; then   # too slow: keep what was rendered, fill in the held-out splits
  n_train=$(find "$work/corpus/train" -name '??????.flac' | wc -l)
  say "corpus timed out; continuing with $n_train training utterances"
  "${corpus_cmd[@]}" --n-train "$n_train" >> "$work/corpus.log" 2>&1 || { tail -5 "$work/corpus.log"; exit 4; }
elif [ "$rc" != 0 ]; then
  tail -20 "$work/corpus.log"; exit 4
fi
tail -c 600 "$work/corpus.log"; echo
if [ -n "$bench_pid" ]; then
  if wait "$bench_pid"; then say "bench done"; else say "bench failed"; tail -5 "$work/bench.log"; fi
fi

# --- 3. training, boxed by time -------------------------------------------------------------------
left=$(( budget - (SECONDS - t0) ))
train_s=$(( left - ${RESERVE_S:-100} ))
say "training for ${train_s}s"
read -r -a extra <<< "${TRAIN_EXTRA:-}"
train_cmd=(python3 -m builders.train_reference --preset gpu --corpus "$work/corpus" --out "$work/train"
           --model-out "$work/model" --max-shard-size 15MB --real-speech '' --dev-limit 100
           --plot "$work/train/training.png" --no-progress)
timeout $(( train_s + 60 )) "${train_cmd[@]}" --max-steps 30000 --anneal-by-time \
  --max-time-min "$(python3 -c "print(round($train_s / 60, 2))")" --eval-every 250 --save-every 250 \
  "${extra[@]}" 2>&1 | grep -v "Loading weights\|Writing model shards"
rc=${PIPESTATUS[0]}
if [ "$rc" != 0 ]; then
  say "training exited with $rc: exporting the latest checkpoint"
  "${train_cmd[@]}" --export-only "${extra[@]}" 2>&1 | tail -8
fi
python3 - "$work/train/train_log.jsonl" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
for r in rows:
    if "dev_wer" in r:
        print(f"step {r['step']:>6} dev WER {r['dev_wer']:.3f} CER {r['dev_cer']:.3f}")
last = [r for r in rows if "loss" in r][-1]
print({k: last[k] for k in ("step", "loss", "lr", "epoch", "train_time_s", "audio_hours_seen", "audio_s_per_s")})
EOF

# --- 4. pack -------------------------------------------------------------------------------------
cp "$work"/model/model*.safetensors "$out"/ 2>/dev/null
tar czf "$out/meta.tgz" -C "$work" --exclude='*.safetensors' model train/train_log.jsonl \
  train/training.png train/eval_transcripts.json corpus/corpus.json corpus.log bench.log bench 2>/dev/null
ls -l "$out"
say "done"
