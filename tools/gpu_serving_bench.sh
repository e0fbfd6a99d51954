#!/usr/bin/env bash
# Served benchmark of the asr ensemble on a GPU (prepared for a lent GPU machine; run it there once).
#
# Builds DEVICE=gpu repositories of the 12-layer teacher (random-base: exact base-960h shape,
# random weights are fine for speed) and its 6-layer student, serves each with the pip
# tritonserver and dynamic batching, and records with perf_analyzer: audio-seconds per second and
# p50/p99 at concurrency 1..64 on 10 s clips and real speech, and the acoustic model alone (its raw
# figure), plus Triton's per-model times (is the decoder ever the bottleneck?). Results (JSON, MD,
# PNG) go to benchmarks/results/gpu-<name>/ under OUT, with the exact commands in each report.
#
#   bash tools/gpu_serving_bench.sh <out-folder>
#   SMOKE=1 bash tools/gpu_serving_bench.sh /tmp/smoke     # tiny model on the CPU: checks the plumbing
#
# Needs (import check at the start): torch with CUDA, transformers, onnx, onnxruntime, nvidia-pytriton
# (the tritonserver binary) and tritonclient[all] (perf_analyzer), soundfile, soxr; the lent GPU
# machines here reach no registry: carry those wheels (tools/build_gpu_carry.sh) and install them
# with `pip install --no-index --find-links <carry>/whl ...` first.
# Env: RUNTIME (torch: CUDA PyTorch, as on machines without onnxruntime-gpu; onnxruntime where
# onnxruntime-gpu exists), MAX_BATCH (64), QUEUE_US (2000: let requests gather into GPU batches),
# CONC (1,2,4,8,16,32,64), MODELS ("random-base random-base-student6"), REQUESTS (64 per perf_analyzer
# window), CLIPS (16 ten-second clips), BUDGET_S (500).
set -uo pipefail
out=${1:?out folder}
smoke=${SMOKE:-0}
runtime=${RUNTIME:-torch}
max_batch=${MAX_BATCH:-64}
queue_us=${QUEUE_US:-2000}
conc=${CONC:-1,2,4,8,16,32,64}
models=${MODELS:-random-base random-base-student6}
requests=${REQUESTS:-64}
clips=${CLIPS:-16}
device=gpu
torch_device=cuda
if [ "$smoke" = 1 ]; then
  device=cpu; torch_device=cpu; conc=${CONC:-1}; models=${MODELS:-tiny}; max_batch=${MAX_BATCH:-8}
  requests=${REQUESTS:-12}; clips=${CLIPS:-4}
fi
t0=$SECONDS
say() { echo "[$((SECONDS - t0))s] $*"; }
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
py=${PYTHON:-python3}
mkdir -p "$out"

"$py" - "$device" <<'PY' || { echo "gpu_serving_bench: missing packages (see the header)" >&2; exit 3; }
import sys, importlib
for name in ("torch", "transformers", "onnx", "onnxruntime", "pytriton", "tritonclient.grpc", "soundfile", "soxr"):
    importlib.import_module(name)
import torch
if sys.argv[1] == "gpu" and not torch.cuda.is_available():
    sys.exit("gpu_serving_bench: torch sees no CUDA device")
print("torch", torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
PY

if [[ " $models " == *" random-base-student6 "* ]]; then
  "$py" -c "from w2v_triton.build.checkpoints import make_offline_checkpoint as m; print(m('random-base'))" || exit 4
  "$py" -m builders.student --teacher build/checkpoints/random-base \
    --out build/checkpoints/random-base-student6 --num-layers 6 || exit 4
fi
for model in $models; do
  source_model=$model
  [ -d "build/checkpoints/$model" ] && source_model=build/checkpoints/$model
  repo="build/repos/gpu-$model"
  say "building $repo ($runtime on $device)"
  "$py" -m builders.repository --model "$source_model" --output "$repo" --device "$device" \
    --runtime "$runtime" --max-batch-size "$max_batch" --queue-delay-us "$queue_us" \
    --decoder-instances 4 --preprocessor-instances 2 || exit 5
  say "serving $repo"
  "$py" -m benchmarks.run --title "gpu-served-$model" --device "$torch_device" \
    --served "$model=$repo" --raw-acoustic --seed-concurrency "" \
    --clips-concurrency "$conc" --real-concurrency "$conc" --clips "$clips" --request-count "$requests" \
    --out "$out/bench" 2>&1 | grep -v "Loading weights" || say "benchmark of $model failed"
  if [ $((SECONDS - t0)) -gt "${BUDGET_S:-500}" ]; then say "time budget spent"; break; fi
done
ls -l "$out/bench"
say "done"
