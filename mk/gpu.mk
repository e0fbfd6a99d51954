# The GPU serving kit (issue 33, docs/gpu.md): what a lent GPU machine without a package registry
# needs to serve the ensemble and run tools/gpu/gpu_serving_bench.sh, as one xz file in build/gpu-kit/
# (git-ignored; the device tool carries it).
#   make gpu-kit          build it (PyPI for the cp312 wheels, binutils and cc), print its size and the size
#                         of everything that travels with it; fails over 60 MiB together
#   make gpu-kit-check    the CPU proof (tests/test_gpu_kit.py, integration): a quick kit unpacked into a
#                         fresh folder, the benchmark with SMOKE=1 on its server, stub and client
#   make gpu-kit [GPU_KIT=other.tar.xz] GPU_KIT_ARGS="--speech-mb 1 --libpython /path/libpython3.12.so.1.0"
GPU_KIT ?=
GPU_KIT_ARGS ?=
# what building a kit runs (the library closure, stripping, the ICU data stub); make system-deps checks them
GPU_KIT_DEPS = readelf=binutils strip=binutils nm=binutils cc=gcc

.PHONY: gpu-kit gpu-kit-check
gpu-kit: venv  ## the serving kit for a lent GPU machine (build/gpu-kit/, docs/gpu.md); prints what travels
	$(PY) -m builders.gpu_kit build $(if $(GPU_KIT),--out $(GPU_KIT)) $(GPU_KIT_ARGS)

gpu-kit-check: venv  ## prove the kit on the CPU: unpacked fresh, SMOKE=1 benchmark on its server/stub/client
	$(PY) -m pytest -q $(PYTEST_FLAGS) tests/test_gpu_kit.py
