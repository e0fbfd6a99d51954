# Google Cloud deployment (gcp/, docker/, docs/deploy-gcp.md).
#   make gcp-dry-run GCP_PROJECT=my-proj GCP_FLAGS="--min-replicas 2"   print every gcloud command
#   make gcp-deploy  GCP_PROJECT=my-proj [GCP_FLAGS="--variant gpu --zones us-central1-a"]
#   make gcp-teardown GCP_PROJECT=my-proj      (same --prefix/--region/--bucket as the deploy)
#   make docker-build [DOCKER_VARIANT=cpu|gpu]        needs a Docker engine (with BuildKit)
#   make gcp-boot-budget     boot-to-ready and memory per model process (latency, throughput and streaming
#                            repositories of random-base, the longest accepted inputs) -> the GCP defaults (gcp/lib.sh)
#   make gcp-autoscaling-sim the autoscaler's rule on the queue-time metric over load steps (simulation)
# The repository to upload is $(REPO): build it for the NGC image and the variant with
#   make build-models MODEL=... DEVICE=cpu|gpu   (the python-backend ensemble; PLATFORM=onnxruntime_onnx is an opt-in)
# (deploy.sh refuses a repository whose acoustic model instance kind does not match --variant).
GCP_PROJECT ?= $(shell gcloud config get-value project 2>/dev/null)
GCP_REGION ?= us-central1
GCP_PREFIX ?= w2v-asr
GCP_FLAGS ?=
DOCKER_VARIANT ?= cpu
DOCKER_TAG ?= w2v-triton
GCP_ARGS = --project "$(GCP_PROJECT)" --region $(GCP_REGION) --prefix $(GCP_PREFIX) --model-repository $(REPO) $(GCP_FLAGS)

.PHONY: gcp-deploy gcp-dry-run gcp-teardown gcp-teardown-dry-run docker-build gcp-boot-budget gcp-autoscaling-sim
GCP_BOOT_REPO ?= build/gcp-boot

gcp-deploy:  ## deploy to Google Cloud (GCP_PROJECT, GCP_REGION, GCP_PREFIX, GCP_FLAGS; see docs/deploy-gcp.md)
	bash gcp/deploy.sh $(GCP_ARGS)

gcp-dry-run:  ## print the gcloud commands of gcp-deploy and gcp-teardown without running them
	bash gcp/deploy.sh $(GCP_ARGS) --dry-run
	bash gcp/teardown.sh $(GCP_ARGS) --dry-run

gcp-teardown:  ## delete every resource gcp-deploy made (same GCP_* variables)
	bash gcp/teardown.sh $(GCP_ARGS)

docker-build:  ## build the server (DOCKER_VARIANT=cpu|gpu) and client images; needs a Docker engine
	DOCKER_BUILDKIT=1 docker build -f docker/Dockerfile.server --build-arg VARIANT=$(DOCKER_VARIANT) \
	  -t $(DOCKER_TAG)-server:$(DOCKER_VARIANT) .
	DOCKER_BUILDKIT=1 docker build -f docker/Dockerfile.client -t $(DOCKER_TAG)-client .

gcp-boot-budget: venv  ## repository size, copy time, start-to-ready and memory per model process -> GCP defaults (docs/deploy-gcp.md)
	$(PY) -m benchmarks.boot_budget --repository latency=$(GCP_BOOT_REPO)/latency \
	  --repository throughput=$(GCP_BOOT_REPO)/throughput --repository streaming=$(GCP_BOOT_REPO)/streaming \
	  --model random-base $(BENCH_ARGS)

gcp-autoscaling-sim: venv  ## simulate the MIG autoscaler on the queue-time metric over load steps (docs/deploy-gcp.md)
	$(PY) -m benchmarks.autoscaling
