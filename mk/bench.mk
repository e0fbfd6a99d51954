# Benchmarks (benchmarks/run.py): JSON + Markdown + PNG into benchmarks/results/<machine>/.
#   make perf            perf_analyzer on $(REPO): seed shape AUDIO:8000 (conc 1-4) + real speech
#   make bench-teacher   served BENCH_TEACHER ensemble vs its HF PyTorch model in-process, one run
#   make bench           HF PyTorch teacher vs 6-layer student (PyTorch, ONNX fp32 + BENCH_VARIANTS, served),
#                        and the same student with a BENCH_CONV_CHANNELS-wide conv front-end (pruned from
#                        the teacher, undistilled: its speed, not its accuracy; BENCH_CONV_CHANNELS= skips it)
BENCH_TEACHER ?= random-base
BENCH_VARIANTS ?= int8-pc int8-mm
# served a second time tuned for throughput: one single-threaded acoustic instance per core
BENCH_THROUGHPUT ?= int8-mm
BENCH_CONV_CHANNELS ?= 256
BENCH_ARGS ?=
STUDENT_DIR = build/checkpoints/$(BENCH_TEACHER)-student6
NARROW = student6-c$(BENCH_CONV_CHANNELS)
NARROW_DIR = build/checkpoints/$(BENCH_TEACHER)-$(NARROW)
TEACHER_DIR = $$($(PY) -m builders.checkpoint --model $(BENCH_TEACHER) | cut -f1 -d' ')

.PHONY: perf bench bench-teacher
perf: venv  ## perf_analyzer on the built repository (starts its own server on free ports)
	$(PY) -m benchmarks.run --title perf --served current=$(REPO) --real-concurrency 1:4 $(BENCH_ARGS)

bench-teacher: venv  ## served BENCH_TEACHER vs the same checkpoint in PyTorch, same run
	$(PY) -m builders.repository --model $(BENCH_TEACHER) --output build/repos/$(BENCH_TEACHER)
	$(PY) -m benchmarks.run --title bench-teacher-$(BENCH_TEACHER) \
	  --baseline pytorch-$(BENCH_TEACHER)=$(TEACHER_DIR) \
	  --onnx onnx-$(BENCH_TEACHER)=build/onnx/$(BENCH_TEACHER)/model.onnx \
	  --served served-$(BENCH_TEACHER)=build/repos/$(BENCH_TEACHER) \
	  --real-concurrency 1:2 --clips-concurrency 1:1 --request-count 8 $(BENCH_ARGS)

bench: venv  ## teacher vs 6-layer student: PyTorch, ONNX fp32 + BENCH_VARIANTS, served ensembles
	$(PY) -m builders.student --teacher $(BENCH_TEACHER) --out $(STUDENT_DIR) --num-layers 6
	$(PY) -m builders.repository --model $(STUDENT_DIR) --output build/repos/student6
	$(foreach v,$(BENCH_VARIANTS),$(PY) -m builders.repository --model $(STUDENT_DIR) \
	  --output build/repos/student6-$(v) --variant $(v) &&) true
	$(PY) -m builders.repository --model $(STUDENT_DIR) --output build/repos/student6-$(BENCH_THROUGHPUT)-throughput \
	  --variant $(BENCH_THROUGHPUT) --acoustic-instances $(shell nproc) --intra-op-threads 1
ifneq ($(BENCH_CONV_CHANNELS),)
	$(PY) -m builders.student --teacher $(BENCH_TEACHER) --out $(NARROW_DIR) --num-layers 6 \
	  --conv-channels $(BENCH_CONV_CHANNELS)
	$(PY) -m builders.repository --model $(NARROW_DIR) --output build/repos/$(NARROW)-$(BENCH_THROUGHPUT) \
	  --variant $(BENCH_THROUGHPUT)
	$(PY) -m builders.repository --model $(NARROW_DIR) --output build/repos/$(NARROW)-$(BENCH_THROUGHPUT)-throughput \
	  --variant $(BENCH_THROUGHPUT) --acoustic-instances $(shell nproc) --intra-op-threads 1
endif
	$(PY) -m benchmarks.run --title bench-student-$(BENCH_TEACHER) \
	  --baseline pytorch-teacher=$(TEACHER_DIR) --baseline pytorch-student6=$(STUDENT_DIR) \
	  --onnx onnx-student6=build/onnx/$$(basename $(STUDENT_DIR))/model.onnx \
	  $(foreach v,$(BENCH_VARIANTS),--onnx onnx-student6-$(v)=build/onnx/$$(basename $(STUDENT_DIR))/model.$(v).onnx) \
	  --served student6=build/repos/student6 \
	  $(foreach v,$(BENCH_VARIANTS),--served student6-$(v)=build/repos/student6-$(v)) \
	  --served student6-$(BENCH_THROUGHPUT)-throughput=build/repos/student6-$(BENCH_THROUGHPUT)-throughput \
	  $(if $(BENCH_CONV_CHANNELS),--onnx onnx-$(NARROW)-$(BENCH_THROUGHPUT)=build/onnx/$$(basename $(NARROW_DIR))/model.$(BENCH_THROUGHPUT).onnx \
	    --served $(NARROW)-$(BENCH_THROUGHPUT)=build/repos/$(NARROW)-$(BENCH_THROUGHPUT) \
	    --served $(NARROW)-$(BENCH_THROUGHPUT)-throughput=build/repos/$(NARROW)-$(BENCH_THROUGHPUT)-throughput) \
	  --real-concurrency 1:16:5 --clips-concurrency 1:4:3 --request-count 12 $(BENCH_ARGS)

# Beam search + LM (issue 17): the backends on the same logits and LM (benchmarks/decoders.py: WER,
# CPU speed, start-up, RSS), then served greedy / beam / beam+LM with pyctcdecode on the ARPA (the
# setup before the binary LM) / beam+LM with flashlight on lm.bin, tuned on BENCH_LM_DEV, same run.
#   make bench-lm   (needs `make lm` and the synthetic dev/test sets: make corpus, or
#                    builders/corpus.py --n-train 0 --n-test-unseen 0)
BENCH_LM_MODEL ?= models/reference
BENCH_LM_DEV ?= build/corpus/dev.jsonl
BENCH_LM_TEST ?= build/corpus/test_seen.jsonl
BENCH_LM_REPOS = build/repos/bench-lm

.PHONY: bench-lm
bench-lm: venv lm  ## beam+LM backends on the same logits, then served greedy/beam/beam+LM (same run)
	mkdir -p build/lm-arpa && ln -sf ../lm/lm.arpa build/lm-arpa/lm.arpa && ln -sf ../lm/unigrams.txt build/lm-arpa/unigrams.txt
	$(PY) -m builders.repository --model $(BENCH_LM_MODEL) --output $(BENCH_LM_REPOS)-greedy
	$(PY) -m builders.repository --model $(BENCH_LM_MODEL) --output $(BENCH_LM_REPOS)-beam --decoder-mode beam
	$(PY) -m builders.repository --model $(BENCH_LM_MODEL) --output $(BENCH_LM_REPOS)-pyctcdecode-arpa \
	  --decoder-mode beam --lm-dir build/lm-arpa --decoder-backend pyctcdecode
	$(PY) -m builders.repository --model $(BENCH_LM_MODEL) --output $(BENCH_LM_REPOS)-flashlight \
	  --decoder-mode beam --lm-dir build/lm --decoder-backend flashlight
	$(PY) -m builders.tune_lm --repo $(BENCH_LM_REPOS)-flashlight --dev $(BENCH_LM_DEV) --quiet \
	  --logits-cache build/logits/bench-lm-flashlight-dev.npz
	$(PY) -m benchmarks.decoders --repo $(BENCH_LM_REPOS)-flashlight --lm-dir build/lm \
	  --dev $(BENCH_LM_DEV) --test $(BENCH_LM_TEST) --title decoders-$$(basename $(BENCH_LM_MODEL))
	$(PY) -m benchmarks.run --title served-decoders-$$(basename $(BENCH_LM_MODEL)) --sweeps real \
	  --served greedy=$(BENCH_LM_REPOS)-greedy --served beam-pyctcdecode=$(BENCH_LM_REPOS)-beam \
	  --served lm-pyctcdecode-arpa=$(BENCH_LM_REPOS)-pyctcdecode-arpa \
	  --served lm-flashlight-bin=$(BENCH_LM_REPOS)-flashlight \
	  --real-concurrency 1:16:5 --request-count 12 $(BENCH_ARGS)

.PHONY: bench-streaming
bench-streaming: venv  ## streaming_asr: final vs offline (in process) + latency/RTF vs 1-16 concurrent streams
	$(PY) -m benchmarks.streaming --model reference $(BENCH_ARGS)
