# Faster variants of the ONNX acoustic model (docs/optimization.md).
#   make variants VARIANTS_MODEL=random-base                 build + verify + time all variants
#   make variants VARIANTS_MODEL=build/checkpoints/random-base-student6 VARIANTS_ARGS="--limit 40 --torch-bf16"
#   make build-variant MODEL=random-base VARIANTS_SERVE=int8        repository serving the int8 file
# Variants: ort-extended ort-all int8 int8-pc mm int8-mm fp16 trt (trt only where tensorrt imports);
# OpenVINO: ov-fp32 ov-bf16 ov-int8 (served with RUNTIME=openvino; make bench-openvino compares them).
VARIANTS_MODEL ?= random-base
VARIANTS_LIST ?= ort-extended ort-all int8 int8-pc mm int8-mm fp16 trt
VARIANTS_SERVE ?= int8-mm
VARIANTS_ARGS ?=

.PHONY: variants build-variant
variants: venv  ## build ONNX variants of VARIANTS_MODEL, verify vs fp32 on real speech, time them (JSON report)
	$(PY) -m builders.variants --model $(VARIANTS_MODEL) --variants $(VARIANTS_LIST) $(VARIANTS_ARGS)

build-variant: venv  ## build the repository with one variant: MODEL=... VARIANTS_SERVE=int8-mm|int8-pc|ort-extended|fp16
	$(PY) -m builders.repository --model "$(MODEL)" --output $(REPO) --platform $(PLATFORM) \
	  --variant $(VARIANTS_SERVE) $(REPO_FLAGS)
