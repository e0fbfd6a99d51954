# Benchmarks (benchmarks/run.py): results go to benchmarks/results/<machine>/.
#   make perf                 perf_analyzer on $(REPO): seed shape AUDIO:8000 (conc 1-4) + real speech
#   make bench                PyTorch baseline in-process vs the served ensemble, same run
BENCH_MODEL ?= random-base
BENCH_ARGS ?=

.PHONY: perf bench
perf: venv  ## perf_analyzer on the built repository (starts its own server on free ports)
	$(PY) -m benchmarks.run --title perf --served current=$(REPO) --real-concurrency 1:4 $(BENCH_ARGS)

bench: venv  ## in-process PyTorch + ONNX vs served ensemble for BENCH_MODEL, one run, one machine
	$(PY) builders/repository.py --model $(BENCH_MODEL) --output build/repos/$(BENCH_MODEL)
	$(PY) -m benchmarks.run --title bench-$(BENCH_MODEL) \
	  --baseline pytorch-$(BENCH_MODEL)=$$($(PY) builders/checkpoint.py --model $(BENCH_MODEL) | cut -f1 -d' ') \
	  --onnx onnx-$(BENCH_MODEL)=build/onnx/$(BENCH_MODEL)/model.onnx \
	  --served served-$(BENCH_MODEL)=build/repos/$(BENCH_MODEL) $(BENCH_ARGS)
