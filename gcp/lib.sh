# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables below are used by the scripts that source this file
# Shared by gcp/deploy.sh and gcp/teardown.sh: flags, resource names, the `run` wrapper.
# Every gcloud call goes through `run` (mutating) or `exists` (a describe guard), so
# `--dry-run` prints the complete ordered list of commands and executes nothing.

GCP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${GCP_DIR}/.." && pwd)"

# --- defaults derived from measured figures ----------------------------------
# benchmarks/results/cpu-2core-amd-epyc/gcp-boot-budget.json, its "gcp" section (make gcp-boot-budget;
# benchmarks/boot_budget.gcp_defaults; docs/deploy-gcp.md "Boot-to-ready budget and memory per VM").
# tests/test_gcp_dryrun.py holds these values to that file.
CPU_MACHINE_TYPE="n2-standard-8"   # gcp.machine_type: fits both serving profiles' processes at their peaks
INITIAL_DELAY_CPU=600              # gcp.initial_delay_s.cpu: 2 x the boot-to-ready sum, rounded up to whole 5 min
INITIAL_DELAY_GPU=900              # gcp.initial_delay_s.gpu: the same with the GPU driver install
COOL_DOWN_DEFAULT=300              # gcp.cool_down_s: the cpu boot-to-ready sum, rounded up to a whole minute

# --- defaults (each has a flag) ---------------------------------------------
DRY_RUN=false
PROJECT="${CLOUDSDK_CORE_PROJECT:-}"
REGION="us-central1"
ZONES=""                       # regional MIG zones (comma list); empty = let GCE pick
PREFIX="w2v-asr"
VARIANT="cpu"                  # cpu | gpu: image build arg + instance template
MACHINE_TYPE=""                # default per variant below
GPU_TYPE="nvidia-tesla-t4"
GPU_COUNT=1
MIN_REPLICAS=1
MAX_REPLICAS=4
TARGET_CPU=0.6                 # cpu variant: a second signal besides queue time
TARGET_QUEUE_MS=100            # autoscaler target: mean queue time per request (w2v_triton.serving.queue_metric)
COOL_DOWN="$COOL_DOWN_DEFAULT" # seconds: autoscaler initialisation period (a VM's metrics count after it)
INITIAL_DELAY=""               # autohealing grace for a new VM: INITIAL_DELAY_CPU / _GPU above
DRAIN_TIMEOUT=60               # backend services' connection-draining timeout (seconds)
STOP_TIMEOUT=75                # VM shutdown: docker stop timeout (under the ~90 s shutdown-script budget)
GPU_DRIVER="R580"              # cos-extensions driver branch/version (NGC 24.10 needs 560+, or R535 on DC GPUs)
NAT=false                      # also create a Cloud Router + Cloud NAT for general egress
SUBNET=""                      # subnet that gets Private Google Access (default: named like --network)
BUCKET=""                      # default: <project>-<prefix>-models
MODEL_REPOSITORY="${REPO_ROOT}/model_repository"
IMAGE_TAG=""                   # default: git short sha (or "dev")
BUILDER="cloudbuild"           # cloudbuild | docker | none (image already pushed)
SKIP_UPLOAD=false
NETWORK="default"
DOMAIN=""                      # with a domain: Google-managed cert + HTTPS (needed for gRPC)
BOOT_DISK_GB=""
IMAGE_FAMILY="cos-stable"
IMAGE_PROJECT="cos-cloud"
GATEWAY_PORT=8080              # the HTTP gateway's port on each VM (beside Triton's)
GATEWAY_KEYS_SECRET=""         # Secret Manager secret with the gateway's API keys (default <prefix>-gateway-keys)
KEEP_BUCKET=false              # teardown only
KEEP_IMAGES=false              # teardown only

usage() {
  cat <<'EOF'
Flags (deploy.sh and teardown.sh share them; names all derive from --prefix):
  --project ID            GCP project (required; or CLOUDSDK_CORE_PROJECT)
  --region R              region of the registry, bucket, MIG (default us-central1)
  --zones Z1,Z2 | --zone Z  zones of the regional MIG (default: GCE chooses)
  --prefix NAME           prefix of every resource name (default w2v-asr)
  --variant cpu|gpu       image variant and machine shape (default cpu)
  --machine-type T        default n2-standard-8 (cpu, from measured memory) / n1-standard-8 (gpu)
  --gpu-type T --gpu-count N   accelerator of the gpu variant (default nvidia-tesla-t4 x1)
  --min-replicas N --max-replicas N   autoscaler bounds (default 1 / 4)
  --target-queue-ms MS    autoscaler target: Triton queue time per request (default 100)
  --target-cpu F          cpu variant: also scale on CPU utilisation (default 0.6)
  --cool-down S           autoscaler cool-down / initialisation period (default 300, measured boot)
  --initial-delay S       autohealing initial delay (default 600 cpu / 900 gpu, measured boot;
                          docs/deploy-gcp.md)
  --drain-timeout S       load balancer connection draining on scale-in/updates (default 60)
  --stop-timeout S        VM shutdown: seconds Triton gets to finish requests (default 75, max 85)
  --gpu-driver V          COS GPU driver: branch (R580) or version; see `cos-extensions list`
  --bucket NAME           model bucket (default <project>-<prefix>-models)
  --model-repository DIR  built repository to upload (default ./model_repository)
  --image-tag TAG         image tag (default git short sha)
  --builder cloudbuild|docker|none   how the image is built and pushed (default cloudbuild)
  --skip-upload           do not rsync the model repository
  --network NAME          VPC network (default default)
  --subnet NAME           the region's subnet of --network; gets Private Google Access (VMs have
                          no external IP) (default: same name as --network, as in auto mode)
  --nat                   also create a Cloud Router + Cloud NAT (general internet egress)
  --domain FQDN           add a Google-managed certificate + HTTPS frontend (gRPC needs TLS)
  --gateway-port P        the OpenAI-compatible gateway's port on the VMs (default 8080; the LB
                          routes /v1/* and / to it)
  --gateway-keys-secret S Secret Manager secret holding its API keys, one per line (default
                          <prefix>-gateway-keys; made with one generated key when absent)
  --image-family F --image-project P   VM OS image (default cos-stable / cos-cloud)
  --keep-bucket --keep-images          teardown: leave the bucket / registry in place
  --dry-run               print the gcloud commands instead of running them
EOF
}

parse_flags() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --dry-run) DRY_RUN=true ;;
      --project) PROJECT="$2"; shift ;;
      --region) REGION="$2"; shift ;;
      --zones|--zone) ZONES="$2"; shift ;;
      --prefix) PREFIX="$2"; shift ;;
      --variant) VARIANT="$2"; shift ;;
      --machine-type) MACHINE_TYPE="$2"; shift ;;
      --gpu-type) GPU_TYPE="$2"; shift ;;
      --gpu-count) GPU_COUNT="$2"; shift ;;
      --min-replicas) MIN_REPLICAS="$2"; shift ;;
      --max-replicas) MAX_REPLICAS="$2"; shift ;;
      --target-cpu) TARGET_CPU="$2"; shift ;;
      --target-queue-ms) TARGET_QUEUE_MS="$2"; shift ;;
      --cool-down) COOL_DOWN="$2"; shift ;;
      --initial-delay) INITIAL_DELAY="$2"; shift ;;
      --drain-timeout) DRAIN_TIMEOUT="$2"; shift ;;
      --stop-timeout) STOP_TIMEOUT="$2"; shift ;;
      --gpu-driver) GPU_DRIVER="$2"; shift ;;
      --subnet) SUBNET="$2"; shift ;;
      --nat) NAT=true ;;
      --bucket) BUCKET="$2"; shift ;;
      --model-repository) MODEL_REPOSITORY="$2"; shift ;;
      --image-tag) IMAGE_TAG="$2"; shift ;;
      --builder) BUILDER="$2"; shift ;;
      --skip-upload) SKIP_UPLOAD=true ;;
      --network) NETWORK="$2"; shift ;;
      --domain) DOMAIN="$2"; shift ;;
      --gateway-port) GATEWAY_PORT="$2"; shift ;;
      --gateway-keys-secret) GATEWAY_KEYS_SECRET="$2"; shift ;;
      --boot-disk-gb) BOOT_DISK_GB="$2"; shift ;;
      --image-family) IMAGE_FAMILY="$2"; shift ;;
      --image-project) IMAGE_PROJECT="$2"; shift ;;
      --keep-bucket) KEEP_BUCKET=true ;;
      --keep-images) KEEP_IMAGES=true ;;
      -h|--help) usage; exit 0 ;;
      *) echo "unknown flag: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
  done
  [[ -n "$PROJECT" ]] || { echo "error: --project is required" >&2; exit 2; }
  [[ "$VARIANT" == cpu || "$VARIANT" == gpu ]] || { echo "error: --variant cpu|gpu" >&2; exit 2; }
  [[ "$BUILDER" =~ ^(cloudbuild|docker|none)$ ]] || { echo "error: --builder cloudbuild|docker|none" >&2; exit 2; }
  [[ "$PREFIX" =~ ^[a-z][-a-z0-9]{0,19}[a-z0-9]$ ]] || {
    echo "error: --prefix '${PREFIX}' must be 2-21 characters: a lower-case letter, then letters, digits or '-', not ending in '-'" >&2; exit 2; }
  (( MIN_REPLICAS >= 1 && MAX_REPLICAS >= MIN_REPLICAS )) || { echo "error: need 1 <= min <= max replicas" >&2; exit 2; }
  local n
  if [[ -z "$INITIAL_DELAY" ]]; then
    if [[ "$VARIANT" == gpu ]]; then INITIAL_DELAY="$INITIAL_DELAY_GPU"; else INITIAL_DELAY="$INITIAL_DELAY_CPU"; fi
  fi
  for n in "$DRAIN_TIMEOUT" "$STOP_TIMEOUT" "$INITIAL_DELAY" "$COOL_DOWN" "$TARGET_QUEUE_MS" "$GATEWAY_PORT"; do
    [[ "$n" =~ ^[0-9]+$ ]] || { echo "error: timeouts, delays, --target-queue-ms and --gateway-port are whole numbers, not '${n}'" >&2; exit 2; }
  done
  case "$GATEWAY_PORT" in 8000|8001|8002) echo "error: --gateway-port ${GATEWAY_PORT} is one of Triton's ports" >&2; exit 2 ;; esac
  (( DRAIN_TIMEOUT <= 3600 )) || { echo "error: --drain-timeout is at most 3600 s" >&2; exit 2; }
  (( STOP_TIMEOUT <= 85 )) || { echo "error: --stop-timeout ${STOP_TIMEOUT}: a VM's shutdown script gets about 90 s" >&2; exit 2; }
  (( TARGET_QUEUE_MS > 0 )) || { echo "error: --target-queue-ms must be positive" >&2; exit 2; }
  derive_names
  check_service_account_ids
}

# IAM service account ids are 6-30 characters, [a-z]([-a-z0-9]*[a-z0-9]) (IAM docs, "Create
# service accounts"); they derive from --prefix, so a short or long prefix fails here, clearly.
check_service_account_ids() {
  local id
  for id in "$SA_NAME" "$BUILD_SA_NAME"; do
    if [[ ! "$id" =~ ^[a-z][-a-z0-9]{4,28}[a-z0-9]$ ]]; then
      echo "error: --prefix '${PREFIX}' gives the service account id '${id}' (${#id} characters); ids must be 6-30: use a prefix of 3-21 characters" >&2
      exit 2
    fi
  done
}

derive_names() {
  if [[ -z "$MACHINE_TYPE" ]]; then
    if [[ "$VARIANT" == gpu ]]; then MACHINE_TYPE="n1-standard-8"; else MACHINE_TYPE="$CPU_MACHINE_TYPE"; fi
  fi
  if [[ -z "$BOOT_DISK_GB" ]]; then
    if [[ "$VARIANT" == gpu ]]; then BOOT_DISK_GB=100; else BOOT_DISK_GB=50; fi
  fi
  if [[ -z "$IMAGE_TAG" ]]; then
    IMAGE_TAG="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo dev)"
  fi
  BUCKET="${BUCKET:-${PROJECT}-${PREFIX}-models}"
  MODEL_URI="gs://${BUCKET}/model_repository"
  AR_REPO="${PREFIX}-images"
  IMAGE="${REGION}-docker.pkg.dev/${PROJECT}/${AR_REPO}/triton-server:${IMAGE_TAG}-${VARIANT}"
  GATEWAY_IMAGE="${REGION}-docker.pkg.dev/${PROJECT}/${AR_REPO}/gateway:${IMAGE_TAG}"
  GATEWAY_KEYS_SECRET="${GATEWAY_KEYS_SECRET:-${PREFIX}-gateway-keys}"
  GATEWAY_SECRET_RESOURCE="projects/${PROJECT}/secrets/${GATEWAY_KEYS_SECRET}"
  SA_NAME="${PREFIX}-vm"
  SA_EMAIL="${SA_NAME}@${PROJECT}.iam.gserviceaccount.com"
  BUILD_SA_NAME="${PREFIX}-build"
  BUILD_SA_EMAIL="${BUILD_SA_NAME}@${PROJECT}.iam.gserviceaccount.com"
  BUILD_BUCKET="${PROJECT}-${PREFIX}-build"   # Cloud Build source staging (the builder reads it)
  SUBNET="${SUBNET:-$NETWORK}"
  ROUTER="${PREFIX}-router"
  NAT_NAME="${PREFIX}-nat"
  QUEUE_METRIC="custom.googleapis.com/w2v_triton/queue_time_ms"
  NET_TAG="${PREFIX}-triton"
  FIREWALL="${PREFIX}-allow-lb-hc"
  HEALTH_CHECK="${PREFIX}-hc"
  HEALTH_CHECK_GATEWAY="${PREFIX}-hc-gateway"
  TEMPLATE_PREFIX="${PREFIX}-tpl-"
  MIG="${PREFIX}-mig"
  BACKEND_HTTP="${PREFIX}-be-http"
  BACKEND_GRPC="${PREFIX}-be-grpc"
  BACKEND_GATEWAY="${PREFIX}-be-gateway"
  URL_MAP="${PREFIX}-urlmap"
  ADDRESS="${PREFIX}-ip"
  HTTP_PROXY="${PREFIX}-http-proxy"
  HTTPS_PROXY="${PREFIX}-https-proxy"
  CERT="${PREFIX}-cert"
  RULE_HTTP="${PREFIX}-fr-http"
  RULE_HTTPS="${PREFIX}-fr-https"
  # Google front ends: the load balancer's proxies and its health checkers.
  LB_RANGES="130.211.0.0/22,35.191.0.0/16"
  HTTP_PORT=8000
  GRPC_PORT=8001
  METRICS_PORT=8002
}

# Print an argument vector as one shell-readable line (plain words stay unquoted).
quote_line() {
  local out="" arg
  for arg in "$@"; do
    if [[ "$arg" =~ ^[-A-Za-z0-9_./:=,@%+~^*]+$ ]]; then out+="${arg} "; else out+="$(printf '%q' "$arg") "; fi
  done
  printf '%s\n' "${out% }"
}

# The one place that executes gcloud / gsutil / docker.
run() {
  if [[ "$DRY_RUN" == true ]]; then
    quote_line "$@"
  else
    echo "+ $(quote_line "$@")" >&2
    "$@"
  fi
}

# `exists DESCRIBE-COMMAND...`: true when the resource is there. In a dry run it prints the
# check as a comment and answers $DRY_RUN_ASSUME_EXISTS (deploy: false, teardown: true), so
# the printed plan is the full one.
exists() {
  if [[ "$DRY_RUN" == true ]]; then
    echo "# check: $(quote_line "$@")"
    [[ "${DRY_RUN_ASSUME_EXISTS:-false}" == true ]]
  else
    "$@" >/dev/null 2>&1
  fi
}

# `retry CMD...`: like run, but retried with exponential backoff (4, 8, 16, 32, 64 s: two minutes,
# past the "60 seconds or more" a new service account can take to be usable; RETRY_DELAY
# sets the first). IAM is eventually consistent: a binding for a service account created a
# moment ago can fail with "does not exist" (IAM docs: retry with truncated exponential backoff).
retry() {
  if [[ "$DRY_RUN" == true ]]; then
    quote_line "$@"
    return
  fi
  local attempt delay="${RETRY_DELAY:-4}"
  for attempt in 1 2 3 4 5 6; do
    echo "+ $(quote_line "$@")" >&2
    if "$@"; then return 0; fi
    (( attempt < 6 )) || break
    echo "  (attempt ${attempt} failed; retrying in ${delay} s)" >&2
    sleep "$delay"
    delay=$(( delay * 2 ))
  done
  echo "error: gave up after 6 attempts: $(quote_line "$@")" >&2
  return 1
}

# Read-only queries whose output drives the plan (lists). Dry run: print, answer nothing.
query() {
  if [[ "$DRY_RUN" == true ]]; then
    echo "# query: $(quote_line "$@")" >&2
  else
    "$@"
  fi
}

step() { echo "# --- $*"; }
