# Knowledge distillation: 12-layer teacher -> shallower student (docs/distillation.md).
#   make student TEACHER=models/reference STUDENT_LAYERS=6 LAYER_STRATEGY=even
#   make student TEACHER=models/reference PRESET=narrow     (named shapes: distillation/presets.py)
#   make student-presets TEACHER=models/reference           (each preset's parameters and FLOPs/audio-s)
#   make distill TEACHER=models/reference TRAIN=... DEV=... PRESET=narrow
#   make distill TEACHER=models/reference TRAIN=build/corpus/train.jsonl DEV=build/corpus/dev.jsonl
#   make distill ... NPROC=2                       (DDP over 2 processes, gloo on CPU)
#   make distill ... DISTILL_ARGS="--hidden-weight 1 --kl-weight 0 --ctc-weight 0"
#   make distill ... STUDENT_CONV_CHANNELS=256      (narrow the conv front-end: its strongest channels)
# The output ($(DISTILL_OUT)) is an HF dir: `make build-models MODEL=$(DISTILL_OUT)` serves it.
TEACHER ?= models/reference
STUDENT_LAYERS ?= 6
LAYER_STRATEGY ?= first
PRESET ?=
STUDENT_NAME = $(if $(PRESET),$(PRESET),$(STUDENT_LAYERS)-$(LAYER_STRATEGY))
STUDENT_OUT ?= build/student-$(STUDENT_NAME)
DISTILL_OUT ?= build/distill/student-$(STUDENT_NAME)
DISTILL_ARGS ?=
STUDENT_CONV_CHANNELS ?=
CONV_CHANNELS_ARG = $(if $(STUDENT_CONV_CHANNELS),--conv-channels $(STUDENT_CONV_CHANNELS))
# With PRESET the preset decides layers and widths (STUDENT_LAYERS etc. only when given explicitly).
SHAPE_ARGS = $(if $(PRESET),--preset $(PRESET) \
    $(if $(filter command line,$(origin STUDENT_LAYERS)),--num-layers $(STUDENT_LAYERS)) \
    $(if $(filter command line,$(origin LAYER_STRATEGY)),--strategy $(LAYER_STRATEGY)),\
    --num-layers $(STUDENT_LAYERS) --strategy $(LAYER_STRATEGY)) $(CONV_CHANNELS_ARG)
PRESETS_JSON ?=

# Long runs in the background (docs/distillation.md, "Long runs"; builders/distill_bg.py): nice'd, one thread, a box of
# DISTILL_HOURS of training with a constant-then-decay schedule, a checkpoint every DISTILL_SAVE_MIN
# minutes and on SIGTERM, the log in $(DISTILL_OUT).log. The same command again continues the run
# where it stopped; a larger DISTILL_HOURS extends it (its peak goes on, the decay moves to the new end).
#   make distill-bg PRESET=squeeze DISTILL_HOURS=24 [TEACHER_CACHE=build/teacher-cache/reference]
#   make distill-stop PRESET=squeeze        (SIGTERM: saves after the current step, exports nothing)
DISTILL_HOURS ?= 8
DISTILL_SAVE_MIN ?= 10
DISTILL_NICE ?= 19
TEACHER_CACHE ?=
DISTILL_LONG_ARGS ?= --threads 1 --bf16 --no-progress --lr 5e-4 --warmup-steps 20 --max-batch-seconds 24 \
    --limit-dev 100 --eval-every 300 --save-every 0 --max-steps 100000000 --anneal-by-time --decay-fraction 0.2

.PHONY: student student-presets distill distill-clean distill-bg distill-stop
student:  ## student from a teacher: TEACHER=... PRESET=layers6|layers6-prune|narrow75|narrow|squeeze, or STUDENT_LAYERS=6 LAYER_STRATEGY=first|last|even [STUDENT_CONV_CHANNELS=256]
	$(PY) -m builders.student --teacher $(TEACHER) --out $(STUDENT_OUT) $(SHAPE_ARGS)

student-presets:  ## every preset's shape, parameters and GFLOPs per audio-second for TEACHER (several: "models/reference random-base") [PRESETS_JSON=out.json]
	$(PY) -m builders.student --list-presets $(foreach t,$(TEACHER),--teacher $(t)) $(if $(PRESETS_JSON),--json $(PRESETS_JSON))

distill:  ## distil TEACHER into a student on TRAIN/DEV manifests (NPROC=2 for DDP; DISTILL_ARGS=...)
	$(TORCH_LAUNCH) builders.distill --teacher $(TEACHER) --train $(TRAIN) --dev $(DEV) \
	    $(SHAPE_ARGS) --out $(DISTILL_OUT) $(DISTILL_ARGS)

distill-bg: venv  ## long run in the background: nice, 1 thread, DISTILL_HOURS box, rerun to continue or extend; log $(DISTILL_OUT).log
	$(PY) -m builders.distill_bg start --out $(DISTILL_OUT) --hours $(DISTILL_HOURS) --save-min $(DISTILL_SAVE_MIN) \
	    --nice $(DISTILL_NICE) -- --teacher $(TEACHER) --train $(TRAIN) --dev $(DEV) $(SHAPE_ARGS) \
	    $(if $(TEACHER_CACHE),--teacher-cache $(TEACHER_CACHE)) $(DISTILL_LONG_ARGS) $(DISTILL_ARGS)

distill-stop: venv  ## SIGTERM the background run of $(DISTILL_OUT): it checkpoints after its step and exits (continue: make distill-bg)
	$(PY) -m builders.distill_bg stop --out $(DISTILL_OUT)

distill-clean:  ## remove build/distill
	rm -rf build/distill
