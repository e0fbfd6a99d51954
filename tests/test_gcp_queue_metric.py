"""w2v_triton.serving.queue_metric: Triton's queue time as the Cloud Monitoring metric the GCP autoscaler reads.

A local HTTP server plays Triton's metrics port, the metadata server and the Monitoring API.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from w2v_triton.serving import queue_metric

METRICS_1 = """# HELP nv_inference_request_success Number of successful inference requests
# TYPE nv_inference_request_success counter
nv_inference_request_success{model="asr",version="1"} 10
nv_inference_request_success{model="decoder",version="1"} 10
nv_inference_request_success{model="acoustic_model",version="1"} 10
nv_inference_queue_duration_us{model="asr",version="1"} 1000
nv_inference_queue_duration_us{model="decoder",version="1"} 500
nv_inference_queue_duration_us{model="acoustic_model",version="1"} 500
nv_inference_compute_infer_duration_us{model="asr",version="1"} 99999999
"""
# 20 more requests; the acoustic model queued 20 * 150 ms, the decoder 20 * 2 ms.
METRICS_2 = METRICS_1.replace("} 10\n", "} 30\n").replace(
    'acoustic_model",version="1"} 500', 'acoustic_model",version="1"} 3000500').replace(
    'decoder",version="1"} 500', 'decoder",version="1"} 40500')


def test_parse_counters_sums_versions_and_ignores_other_metrics():
    text = METRICS_1 + 'nv_inference_request_success{model="asr",version="2"} 5\n'
    counters = queue_metric.parse_counters(text)
    assert counters[(queue_metric.SUCCESS, "asr")] == 15
    assert counters[(queue_metric.QUEUE, "decoder")] == 500
    assert not [k for k in counters if k[0].startswith("nv_inference_compute")]


def test_queue_time_sums_the_models_means_per_request():
    """150 ms in the acoustic model's queue + 2 ms in the decoder's; the ensemble itself adds none."""
    before, after = queue_metric.parse_counters(METRICS_1), queue_metric.parse_counters(METRICS_2)
    assert queue_metric.queue_time_ms(before, after) == pytest.approx(152.0)
    assert queue_metric.queue_time_ms(after, after) == 0.0           # no traffic: no queueing
    assert queue_metric.queue_time_ms(after, before) == 0.0          # counters went down: a restart


class _Fake(BaseHTTPRequestHandler):
    metrics = [METRICS_1, METRICS_2, METRICS_2]
    posts: list = []

    def log_message(self, *args):
        pass

    def _reply(self, body: str, code: int = 200):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/metrics":
            self._reply(self.metrics.pop(0) if len(self.metrics) > 1 else self.metrics[0])
            return
        if self.headers.get("Metadata-Flavor") != "Google":
            self._reply("", 403)
            return
        answers = {"/md/project/project-id": "demo-proj", "/md/instance/id": "4242",
                   "/md/instance/zone": "projects/123/zones/us-central1-b",
                   "/md/instance/service-accounts/default/token":
                       json.dumps({"access_token": "tok", "expires_in": 3599, "token_type": "Bearer"})}
        self._reply(answers.get(self.path, ""), 200 if self.path in answers else 404)

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.posts.append((self.path, self.headers["Authorization"], json.loads(body)))
        self._reply("{}")


def test_main_writes_the_gauge_on_the_instance_resource():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert queue_metric.main(["--metrics-url", f"{base}/metrics", "--metadata-url", f"{base}/md",
                                  "--monitoring-url", f"{base}/v3", "--interval", "0.05", "--iterations", "2"]) == 0
    finally:
        server.shutdown()
    assert len(_Fake.posts) == 2
    path, auth, body = _Fake.posts[0]
    assert path == "/v3/projects/demo-proj/timeSeries" and auth == "Bearer tok"
    (series,) = body["timeSeries"]
    assert series["metric"] == {"type": "custom.googleapis.com/w2v_triton/queue_time_ms"}
    assert series["resource"] == {"type": "gce_instance", "labels": {
        "project_id": "demo-proj", "instance_id": "4242", "zone": "us-central1-b"}}
    assert series["points"][0]["value"] == {"doubleValue": 152.0}
    assert series["points"][0]["interval"]["endTime"].endswith("Z")
    assert _Fake.posts[1][2]["timeSeries"][0]["points"][0]["value"] == {"doubleValue": 0.0}


def gateway_page(requests: int, errors: int, latency_s: float, audio_s: float) -> str:
    """What the gateway's /metrics shows (gateway/metrics.py's own registry) after these requests."""
    from prometheus_client import generate_latest

    from gateway.metrics import GatewayMetrics

    metrics = GatewayMetrics()
    route = "/v1/audio/transcriptions"
    for i in range(requests):
        status = "502" if i < errors else "200"
        metrics.requests.labels(route, status, "srt" if i % 2 else "json").inc()
        metrics.latency.labels(route, "srt" if i % 2 else "json").observe(latency_s / requests)
    metrics.requests.labels("/health", "200", "-").inc(50)        # other routes do not count
    metrics.latency.labels("/health", "-").observe(0.001)
    metrics.audio.inc(audio_s)
    return generate_latest(metrics.registry).decode()


def test_gateway_rates_from_its_own_metrics_page():
    before = queue_metric.parse_gateway(gateway_page(0, 0, 0.0, 0.0))
    after = queue_metric.parse_gateway(gateway_page(20, 2, 10.0, 300.0))
    assert after == {"requests": 20.0, "errors": 2.0, "latency_s": pytest.approx(10.0), "timed": 20.0, "audio_s": 300.0}
    rates = queue_metric.gateway_rates(before, after, 10.0)
    assert rates == {"gateway_requests_per_s": 2.0, "gateway_5xx_per_s": 0.2,
                     "gateway_latency_ms": pytest.approx(500.0), "gateway_audio_s_per_s": 30.0}
    assert queue_metric.gateway_rates(after, before, 10.0) == {}   # the gateway restarted: no point
    assert queue_metric.gateway_rates(after, after, 10.0)["gateway_latency_ms"] == 0.0


def test_main_writes_the_gateway_gauges_beside_queue_time():
    class Gateway(_Fake):
        metrics = [METRICS_1, METRICS_2, METRICS_2]
        pages = [gateway_page(0, 0, 0.0, 0.0), gateway_page(8, 1, 4.0, 60.0)]
        posts: list = []

        def do_GET(self):
            if self.path == "/gateway":
                self._reply(self.pages.pop(0) if len(self.pages) > 1 else self.pages[0])
            else:
                super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert queue_metric.main(["--metrics-url", f"{base}/metrics", "--gateway-metrics-url", f"{base}/gateway",
                                  "--metadata-url", f"{base}/md", "--monitoring-url", f"{base}/v3",
                                  "--interval", "0.05", "--iterations", "1"]) == 0
    finally:
        server.shutdown()
    (post,) = Gateway.posts
    values = {s["metric"]["type"].rsplit("/", 1)[1]: s["points"][0]["value"]["doubleValue"]
              for s in post[2]["timeSeries"]}
    assert set(values) == {"queue_time_ms", "gateway_requests_per_s", "gateway_5xx_per_s", "gateway_latency_ms",
                           "gateway_audio_s_per_s"}
    assert values["queue_time_ms"] == 152.0 and values["gateway_latency_ms"] == 500.0
    # 8 requests (1 a 502) in one interval of about 0.05 s: rates, rounded to 3 decimals
    assert values["gateway_requests_per_s"] > 8 and values["gateway_5xx_per_s"] * 8 == pytest.approx(
        values["gateway_requests_per_s"], rel=1e-3)


def test_interval_below_cloud_monitorings_limit_is_refused():
    with pytest.raises(SystemExit):
        queue_metric.main(["--interval", "1"])


@pytest.mark.integration
def test_the_counters_of_a_real_server(tiny_server):
    """Triton 2.51 exposes both counters for every model of the ensemble; requests move them."""
    import urllib.request

    import numpy as np
    import tritonclient.http as httpclient

    from w2v_triton.serving import spec

    url = f"http://127.0.0.1:{tiny_server.ports.metrics}/metrics"

    def scrape() -> queue_metric.Counters:   # the metrics endpoint can lag readiness by a moment
        for _ in range(50):
            try:
                return queue_metric.parse_counters(urllib.request.urlopen(url, timeout=10).read().decode())
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{url} never answered")

    before = scrape()
    client = httpclient.InferenceServerClient(f"127.0.0.1:{tiny_server.ports.http}")
    try:
        audio = np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32)
        for _ in range(3):
            inp = httpclient.InferInput(spec.AUDIO, list(audio.shape), "FP32")
            inp.set_data_from_numpy(audio)
            client.infer(spec.ENSEMBLE_MODEL, [inp])
    finally:
        client.close()
    after = scrape()
    models = {spec.ENSEMBLE_MODEL, spec.ACOUSTIC_MODEL, "preprocessor", "decoder"}
    assert {m for (name, m) in after if name == queue_metric.QUEUE} >= models
    for model in models:
        assert after[(queue_metric.SUCCESS, model)] - before.get((queue_metric.SUCCESS, model), 0) == 3
    assert queue_metric.queue_time_ms(before, after) >= 0.0
