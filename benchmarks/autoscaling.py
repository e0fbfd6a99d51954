"""Does the managed instance group follow the queue? A simulation over load steps (issue 27, part 6).

The GCP autoscaler scales on `custom.googleapis.com/w2v_triton/queue_time_ms`, a GAUGE written by
every VM with a per-instance utilisation target (gcp/deploy.sh). Queue time is not proportional to
load the way a utilisation metric is assumed to be, so this checks, without a cloud project, that
the group scales out under a queue and back in when it drains. Each part is the real thing or the
documented rule:

* VMs: the deploy's machine type (gcp-boot-budget.json: 8 vCPUs) in the throughput profile, one
  1-thread acoustic instance per vCPU, each as fast as measured on the 2-core machine (`--served`
  from `--bench`: its best 10 s-clip rate over its instances); requests are 10 s clips, arriving as a
  Poisson process, spread uniformly by the load balancer over the VMs that serve; each VM is a
  FIFO queue in front of its instances (service times exponential around the measured mean).
* metric writer: each VM renders its cumulative Triton counters as Triton's /metrics text
  (`nv_inference_queue_duration_us`, `nv_inference_request_success` per model) and every
  `--interval` seconds runs w2v_triton.serving.queue_metric's own `parse_counters` and
  `queue_time_ms` on it, like the exporter on the VM: the gauge point is the writer's value.
* autoscaler (Compute Engine's documented behaviour): every minute, for the VMs past their
  initialisation period (`--cool-down`; "the autoscaler ignores data from VMs that are still
  initializing"), the gauge's average over the last couple of minutes, averaged over the VMs, is
  compared with the target: recommended size = ceil(VMs x average / target) ("Scaling based on
  Cloud Monitoring metrics", utilisation target, per-instance GAUGE); with several signals the
  largest recommendation wins ("Autoscaling with multiple signals": the cpu variant also has CPU
  utilisation, the busy share of its acoustic instances, target 0.6); the group is sized for the
  peak recommendation of the stabilisation period (600 s, "Understanding autoscaler decisions"),
  so it scales out at once and in only after 10 minutes of lower recommendations; bounds
  `--min-replicas`..`--max-replicas`. A new VM serves after the measured boot-to-ready sum
  (gcp-boot-budget.json); a removed VM takes no new requests and finishes what it holds.

    python -m benchmarks.autoscaling [--steps 10:0.4 30:3.0 50:0.4] [--variant cpu|gpu|both]

Writes autoscaling-simulation.{json,md,png} into benchmarks/results/<machine>/ (docs/deploy-gcp.md).
"""
from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import sys
import textwrap
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from w2v_triton.eval.machine import machine_name, utc_now
from w2v_triton.eval.tables import markdown_table
from w2v_triton.paths import REPO_ROOT
from w2v_triton.serving import queue_metric, spec

RESULTS = REPO_ROOT / "benchmarks" / "results" / "cpu-2core-amd-epyc"
BENCH = RESULTS / "bench-student-random-base.json"
SERVED = "student6-c256-int8-mm-throughput"
BOOT = RESULTS / "gcp-boot-budget.json"
CLIP_SECONDS = 10.0
DECISION_S = 60            # the autoscaler's evaluation period (assumed: about a minute)
GAUGE_WINDOW_S = 120       # GAUGE: "the average ... from the last couple of minutes"
STABILIZATION_S = 600      # the stabilisation period of scale-in decisions (documented default)
MODELS = (spec.PREPROCESSOR_MODEL, spec.ACOUSTIC_MODEL, spec.DECODER_MODEL, spec.ENSEMBLE_MODEL)


@dataclass(frozen=True)
class Policy:
    """The deploy's autoscaling flags (gcp/lib.sh's defaults: tests/test_autoscaling.py holds them
    equal) and what a VM takes to serve."""

    target_queue_ms: float = 100.0       # TARGET_QUEUE_MS
    target_cpu: float | None = 0.6      # TARGET_CPU; None: the gpu variant (queue time alone)
    min_replicas: int = 1                # MIN_REPLICAS
    max_replicas: int = 4                # MAX_REPLICAS
    cool_down_s: float = 300.0           # initialisation period
    boot_s: float = 250.0                # create -> serving (boot-to-ready)
    interval_s: float = 30.0             # the metric writer's --interval


@dataclass(frozen=True)
class Capacity:
    """One VM: `instances` acoustic instances, each taking `service_s` per request on average."""

    instances: int
    service_s: float

    @property
    def requests_per_s(self) -> float:
        return self.instances / self.service_s


@dataclass
class Vm:
    created: float
    instances: int
    free_at: list[float] = field(default_factory=list)       # each instance's next free time
    done: list[tuple[float, float]] = field(default_factory=list)   # heap of (finish, wait)
    busy: list[tuple[float, float]] = field(default_factory=list)   # (start, finish) per request
    queue_us: float = 0.0                # Triton's cumulative counters (acoustic model)
    success: int = 0
    before: queue_metric.Counters | None = None
    next_read: float = 0.0
    points: deque[tuple[float, float]] = field(default_factory=deque)   # (time, gauge value)
    draining: bool = False

    def __post_init__(self) -> None:
        self.free_at = [0.0] * self.instances

    def admit(self, arrival: float, service: float) -> None:
        """FIFO over the instances: the request starts when the earliest instance frees up."""
        start = max(arrival, heapq.heappop(self.free_at))
        heapq.heappush(self.free_at, start + service)
        heapq.heappush(self.done, (start + service, start - arrival))
        self.busy.append((start, start + service))

    def metrics_text(self, now: float) -> str:
        """Triton's /metrics at `now`: requests count (and their queue time) when they complete."""
        while self.done and self.done[0][0] <= now:
            _, wait = heapq.heappop(self.done)
            self.queue_us += wait * 1e6
            self.success += 1
        lines = []
        for model in MODELS:
            queued = self.queue_us if model == spec.ACOUSTIC_MODEL else 0.0
            lines.append(f'{queue_metric.SUCCESS}{{model="{model}",version="1"}} {self.success}')
            lines.append(f'{queue_metric.QUEUE}{{model="{model}",version="1"}} {queued:.0f}')
        return "\n".join(lines) + "\n"

    def export(self, now: float) -> None:
        """The exporter's loop body (w2v_triton.serving.queue_metric.main): read, difference, write."""
        after = queue_metric.parse_counters(self.metrics_text(now))
        if self.before is not None:
            self.points.append((now, queue_metric.queue_time_ms(self.before, after)))
        self.before = after

    def cpu(self, start: float, end: float) -> float:
        """Share of the instances' time busy in [start, end) (the acoustic model is the CPU load)."""
        self.busy = [b for b in self.busy if b[1] > start - GAUGE_WINDOW_S]
        used = sum(max(0.0, min(f, end) - max(s, start)) for s, f in self.busy)
        return used / (self.instances * (end - start))

    def idle(self, now: float) -> bool:
        return not self.done and max(self.free_at) <= now


def recommend(values: list[float], target: float) -> int:
    """Utilisation target over per-instance values: VMs = ceil(VMs x mean / target)."""
    return math.ceil(len(values) * (sum(values) / len(values)) / target - 1e-9)


def stabilised(history: deque[tuple[float, int]], now: float, recommendation: int) -> int:
    """The largest recommendation of the stabilisation period (scale-in waits; scale-out does not)."""
    history.append((now, recommendation))
    while history and history[0][0] <= now - STABILIZATION_S:
        history.popleft()
    return max(r for _, r in history)


def simulate(steps: list[tuple[float, float]], capacity: Capacity, policy: Policy, seconds: float,
             seed: int = 0) -> dict[str, Any]:
    """`steps`: (start minute, offered load in VMs' worth of capacity). Returns the timeline (one
    row per autoscaler decision) and the events (size changes)."""
    rng = np.random.default_rng(seed)
    vms: list[Vm] = [Vm(created=-policy.boot_s - policy.cool_down_s, instances=capacity.instances)
                     for _ in range(policy.min_replicas)]
    history: deque[tuple[float, int]] = deque()
    timeline = []
    requests = 0
    target = policy.min_replicas

    def load_at(t: float) -> float:
        return next(load for start, load in reversed(steps) if t >= start * 60)

    for now in range(int(seconds)):
        serving = [v for v in vms if not v.draining and now >= v.created + policy.boot_s]
        rate = load_at(now) * capacity.requests_per_s
        arrivals = np.sort(now + rng.random(rng.poisson(rate)))
        for arrival in arrivals:
            serving[rng.integers(len(serving))].admit(float(arrival), rng.exponential(capacity.service_s))
        requests += len(arrivals)
        for vm in vms:
            if now >= vm.created + policy.boot_s and now >= vm.next_read:
                vm.export(float(now))
                vm.next_read = now + policy.interval_s
        vms = [v for v in vms if not (v.draining and v.idle(now))]
        if now % DECISION_S or now == 0:
            continue
        reporting = [v for v in vms if not v.draining and now >= v.created + policy.cool_down_s]
        gauges = []
        for v in reporting:
            recent = [value for t, value in v.points if t > now - GAUGE_WINDOW_S]
            if recent:
                gauges.append(sum(recent) / len(recent))
        signals = {}
        if gauges:
            signals["queue"] = recommend(gauges, policy.target_queue_ms)
        if policy.target_cpu is not None and reporting:
            signals["cpu"] = recommend([v.cpu(now - GAUGE_WINDOW_S, now) for v in reporting], policy.target_cpu)
        if signals:
            wanted = min(policy.max_replicas, max(policy.min_replicas, max(signals.values())))
            target = stabilised(history, now, wanted)
        active = [v for v in vms if not v.draining]
        for _ in range(target - len(active)):
            vms.append(Vm(created=float(now), instances=capacity.instances))
        for v in sorted(active, key=lambda v: -v.created)[: max(0, len(active) - target)]:
            v.draining = True
        queued = [p for v in reporting for t, p in v.points if t > now - DECISION_S]
        timeline.append({
            "minute": round(now / 60, 2), "offered_load_vms": load_at(now), "target_size": target,
            "serving": len([v for v in vms if not v.draining and now >= v.created + policy.boot_s]),
            "metric_ms": round(sum(gauges) / len(gauges), 1) if gauges else None,
            "queue_ms_last_minute": round(sum(queued) / len(queued), 1) if queued else None,
            "cpu": round(sum(v.cpu(now - DECISION_S, now) for v in reporting) / len(reporting), 3) if reporting else None,
            "signals": signals})
    return {"timeline": timeline, "requests": requests}


def analyse(run: dict[str, Any], steps: list[tuple[float, float]], policy: Policy) -> dict[str, Any]:
    """When the group grew after the load rose, when the metric came back under target, and when
    the group was back at its minimum after the load fell."""
    rows = run["timeline"]
    peak = max(steps, key=lambda s: s[1])
    rise = peak[0]
    fall = next((s[0] for s in steps if s[0] > rise), None)
    out: dict[str, Any] = {"max_size": max(r["target_size"] for r in rows),
                 "vm_minutes": round(sum(r["target_size"] for r in rows) * DECISION_S / 60)}
    before = [r["target_size"] for r in rows if r["minute"] < rise] or [policy.min_replicas]
    grown = next((r for r in rows if r["minute"] >= rise and r["target_size"] > before[-1]), None)
    out["scale_out_minutes_after_rise"] = round(grown["minute"] - rise, 2) if grown else None
    settled = next((r for r in rows if grown and r["minute"] > grown["minute"] and r["serving"] >= grown["target_size"]
                    and (r["metric_ms"] or 0) <= policy.target_queue_ms), None)
    out["metric_under_target_minutes_after_rise"] = round(settled["minute"] - rise, 2) if settled else None
    if fall is not None:
        plateau = [r for r in rows if rise * 60 <= r["minute"] * 60 < fall * 60]
        out["size_changes_during_peak"] = sum(a["target_size"] != b["target_size"]
                                              for a, b in itertools.pairwise(plateau))
        late = [r["metric_ms"] for r in plateau if r["minute"] >= fall - 5 and r["metric_ms"] is not None]
        out["gauge_ms_last_5_min_of_peak"] = round(sum(late) / len(late), 1) if late else None
        back = next((r for r in rows if r["minute"] >= fall and r["target_size"] == policy.min_replicas), None)
        out["scale_in_minutes_after_fall"] = round(back["minute"] - fall, 2) if back else None
    return out


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def capacity_from(bench: Path, served: str, vcpus: int) -> tuple[Capacity, str]:
    """A VM of `vcpus` vCPUs in the throughput profile (one 1-thread acoustic instance per vCPU),
    each instance as fast as on the measured machine: the served configuration's best 10 s-clip
    rate in `bench` (perf_analyzer) over its instances gives the time per request."""
    report = json.loads(bench.read_text())
    result = report["served"][served]
    rows = next(d["rows"] for s, d in result["sweeps"].items() if s.startswith("clips_"))
    audio_per_s = max(r["audio_seconds_per_second"] for r in rows)
    measured = report.get("cpu_count", 2)
    return (Capacity(vcpus, measured * CLIP_SECONDS / audio_per_s),
            (f"{served}: {audio_per_s:.1f} audio-s/s on 10 s clips with {measured} instances on {measured} cores, "
             f"{_shown(bench)} ({report['date']}); an {vcpus}-vCPU VM taken as {vcpus} such instances (not measured)"))


def boot_from(boot: Path) -> tuple[float, float, int, str]:
    """(boot-to-ready seconds, cool-down, vCPUs per VM) of the cpu variant from the boot budget's derivation."""
    gcp = json.loads(boot.read_text())["gcp"]
    return (float(gcp["boot_to_ready_sum_s"]["cpu"]), float(gcp["cool_down_s"]), int(gcp["assumptions"]["vm_vcpus"]),
            f"{_shown(boot)} (gcp.boot_to_ready_sum_s.cpu, gcp.cool_down_s, {gcp['machine_type']})")


def parse_steps(items: list[str]) -> list[tuple[float, float]]:
    """`10:0.4` -> from minute 10 on, 0.4 VMs' worth of load; the first step starts at 0."""
    steps = [(float(a), float(b)) for a, b in (item.split(":") for item in items)]
    return [(0.0, steps[0][1]), *steps[1:]] if steps[0][0] != 0 else steps


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = report["variants"]
    fig, axes = plt.subplots(2, len(variants), figsize=(6 * len(variants), 6), sharex=True, squeeze=False)
    for column, (name, run) in enumerate(variants.items()):
        rows = run["timeline"]
        minutes = [r["minute"] for r in rows]
        top, bottom = axes[0][column], axes[1][column]
        top.step(minutes, [r["offered_load_vms"] for r in rows], where="post", label="offered load (VMs' capacity)")
        top.step(minutes, [r["target_size"] for r in rows], where="post", label="group target size")
        top.step(minutes, [r["serving"] for r in rows], where="post", label="VMs serving", linestyle="--")
        top.set_title(f"{name} variant: {report['policies'][name]['signals']}", fontsize=9)
        top.legend(fontsize=7)
        top.set_ylabel("VMs")
        bottom.plot(minutes, [r["metric_ms"] if r["metric_ms"] is not None else np.nan for r in rows],
                    label="queue_time_ms gauge (autoscaler's 2-min average)")
        bottom.axhline(report["policies"][name]["target_queue_ms"], color="red", linestyle=":", label="target")
        bottom.set_yscale("symlog", linthresh=10)
        bottom.set_ylim(bottom=0)
        bottom.set_xlabel("minute")
        bottom.set_ylabel("ms")
        bottom.legend(fontsize=7)
    fig.suptitle(textwrap.fill(f"autoscaling simulation ({report['date']}); capacity: {report['capacity_source']}", 160),
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Autoscaling simulation: does the group follow the queue? ({report['date']})", "",
             (f"Command: `{report['command']}`. Load steps (minute: VMs' worth of load): {report['steps']}; "
              f"one VM = {report['capacity']}; capacity: {report['capacity_source']}; "
              f"boot: {report['boot_source']}."), "",
             analysis_table({f"{name}: {report['policies'][name]['signals']} "
                             f"{report['policies'][name]['target_queue_ms']:g} ms": run["analysis"]
                             for name, run in report["variants"].items()}),
             "", "Other queue-time targets, same load:", "", analysis_table(report.get("target_sweep", {}))]
    return "\n".join(lines) + "\n"


ANALYSIS_COLUMNS = {"max_size": "max size", "vm_minutes": "VM-minutes",
                    "scale_out_minutes_after_rise": "scale-out after the rise (min)",
                    "metric_under_target_minutes_after_rise": "gauge under target after the rise (min)",
                    "size_changes_during_peak": "size changes during the peak",
                    "gauge_ms_last_5_min_of_peak": "gauge, last 5 min of the peak (ms)",
                    "scale_in_minutes_after_fall": "back to min after the fall (min)"}


def analysis_table(rows: dict[str, dict[str, Any]]) -> str:
    """One line per simulated run: what `analyse` found (the docs render it from the results file)."""
    return markdown_table(["run", *ANALYSIS_COLUMNS.values()],
                          [[name, *(a.get(k, "–") for k in ANALYSIS_COLUMNS)] for name, a in rows.items()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", nargs="+", default=["0:0.4", "10:2.5", "50:0.4"],
                        help="MINUTE:LOAD, load in VMs' worth of capacity")
    parser.add_argument("--minutes", type=float, default=90)
    parser.add_argument("--variant", choices=("cpu", "gpu", "both"), default="both")
    parser.add_argument("--bench", type=Path, default=BENCH)
    parser.add_argument("--served", default=SERVED)
    parser.add_argument("--boot", type=Path, default=BOOT)
    parser.add_argument("--max-replicas", type=int, default=Policy.max_replicas)
    parser.add_argument("--targets", type=float, nargs="*", default=[250.0, 500.0, 1000.0],
                        help="other --target-queue-ms values to run the same load with (table only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / machine_name())
    args = parser.parse_args(argv)
    steps = parse_steps(args.steps)
    boot_s, cool_down_s, vcpus, boot_source = boot_from(args.boot)
    capacity, capacity_source = capacity_from(args.bench, args.served, vcpus)
    variants = ["cpu", "gpu"] if args.variant == "both" else [args.variant]
    report: dict[str, Any] = {"title": "autoscaling-simulation", "machine": machine_name(), "date": utc_now(),
                    "command": "python -m benchmarks.autoscaling " + " ".join(sys.argv[1:] if argv is None else argv),
                    "steps": args.steps, "capacity": asdict(capacity) | {"requests_per_s": round(capacity.requests_per_s, 2)},
                    "capacity_source": capacity_source, "boot_source": boot_source,
                    "policies": {}, "variants": {}}
    base = Policy(boot_s=boot_s, cool_down_s=cool_down_s, max_replicas=args.max_replicas)

    def policy_for(variant: str, **changes: Any) -> Policy:
        """The deploy's policy for `variant`: the gpu variant scales on queue time alone."""
        return replace(base, target_cpu=base.target_cpu if variant == "cpu" else None, **changes)

    for variant in variants:
        policy = policy_for(variant)
        run = simulate(steps, capacity, policy, args.minutes * 60, args.seed)
        run["analysis"] = analyse(run, steps, policy)
        report["policies"][variant] = asdict(policy) | {
            "signals": "queue time" + (f" + CPU {policy.target_cpu}" if policy.target_cpu else "")}
        report["variants"][variant] = run
        print(variant, run["analysis"], flush=True)
    report["target_sweep"] = {}
    for target_ms in args.targets:
        for variant in variants:
            policy = policy_for(variant, target_queue_ms=target_ms)
            run = simulate(steps, capacity, policy, args.minutes * 60, args.seed)
            report["target_sweep"][f"{variant} {target_ms:g} ms"] = analyse(run, steps, policy)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "autoscaling-simulation.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "autoscaling-simulation.md").write_text(markdown(report))
    plot(report, args.out / "autoscaling-simulation.png")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
