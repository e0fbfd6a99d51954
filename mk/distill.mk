# Knowledge distillation: 12-layer teacher -> shallower student (docs/distillation.md).
#   make student TEACHER=models/reference STUDENT_LAYERS=6 LAYER_STRATEGY=even
#   make distill TEACHER=models/reference TRAIN=build/corpus/train.jsonl DEV=build/corpus/dev.jsonl
#   make distill ... NPROC=2                       (DDP over 2 processes, gloo on CPU)
#   make distill ... DISTILL_ARGS="--hidden-weight 1 --kl-weight 0 --ctc-weight 0"
#   make distill ... STUDENT_CONV_CHANNELS=256      (narrow the conv front-end: its strongest channels)
# The output ($(DISTILL_OUT)) is an HF dir: `make build-models MODEL=$(DISTILL_OUT)` serves it.
TEACHER ?= models/reference
STUDENT_LAYERS ?= 6
LAYER_STRATEGY ?= first
STUDENT_OUT ?= build/student-$(STUDENT_LAYERS)-$(LAYER_STRATEGY)
DISTILL_OUT ?= build/distill/student-$(STUDENT_LAYERS)-$(LAYER_STRATEGY)
DISTILL_ARGS ?=
STUDENT_CONV_CHANNELS ?=
CONV_CHANNELS_ARG = $(if $(STUDENT_CONV_CHANNELS),--conv-channels $(STUDENT_CONV_CHANNELS))

.PHONY: student distill distill-clean
student:  ## shallower student from a teacher: TEACHER=... STUDENT_LAYERS=6 LAYER_STRATEGY=first|last|even [STUDENT_CONV_CHANNELS=256]
	$(PY) -m builders.student --teacher $(TEACHER) --out $(STUDENT_OUT) \
	    --num-layers $(STUDENT_LAYERS) --strategy $(LAYER_STRATEGY) $(CONV_CHANNELS_ARG)

distill:  ## distil TEACHER into a student on TRAIN/DEV manifests (NPROC=2 for DDP; DISTILL_ARGS=...)
	$(TORCH_LAUNCH) builders.distill --teacher $(TEACHER) --train $(TRAIN) --dev $(DEV) \
	    --num-layers $(STUDENT_LAYERS) --strategy $(LAYER_STRATEGY) --out $(DISTILL_OUT) $(CONV_CHANNELS_ARG) $(DISTILL_ARGS)

distill-clean:  ## remove build/distill
	rm -rf build/distill
