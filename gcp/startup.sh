#!/usr/bin/env bash
# VM startup script (instance metadata `startup-script`, set by gcp/deploy.sh): run the Triton
# server image against the model repository in the bucket, with model control disabled.
#
# Settings come from the environment first, then from instance metadata attributes:
#   MODEL_REPOSITORY  (model-repository)  gs://BUCKET/model_repository, or a local folder
#   IMAGE             (image)             the server image (docker/Dockerfile.server)
#   GPU               (gpu)               true: install the COS GPU driver, pass the GPUs in
#   GRPC_TLS          (grpc-tls)          true: self-signed TLS on gRPC (the LB's HTTP2 backend
#                                         speaks TLS to it; it does not check the certificate);
#                                         made once under STATE_DIR/tls (default /var/lib/w2v-triton)
#   HTTP_PORT GRPC_PORT METRICS_PORT      8000 8001 8002
#   TRITON_EXTRA_FLAGS                    more tritonserver flags (word-split)
#   NO_METADATA=1                         never ask the metadata server (local runs)
#
# Local run (no Docker, no cloud): TRITON_CMD replaces the container; the script then execs
#   $TRITON_CMD --model-repository DIR --http-port P --grpc-port G --metrics-port M \
#       [$TRITON_FLAGS_SEPARATOR] --model-control-mode=none ...
# in the foreground, e.g.
#   NO_METADATA=1 MODEL_REPOSITORY=model_repository TRITON_FLAGS_SEPARATOR=-- \
#   TRITON_CMD=".venv/bin/python -m w2v_triton.serve" bash gcp/startup.sh
# (w2v_triton.serve takes extra tritonserver flags after `--`; TRITON_CMD is word-split, so
# it cannot hold paths with spaces).
set -euo pipefail

METADATA_URL="http://metadata.google.internal/computeMetadata/v1/instance/attributes"
STATE_DIR="${STATE_DIR:-/var/lib/w2v-triton}"
NVIDIA_DIR="${NVIDIA_DIR:-/var/lib/nvidia}"   # where cos-extensions installs the driver
CONTAINER_NAME="${CONTAINER_NAME:-w2v-triton}"

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
mkdir -p "${STATE_DIR}/tls"
export HOME="$STATE_DIR"   # COS: /root is read-only; docker keeps its credentials here

registry="${IMAGE%%/*}"
if [[ "$registry" == *.pkg.dev || "$registry" == *gcr.io ]]; then
  docker-credential-gcr configure-docker --registries="$registry"
fi
docker pull "$IMAGE"

GPU_ARGS=()
if [[ "$GPU" == true ]]; then
  log "installing the NVIDIA driver (cos-extensions)"
  cos-extensions install gpu
  mount --bind "$NVIDIA_DIR" "$NVIDIA_DIR"
  mount -o remount,exec "$NVIDIA_DIR"
  "${NVIDIA_DIR}/bin/nvidia-smi"
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
docker rm --force "$CONTAINER_NAME" >/dev/null 2>&1 || true
log "starting ${IMAGE} on ${MODEL_REPOSITORY}"
docker run --detach --name "$CONTAINER_NAME" --restart unless-stopped --network host \
  --shm-size 1g --ulimit memlock=-1 --ulimit stack=67108864 \
  --volume "${STATE_DIR}/tls:/tls:ro" "${GPU_ARGS[@]}" \
  "$IMAGE" tritonserver --model-repository "$MODEL_REPOSITORY" "${PORT_FLAGS[@]}" "${SERVER_FLAGS[@]}"
