#!/usr/bin/env bash
# VM startup script (instance metadata `startup-script`, set by gcp/deploy.sh): run the Triton
# server image against the model repository in the bucket, with model control disabled, and the
# OpenAI-compatible gateway image beside it.
#
# Settings come from the environment first, then from instance metadata attributes:
#   MODEL_REPOSITORY  (model-repository)  gs://BUCKET/model_repository, or a local folder
#   IMAGE             (image)             the server image (docker/Dockerfile.server)
#   GPU               (gpu)               true: install the COS GPU driver, pass the GPUs in
#   GRPC_TLS          (grpc-tls)          true: self-signed TLS on gRPC (the LB's HTTP2 backend
#                                         speaks TLS to it; it does not check the certificate);
#                                         made once under STATE_DIR/tls (default /var/lib/w2v-triton)
#   HTTP_PORT GRPC_PORT METRICS_PORT      8000 8001 8002
#   STOP_TIMEOUT      (stop-timeout)      seconds Docker waits after SIGTERM before SIGKILL (75:
#                                         under Compute Engine's 90 s shutdown-script budget);
#                                         tritonserver gets --exit-timeout-secs 5 s shorter
#   GPU_DRIVER        (gpu-driver)        cos-extensions driver version or branch (R580); the
#                                         installed driver is checked against NGC 24.10's needs
#   QUEUE_METRIC      (queue-metric)      true: also run the queue-time exporter container
#                                         (python -m w2v_triton.serving.queue_metric), the autoscaling signal;
#                                         it reads the gateway's /metrics too when there is a gateway
#   GATEWAY_IMAGE     (gateway-image)     the gateway image (docker/Dockerfile.gateway); empty: no gateway
#   GATEWAY_PORT      (gateway-port)      8080
#   GATEWAY_KEYS_SECRET (gateway-keys-secret)  projects/P/secrets/NAME: its latest version holds the
#                                         gateway's API keys, one per line (read with the VM's account)
#   GATEWAY_API_KEYS  (gateway-api-keys)  or the keys themselves, comma-separated (instance metadata is
#                                         readable by anyone who may describe the VM: prefer the secret).
#                                         Neither: the gateway serves local clients only (the LB gets 401)
#   TRITON_EXTRA_FLAGS                    more tritonserver flags (word-split)
#   NO_METADATA=1                         never ask the metadata server (local runs)
#
# Container-Optimized OS's host firewall accepts only SSH (COS docs, "Configuring the host
# firewall"): with --network host the script opens the HTTP, gRPC, metrics and gateway ports itself
# (iptables -A INPUT -p tcp --dport PORT -j ACCEPT, once per boot: the rules do not persist).
# gcp/shutdown.sh (metadata shutdown-script) stops the container with STOP_TIMEOUT.
#
# Local run (no Docker, no cloud): TRITON_CMD replaces the container; the script then execs
#   $TRITON_CMD --model-repository DIR --http-port P --grpc-port G --metrics-port M \
#       [$TRITON_FLAGS_SEPARATOR] --model-control-mode=none ...
# in the foreground, e.g.
#   NO_METADATA=1 MODEL_REPOSITORY=model_repository TRITON_FLAGS_SEPARATOR=-- \
#   TRITON_CMD=".venv/bin/python -m w2v_triton.serving.serve" bash gcp/startup.sh
# (w2v_triton.serving.serve takes extra tritonserver flags after `--`; TRITON_CMD is word-split, so
# it cannot hold paths with spaces).
set -euo pipefail

METADATA_ROOT="${METADATA_ROOT:-http://metadata.google.internal/computeMetadata/v1}"
METADATA_URL="${METADATA_ROOT}/instance/attributes"
SECRET_MANAGER_URL="${SECRET_MANAGER_URL:-https://secretmanager.googleapis.com/v1}"
GATEWAY_UID="${GATEWAY_UID:-10001}"           # the gateway image's user (docker/Dockerfile.gateway)
STATE_DIR="${STATE_DIR:-/var/lib/w2v-triton}"
NVIDIA_DIR="${NVIDIA_DIR:-/var/lib/nvidia}"   # where cos-extensions installs the driver
TRITON_CONTAINER="${TRITON_CONTAINER:-w2v-triton}"

log() { echo "w2v-triton startup: $*" >&2; }

# setting NAME METADATA-KEY DEFAULT: environment, else metadata, else default.
setting() {
  local name="$1" key="$2" default="$3" value=""
  if [[ -n "${!name:-}" ]]; then
    value="${!name}"
  elif [[ "${NO_METADATA:-0}" != 1 ]]; then
    value="$(curl -fsS --max-time 5 -H 'Metadata-Flavor: Google' "${METADATA_URL}/${key}" 2>/dev/null || true)"
  fi
  printf -v "$name" '%s' "${value:-$default}"
}

setting MODEL_REPOSITORY model-repository ""
setting IMAGE image ""
setting GPU gpu false
setting GRPC_TLS grpc-tls false
setting HTTP_PORT http-port 8000
setting GRPC_PORT grpc-port 8001
setting METRICS_PORT metrics-port 8002
setting STOP_TIMEOUT stop-timeout 75
setting GPU_DRIVER gpu-driver R580
setting QUEUE_METRIC queue-metric false
setting GATEWAY_IMAGE gateway-image ""
setting GATEWAY_PORT gateway-port 8080
setting GATEWAY_KEYS_SECRET gateway-keys-secret ""
setting GATEWAY_API_KEYS gateway-api-keys ""
[[ -n "$MODEL_REPOSITORY" ]] || { log "MODEL_REPOSITORY (metadata model-repository) is not set"; exit 2; }

# server_flags CERT_DIR: the tritonserver flags common to both ways of running it.
server_flags() {
  local flags=(--model-control-mode=none --strict-readiness=true --exit-on-error=true
               --allow-metrics=true --log-verbose=0)
  if [[ "$GRPC_TLS" == true ]]; then
    flags+=(--grpc-use-ssl=true "--grpc-server-cert=$1/server.crt" "--grpc-server-key=$1/server.key")
  fi
  local extra=()
  read -r -a extra <<<"${TRITON_EXTRA_FLAGS:-}"
  printf '%s\n' "${flags[@]}" "${extra[@]}"
}
PORT_FLAGS=(--http-port "$HTTP_PORT" --grpc-port "$GRPC_PORT" --metrics-port "$METRICS_PORT")
# The gRPC certificate: self-signed; the load balancer encrypts but does not verify.
CERT_ARGS=(req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=w2v-triton-backend)

# --- local: a command instead of the container, in the foreground --------------------------
if [[ -n "${TRITON_CMD:-}" ]]; then
  read -r -a cmd <<<"$TRITON_CMD"
  sep=()
  [[ -z "${TRITON_FLAGS_SEPARATOR:-}" ]] || sep=("$TRITON_FLAGS_SEPARATOR")
  if [[ "$GRPC_TLS" == true && ! -s "${STATE_DIR}/tls/server.key" ]]; then
    mkdir -p "${STATE_DIR}/tls"
    openssl "${CERT_ARGS[@]}" -keyout "${STATE_DIR}/tls/server.key" -out "${STATE_DIR}/tls/server.crt" 2>/dev/null
  fi
  mapfile -t SERVER_FLAGS < <(server_flags "${STATE_DIR}/tls")
  log "exec ${cmd[*]} on ${MODEL_REPOSITORY}"
  exec "${cmd[@]}" --model-repository "$MODEL_REPOSITORY" "${PORT_FLAGS[@]}" "${sep[@]}" "${SERVER_FLAGS[@]}"
fi

# --- on the VM (Container-Optimized OS): the container, restarted by Docker ------------------
[[ -n "$IMAGE" ]] || { log "IMAGE (metadata image) is not set"; exit 2; }
[[ "$STOP_TIMEOUT" =~ ^[0-9]+$ ]] || { log "STOP_TIMEOUT (metadata stop-timeout) must be whole seconds"; exit 2; }

# open_port PORT: accept TCP to PORT in COS's host firewall (idempotent: -C checks first).
open_port() {
  iptables -w -C INPUT -p tcp --dport "$1" -j ACCEPT 2>/dev/null \
    || iptables -w -A INPUT -p tcp --dport "$1" -j ACCEPT
}

# driver_supported VERSION: the NGC 24.10 release notes' driver requirement (CUDA 12.6.2):
# 560 or later, or on data center GPUs 470.57+ (R470), 525.85+ (R525), 535.86+ (R535), 545.23+ (R545).
driver_supported() {
  local major minor
  IFS=. read -r major minor _ <<<"$1"
  [[ "$major" =~ ^[0-9]+$ && "${minor:-}" =~ ^[0-9]+$ ]] || return 1
  minor=$((10#$minor))
  (( major >= 560 )) && return 0
  case "$major" in
    470) (( minor >= 57 )) ;;
    525) (( minor >= 85 )) ;;
    535) (( minor >= 86 )) ;;
    545) (( minor >= 23 )) ;;
    *) return 1 ;;
  esac
}

# gateway_keys: the gateway's API keys, one per line: the latest version of the Secret Manager
# secret, read with the VM's service account (its token from the metadata server), or the
# comma-separated metadata value. A secret that cannot be read stops the script (pipefail).
gateway_keys() {
  if [[ -n "$GATEWAY_KEYS_SECRET" ]]; then
    local token
    token="$(curl -fsS --max-time 10 -H 'Metadata-Flavor: Google' \
      "${METADATA_ROOT}/instance/service-accounts/default/token" | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p')"
    [[ -n "$token" ]] || { log "no access token from the metadata server"; return 1; }
    curl -fsS --max-time 20 -H "Authorization: Bearer ${token}" \
      "${SECRET_MANAGER_URL}/${GATEWAY_KEYS_SECRET}/versions/latest:access" \
      | sed -n 's/.*"data" *: *"\([^"]*\)".*/\1/p' | base64 -d
  elif [[ -n "$GATEWAY_API_KEYS" ]]; then
    tr ',' '\n' <<<"$GATEWAY_API_KEYS"
  fi
}

mkdir -p "${STATE_DIR}/tls"
export HOME="$STATE_DIR"   # COS: /root is read-only; docker keeps its credentials here

registry="${IMAGE%%/*}"
if [[ "$registry" == *.pkg.dev || "$registry" == *gcr.io ]]; then
  docker-credential-gcr configure-docker --registries="$registry"
fi
docker pull "$IMAGE"
[[ -z "$GATEWAY_IMAGE" ]] || docker pull "$GATEWAY_IMAGE"

GPU_ARGS=()
if [[ "$GPU" == true ]]; then
  log "installing the NVIDIA driver ${GPU_DRIVER} (cos-extensions)"
  cos-extensions install gpu -- "-version=${GPU_DRIVER}"
  mount --bind "$NVIDIA_DIR" "$NVIDIA_DIR"
  mount -o remount,exec "$NVIDIA_DIR"
  driver="$("${NVIDIA_DIR}/bin/nvidia-smi" --query-gpu=driver_version --format=csv,noheader | head -n 1)"
  if ! driver_supported "$driver"; then
    log "NVIDIA driver '${driver}' is too old for the NGC 24.10 image (needs 560+, or R535 535.86+ on data center GPUs): set metadata gpu-driver (deploy.sh --gpu-driver)"
    exit 1
  fi
  log "NVIDIA driver ${driver}"
  GPU_ARGS=(--volume "${NVIDIA_DIR}/lib64:/usr/local/nvidia/lib64"
            --volume "${NVIDIA_DIR}/bin:/usr/local/nvidia/bin"
            --device /dev/nvidia-uvm --device /dev/nvidiactl)
  shopt -s nullglob
  for dev in /dev/nvidia[0-9]*; do GPU_ARGS+=(--device "$dev"); done
  shopt -u nullglob
fi

if [[ "$GRPC_TLS" == true && ! -s "${STATE_DIR}/tls/server.key" ]]; then
  log "making the gRPC backend certificate"
  docker run --rm --volume "${STATE_DIR}/tls:/tls" --entrypoint openssl "$IMAGE" \
    "${CERT_ARGS[@]}" -keyout /tls/server.key -out /tls/server.crt
fi

mapfile -t SERVER_FLAGS < <(server_flags /tls)
# Triton drains on SIGTERM for --exit-timeout-secs; Docker's stop timeout leaves it 5 s more.
EXIT_TIMEOUT=$(( STOP_TIMEOUT > 10 ? STOP_TIMEOUT - 5 : STOP_TIMEOUT ))
PORTS=("$HTTP_PORT" "$GRPC_PORT" "$METRICS_PORT")
[[ -z "$GATEWAY_IMAGE" ]] || PORTS+=("$GATEWAY_PORT")
log "opening tcp $(IFS=,; echo "${PORTS[*]}") in the host firewall"
for port in "${PORTS[@]}"; do open_port "$port"; done

for name in "$TRITON_CONTAINER" "${TRITON_CONTAINER}-metrics" "${TRITON_CONTAINER}-gateway"; do
  docker rm --force "$name" >/dev/null 2>&1 || true
done
log "starting ${IMAGE} on ${MODEL_REPOSITORY}"
docker run --detach --name "$TRITON_CONTAINER" --restart unless-stopped --network host \
  --stop-timeout "$STOP_TIMEOUT" --shm-size 1g --ulimit memlock=-1 --ulimit stack=67108864 \
  --volume "${STATE_DIR}/tls:/tls:ro" "${GPU_ARGS[@]}" \
  "$IMAGE" tritonserver --model-repository "$MODEL_REPOSITORY" "${PORT_FLAGS[@]}" "${SERVER_FLAGS[@]}" \
  "--exit-timeout-secs=${EXIT_TIMEOUT}"

if [[ -n "$GATEWAY_IMAGE" ]]; then
  # The keys go to a file only the gateway's user reads, mounted read-only (not in the environment,
  # which `docker inspect` shows).
  mkdir -p "${STATE_DIR}/gateway"
  (umask 077 && gateway_keys >"${STATE_DIR}/gateway/keys.txt")
  chown "$GATEWAY_UID" "${STATE_DIR}/gateway/keys.txt" \
    || log "cannot hand the key file to uid ${GATEWAY_UID} (not root?): the gateway will not read it"
  if [[ ! -s "${STATE_DIR}/gateway/keys.txt" ]]; then
    log "no gateway API keys (metadata gateway-keys-secret or gateway-api-keys): it serves local clients only"
  fi
  log "starting the gateway ${GATEWAY_IMAGE} on :${GATEWAY_PORT}"
  docker run --detach --name "${TRITON_CONTAINER}-gateway" --restart unless-stopped --network host \
    --stop-timeout "$STOP_TIMEOUT" --volume "${STATE_DIR}/gateway:/run/w2v-gateway:ro" \
    --env "TRITON_URL=127.0.0.1:${HTTP_PORT}" --env "TRITON_GRPC_URL=127.0.0.1:${GRPC_PORT}" \
    --env "GATEWAY_API_KEYS_FILE=/run/w2v-gateway/keys.txt" \
    "$GATEWAY_IMAGE" uvicorn gateway.app:app --host 0.0.0.0 --port "$GATEWAY_PORT" \
    --timeout-graceful-shutdown "$EXIT_TIMEOUT"
fi

if [[ "$QUEUE_METRIC" == true ]]; then
  log "starting the queue-time exporter (Cloud Monitoring custom metric)"
  GATEWAY_METRICS=()
  [[ -z "$GATEWAY_IMAGE" ]] || GATEWAY_METRICS=(--gateway-metrics-url "http://127.0.0.1:${GATEWAY_PORT}/metrics")
  docker run --detach --name "${TRITON_CONTAINER}-metrics" --restart unless-stopped --network host \
    --entrypoint python3 "$IMAGE" -m w2v_triton.serving.queue_metric \
    --metrics-url "http://127.0.0.1:${METRICS_PORT}/metrics" "${GATEWAY_METRICS[@]}"
fi
