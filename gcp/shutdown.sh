#!/usr/bin/env bash
# VM shutdown script (instance metadata `shutdown-script`, set by gcp/deploy.sh): stop the
# server and gateway containers gracefully when the VM is stopped or deleted (autoscaler
# scale-in, rolling update, autohealing). Docker sends SIGTERM; tritonserver then refuses new requests and lets
# those in flight finish (--exit-timeout-secs, set by startup.sh to STOP_TIMEOUT - 5), and
# Docker sends SIGKILL only after STOP_TIMEOUT seconds. Compute Engine gives an on-demand VM's
# shutdown script about 90 s, so STOP_TIMEOUT (75) stays under it. The load balancer has
# already stopped sending new requests and waited for its connection-draining timeout when the
# MIG removes a VM; this is the last line for whatever is still running.
#   STOP_TIMEOUT (metadata stop-timeout, default 75), TRITON_CONTAINER, NO_METADATA=1 as in startup.sh
set -euo pipefail

METADATA_URL="http://metadata.google.internal/computeMetadata/v1/instance/attributes"
TRITON_CONTAINER="${TRITON_CONTAINER:-w2v-triton}"
export HOME="${STATE_DIR:-/var/lib/w2v-triton}"   # as in startup.sh (COS: /root is read-only)

log() { echo "w2v-triton shutdown: $*" >&2; }

if [[ -z "${STOP_TIMEOUT:-}" && "${NO_METADATA:-0}" != 1 ]]; then
  STOP_TIMEOUT="$(curl -fsS --max-time 5 -H 'Metadata-Flavor: Google' "${METADATA_URL}/stop-timeout" 2>/dev/null || true)"
fi
STOP_TIMEOUT="${STOP_TIMEOUT:-75}"
[[ "$STOP_TIMEOUT" =~ ^[0-9]+$ ]] || { log "STOP_TIMEOUT must be whole seconds, not '${STOP_TIMEOUT}'"; exit 2; }

docker stop --time 5 "${TRITON_CONTAINER}-metrics" >/dev/null 2>&1 || true
# The gateway and Triton drain at the same time, within the one budget: the gateway finishes the
# requests it has in flight (uvicorn's graceful shutdown), whose inferences Triton finishes too.
log "stopping ${TRITON_CONTAINER}-gateway and ${TRITON_CONTAINER} (SIGTERM, SIGKILL after ${STOP_TIMEOUT} s)"
docker stop --time "$STOP_TIMEOUT" "${TRITON_CONTAINER}-gateway" >/dev/null 2>&1 &   # none without a gateway
gateway_stop=$!
docker stop --time "$STOP_TIMEOUT" "$TRITON_CONTAINER" >/dev/null
wait "$gateway_stop" || true
log "stopped"
