#!/usr/bin/env bash
# Deploy the `asr` ensemble on Google Cloud: Artifact Registry images (server, gateway), model
# repository in a bucket, the gateway's API keys in Secret Manager, instance template (startup
# script gcp/startup.sh), regional MIG with autohealing and autoscaling, external Application Load
# Balancer (REST on :8000, gRPC as HTTP2 on :8001, the OpenAI-compatible gateway on :8080 for /v1/*).
# Idempotent: each create is guarded by a describe; an existing resource is updated instead.
#   gcp/deploy.sh --project P [--variant gpu] [--min-replicas 2] ... [--dry-run]
# See docs/deploy-gcp.md; `gcp/deploy.sh --help` lists the flags.
set -euo pipefail
# shellcheck source=gcp/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_flags "$@"
DRY_RUN_ASSUME_EXISTS=false
P=(--project "$PROJECT")

# Instance templates are immutable: the name carries a hash of everything in it, so a
# changed image, shape or startup script gives a new template and a rolling update.
template_name() {
  local digest
  digest="$( { printf '%s\n' "$IMAGE" "$MACHINE_TYPE" "$VARIANT" "$GPU_TYPE" "$GPU_COUNT" "$MODEL_URI" \
      "$BOOT_DISK_GB" "$IMAGE_FAMILY" "$IMAGE_PROJECT" "$SA_EMAIL" "$NETWORK" "$STOP_TIMEOUT" "$GPU_DRIVER" \
      "$GATEWAY_IMAGE" "$GATEWAY_PORT" "$GATEWAY_SECRET_RESOURCE"
      cat "${GCP_DIR}/startup.sh" "${GCP_DIR}/shutdown.sh"; } \
      | sha256sum | cut -c1-8)"
  echo "${TEMPLATE_PREFIX}${VARIANT}-${digest}"
}
TEMPLATE="$(template_name)"

# new_key: NEW_KEY = a random gateway API key (24 bytes from /dev/urandom as hex, after "sk-w2v-").
new_key() { NEW_KEY="sk-w2v-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"; }

check_repository() {
  local version="${MODEL_REPOSITORY}/acoustic_model/1"
  local config="${MODEL_REPOSITORY}/acoustic_model/config.pbtxt"
  # model.onnx (RUNTIME=onnxruntime) or checkpoint/ (RUNTIME=torch)
  if [[ ! -f "${version}/model.onnx" && ! -d "${version}/checkpoint" ]]; then
    echo "warning: ${version}/model.onnx is missing: run \`make build-models MODEL=... DEVICE=${VARIANT}\` first" >&2
    [[ "$DRY_RUN" == true ]] || exit 1
    return 0
  fi
  check_instance_kind "$config"
  check_image_extras --repository "$MODEL_REPOSITORY"
}

# check_image_extras (--repository DIR | --build-info-stdin): the repository's build_info.json against
# the extras the --variant image installs. The rule is Python (w2v_triton/serving/image.py, shared
# with the Dockerfile and the tests): a torch or OpenVINO repository, or a CPU one for the gpu image,
# is refused here in one line instead of crash-looping at model load on every VM.
check_image_extras() {
  local python=python3
  [[ ! -x "${REPO_ROOT}/.venv/bin/python" ]] || python="${REPO_ROOT}/.venv/bin/python"
  if ! (cd "$REPO_ROOT" && "$python" -m w2v_triton.serving.image check-repository --variant "$VARIANT" "$@"); then
    [[ "$DRY_RUN" == true ]] || exit 1
  fi
}

# With --skip-upload the VMs serve what the bucket holds: check its build_info.json instead.
check_bucket_repository() {
  if [[ "$DRY_RUN" == true ]]; then
    echo "# query: $(quote_line gcloud storage cat "${MODEL_URI}/build_info.json" "${P[@]}") | check-repository"
    return 0
  fi
  local info
  info="$(gcloud storage cat "${MODEL_URI}/build_info.json" "${P[@]}")" || {
    echo "error: cannot read ${MODEL_URI}/build_info.json: upload a built repository (drop --skip-upload)" >&2; exit 1; }
  check_image_extras --build-info-stdin <<<"$info"
}

# check_instance_kind CONFIG: the acoustic model's instance_group kind must match --variant
# (KIND_GPU for gpu, KIND_CPU for cpu): a CPU repository on a GPU VM leaves the GPU idle, a
# GPU one on a CPU VM fails to load. `make build-models DEVICE=gpu` renders KIND_GPU.
check_instance_kind() {
  local want=KIND_CPU kinds
  [[ "$VARIANT" == gpu ]] && want=KIND_GPU
  kinds="$(sed 's/#.*//' "$1" | grep -oE 'kind:[[:space:]]*KIND_[A-Z]+' | grep -oE 'KIND_[A-Z]+' | sort -u | paste -sd, - || true)"
  if [[ "$kinds" != "$want" ]]; then
    echo "error: $1 has instance kind ${kinds:-(none)} but --variant ${VARIANT} needs ${want}: rebuild with \`make build-models MODEL=... DEVICE=${VARIANT}\`" >&2
    [[ "$DRY_RUN" == true ]] || exit 1
  fi
}

url_map_yaml() {
  local base="projects/${PROJECT}/global/backendServices"
  cat <<EOF
name: ${URL_MAP}
defaultService: ${base}/${BACKEND_HTTP}
defaultRouteAction:
  faultInjectionPolicy:
    abort: {httpStatus: 404, percentage: 100.0}
hostRules:
- hosts: ['*']
  pathMatcher: asr-only
pathMatchers:
- name: asr-only
  defaultService: ${base}/${BACKEND_HTTP}
  defaultRouteAction:
    faultInjectionPolicy:
      abort: {httpStatus: 404, percentage: 100.0}
  routeRules:
  - priority: 1
    matchRules:
    - fullPathMatch: /v2/health/ready
    - fullPathMatch: /v2/health/live
    - fullPathMatch: /v2/models/asr
    - prefixMatch: /v2/models/asr/
    service: ${base}/${BACKEND_HTTP}
  - priority: 2
    matchRules:
    - fullPathMatch: /inference.GRPCInferenceService/ModelInfer
    - fullPathMatch: /inference.GRPCInferenceService/ModelStreamInfer
    - fullPathMatch: /inference.GRPCInferenceService/ServerLive
    - fullPathMatch: /inference.GRPCInferenceService/ServerReady
    - fullPathMatch: /inference.GRPCInferenceService/ModelReady
    - fullPathMatch: /inference.GRPCInferenceService/ModelMetadata
    service: ${base}/${BACKEND_GRPC}
  - priority: 3
    matchRules:
    - prefixMatch: /v1/
    - fullPathMatch: /
    service: ${base}/${BACKEND_GATEWAY}
EOF
}

# Fail before touching the cloud when there is nothing to upload, or nothing the image can serve.
if [[ "$SKIP_UPLOAD" == true ]]; then check_bucket_repository; else check_repository; fi

step "APIs"
run gcloud services enable compute.googleapis.com artifactregistry.googleapis.com \
  cloudbuild.googleapis.com storage.googleapis.com iam.googleapis.com monitoring.googleapis.com \
  logging.googleapis.com secretmanager.googleapis.com "${P[@]}"

step "Artifact Registry repository ${AR_REPO}"
if ! exists gcloud artifacts repositories describe "$AR_REPO" --location "$REGION" "${P[@]}"; then
  run gcloud artifacts repositories create "$AR_REPO" --repository-format docker \
    --location "$REGION" --description "w2v_triton server images" "${P[@]}"
fi

step "buckets gs://${BUCKET} (models)$([[ "$BUILDER" == cloudbuild ]] && echo " and gs://${BUILD_BUCKET} (build sources)")"
BUCKETS=("$BUCKET")
[[ "$BUILDER" != cloudbuild ]] || BUCKETS+=("$BUILD_BUCKET")
for bucket in "${BUCKETS[@]}"; do
  if ! exists gcloud storage buckets describe "gs://${bucket}" "${P[@]}"; then
    run gcloud storage buckets create "gs://${bucket}" --location "$REGION" \
      --uniform-bucket-level-access "${P[@]}"
  fi
done

# The VMs' identity reads models and images and writes logs and the queue-time metric. The
# build's own identity (Cloud Build docs, "user-specified service accounts"): new projects'
# default build account may lack these roles, so the deploy never relies on it.
step "service accounts ${SA_EMAIL} (VMs)$([[ "$BUILDER" == cloudbuild ]] && echo " and ${BUILD_SA_EMAIL} (Cloud Build)")"
ACCOUNTS=("${SA_NAME}:w2v_triton VMs")
[[ "$BUILDER" != cloudbuild ]] || ACCOUNTS+=("${BUILD_SA_NAME}:w2v_triton image builds")
for entry in "${ACCOUNTS[@]}"; do
  name="${entry%%:*}"
  if ! exists gcloud iam service-accounts describe "${name}@${PROJECT}.iam.gserviceaccount.com" "${P[@]}"; then
    run gcloud iam service-accounts create "$name" --display-name "${entry#*:}" "${P[@]}"
  fi
done
# Bindings right after creation may fail until the new account has propagated: retried.
retry gcloud storage buckets add-iam-policy-binding "gs://${BUCKET}" \
  --member "serviceAccount:${SA_EMAIL}" --role roles/storage.objectViewer "${P[@]}"
retry gcloud artifacts repositories add-iam-policy-binding "$AR_REPO" --location "$REGION" \
  --member "serviceAccount:${SA_EMAIL}" --role roles/artifactregistry.reader "${P[@]}"
for role in roles/logging.logWriter roles/monitoring.metricWriter; do
  retry gcloud projects add-iam-policy-binding "$PROJECT" --member "serviceAccount:${SA_EMAIL}" \
    --role "$role" --condition None --quiet
done
# The gateway's API keys: a secret only the VMs' account may read. A new secret gets one generated
# key (never printed: read it with `gcloud secrets versions access latest --secret NAME`).
step "gateway API keys: secret ${GATEWAY_KEYS_SECRET} (Secret Manager)"
if ! exists gcloud secrets describe "$GATEWAY_KEYS_SECRET" "${P[@]}"; then
  new_key
  # a here-string, not a pipe: in a dry run nothing reads it, and a pipe's writer would get SIGPIPE
  run gcloud secrets create "$GATEWAY_KEYS_SECRET" --replication-policy automatic --data-file - "${P[@]}" \
    <<<"$NEW_KEY"
  echo "# the gateway's first API key: gcloud secrets versions access latest --secret ${GATEWAY_KEYS_SECRET} --project ${PROJECT}"
fi
retry gcloud secrets add-iam-policy-binding "$GATEWAY_KEYS_SECRET" --member "serviceAccount:${SA_EMAIL}" \
  --role roles/secretmanager.secretAccessor "${P[@]}"
if [[ "$BUILDER" == cloudbuild ]]; then
  retry gcloud artifacts repositories add-iam-policy-binding "$AR_REPO" --location "$REGION" \
    --member "serviceAccount:${BUILD_SA_EMAIL}" --role roles/artifactregistry.writer "${P[@]}"
  retry gcloud storage buckets add-iam-policy-binding "gs://${BUILD_BUCKET}" \
    --member "serviceAccount:${BUILD_SA_EMAIL}" --role roles/storage.objectViewer "${P[@]}"
  retry gcloud projects add-iam-policy-binding "$PROJECT" --member "serviceAccount:${BUILD_SA_EMAIL}" \
    --role roles/logging.logWriter --condition None --quiet
fi

step "images ${IMAGE} and ${GATEWAY_IMAGE} (builder: ${BUILDER})"
case "$BUILDER" in
  cloudbuild)
    # A user-specified build account needs its logs in Cloud Logging or a user bucket:
    # cloudbuild.yaml sets options.logging CLOUD_LOGGING_ONLY.
    retry gcloud builds submit "$REPO_ROOT" --config "${GCP_DIR}/cloudbuild.yaml" --ignore-file gcp/gcloudignore \
      --substitutions "_IMAGE=${IMAGE},_VARIANT=${VARIANT},_GATEWAY_IMAGE=${GATEWAY_IMAGE}" \
      --service-account "projects/${PROJECT}/serviceAccounts/${BUILD_SA_EMAIL}" \
      --gcs-source-staging-dir "gs://${BUILD_BUCKET}/source" "${P[@]}" ;;
  docker)
    run gcloud auth configure-docker "${REGION}-docker.pkg.dev" --quiet
    run docker build -f "${REPO_ROOT}/docker/Dockerfile.server" --build-arg "VARIANT=${VARIANT}" \
      -t "$IMAGE" "$REPO_ROOT"
    run docker build -f "${REPO_ROOT}/docker/Dockerfile.gateway" -t "$GATEWAY_IMAGE" "$REPO_ROOT"
    run docker push "$IMAGE"
    run docker push "$GATEWAY_IMAGE" ;;
  none) echo "# images: using the already pushed ${IMAGE} and ${GATEWAY_IMAGE}" ;;
esac

step "model repository -> ${MODEL_URI}"
if [[ "$SKIP_UPLOAD" == false ]]; then
  run gcloud storage rsync "$MODEL_REPOSITORY" "$MODEL_URI" --recursive \
    --delete-unmatched-destination-objects --exclude '.*__pycache__.*|.*\.template$' "${P[@]}"
fi

# VMs have no external IP: Private Google Access lets them reach Artifact Registry, Cloud
# Storage, Logging and Monitoring (all this deployment needs); Cloud NAT is optional egress.
step "egress without external IPs: Private Google Access on ${SUBNET}$([[ "$NAT" == true ]] && echo ", Cloud NAT ${NAT_NAME}")"
run gcloud compute networks subnets update "$SUBNET" --region "$REGION" \
  --enable-private-ip-google-access "${P[@]}"
if [[ "$NAT" == true ]]; then
  if ! exists gcloud compute routers describe "$ROUTER" --region "$REGION" "${P[@]}"; then
    run gcloud compute routers create "$ROUTER" --network "$NETWORK" --region "$REGION" "${P[@]}"
  fi
  if ! exists gcloud compute routers nats describe "$NAT_NAME" --router "$ROUTER" --region "$REGION" "${P[@]}"; then
    run gcloud compute routers nats create "$NAT_NAME" --router "$ROUTER" --region "$REGION" \
      --auto-allocate-nat-external-ips --nat-all-subnet-ip-ranges "${P[@]}"
  fi
fi

step "firewall ${FIREWALL}: only the load balancer and health checkers reach :${HTTP_PORT},${GRPC_PORT},${GATEWAY_PORT}"
FW=(--allow "tcp:${HTTP_PORT},tcp:${GRPC_PORT},tcp:${GATEWAY_PORT}" --source-ranges "$LB_RANGES" --target-tags "$NET_TAG")
if exists gcloud compute firewall-rules describe "$FIREWALL" "${P[@]}"; then
  run gcloud compute firewall-rules update "$FIREWALL" "${FW[@]}" "${P[@]}"
else
  run gcloud compute firewall-rules create "$FIREWALL" --network "$NETWORK" --direction INGRESS \
    "${FW[@]}" "${P[@]}"
fi

# Triton's (autohealing and its two backends) and the gateway's: /health is 200 only when the
# gateway is up and Triton's ensemble is ready behind it.
step "health checks ${HEALTH_CHECK}: GET /v2/health/ready on :${HTTP_PORT}; ${HEALTH_CHECK_GATEWAY}: GET /health on :${GATEWAY_PORT}"
for pair in "${HEALTH_CHECK}:${HTTP_PORT}:/v2/health/ready" "${HEALTH_CHECK_GATEWAY}:${GATEWAY_PORT}:/health"; do
  IFS=: read -r hc port path <<<"$pair"
  HC=(--port "$port" --request-path "$path" --check-interval 10s --timeout 5s
      --healthy-threshold 2 --unhealthy-threshold 3)
  if exists gcloud compute health-checks describe "$hc" --global "${P[@]}"; then
    run gcloud compute health-checks update http "$hc" --global "${HC[@]}" "${P[@]}"
  else
    run gcloud compute health-checks create http "$hc" --global "${HC[@]}" "${P[@]}"
  fi
done

step "instance template ${TEMPLATE}"
if ! exists gcloud compute instance-templates describe "$TEMPLATE" "${P[@]}"; then
  ACCEL=()
  if [[ "$VARIANT" == gpu ]]; then
    ACCEL=(--accelerator "type=${GPU_TYPE},count=${GPU_COUNT}" --maintenance-policy TERMINATE)
  fi
  retry gcloud compute instance-templates create "$TEMPLATE" --machine-type "$MACHINE_TYPE" "${ACCEL[@]}" \
    --image-family "$IMAGE_FAMILY" --image-project "$IMAGE_PROJECT" \
    --boot-disk-size "${BOOT_DISK_GB}GB" --boot-disk-type pd-balanced \
    --network "$NETWORK" --no-address --tags "$NET_TAG" \
    --service-account "$SA_EMAIL" --scopes cloud-platform \
    --metadata-from-file "startup-script=${GCP_DIR}/startup.sh,shutdown-script=${GCP_DIR}/shutdown.sh" \
    --metadata "image=${IMAGE},model-repository=${MODEL_URI},gpu=$([[ $VARIANT == gpu ]] && echo true || echo false),gpu-driver=${GPU_DRIVER},grpc-tls=true,queue-metric=true,stop-timeout=${STOP_TIMEOUT},gateway-image=${GATEWAY_IMAGE},gateway-port=${GATEWAY_PORT},gateway-keys-secret=${GATEWAY_SECRET_RESOURCE},google-logging-enabled=true" \
    "${P[@]}"
fi

step "regional managed instance group ${MIG} (autohealing on ${HEALTH_CHECK})"
ZONE_FLAGS=()
[[ -z "$ZONES" ]] || ZONE_FLAGS=(--zones "$ZONES")
if exists gcloud compute instance-groups managed describe "$MIG" --region "$REGION" "${P[@]}"; then
  run gcloud compute instance-groups managed rolling-action start-update "$MIG" --region "$REGION" \
    --version "template=${TEMPLATE}" --max-surge 3 --max-unavailable 0 "${P[@]}"
  run gcloud compute instance-groups managed update "$MIG" --region "$REGION" \
    --health-check "$HEALTH_CHECK" --initial-delay "$INITIAL_DELAY" "${P[@]}"
else
  run gcloud compute instance-groups managed create "$MIG" --region "$REGION" "${ZONE_FLAGS[@]}" \
    --template "$TEMPLATE" --size "$MIN_REPLICAS" --base-instance-name "${PREFIX}-vm" \
    --health-check "$HEALTH_CHECK" --initial-delay "$INITIAL_DELAY" "${P[@]}"
fi
run gcloud compute instance-groups managed set-named-ports "$MIG" --region "$REGION" \
  --named-ports "http:${HTTP_PORT},grpc:${GRPC_PORT},gateway:${GATEWAY_PORT}" "${P[@]}"

# Queue time (w2v_triton.serving.queue_metric on each VM) is the signal for both variants: it is what
# callers feel when replicas are short. The cpu variant also keeps CPU utilisation; with
# several signals the autoscaler follows the one asking for the most VMs.
SIGNALS=(--custom-metric-utilization "metric=${QUEUE_METRIC},utilization-target=${TARGET_QUEUE_MS},utilization-target-type=GAUGE")
[[ "$VARIANT" == gpu ]] || SIGNALS+=(--target-cpu-utilization "$TARGET_CPU")
step "autoscaling ${MIN_REPLICAS}..${MAX_REPLICAS} replicas: queue time ${TARGET_QUEUE_MS} ms$([[ "$VARIANT" == gpu ]] || echo ", CPU ${TARGET_CPU}")"
run gcloud compute instance-groups managed set-autoscaling "$MIG" --region "$REGION" \
  --min-num-replicas "$MIN_REPLICAS" --max-num-replicas "$MAX_REPLICAS" "${SIGNALS[@]}" \
  --cool-down-period "$COOL_DOWN" --mode on "${P[@]}"

step "backend services: ${BACKEND_HTTP} (HTTP :${HTTP_PORT}), ${BACKEND_GRPC} (HTTP2 :${GRPC_PORT}, gRPC), ${BACKEND_GATEWAY} (HTTP :${GATEWAY_PORT}), draining ${DRAIN_TIMEOUT} s"
for entry in "${BACKEND_HTTP}:HTTP:http:${HEALTH_CHECK}" "${BACKEND_GRPC}:HTTP2:grpc:${HEALTH_CHECK}" \
             "${BACKEND_GATEWAY}:HTTP:gateway:${HEALTH_CHECK_GATEWAY}"; do
  IFS=: read -r be protocol port_name hc <<<"$entry"
  # Connection draining: a VM leaving the group (scale-in, rolling update, autohealing) gets no
  # new requests and DRAIN_TIMEOUT seconds for those in flight before it is stopped.
  BE=(--global --protocol "$protocol" --port-name "$port_name" --health-checks "$hc"
      --load-balancing-scheme EXTERNAL_MANAGED --timeout 300s --connection-draining-timeout "$DRAIN_TIMEOUT")
  if exists gcloud compute backend-services describe "$be" --global "${P[@]}"; then
    run gcloud compute backend-services update "$be" --global --protocol "$protocol" \
      --port-name "$port_name" --health-checks "$hc" --timeout 300s \
      --connection-draining-timeout "$DRAIN_TIMEOUT" "${P[@]}"
  else
    run gcloud compute backend-services create "$be" "${BE[@]}" "${P[@]}"
  fi
  attached=""
  if [[ "$DRY_RUN" == false ]]; then
    attached="$(gcloud compute backend-services describe "$be" --global "${P[@]}" \
      --format 'value(backends[].group)' 2>/dev/null || true)"
  fi
  if [[ "$attached" != *"/instanceGroups/${MIG}"* ]]; then
    run gcloud compute backend-services add-backend "$be" --global --instance-group "$MIG" \
      --instance-group-region "$REGION" --balancing-mode UTILIZATION --max-utilization 0.8 "${P[@]}"
  fi
done

step "URL map ${URL_MAP}: only /v2/models/asr/*, health, the inference gRPC methods and the gateway (/v1/*, /); the rest 404"
URL_MAP_FILE="$(mktemp)"
trap 'rm -f "$URL_MAP_FILE"' EXIT
url_map_yaml >"$URL_MAP_FILE"
if [[ "$DRY_RUN" == true ]]; then sed 's/^/#   /' "$URL_MAP_FILE"; fi
run gcloud compute url-maps import "$URL_MAP" --global --source "$URL_MAP_FILE" --quiet "${P[@]}"

step "frontend: address ${ADDRESS}, proxy, forwarding rule(s)"
if ! exists gcloud compute addresses describe "$ADDRESS" --global "${P[@]}"; then
  run gcloud compute addresses create "$ADDRESS" --global --ip-version IPV4 "${P[@]}"
fi
if exists gcloud compute target-http-proxies describe "$HTTP_PROXY" --global "${P[@]}"; then
  run gcloud compute target-http-proxies update "$HTTP_PROXY" --global --url-map "$URL_MAP" "${P[@]}"
else
  run gcloud compute target-http-proxies create "$HTTP_PROXY" --global --url-map "$URL_MAP" "${P[@]}"
fi
if ! exists gcloud compute forwarding-rules describe "$RULE_HTTP" --global "${P[@]}"; then
  run gcloud compute forwarding-rules create "$RULE_HTTP" --global --load-balancing-scheme EXTERNAL_MANAGED \
    --address "$ADDRESS" --target-http-proxy "$HTTP_PROXY" --ports 80 "${P[@]}"
fi
if [[ -n "$DOMAIN" ]]; then
  if ! exists gcloud compute ssl-certificates describe "$CERT" --global "${P[@]}"; then
    run gcloud compute ssl-certificates create "$CERT" --global --domains "$DOMAIN" "${P[@]}"
  fi
  if exists gcloud compute target-https-proxies describe "$HTTPS_PROXY" --global "${P[@]}"; then
    run gcloud compute target-https-proxies update "$HTTPS_PROXY" --global --url-map "$URL_MAP" \
      --ssl-certificates "$CERT" "${P[@]}"
  else
    run gcloud compute target-https-proxies create "$HTTPS_PROXY" --global --url-map "$URL_MAP" \
      --ssl-certificates "$CERT" "${P[@]}"
  fi
  if ! exists gcloud compute forwarding-rules describe "$RULE_HTTPS" --global "${P[@]}"; then
    run gcloud compute forwarding-rules create "$RULE_HTTPS" --global --load-balancing-scheme EXTERNAL_MANAGED \
      --address "$ADDRESS" --target-https-proxy "$HTTPS_PROXY" --ports 443 "${P[@]}"
  fi
fi

step "done"
if [[ "$DRY_RUN" == false ]]; then
  ip="$(gcloud compute addresses describe "$ADDRESS" --global --format 'value(address)' "${P[@]}")"
  echo "REST:  http://${ip}/v2/models/asr/infer   (health: http://${ip}/v2/health/ready)"
  echo "OpenAI-compatible: http://${ip}/v1/audio/transcriptions  (page: http://${ip}/; API keys: Secret Manager secret ${GATEWAY_KEYS_SECRET})"
  [[ -z "$DOMAIN" ]] || echo "gRPC:  ${DOMAIN}:443 (TLS; once the managed certificate is ACTIVE)"
fi
