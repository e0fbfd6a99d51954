#!/usr/bin/env bash
# Served benchmark of the asr ensemble on a GPU: one prepared call on a lent GPU machine (docs/gpu.md).
#
# For each variant (in order, while the time box lasts): build a DEVICE=gpu RUNTIME=torch repository
# of random-base (the exact base-960h shape; random weights are fine for speed) or its 6-layer
# student, serve it with dynamic batching and measure with perf_analyzer over gRPC: audio-seconds per
# second and p50/p99 on 10 s clips and real speech, the acoustic model alone (its raw figure),
# Triton's per-model times and the GPU's utilisation (nvidia-smi) at every concurrency level.
# Results: benchmarks/results/<gpu>/gpu-served-<variant>.{json,md,png} + nvidia-smi.csv, packed into
# OUT/results.tar.gz (untar in the repository root), and the whole log in OUT/bench.log.
#
#   The one call on a lent machine (after `make gpu-kit` in the checkout the session started in):
#     run(command="KIT=build/gpu-kit/w2v-gpu-kit.tar.xz bash tools/gpu/gpu_serving_bench.sh $OUT",
#         carry=["build/gpu-kit"], timeout_s=360)
#   The same on the CPU with the kit's server, stub and client (make gpu-kit-check):
#     SMOKE=1 KIT=... PYTHON=.venv/bin/python bash tools/gpu/gpu_serving_bench.sh /tmp/smoke
#
# KIT: an xz kit (builders/gpu_kit.py): unpacked into KIT_DIR, checked (libpython, libraries,
# imports), and its venv runs everything; without KIT the packages installed for PYTHON are used.
# VARIANTS: "name=model|repository flags|benchmark flags;..." (builders/repository.py and
# benchmarks/run.py flags; the default sweeps part 4 of issue 33: batch size, queue delay,
# instances). MAX_BATCH (64), QUEUE_US (2000), CONC (1,8,32,64), REQUESTS (128 per perf_analyzer
# window), CLIPS (16) of CLIP_S (10) seconds, DEADLINE_S (330: the running variant is stopped then),
# MIN_LEFT_S (100: no variant starts with less left). SMOKE=1: the tiny model on the CPU, 2 s clips,
# concurrency 1, windows of 8 requests, no stability bound (the plumbing, not a figure).
set -uo pipefail
out=${1:?out folder}
smoke=${SMOKE:-0}
runtime=${RUNTIME:-torch}
max_batch=${MAX_BATCH:-64}
queue_us=${QUEUE_US:-2000}
conc=${CONC:-1,8,32,64}
requests=${REQUESTS:-128}
clips=${CLIPS:-16}
clip_s=${CLIP_S:-10}
deadline=${DEADLINE_S:-330}
min_left=${MIN_LEFT_S:-100}
device=gpu
torch_device=cuda
# the default sweep, most wanted first: the teacher as configured (ensemble, real speech, raw
# acoustic model); more batching and instances; CUDA graphs (torch.compile reduce-overhead, compiled
# during the model's warm-up); the 6-layer student
tuned="--max-batch-size 128 --queue-delay-us 500 --preprocessor-instances 4 --decoder-instances 8"
variants=${VARIANTS:-"teacher=random-base||;\
teacher-b128-i2=random-base|$tuned --acoustic-instances 2|--sweeps clips --clips-concurrency 32,64,128;\
teacher-graphs=random-base|$tuned --torch-compile reduce-overhead|--sweeps clips --clips-concurrency 64,128;\
student6=random-base-student6||"}
if [ "$smoke" = 1 ]; then
  device=cpu; torch_device=cpu; conc=${CONC:-1}; max_batch=${MAX_BATCH:-8}
  requests=${REQUESTS:-8}; clips=${CLIPS:-2}; clip_s=${CLIP_S:-2}
  # one process per model, and any stability bound: this proves the plumbing on a shared CPU
  variants=${VARIANTS:-"tiny=tiny|--preprocessor-instances 1 --decoder-instances 1|--sweeps clips --max-stability 1000"}
  deadline=${DEADLINE_S:-1500}; min_left=${MIN_LEFT_S:-0}
fi
t0=$SECONDS
say() { echo "[$((SECONDS - t0))s] $*"; }
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
py=${PYTHON:-python3}
mkdir -p "$out"
out=$(cd "$out" && pwd)
exec > >(tee "$out/bench.log") 2>&1

if [ -n "${KIT:-}" ]; then
  kit_dir=${KIT_DIR:-$(mktemp -d /tmp/w2v-kit.XXXXXX)}
  say "setting up $KIT in $kit_dir"
  exports=$("$py" -m builders.gpu_kit setup "$KIT" --into "$kit_dir") || { say "kit set-up failed"; exit 3; }
  eval "$exports"
  py=$PYTHON
fi
"$py" - "$device" <<'PY' || { say "gpu_serving_bench: the environment is not ready (see above)"; exit 3; }
import sys
import torch
from w2v_triton.serving.tritonserver import TritonInstall
from benchmarks.perf_analyzer import perf_analyzer_binary
if sys.argv[1] == "gpu" and not torch.cuda.is_available():
    sys.exit("gpu_serving_bench: torch sees no CUDA device")
print("torch", torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
print("tritonserver", TritonInstall.find().server_binary)
print("perf_analyzer", perf_analyzer_binary())
PY
if [ "$device" = gpu ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
  machine=$("$py" -c "from w2v_triton.eval.machine import gpu_name; print(gpu_name())")
else
  machine="smoke-cpu"
fi
work=$(mktemp -d /tmp/w2v-gpu-bench.XXXXXX)
results="$work/benchmarks/results/$machine"
mkdir -p "$results"
smi_pid=""
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw --format=csv --loop-ms=500 \
    > "$results/nvidia-smi.csv" 2>/dev/null &
  smi_pid=$!
fi

if [[ "$variants" == *"random-base"* ]]; then
  "$py" -c "from w2v_triton.build.checkpoints import make_offline_checkpoint as m; print(m('random-base'))" || exit 4
fi
if [[ "$variants" == *"random-base-student6"* ]]; then
  "$py" -m builders.student --teacher build/checkpoints/random-base \
    --out build/checkpoints/random-base-student6 --num-layers 6 2>&1 | tail -2 || exit 4
fi
IFS=';' read -r -a specs <<< "$variants"
for spec in "${specs[@]}"; do
  left=$((deadline - (SECONDS - t0)))
  if [ "$left" -lt "$min_left" ]; then say "time box: $left s left, not starting ${spec%%=*}"; continue; fi
  IFS='|' read -r head repo_flags bench_flags <<< "$spec"
  name=${head%%=*}; model=${head#*=}
  source_model=$model
  [ -d "build/checkpoints/$model" ] && source_model=build/checkpoints/$model
  repo="$work/repos/$name"
  read -r -a repo_extra <<< "$repo_flags"
  read -r -a bench_extra <<< "$bench_flags"
  say "variant $name: $model, $runtime on $device, ${repo_flags:-defaults} (${left}s left)"
  # --stream vad=none: the streaming model's VAD file comes from the silero-vad package, which the GPU
  # image lacks; this benchmark measures the offline ensemble, not streaming_asr
  "$py" -m builders.repository --model "$source_model" --output "$repo" --device "$device" \
    --runtime "$runtime" --max-batch-size "$max_batch" --queue-delay-us "$queue_us" \
    --decoder-instances 4 --preprocessor-instances 2 --stream vad=none "${repo_extra[@]}" 2>&1 | tail -3
  [ "${PIPESTATUS[0]}" = 0 ] || { say "building $name failed"; continue; }
  left=$((deadline - (SECONDS - t0)))
  [ "$left" -gt 0 ] || { say "time box spent while building $name"; continue; }   # timeout 0 = none
  timeout -k 25 "$left" "$py" -m benchmarks.run --title "gpu-served-$name" --device "$torch_device" \
    --served "$name=$repo" --raw-acoustic --seed-concurrency "" --sweeps clips,real \
    --clips-concurrency "$conc" --real-concurrency "$conc" --clips "$clips" --clip-seconds "$clip_s" --request-count "$requests" \
    --stats-per-level --out "$results" "${bench_extra[@]}" 2>&1 | grep -v "Loading weights"
  [ "${PIPESTATUS[0]}" = 0 ] || say "benchmark of $name failed or was stopped by the time box"
done

[ -n "$smi_pid" ] && kill "$smi_pid"
tar czf "$out/results.tar.gz" -C "$work" benchmarks
ls -l "$results" "$out"
say "done: untar $out/results.tar.gz in the repository root"
"$py" -m benchmarks.gpu_summary "$results"   # last: the table the reply's output tail shows; 1 without results
