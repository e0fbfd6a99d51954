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
"""
from __future__ import annotations

from typing import Any
import argparse
import json
import logging
import re
import sys
import time
import urllib.request
from datetime import datetime, timezone

METRIC_TYPE = "custom.googleapis.com/w2v_triton/queue_time_ms"
METADATA_URL = "http://metadata.google.internal/computeMetadata/v1"
MONITORING_URL = "https://monitoring.googleapis.com/v3"
QUEUE = "nv_inference_queue_duration_us"
SUCCESS = "nv_inference_request_success"
_SAMPLE = re.compile(r'^(\w+)\{([^}]*)\}\s+([0-9.eE+-]+)\s*$')
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
        model = _MODEL.search(match.group(2))
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


def time_series(instance: Instance, value: float, when: datetime) -> dict[str, Any]:
    """The body of projects.timeSeries.create for one point of the gauge."""
    return {"timeSeries": [{
        "metric": {"type": METRIC_TYPE},
        "resource": {"type": "gce_instance", "labels": {
            "project_id": instance.project, "instance_id": instance.instance_id, "zone": instance.zone}},
        "points": [{"interval": {"endTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
                    "value": {"doubleValue": round(value, 3)}}],
    }]}


def write(instance: Instance, value: float, monitoring_url: str = MONITORING_URL) -> None:
    body = json.dumps(time_series(instance, value, datetime.now(timezone.utc))).encode()
    request = urllib.request.Request(f"{monitoring_url.rstrip('/')}/projects/{instance.project}/timeSeries",
                                     data=body, method="POST",
                                     headers={"Authorization": f"Bearer {instance.token()}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics-url", default="http://127.0.0.1:8002/metrics")
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
    written = 0
    while not args.iterations or written < args.iterations:
        try:
            instance = instance or Instance(args.metadata_url)
            after = parse_counters(_get(args.metrics_url))
            if before is not None:
                value = queue_time_ms(before, after)
                write(instance, value, args.monitoring_url)
                written += 1
                log.info("queue time %.1f ms", value)
            before = after
        except (OSError, ValueError, KeyError) as exc:   # server restarting, network blip: try again
            log.warning("no point this interval: %s", exc)
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
