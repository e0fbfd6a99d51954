#!/usr/bin/env bash
# Deploy the `asr` ensemble on Google Cloud: Artifact Registry image, model repository in a
# bucket, instance template (startup script gcp/startup.sh), regional MIG with autohealing and
# autoscaling, external Application Load Balancer (REST on :8000, gRPC as HTTP2 on :8001).
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
      "$BOOT_DISK_GB" "$IMAGE_FAMILY" "$IMAGE_PROJECT" "$SA_EMAIL" "$NETWORK"; cat "${GCP_DIR}/startup.sh"; } \
      | sha256sum | cut -c1-8)"
  echo "${TEMPLATE_PREFIX}${VARIANT}-${digest}"
}
TEMPLATE="$(template_name)"

check_repository() {
  local onnx="${MODEL_REPOSITORY}/acoustic_model/1/model.onnx"
  local config="${MODEL_REPOSITORY}/acoustic_model/config.pbtxt"
  if [[ ! -f "$onnx" ]]; then
    echo "warning: ${onnx} is missing: run \`make build-models MODEL=... PLATFORM=onnxruntime_onnx\` first" >&2
    [[ "$DRY_RUN" == true ]] || exit 1
  elif ! grep -q 'platform: "onnxruntime_onnx"' "$config"; then
    echo "note: ${config} is not platform onnxruntime_onnx; the image serves it with the python backend" >&2
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
EOF
}

# Fail before touching the cloud when there is nothing to upload.
[[ "$SKIP_UPLOAD" == true ]] || check_repository

step "APIs"
run gcloud services enable compute.googleapis.com artifactregistry.googleapis.com \
  cloudbuild.googleapis.com storage.googleapis.com iam.googleapis.com "${P[@]}"

step "Artifact Registry repository ${AR_REPO}"
if ! exists gcloud artifacts repositories describe "$AR_REPO" --location "$REGION" "${P[@]}"; then
  run gcloud artifacts repositories create "$AR_REPO" --repository-format docker \
    --location "$REGION" --description "w2v_triton server images" "${P[@]}"
fi

step "image ${IMAGE} (builder: ${BUILDER})"
case "$BUILDER" in
  cloudbuild)
    run gcloud builds submit "$REPO_ROOT" --config "${GCP_DIR}/cloudbuild.yaml" --ignore-file gcp/gcloudignore \
      --substitutions "_IMAGE=${IMAGE},_VARIANT=${VARIANT}" "${P[@]}" ;;
  docker)
    run gcloud auth configure-docker "${REGION}-docker.pkg.dev" --quiet
    run docker build -f "${REPO_ROOT}/docker/Dockerfile.server" --build-arg "VARIANT=${VARIANT}" \
      -t "$IMAGE" "$REPO_ROOT"
    run docker push "$IMAGE" ;;
  none) echo "# image: using the already pushed ${IMAGE}" ;;
esac

step "model bucket gs://${BUCKET}"
if ! exists gcloud storage buckets describe "gs://${BUCKET}" "${P[@]}"; then
  run gcloud storage buckets create "gs://${BUCKET}" --location "$REGION" \
    --uniform-bucket-level-access "${P[@]}"
fi
if [[ "$SKIP_UPLOAD" == false ]]; then
  run gcloud storage rsync "$MODEL_REPOSITORY" "$MODEL_URI" --recursive \
    --delete-unmatched-destination-objects --exclude '.*__pycache__.*|.*\.template$' "${P[@]}"
fi

step "service account ${SA_EMAIL}"
if ! exists gcloud iam service-accounts describe "$SA_EMAIL" "${P[@]}"; then
  run gcloud iam service-accounts create "$SA_NAME" --display-name "w2v_triton VMs" "${P[@]}"
fi
run gcloud storage buckets add-iam-policy-binding "gs://${BUCKET}" \
  --member "serviceAccount:${SA_EMAIL}" --role roles/storage.objectViewer "${P[@]}"
run gcloud artifacts repositories add-iam-policy-binding "$AR_REPO" --location "$REGION" \
  --member "serviceAccount:${SA_EMAIL}" --role roles/artifactregistry.reader "${P[@]}"
for role in roles/logging.logWriter roles/monitoring.metricWriter; do
  run gcloud projects add-iam-policy-binding "$PROJECT" --member "serviceAccount:${SA_EMAIL}" \
    --role "$role" --condition None --quiet
done

step "firewall ${FIREWALL}: only the load balancer and health checkers reach :${HTTP_PORT},${GRPC_PORT}"
FW=(--allow "tcp:${HTTP_PORT},tcp:${GRPC_PORT}" --source-ranges "$LB_RANGES" --target-tags "$NET_TAG")
if exists gcloud compute firewall-rules describe "$FIREWALL" "${P[@]}"; then
  run gcloud compute firewall-rules update "$FIREWALL" "${FW[@]}" "${P[@]}"
else
  run gcloud compute firewall-rules create "$FIREWALL" --network "$NETWORK" --direction INGRESS \
    "${FW[@]}" "${P[@]}"
fi

step "health check ${HEALTH_CHECK}: GET /v2/health/ready on :${HTTP_PORT}"
HC=(--port "$HTTP_PORT" --request-path /v2/health/ready --check-interval 10s --timeout 5s
    --healthy-threshold 2 --unhealthy-threshold 3)
if exists gcloud compute health-checks describe "$HEALTH_CHECK" --global "${P[@]}"; then
  run gcloud compute health-checks update http "$HEALTH_CHECK" --global "${HC[@]}" "${P[@]}"
else
  run gcloud compute health-checks create http "$HEALTH_CHECK" --global "${HC[@]}" "${P[@]}"
fi

step "instance template ${TEMPLATE}"
if ! exists gcloud compute instance-templates describe "$TEMPLATE" "${P[@]}"; then
  ACCEL=()
  if [[ "$VARIANT" == gpu ]]; then
    ACCEL=(--accelerator "type=${GPU_TYPE},count=${GPU_COUNT}" --maintenance-policy TERMINATE)
  fi
  run gcloud compute instance-templates create "$TEMPLATE" --machine-type "$MACHINE_TYPE" "${ACCEL[@]}" \
    --image-family "$IMAGE_FAMILY" --image-project "$IMAGE_PROJECT" \
    --boot-disk-size "${BOOT_DISK_GB}GB" --boot-disk-type pd-balanced \
    --network "$NETWORK" --tags "$NET_TAG" \
    --service-account "$SA_EMAIL" --scopes cloud-platform \
    --metadata-from-file "startup-script=${GCP_DIR}/startup.sh" \
    --metadata "image=${IMAGE},model-repository=${MODEL_URI},gpu=$([[ $VARIANT == gpu ]] && echo true || echo false),grpc-tls=true,google-logging-enabled=true" \
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
  --named-ports "http:${HTTP_PORT},grpc:${GRPC_PORT}" "${P[@]}"

step "autoscaling ${MIN_REPLICAS}..${MAX_REPLICAS} replicas at CPU ${TARGET_CPU}"
run gcloud compute instance-groups managed set-autoscaling "$MIG" --region "$REGION" \
  --min-num-replicas "$MIN_REPLICAS" --max-num-replicas "$MAX_REPLICAS" \
  --target-cpu-utilization "$TARGET_CPU" --cool-down-period "$COOL_DOWN" \
  --mode on "${P[@]}"

step "backend services: ${BACKEND_HTTP} (HTTP :${HTTP_PORT}) and ${BACKEND_GRPC} (HTTP2 :${GRPC_PORT}, gRPC)"
for pair in "${BACKEND_HTTP}:HTTP:http" "${BACKEND_GRPC}:HTTP2:grpc"; do
  IFS=: read -r be protocol port_name <<<"$pair"
  BE=(--global --protocol "$protocol" --port-name "$port_name" --health-checks "$HEALTH_CHECK"
      --load-balancing-scheme EXTERNAL_MANAGED --timeout 300s)
  if exists gcloud compute backend-services describe "$be" --global "${P[@]}"; then
    run gcloud compute backend-services update "$be" --global --protocol "$protocol" \
      --port-name "$port_name" --health-checks "$HEALTH_CHECK" --timeout 300s "${P[@]}"
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

step "URL map ${URL_MAP}: only /v2/models/asr/*, health and the inference gRPC methods; the rest 404"
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
  [[ -z "$DOMAIN" ]] || echo "gRPC:  ${DOMAIN}:443 (TLS; once the managed certificate is ACTIVE)"
fi
