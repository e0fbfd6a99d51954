"""`/metrics` in Prometheus' text format (prometheus-client), one registry per app:

    gateway_requests_total{route, status, format}     requests answered, by status and response_format
    gateway_request_duration_seconds{route, format}   latency histogram (receipt to response)
    gateway_audio_seconds_total                       audio transcribed (decoded duration)

`route` is the matched route's path ("/v1/audio/transcriptions", ...) or "unmatched", so unknown
paths cannot grow the label set; `format` is the transcription's response_format, "-" elsewhere.
On GCP the queue-time exporter reads this page beside Triton's (docs/deploy-gcp.md).
"""
from __future__ import annotations

import time
from typing import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

# seconds: a short clip takes tens of ms, a long file through a busy server tens of seconds
BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("gateway_requests", "Requests answered, by route, HTTP status and response_format",
                                ["route", "status", "format"], registry=self.registry)
        self.latency = Histogram("gateway_request_duration_seconds", "Time from receipt to response",
                                 ["route", "format"], buckets=BUCKETS, registry=self.registry)
        self.audio = Counter("gateway_audio_seconds", "Seconds of audio transcribed (as decoded)",
                             registry=self.registry)

    def install(self, app: FastAPI) -> None:
        """Count every request (errors included) and serve /metrics."""

        @app.middleware("http")
        async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            began = time.perf_counter()
            status = 500
            try:
                response = await call_next(request)
                status = response.status_code
                return response
            finally:
                route = getattr(request.scope.get("route"), "path", "unmatched")
                if route != "/metrics":
                    fmt = getattr(request.state, "response_format", "-")
                    self.requests.labels(route, str(status), fmt).inc()
                    self.latency.labels(route, fmt).observe(time.perf_counter() - began)

        @app.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
