"""benchmarks/autoscaling.py: the queue-time metric writer's code fed simulated Triton counters, under
the autoscaler's documented rule, scales the group out under a queue and back in once it drains."""
from __future__ import annotations

import inspect
import re
from collections import deque
from pathlib import Path

import pytest

from benchmarks import autoscaling
from benchmarks.autoscaling import Capacity, Policy, analyse, recommend, simulate, stabilised
from w2v_triton.serving import queue_metric, spec

# Half a minute of boot and initialisation keeps the run short; the rule is the same.
POLICY = Policy(target_cpu=None, min_replicas=1, max_replicas=6, boot_s=120, cool_down_s=180)
CAPACITY = Capacity(instances=2, service_s=0.4)            # 5 requests/s per VM
STEPS = [(0.0, 0.3), (5.0, 2.5), (25.0, 0.3)]             # minute, load in VMs' worth


def test_the_simulated_policy_is_the_deploys():
    """Policy's defaults are gcp/lib.sh's (targets, replica bounds) and the writer's interval."""
    lib = (Path(__file__).resolve().parents[1] / "gcp" / "lib.sh").read_text()

    def shell(name: str) -> float:
        return float(re.search(rf"^{name}=\"?([0-9.]+)", lib, re.M).group(1))

    policy = Policy()
    assert (policy.target_queue_ms, policy.target_cpu, policy.min_replicas, policy.max_replicas) == (
        shell("TARGET_QUEUE_MS"), shell("TARGET_CPU"), shell("MIN_REPLICAS"), shell("MAX_REPLICAS"))
    writer = re.search(r'"--interval", type=float, default=([0-9.]+)', inspect.getsource(queue_metric.main))
    assert policy.interval_s == float(writer.group(1))


def test_utilisation_rule_and_stabilisation():
    """ceil(VMs x mean / target); scale-in waits for the stabilisation period, scale-out does not."""
    assert recommend([200.0, 200.0], 100.0) == 4
    assert recommend([100.0, 100.0, 100.0], 100.0) == 3
    assert recommend([10.0, 0.0], 100.0) == 1
    history: deque = deque()
    assert stabilised(history, 0, 5) == 5
    assert stabilised(history, 300, 2) == 5              # within 600 s of the 5
    assert stabilised(history, 600, 2) == 2              # the 5 has left the window
    assert stabilised(history, 660, 7) == 7              # out at once


def test_a_vm_exports_the_writers_value_from_its_counters():
    """Two requests queued 0.3 s and 0.1 s: the exporter's code reads 200 ms per request."""
    vm = autoscaling.Vm(created=0.0, instances=1)
    vm.export(0.0)
    vm.admit(0.0, 0.3)
    vm.admit(0.0, 0.1)          # waits for the first one
    vm.admit(0.2, 0.1)          # waits 0.2 s
    vm.export(10.0)
    counters = queue_metric.parse_counters(vm.metrics_text(10.0))
    assert counters[(queue_metric.SUCCESS, spec.ACOUSTIC_MODEL)] == 3
    assert vm.points == deque([(10.0, pytest.approx((0.3 + 0.2) / 3 * 1000))])


@pytest.fixture(scope="module")
def run() -> dict:
    return simulate(STEPS, CAPACITY, POLICY, 50 * 60, seed=1)


def test_the_group_scales_out_under_a_queue_and_back_in_when_it_drains(run):
    result = analyse(run, STEPS, POLICY)
    rows = run["timeline"]
    assert all(r["target_size"] == 1 for r in rows if r["minute"] < 5)            # light load: one VM
    assert result["scale_out_minutes_after_rise"] <= 3                             # the queue builds: out
    assert 3 <= result["max_size"] <= POLICY.max_replicas
    # once the new VMs serve, the queue drains (the backlog stays on the VM it queued on: a load
    # balancer does not move queued requests): the gauge is back under its target during the peak
    assert result["metric_under_target_minutes_after_rise"] <= 15
    assert result["gauge_ms_last_5_min_of_peak"] <= POLICY.target_queue_ms
    # load falls at minute 25: back to one VM, not before the 10-minute stabilisation period
    assert 10 <= result["scale_in_minutes_after_fall"] <= 14
    assert all(r["target_size"] >= 2 for r in rows if 25 <= r["minute"] < 25 + 9)


def test_without_the_writers_signal_nothing_scales(monkeypatch):
    """The simulation scales on what queue_metric computes: a writer that reads 0 ms never scales out."""
    monkeypatch.setattr(queue_metric, "queue_time_ms", lambda before, after: 0.0)
    result = analyse(simulate(STEPS, CAPACITY, POLICY, 30 * 60, seed=1), STEPS, POLICY)
    assert result["max_size"] == 1 and result["scale_out_minutes_after_rise"] is None
