# Faster variants of the ONNX acoustic model (docs/optimization.md).
#   make variants VARIANT_MODEL=random-base                 build + verify + time all variants
#   make variants VARIANT_MODEL=build/checkpoints/random-base-student6 VARIANT_ARGS="--limit 40 --torch-bf16"
#   make build-variant MODEL=random-base MODEL_VARIANT=int8        repository serving the int8 file
# Variants: ort-extended ort-all int8 int8-pc mm int8-mm fp16 trt (trt only where tensorrt imports).
VARIANT_MODEL ?= random-base
VARIANT_LIST ?= ort-extended ort-all int8 int8-pc mm int8-mm fp16 trt
MODEL_VARIANT ?= int8-mm
VARIANT_ARGS ?=

.PHONY: variants build-variant
variants: venv  ## build ONNX variants of VARIANT_MODEL, verify vs fp32 on real speech, time them (JSON report)
	$(PY) builders/variants.py --model $(VARIANT_MODEL) --variants $(VARIANT_LIST) $(VARIANT_ARGS)

build-variant: venv  ## build the repository with one variant: MODEL=... MODEL_VARIANT=int8-mm|int8-pc|ort-extended|fp16
	$(PY) builders/repository.py --model "$(MODEL)" --output $(REPO) --platform $(PLATFORM) \
	  --variant $(MODEL_VARIANT) $(REPO_FLAGS)
