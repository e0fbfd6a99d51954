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

.PHONY: student student-presets distill distill-clean
student:  ## student from a teacher: TEACHER=... PRESET=layers6|layers6-prune|narrow75|narrow|squeeze, or STUDENT_LAYERS=6 LAYER_STRATEGY=first|last|even [STUDENT_CONV_CHANNELS=256]
	$(PY) -m builders.student --teacher $(TEACHER) --out $(STUDENT_OUT) $(SHAPE_ARGS)

student-presets:  ## every preset's shape, parameters and GFLOPs per audio-second for TEACHER (several: "models/reference random-base") [PRESETS_JSON=out.json]
	$(PY) -m builders.student --list-presets $(foreach t,$(TEACHER),--teacher $(t)) $(if $(PRESETS_JSON),--json $(PRESETS_JSON))

distill:  ## distil TEACHER into a student on TRAIN/DEV manifests (NPROC=2 for DDP; DISTILL_ARGS=...)
	$(TORCH_LAUNCH) builders.distill --teacher $(TEACHER) --train $(TRAIN) --dev $(DEV) \
	    $(SHAPE_ARGS) --out $(DISTILL_OUT) $(DISTILL_ARGS)

distill-clean:  ## remove build/distill
	rm -rf build/distill
