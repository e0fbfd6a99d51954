#!/usr/bin/env bash
# Remove everything gcp/deploy.sh created, in reverse order. Pass the same --project,
# --region and --prefix (and --bucket if you gave one) as to deploy.sh. Each delete is guarded
# by a describe, so running it twice is harmless. --keep-bucket / --keep-images keep data.
#   gcp/teardown.sh --project P [--prefix w2v-asr] [--dry-run]
set -euo pipefail
# shellcheck source=gcp/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_flags "$@"
DRY_RUN_ASSUME_EXISTS=true
P=(--project "$PROJECT")

delete_global() {  # KIND NAME: a global compute resource
  local kind="$1" name="$2"
  if exists gcloud compute "$kind" describe "$name" --global "${P[@]}"; then
    run gcloud compute "$kind" delete "$name" --global --quiet "${P[@]}"
  fi
}

step "frontend"
delete_global forwarding-rules "$RULE_HTTPS"
delete_global forwarding-rules "$RULE_HTTP"
delete_global target-https-proxies "$HTTPS_PROXY"
delete_global target-http-proxies "$HTTP_PROXY"
delete_global ssl-certificates "$CERT"
delete_global addresses "$ADDRESS"

step "URL map and backend services"
delete_global url-maps "$URL_MAP"
delete_global backend-services "$BACKEND_GATEWAY"
delete_global backend-services "$BACKEND_GRPC"
delete_global backend-services "$BACKEND_HTTP"

step "managed instance group ${MIG} (its autoscaler goes with it)"
if exists gcloud compute instance-groups managed describe "$MIG" --region "$REGION" "${P[@]}"; then
  run gcloud compute instance-groups managed delete "$MIG" --region "$REGION" --quiet "${P[@]}"
fi

step "instance templates ${TEMPLATE_PREFIX}*"
if [[ "$DRY_RUN" == true ]]; then
  # The template this flag set would have made (its name is a hash, see deploy.sh).
  templates="$(bash "${GCP_DIR}/deploy.sh" "$@" --dry-run 2>/dev/null \
    | sed -n "s/^gcloud compute instance-templates create \(${TEMPLATE_PREFIX}[^ ]*\) .*/\1/p")"
  echo "# query: gcloud compute instance-templates list --filter name~^${TEMPLATE_PREFIX} --format value(name)"
else
  templates="$(query gcloud compute instance-templates list --filter "name~^${TEMPLATE_PREFIX}" \
    --format 'value(name)' "${P[@]}")"
fi
for template in $templates; do
  run gcloud compute instance-templates delete "$template" --quiet "${P[@]}"
done

step "health checks and firewall"
delete_global health-checks "$HEALTH_CHECK_GATEWAY"
delete_global health-checks "$HEALTH_CHECK"
if exists gcloud compute firewall-rules describe "$FIREWALL" "${P[@]}"; then
  run gcloud compute firewall-rules delete "$FIREWALL" --quiet "${P[@]}"
fi

# Private Google Access stays on the subnet: it is a property of a shared network, and other
# workloads may rely on it.
step "Cloud NAT ${NAT_NAME} and router ${ROUTER} (if --nat made them)"
if exists gcloud compute routers nats describe "$NAT_NAME" --router "$ROUTER" --region "$REGION" "${P[@]}"; then
  run gcloud compute routers nats delete "$NAT_NAME" --router "$ROUTER" --region "$REGION" --quiet "${P[@]}"
fi
if exists gcloud compute routers describe "$ROUTER" --region "$REGION" "${P[@]}"; then
  run gcloud compute routers delete "$ROUTER" --region "$REGION" --quiet "${P[@]}"
fi

step "service accounts ${SA_EMAIL} and ${BUILD_SA_EMAIL}"
for entry in "${SA_EMAIL}:roles/monitoring.metricWriter,roles/logging.logWriter" \
             "${BUILD_SA_EMAIL}:roles/logging.logWriter"; do
  email="${entry%%:*}"
  if exists gcloud iam service-accounts describe "$email" "${P[@]}"; then
    IFS=, read -r -a roles <<<"${entry#*:}"
    for role in "${roles[@]}"; do
      run gcloud projects remove-iam-policy-binding "$PROJECT" --member "serviceAccount:${email}" \
        --role "$role" --condition None --quiet
    done
    run gcloud iam service-accounts delete "$email" --quiet "${P[@]}"
  fi
done

step "gateway API keys: secret ${GATEWAY_KEYS_SECRET}"
if exists gcloud secrets describe "$GATEWAY_KEYS_SECRET" "${P[@]}"; then
  run gcloud secrets delete "$GATEWAY_KEYS_SECRET" --quiet "${P[@]}"
fi

step "build source bucket gs://${BUILD_BUCKET}"
if exists gcloud storage buckets describe "gs://${BUILD_BUCKET}" "${P[@]}"; then
  run gcloud storage rm --recursive "gs://${BUILD_BUCKET}" "${P[@]}"
fi

step "model bucket gs://${BUCKET}"
if [[ "$KEEP_BUCKET" == false ]] && exists gcloud storage buckets describe "gs://${BUCKET}" "${P[@]}"; then
  run gcloud storage rm --recursive "gs://${BUCKET}" "${P[@]}"
fi

step "Artifact Registry repository ${AR_REPO}"
if [[ "$KEEP_IMAGES" == false ]] && exists gcloud artifacts repositories describe "$AR_REPO" --location "$REGION" "${P[@]}"; then
  run gcloud artifacts repositories delete "$AR_REPO" --location "$REGION" --quiet "${P[@]}"
fi
step "done"
