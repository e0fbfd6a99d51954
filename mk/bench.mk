# Benchmarks (benchmarks/run.py): JSON + Markdown + PNG into benchmarks/results/<machine>/.
#   make perf            perf_analyzer on $(REPO): seed shape AUDIO:8000 (conc 1-4) + real speech
#   make bench-teacher   served BENCH_TEACHER ensemble vs its HF PyTorch model in-process, one run
#   make bench           HF PyTorch teacher vs 6-layer student (PyTorch, ONNX fp32 + int8 variants), every
#                        student x variant served in both serving profiles (latency: 0.5 s clip p50 at
#                        concurrency 1; throughput: 10 s clips, real speech), the same student with a
#                        256-channel conv front-end when the teacher's is wider (pruned, undistilled: its
#                        speed, not its accuracy), and BENCH_STUDENTS (trained student dirs, fp32 + int8-mm;
#                        test_seen WER from each dir's eval_results.json). The report opens with a headline
#                        table (speed, latency, x teacher, WER) and draws a speed/WER Pareto PNG.
#                        The matrix is data: benchmarks/plans.py (`python -m benchmarks.run --plan student`).
#   e.g. make bench BENCH_TEACHER=reference BENCH_STUDENTS="build/distill/a build/distill/b"
BENCH_TEACHER ?= random-base
BENCH_STUDENTS ?=
BENCH_ARGS ?=

.PHONY: perf bench bench-teacher
perf: venv  ## perf_analyzer on the built repository (starts its own server on free ports)
	$(PY) -m benchmarks.run --title perf --served current=$(REPO) --real-concurrency 1:4 $(BENCH_ARGS)

bench-teacher: venv  ## served BENCH_TEACHER vs the same checkpoint in PyTorch, same run (plan "teacher")
	$(PY) -m benchmarks.run --plan teacher --plan-teacher $(BENCH_TEACHER) $(BENCH_ARGS)

bench: venv  ## teacher vs students (BENCH_STUDENTS=trained dirs): served in latency + throughput profiles, headline + Pareto (plan "student")
	$(PY) -m benchmarks.run --plan student --plan-teacher $(BENCH_TEACHER) \
	  $(if $(strip $(BENCH_STUDENTS)),--plan-students $(BENCH_STUDENTS)) $(BENCH_ARGS)

# OpenVINO vs onnxruntime (issue 19): onnxruntime fp32 / int8-mm, OpenVINO fp32 / bf16 / int8 (NNCF,
# calibrated on the corpus dev set) on the reference model (agreement on test_seen + real speech, speed)
# and the base-size student6-c256 (speed), one run (benchmarks/openvino.py; needs `make corpus`).
.PHONY: bench-openvino
bench-openvino: venv  ## OpenVINO fp32/bf16/int8 vs onnxruntime fp32/int8-mm: agreement + speed, one run
	$(PY) -m benchmarks.openvino $(BENCH_ARGS)

# Beam search + LM (issue 17): the backends on the same logits and LM (benchmarks/decoders.py: WER,
# CPU speed, start-up, RSS), then served greedy / beam / beam+LM with pyctcdecode on the ARPA (the
# setup before the binary LM) / beam+LM with flashlight on lm.bin, tuned on BENCH_LM_DEV, same run
# (benchmarks/bench_lm.py: the steps and the served configurations).
#   make bench-lm   (needs `make lm` and the synthetic dev/test sets: make corpus, or
#                    builders/corpus.py --n-train 0 --n-test-unseen 0)
BENCH_LM_MODEL ?= models/reference
BENCH_LM_DEV ?= build/corpus/dev.jsonl
BENCH_LM_TEST ?= build/corpus/test_seen.jsonl

.PHONY: bench-lm
bench-lm: venv lm  ## beam+LM backends on the same logits, then served greedy/beam/beam+LM (same run)
	$(PY) -m benchmarks.bench_lm --model $(BENCH_LM_MODEL) --lm-dir $(LM_OUT) --dev $(BENCH_LM_DEV) \
	  --test $(BENCH_LM_TEST) -- $(BENCH_ARGS)

.PHONY: bench-streaming
bench-streaming: venv  ## streaming_asr: final vs offline (in process) + latency/RTF vs 1-16 concurrent streams
	$(PY) -m benchmarks.streaming --model reference $(BENCH_ARGS)

# Streams that last (docs/streaming.md): heavy, outside CI; each builds the repositories it serves.
STREAM_REPOS ?= build/repos/streaming
.PHONY: bench-streaming-repos bench-streaming-long bench-streaming-slo
bench-streaming-repos: venv lm
	$(PY) -m builders.repository --model models/reference --output $(STREAM_REPOS)-ref-greedy --decoder-instances 1
	$(PY) -m builders.repository --model models/reference --output $(STREAM_REPOS)-ref-beam --decoder-instances 1 \
	  --decoder-mode beam --lm-dir build/lm
	$(PY) -m builders.repository --model models/students/reference-layers6 --output $(STREAM_REPOS)-student-greedy \
	  --decoder-instances 1
	$(PY) -m builders.repository --model models/students/reference-layers6 --output $(STREAM_REPOS)-student-beam \
	  --decoder-instances 1 --decoder-mode beam --lm-dir build/lm

bench-streaming-long: bench-streaming-repos  ## 600 s streams at 1 and 8 streams (latency drift, finals vs offline) + a 2-hour stream's memory
	nice $(PY) -m benchmarks.streaming_long --repository $(STREAM_REPOS)-ref-beam --model reference-beam-lm \
	  --parts quality,drift $(BENCH_ARGS)
	nice $(PY) -m benchmarks.streaming_long --repository $(STREAM_REPOS)-ref-beam --model reference-beam-lm \
	  --parts marathon --chunk-seconds 5.0 $(BENCH_ARGS)

bench-streaming-slo: bench-streaming-repos  ## concurrent real-time streams within chunk p99 <= 300 ms: chunk size x decoder x model
	nice $(PY) -m benchmarks.streaming --slo $(STREAM_REPOS)-ref-greedy=teacher/greedy,$(STREAM_REPOS)-ref-beam=teacher/beam+LM,$(STREAM_REPOS)-student-greedy=student/greedy,$(STREAM_REPOS)-student-beam=student/beam+LM $(BENCH_ARGS)

# Memory of the acoustic model per setting (issue 27): onnxruntime's arena kept / released, malloc, one
# or two long-audio windows per call; every configuration a worker process, requests interleaved
# (benchmarks/acoustic_memory.py; docs/optimization.md, "Memory").
.PHONY: bench-memory
bench-memory: venv  ## acoustic model peak / retained memory and speed per memory setting, one interleaved run
	$(PY) -m benchmarks.acoustic_memory --model random-base $(BENCH_ARGS)
