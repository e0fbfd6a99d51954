# The user interface of the project. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MODEL ?=
REPO ?= model_repository
HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
PLATFORM ?= python
# Where the acoustic model runs: DEVICE=cpu|gpu (gpu fails the load where no GPU runtime exists);
# RUNTIME=onnxruntime|torch|openvino (torch: the checkpoint in CUDA PyTorch, for GPUs without onnxruntime-gpu;
# openvino: OpenVINO on the CPU, REPO_FLAGS="--variant ov-bf16|ov-int8"; docs/optimization.md).
DEVICE ?= cpu
RUNTIME ?= onnxruntime
# Serving profile (w2v_triton/build/repository.py PROFILES, docs/optimization.md): latency (one request at a
# time soonest) or throughput (one 1-thread acoustic instance per core); REPO_FLAGS still override it.
PROFILE ?= latency
REPO_FLAGS ?=
# Manifests shared by distillation and LM tuning (make corpus writes them).
TRAIN ?= build/corpus/train.jsonl
DEV ?= build/corpus/dev.jsonl
PYTEST_FLAGS ?=
# Training and distillation run under torchrun (DDP) when NPROC > 1, unchanged otherwise.
NPROC ?= 1
ifeq ($(NPROC),1)
TORCH_LAUNCH = $(PY) -m
else
TORCH_LAUNCH = $(PY) -m torch.distributed.run --standalone --nproc_per_node $(NPROC) -m
endif

.PHONY: help venv pins build-models serve lint test test-fast test-deps system-deps transcribe perf bench clean

help:  ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# PyTorch: TORCH=auto (CUDA build when nvidia-smi runs, else CPU), cpu or cuda; tools/dev/torch_install.py
# installs it before the rest, so the public index's CUDA wheel is never fetched for a CPU machine.
TORCH ?= auto
VENV_HINT = python3 -m venv needs ensurepip: install it (Debian/Ubuntu: sudo apt-get install python3-venv)
# The venv's pins (tools/dev/pins.py writes them from pyproject.toml: `make pins`) are for Python 3.11.
VENV_PINS := requirements/venv-py311.txt
VENV_PYTHON_HINT = make venv: $(VENV_PINS) pins Python 3.11; run with PYTHON=python3.11

$(VENV)/.installed: $(VENV_PINS) pyproject.toml
	@test -x $(PY) || $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "$(VENV_HINT)" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { echo "$(VENV_PYTHON_HINT)" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==25.3
	$(PY) tools/dev/torch_install.py --torch $(TORCH) --requirements $(VENV_PINS)
	$(PY) -m pip install -q -c $(VENV_PINS) -e ".[dev]"
	touch $@

venv: $(VENV)/.installed  ## create .venv: the extra dev of pyproject.toml with its pins (TORCH=auto|cpu|cuda)

pins: venv  ## regenerate requirements/*.txt from pyproject.toml (uv); PINS_ARGS=--upgrade for newer releases
	$(PY) tools/dev/pins.py $(PINS_ARGS)

build-models: venv  ## build the model repository: MODEL=<hub id|dir|random-base|tiny|reference> DEVICE=cpu|gpu RUNTIME=onnxruntime|torch|openvino PLATFORM=python|onnxruntime_onnx PROFILE=latency|throughput
	$(PY) -m builders.repository --model "$(MODEL)" --output $(REPO) --platform $(PLATFORM) \
	  --device $(DEVICE) --runtime $(RUNTIME) --profile $(PROFILE) $(REPO_FLAGS)

serve: venv  ## start tritonserver on $(REPO) (Ctrl-C stops it); HTTP_PORT/GRPC_PORT/METRICS_PORT
	$(PY) -m w2v_triton.serving.serve --model-repository $(REPO) --http-port $(HTTP_PORT) \
	  --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT)

transcribe: venv  ## transcribe FILES=... with a running server (PROTOCOL=http|grpc)
	$(PY) -m client --url 127.0.0.1:$(if $(filter grpc,$(PROTOCOL)),$(GRPC_PORT),$(HTTP_PORT)) \
	  --protocol $(or $(PROTOCOL),http) $(FILES)

lint: venv  ## ruff, mypy --strict, then lint-imports (the layer contracts); config in pyproject.toml
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

test: venv system-deps lint  ## install what the tests use (venv, system packages), lint, run every test (unit + real-server)
	$(PY) -m pytest -q $(PYTEST_FLAGS) tests

test-fast: venv lint  ## lint, then unit tests only (no server)
	$(PY) -m pytest -q -m "not integration" $(PYTEST_FLAGS) tests

# Debian packages the tests use, one helper for all (tools/dev/system_deps.sh: present, installed as root
# with apt-get, or the one command to run). Each area's list sits with its target (mk/*.mk).
NETNS_DEPS = ip=iproute2 iptables=iptables
SYSTEM_DEPS = tools/dev/system_deps.sh

test-deps:  ## system packages of the network-namespace tests (iproute2, iptables)
	@bash $(SYSTEM_DEPS) "test deps" $(NETNS_DEPS)

system-deps:  ## every system package the tests use (corpus, network namespace, browser, GPU kit), one check
	@bash $(SYSTEM_DEPS) "system deps" $(CORPUS_DEPS) $(NETNS_DEPS) $(BROWSER_DEPS) $(GPU_KIT_DEPS)

clean:  ## remove generated files (keeps .venv)
	rm -rf build model_repository/*/config.pbtxt model_repository/*/1/*.onnx \
	  model_repository/decoder/vocab.json model_repository/build_info.json

-include mk/*.mk
