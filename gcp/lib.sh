# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables below are used by the scripts that source this file
# Shared by gcp/deploy.sh and gcp/teardown.sh: flags, resource names, the `run` wrapper.
# Every gcloud call goes through `run` (mutating) or `exists` (a describe guard), so
# `--dry-run` prints the complete ordered list of commands and executes nothing.

GCP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${GCP_DIR}/.." && pwd)"

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
TARGET_CPU=0.6
COOL_DOWN=300                  # seconds: image pull + model load before a VM's CPU counts
INITIAL_DELAY=600              # seconds before autohealing judges a new VM
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
  --machine-type T        default n2-standard-8 (cpu) / n1-standard-8 (gpu)
  --gpu-type T --gpu-count N   accelerator of the gpu variant (default nvidia-tesla-t4 x1)
  --min-replicas N --max-replicas N   autoscaler bounds (default 1 / 4)
  --target-cpu F          autoscaler target CPU utilisation (default 0.6)
  --cool-down S           autoscaler cool-down / initialisation period (default 300)
  --bucket NAME           model bucket (default <project>-<prefix>-models)
  --model-repository DIR  built repository to upload (default ./model_repository)
  --image-tag TAG         image tag (default git short sha)
  --builder cloudbuild|docker|none   how the image is built and pushed (default cloudbuild)
  --skip-upload           do not rsync the model repository
  --network NAME          VPC network (default default)
  --domain FQDN           add a Google-managed certificate + HTTPS frontend (gRPC needs TLS)
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
      --cool-down) COOL_DOWN="$2"; shift ;;
      --bucket) BUCKET="$2"; shift ;;
      --model-repository) MODEL_REPOSITORY="$2"; shift ;;
      --image-tag) IMAGE_TAG="$2"; shift ;;
      --builder) BUILDER="$2"; shift ;;
      --skip-upload) SKIP_UPLOAD=true ;;
      --network) NETWORK="$2"; shift ;;
      --domain) DOMAIN="$2"; shift ;;
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
  [[ "$PREFIX" =~ ^[a-z][-a-z0-9]{1,20}$ ]] || { echo "error: --prefix must match [a-z][-a-z0-9]{1,20}" >&2; exit 2; }
  (( MIN_REPLICAS >= 1 && MAX_REPLICAS >= MIN_REPLICAS )) || { echo "error: need 1 <= min <= max replicas" >&2; exit 2; }
  derive_names
}

derive_names() {
  if [[ -z "$MACHINE_TYPE" ]]; then
    if [[ "$VARIANT" == gpu ]]; then MACHINE_TYPE="n1-standard-8"; else MACHINE_TYPE="n2-standard-8"; fi
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
  SA_NAME="${PREFIX}-vm"
  SA_EMAIL="${SA_NAME}@${PROJECT}.iam.gserviceaccount.com"
  NET_TAG="${PREFIX}-triton"
  FIREWALL="${PREFIX}-allow-lb-hc"
  HEALTH_CHECK="${PREFIX}-hc"
  TEMPLATE_PREFIX="${PREFIX}-tpl-"
  MIG="${PREFIX}-mig"
  BACKEND_HTTP="${PREFIX}-be-http"
  BACKEND_GRPC="${PREFIX}-be-grpc"
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

# Read-only queries whose output drives the plan (lists). Dry run: print, answer nothing.
query() {
  if [[ "$DRY_RUN" == true ]]; then
    echo "# query: $(quote_line "$@")" >&2
  else
    "$@"
  fi
}

step() { echo "# --- $*"; }
