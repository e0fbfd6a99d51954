"""`python -m w2v_triton.serving.queue_metric`: Triton's queue time as a Cloud Monitoring metric.

The GCP deployment autoscales on how long requests wait in Triton's queues, not only on CPU:
on a GPU VM the CPU can idle while the GPU is saturated, and a CPU VM can run hot while still
keeping up. Queue time is what a caller feels when a replica is short of capacity. Every
`--interval` seconds this exporter (a second container from the server image on each VM, see
gcp/startup.sh) reads the cumulative counters on Triton's metrics port,

    nv_inference_queue_duration_us{model=...}   microseconds requests spent queued
    nv_inference_request_success{model=...}     requests completed

turns the increase since the last read into the mean queue time per request of each model,
and writes their sum (a request passes each model of the ensemble once; Triton counts no
queueing for the ensemble itself) as the gauge `custom.googleapis.com/w2v_triton/
queue_time_ms` on the VM's `gce_instance` resource; the managed instance group's autoscaler
keeps its per-instance average near the target (deploy.sh --target-queue-ms). No requests in
an interval means no queueing: 0. Standard library only, so it runs in the server image as is.
Credentials, project, zone and instance id come from the metadata server.

With `--gateway-metrics-url` it reads the HTTP gateway's /metrics beside Triton's (gateway/metrics.py,
the same Prometheus text format) and writes four more gauges for its transcription route, from the
increase of its counters over the interval: `gateway_requests_per_s`, `gateway_5xx_per_s`,
`gateway_latency_ms` (mean per request) and `gateway_audio_s_per_s` (audio transcribed), all under
`custom.googleapis.com/w2v_triton/`, for dashboards and alerts (the autoscaler reads queue time only).
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
import urllib.request
from datetime import datetime, timezone
from typing import Any

METRIC_PREFIX = "custom.googleapis.com/w2v_triton/"
METRIC_TYPE = METRIC_PREFIX + "queue_time_ms"
METADATA_URL = "http://metadata.google.internal/computeMetadata/v1"
MONITORING_URL = "https://monitoring.googleapis.com/v3"
QUEUE = "nv_inference_queue_duration_us"
SUCCESS = "nv_inference_request_success"
_SAMPLE = re.compile(r'^(\w+)(?:\{([^}]*)\})?\s+([0-9.eE+-]+)\s*$')   # name{labels} value; labels optional
GATEWAY_ROUTE = 'route="/v1/audio/transcriptions"'
GATEWAY_TOTALS = ("requests", "errors", "latency_s", "timed", "audio_s")
_MODEL = re.compile(r'model="([^"]*)"')

log = logging.getLogger("w2v_triton.serving.queue_metric")

Counters = dict[tuple[str, str], float]   # (metric name, model) -> cumulative value


def parse_counters(text: str) -> Counters:
    """The queue-duration and success counters per model (summed over versions) from /metrics."""
    counters: Counters = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if not match or match.group(1) not in (QUEUE, SUCCESS):
            continue
        model = _MODEL.search(match.group(2) or "")
        if model:
            key = (match.group(1), model.group(1))
            counters[key] = counters.get(key, 0.0) + float(match.group(3))
    return counters


def queue_time_ms(before: Counters, after: Counters) -> float:
    """Mean time a request spent queued (ms) between two reads: the per-model means, summed.
    0 without traffic; a counter that went down (server restart) skips that model's interval."""
    total = 0.0
    for (name, model), done in after.items():
        if name != SUCCESS:
            continue
        requests = done - before.get((SUCCESS, model), 0.0)
        queued_us = after.get((QUEUE, model), 0.0) - before.get((QUEUE, model), 0.0)
        if requests > 0 and queued_us >= 0:
            total += queued_us / requests / 1000.0
    return total


def parse_gateway(text: str) -> dict[str, float]:
    """The gateway's cumulative totals for its transcription route: requests, 5xx answers, latency
    seconds and timed requests (the histogram's sum and count), and audio seconds transcribed."""
    totals = dict.fromkeys(GATEWAY_TOTALS, 0.0)
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if not match:
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        if name == "gateway_audio_seconds_total":
            totals["audio_s"] += value
        elif GATEWAY_ROUTE not in labels:
            continue
        elif name == "gateway_requests_total":
            totals["requests"] += value
            totals["errors"] += value if 'status="5' in labels else 0.0
        elif name == "gateway_request_duration_seconds_sum":
            totals["latency_s"] += value
        elif name == "gateway_request_duration_seconds_count":
            totals["timed"] += value
    return totals


def gateway_rates(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """The gauges of one interval (metric name -> value); none when a counter went down (a restart)."""
    delta = {k: after[k] - before.get(k, 0.0) for k in GATEWAY_TOTALS}
    if seconds <= 0 or min(delta.values()) < 0:
        return {}
    return {"gateway_requests_per_s": delta["requests"] / seconds, "gateway_5xx_per_s": delta["errors"] / seconds,
            "gateway_latency_ms": 1000 * delta["latency_s"] / delta["timed"] if delta["timed"] else 0.0,
            "gateway_audio_s_per_s": delta["audio_s"] / seconds}


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 10) -> str:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as reply:
        body: bytes = reply.read()
        return body.decode()


class Instance:
    """This VM as the metadata server describes it: project, zone, id and an access token."""

    def __init__(self, metadata_url: str = METADATA_URL):
        self.url = metadata_url.rstrip("/")
        self.project = self._read("project/project-id")
        self.zone = self._read("instance/zone").rsplit("/", 1)[-1]
        self.instance_id = self._read("instance/id")
        self._token, self._expires = "", 0.0

    def _read(self, path: str) -> str:
        return _get(f"{self.url}/{path}", {"Metadata-Flavor": "Google"}).strip()

    def token(self) -> str:
        if time.monotonic() > self._expires - 60:
            reply = json.loads(self._read("instance/service-accounts/default/token"))
            self._token, self._expires = reply["access_token"], time.monotonic() + float(reply["expires_in"])
        return self._token


def time_series(instance: Instance, values: dict[str, float], when: datetime) -> dict[str, Any]:
    """The body of projects.timeSeries.create: one point of each gauge (metric name -> value)."""
    return {"timeSeries": [{
        "metric": {"type": METRIC_PREFIX + name},
        "resource": {"type": "gce_instance", "labels": {
            "project_id": instance.project, "instance_id": instance.instance_id, "zone": instance.zone}},
        "points": [{"interval": {"endTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
                    "value": {"doubleValue": round(value, 3)}}],
    } for name, value in values.items()]}


def write(instance: Instance, values: dict[str, float], monitoring_url: str = MONITORING_URL) -> None:
    body = json.dumps(time_series(instance, values, datetime.now(timezone.utc))).encode()
    request = urllib.request.Request(f"{monitoring_url.rstrip('/')}/projects/{instance.project}/timeSeries",
                                     data=body, method="POST",
                                     headers={"Authorization": f"Bearer {instance.token()}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics-url", default="http://127.0.0.1:8002/metrics")
    parser.add_argument("--gateway-metrics-url", default="", help="the HTTP gateway's /metrics (optional)")
    parser.add_argument("--interval", type=float, default=30.0,
                        help="seconds between points (Cloud Monitoring takes one per 5 s at most)")
    parser.add_argument("--iterations", type=int, default=0, help="stop after N points (0: run forever)")
    parser.add_argument("--metadata-url", default=METADATA_URL)
    parser.add_argument("--monitoring-url", default=MONITORING_URL)
    args = parser.parse_args(argv)
    if args.interval < 5 and args.monitoring_url == MONITORING_URL:
        parser.error("--interval must be at least 5 s for Cloud Monitoring")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    instance = None
    before: Counters | None = None
    gateway_before: dict[str, float] | None = None
    read_at = 0.0
    written = 0
    while not args.iterations or written < args.iterations:
        try:
            instance = instance or Instance(args.metadata_url)
            after = parse_counters(_get(args.metrics_url))
            gateway_after = parse_gateway(_get(args.gateway_metrics_url)) if args.gateway_metrics_url else None
            now = time.monotonic()
            if before is not None:
                values = {"queue_time_ms": queue_time_ms(before, after)}
                if gateway_after is not None and gateway_before is not None:
                    values.update(gateway_rates(gateway_before, gateway_after, now - read_at))
                write(instance, values, args.monitoring_url)
                written += 1
                log.info("queue time %.1f ms", values["queue_time_ms"])
            before, gateway_before, read_at = after, gateway_after, now
        except (OSError, ValueError, KeyError) as exc:   # server restarting, network blip: try again
            log.warning("no point this interval: %s", exc)
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
