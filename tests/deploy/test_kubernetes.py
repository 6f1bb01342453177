"""deploy/kubernetes, validated offline: kubernetes-validate (Kubernetes' own schemas) on every manifest,
the KEDA objects against KEDA's vendored CRD schemas, and the names in the manifests against the code's.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from django.urls import Resolver404, resolve

from common import contracts
from tests.deploy.tools import ROOT, assert_queues_split, env_example, run, tool
from tests.net import free_port

K8S = ROOT / "deploy" / "kubernetes"
KEDA_VERSION = "2.20.2"
KEDA_CRDS = K8S / "vendor" / f"keda-{KEDA_VERSION}"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
DEPLOYMENTS = ("web", "tuning-worker", "default-worker", "serving-worker", "beat")
# The Deployments that serve /metrics, /healthz and /readyz on their port `metrics`, Prometheus' only way in.
WORKERS = ("tuning-worker", "default-worker", "serving-worker")


@functools.cache
def documents() -> tuple[dict, ...]:
    """Every manifest's objects, parsed once (tests that change one change a deep copy)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(doc for path in MANIFESTS for doc in yaml.load_all(path.read_text(), Loader=loader) if doc)


def find(kind: str, name: str) -> dict:
    for doc in documents():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name} in deploy/kubernetes")


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def containers(doc: dict) -> list[dict]:
    spec = pod_spec(doc)
    return [*spec.get("initContainers", []), *spec["containers"]]


def workloads() -> list[dict]:
    return [d for d in documents() if d["kind"] in ("Deployment", "Job")]


def test_kubernetes_validate_passes_on_every_manifest_strictly():
    non_keda = [p for p in MANIFESTS if "keda.sh/" not in p.read_text()]
    crds = sorted(KEDA_CRDS.glob("*.yaml"))
    result = run(tool("kubernetes-validate"), "--strict", "--quiet", *map(str, non_keda + crds))
    assert result.returncode == 0, result.stdout + result.stderr
    # Every kind it cannot check itself is KEDA's (checked below), so nothing goes unvalidated.
    assert {d["apiVersion"] for d in documents()} - {
        *("v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1"),
    } == {"keda.sh/v1alpha1"}


def test_kubernetes_validate_fails_a_broken_manifest(tmp_path):
    broken = copy.deepcopy(find("Deployment", "web"))
    broken["spec"]["replicas"] = "two"
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = {"nested": True}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = run(tool("kubernetes-validate"), "--strict", "--quiet", str(path))
    assert result.returncode != 0


@functools.cache
def keda_schemas() -> dict[str, dict]:
    schemas = {}
    for path in KEDA_CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = f"{crd['spec']['group']}/{version['name']}/{crd['spec']['names']['kind']}"
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def unknown_fields(instance, schema: dict, where: str = "") -> list[str]:
    """Fields the schema does not declare (the API server would prune them silently)."""
    found: list[str] = []
    if isinstance(instance, dict) and "properties" in schema:
        for key, value in instance.items():
            if key in schema["properties"]:
                found += unknown_fields(value, schema["properties"][key], f"{where}.{key}")
            elif not schema.get("additionalProperties") and not schema.get(
                "x-kubernetes-preserve-unknown-fields"
            ):
                found.append(f"{where}.{key}")
    elif isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            found += unknown_fields(item, schema["items"], f"{where}[{i}]")
    return found


def keda_errors(doc: dict, schemas: dict[str, dict]) -> list[str]:
    key = f"{doc['apiVersion']}/{doc['kind']}"
    assert key in schemas, f"{key} has no vendored CRD schema"
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    errors = [e.message for e in jsonschema.Draft7Validator(schemas[key]).iter_errors(body)]
    return errors + [f"unknown field {f}" for f in unknown_fields(body, schemas[key])]


def test_keda_objects_match_the_vendored_crd_schemas():
    assert (KEDA_CRDS / "SOURCE").read_text().count(f"v{KEDA_VERSION}") >= 1
    schemas = keda_schemas()
    keda = [d for d in documents() if d["apiVersion"].startswith("keda.sh/")]
    assert {d["kind"] for d in keda} == {"ScaledObject", "TriggerAuthentication"}
    for doc in keda:
        assert keda_errors(doc, schemas) == [], doc["metadata"]["name"]
    # The check has teeth: a wrong type and a misspelt field are both reported.
    broken = copy.deepcopy(find("ScaledObject", "tuning-worker"))
    broken["spec"]["minReplicaCount"] = "one"
    broken["spec"]["triggers"][0]["metdata"] = broken["spec"]["triggers"][0].pop("metadata")
    errors = keda_errors(broken, schemas)
    assert any("'one'" in e for e in errors) and any("metdata" in e for e in errors), errors


def test_trigger_metadata_and_auth_parameters_are_the_scalers_own():
    """KEDA ignores a metadata key it does not know (a typo scales on a default); check each against the
    scaler's parameter names at the vendored version."""
    known = json.loads((KEDA_CRDS / "scaler-parameters.json").read_text())
    auth = {d["metadata"]["name"]: d for d in documents() if d["kind"] == "TriggerAuthentication"}
    for scaled in (d for d in documents() if d["kind"] == "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            params = known[trigger["type"]]
            metadata = set(trigger["metadata"])
            assert metadata <= set(params["triggerMetadata"]), (trigger["name"], metadata)
            assert set(params["required"]) <= metadata, (trigger["name"], params["required"])
            refs = auth[trigger["authenticationRef"]["name"]]["spec"]["secretTargetRef"]
            assert {r["parameter"] for r in refs} <= set(params["authParams"]), trigger["name"]


def test_kustomization_lists_every_manifest_but_the_migration_job_and_the_secret_example():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in MANIFESTS} - {"migrate-job.yaml", "secret.example.yaml"}
    image = kustomization["images"][0]
    assert f"{image['newName']}:{image['newTag']}" == the_image()


def the_image() -> str:
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    return f"registry.example.com/softserve:{version}-cuda"


def test_every_container_runs_the_one_image_non_root_with_resources():
    for doc in workloads():
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
        for container in containers(doc):
            assert container["image"] == the_image(), doc["metadata"]["name"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), container["name"]
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_env_names_in_the_manifests_are_the_ones_the_code_reads():
    listed = set(env_example())
    config = find("ConfigMap", "softserve-config")["data"]
    secret = find("Secret", "softserve-secrets")["stringData"]
    assert not set(config) - listed, sorted(set(config) - listed)
    assert not set(secret) - listed, sorted(set(secret) - listed)
    for doc in workloads():
        for container in containers(doc):
            names = {e["name"] for e in container.get("env", [])}
            assert not names - listed, (container["name"], sorted(names - listed))
            refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
            assert refs == {"softserve-config", "softserve-secrets"}
    # Behind the Ingress's TLS: Django's production mode (and it trusts the proxy's X-Forwarded-Proto).
    assert config["DJANGO_SECURE"] == "1" and config["DJANGO_BEHIND_PROXY"] == "1"
    assert find("Ingress", "web")["spec"]["tls"]
    # What the code needs to reach its services in production comes from the Secret.
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"} <= set(secret)
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(secret) and config["S3_ENDPOINT_URL"]


def http_probes(container: dict) -> dict[str, tuple[str, str | int]]:
    return {
        kind: (container[kind]["httpGet"]["path"], container[kind]["httpGet"]["port"])
        for kind in ("readinessProbe", "livenessProbe", "startupProbe")
        if "httpGet" in container.get(kind, {})
    }


def test_web_probes_are_the_url_conf_s_readyz_and_healthz():
    web = find("Deployment", "web")["spec"]["template"]["spec"]["containers"][0]
    probes = http_probes(web)
    assert probes["readinessProbe"] == ("/readyz", "http")
    assert probes["livenessProbe"] == ("/healthz", "http")
    assert web["ports"][0] == {"name": "http", "containerPort": 8000}
    for path, _ in probes.values():
        try:
            match = resolve(path)
        except Resolver404:
            pytest.fail(f"{path} is not in the URL conf (softserve/urls.py)")
        assert match.url_name == path.strip("/")
    service = find("Service", "web")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    backend = find("Ingress", "web")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "web", "port": {"name": "http"}}


@pytest.mark.parametrize(
    ("name", "port_env"),
    [
        ("tuning-worker", "SOFTSERVE_WORKER_METRICS_PORT"),
        ("default-worker", "SOFTSERVE_WORKER_METRICS_PORT"),
        ("serving-worker", "SERVING_METRICS_PORT"),
    ],
)
def test_worker_probes_are_the_paths_their_metrics_port_serves(name, port_env):
    container = containers(find("Deployment", name))[0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["ports"] == [{"name": "metrics", "containerPort": int(env[port_env])}]
    probes = http_probes(container)
    assert probes["readinessProbe"] == ("/readyz", "metrics")
    assert probes["livenessProbe"] == ("/healthz", "metrics")
    # The workers' own server (workers/health.py) answers exactly these paths.
    from workers.health import serve_http

    port = free_port()
    server = serve_http(port, lambda: b"", dict, timeout_s=1.0)
    try:
        for path, _ in probes.values():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                assert answer.status == 200, path
    finally:
        server.shutdown()
        server.server_close()


def test_commands_queues_and_ports_are_the_code_s():
    assert {d["metadata"]["name"] for d in documents() if d["kind"] == "Deployment"} == set(DEPLOYMENTS)
    for name in ("tuning-worker", "default-worker"):
        command = containers(find("Deployment", name))[0]["command"]
        assert command[:4] == ["celery", "-A", "workers.celeryconf", "worker"], name
    serving = containers(find("Deployment", "serving-worker"))[0]
    assert serving["command"] == ["python", "-m", "workers.serving"]
    assert (ROOT / "workers" / "serving" / "__main__.py").is_file()
    env = {e["name"]: e["value"] for e in serving["env"]}
    assert serving["ports"][0]["containerPort"] == int(env["SERVING_METRICS_PORT"])
    assert int(env["SERVING_WORKERS"]) == 1, "one process (and one GPU) per pod: the port is not shifted"
    beat = containers(find("Deployment", "beat"))[0]
    assert beat["command"][:4] == ["celery", "-A", "workers.celeryconf", "beat"]
    migrate = containers(find("Job", "migrate"))[0]
    assert migrate["command"][:3] == ["python", "platform/manage.py", "migrate"]
    assert (ROOT / "platform" / "manage.py").is_file()


def test_every_queue_has_a_worker_and_training_holds_up_nothing_else():
    assert_queues_split(
        {d["metadata"]["name"]: pod_spec(d)["containers"][0].get("command", []) for d in workloads()}
    )


def test_gpus_grace_periods_and_single_beat():
    config = find("ConfigMap", "softserve-config")["data"]
    tuning = find("Deployment", "tuning-worker")
    container = containers(tuning)[0]
    for bound in ("requests", "limits"):
        assert container["resources"][bound]["nvidia.com/gpu"] == "1"
    soft_shutdown = float(config["SOFTSERVE_SOFT_SHUTDOWN_S"])
    for name in ("tuning-worker", "default-worker"):
        worker = find("Deployment", name)
        assert {e["name"]: e["value"] for e in containers(worker)[0]["env"]}["REMAP_SIGTERM"] == "SIGQUIT"
        assert pod_spec(worker)["terminationGracePeriodSeconds"] > soft_shutdown + 30, name
    # The default worker's tasks wait on the network: no GPU, and nothing that steers it onto GPU nodes.
    default = find("Deployment", "default-worker")
    assert "nvidia" not in json.dumps(containers(default)[0]["resources"])
    assert not {"tolerations", "nodeSelector", "affinity"} & set(pod_spec(default))
    serving = find("Deployment", "serving-worker")
    assert containers(serving)[0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod_spec(serving)["terminationGracePeriodSeconds"] > int(config["SERVING_TIMEOUT_MS"]) / 1000
    beat = find("Deployment", "beat")
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    for name in ("web", *WORKERS):
        selector = find("PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"]
        assert selector == find("Deployment", name)["spec"]["selector"]["matchLabels"]


def redis_db(url: str) -> str:
    return urlsplit(url).path.strip("/") or "0"


def test_keda_scales_on_the_code_s_queue_and_stream_with_a_floor_and_a_ceiling():
    secret = find("Secret", "softserve-secrets")["stringData"]
    config = find("ConfigMap", "softserve-config")["data"]
    tuning = find("ScaledObject", "tuning-worker")["spec"]
    serving = find("ScaledObject", "serving-worker")["spec"]
    for spec, target in ((tuning, "tuning-worker"), (serving, "serving-worker")):
        assert spec["scaleTargetRef"]["name"] == target and find("Deployment", target)
        assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
        scale_down = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
        assert scale_down["stabilizationWindowSeconds"] >= 300
    by_type = {t["type"]: t for t in tuning["triggers"]}
    queue = by_type["redis"]["metadata"]
    assert queue["listName"] == contracts.QUEUE_GPU
    assert queue["databaseIndex"] == redis_db(secret["CELERY_BROKER_URL"])
    # Running jobs hold their pods: the count includes them, from the table the workers claim rows in.
    from softserve.jobs.models import Job

    query = by_type["postgresql"]["metadata"]["query"]
    assert f"FROM {Job._meta.db_table} " in query
    statuses = set(re.findall(r"'(\w+)'", query))
    assert statuses == {"queued", "running"} and statuses <= set(contracts.JOB_STATUSES)
    stream = {t["type"]: t for t in serving["triggers"]}["redis-streams"]["metadata"]
    assert stream["stream"] == contracts.serving_stream(config["SOFTSERVE_BASE_MODEL"])
    assert stream["consumerGroup"] == contracts.SERVING_GROUP
    assert (
        stream["databaseIndex"] == redis_db(secret["REDIS_URL"]) and int(stream["pendingEntriesCount"]) >= 1
    )
    auth = {t["authenticationRef"]["name"] for t in (*tuning["triggers"], *serving["triggers"])}
    for name in auth:
        for ref in find("TriggerAuthentication", name)["spec"]["secretTargetRef"]:
            assert ref["name"] == "softserve-secrets" and ref["key"] in secret


def test_the_migration_job_runs_before_the_web_serves():
    web = pod_spec(find("Deployment", "web"))
    assert [c["command"] for c in web["initContainers"]] == [
        ["python", "platform/manage.py", "migrate", "--check"]
    ]
    job = find("Job", "migrate")
    assert pod_spec(job)["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1


def test_docs_cover_the_deployment():
    text = (ROOT / "docs" / "deploy.md").read_text()
    for topic in ("docker-compose", "Kubernetes", "GPU", "KEDA", "migrat", "pg_dump", "mc mirror"):
        assert topic in text, f"docs/deploy.md says nothing of {topic}"
    assert "docs/deploy.md" in (ROOT / "README.md").read_text()


def test_vendored_crds_are_the_tagged_keda_files():
    for path in KEDA_CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["group"] == "keda.sh"
    assert {p.name for p in KEDA_CRDS.iterdir()} == {
        "SOURCE",
        "scaler-parameters.json",
        "keda.sh_scaledobjects.yaml",
        "keda.sh_triggerauthentications.yaml",
    }
    assert Path(KEDA_CRDS / "SOURCE").read_text().startswith("KEDA's CustomResourceDefinitions")


def _routes(path: str, rule: dict) -> bool:
    """Whether an Ingress path rule takes `path` (Kubernetes' semantics: Exact, or Prefix by whole
    path elements)."""
    if rule["pathType"] == "Exact":
        return path == rule["path"]
    prefix = rule["path"].rstrip("/")
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def test_the_ingress_routes_the_pages_and_the_api_but_never_the_probes_or_metrics():
    """Issue 22, findings 3 and 4: /metrics, /readyz and /healthz are for the cluster only."""
    from django.urls import get_resolver

    rules = [
        rule
        for doc in documents()
        if doc["kind"] == "Ingress"
        for host in doc["spec"]["rules"]
        for rule in host["http"]["paths"]
    ]
    assert all(rule["backend"]["service"] == {"name": "web", "port": {"name": "http"}} for rule in rules)
    for probe in ("/metrics", "/readyz", "/healthz", "/metrics/", "/readyz/"):
        assert not any(_routes(probe, rule) for rule in rules), f"the Ingress routes {probe}"
    # Every other URL the web answers is routed: the front door, pages, API, sign-in, static files.
    for entry in get_resolver().url_patterns:
        first = "/" + str(entry.pattern).lstrip("^").split("/")[0]
        if first.strip("/") in ("healthz", "readyz", "metrics"):
            continue
        sample = first if first == "/" else f"{first}/x"
        assert any(_routes(sample, rule) for rule in rules), f"the Ingress does not route {sample}"
    # Large bodies only where the web takes them: the dataset upload's own Ingress.
    body_sizes = {
        doc["metadata"]["name"]: doc["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
        for doc in documents()
        if doc["kind"] == "Ingress"
    }
    assert body_sizes == {"web": "2m", "web-uploads": "512m"}, body_sizes
    uploads = [rule["path"] for rule in find("Ingress", "web-uploads")["spec"]["rules"][0]["http"]["paths"]]
    assert {resolve(path).view_name for path in uploads} == {"datasets", "webui:dataset-upload"}


def test_network_policies_let_only_prometheus_reach_the_workers_metrics_ports():
    policies = [d for d in documents() if d["kind"] == "NetworkPolicy"]
    by_name = {p["metadata"]["name"]: p["spec"] for p in policies}
    workers = by_name["workers-metrics-from-prometheus"]
    selected = workers["podSelector"]["matchExpressions"][0]
    assert selected["key"] == "app.kubernetes.io/name" and selected["operator"] == "In"
    assert set(selected["values"]) == set(WORKERS)
    assert workers["policyTypes"] == ["Ingress"] and len(workers["ingress"]) == 1
    (allowed,) = workers["ingress"]
    (source,) = allowed["from"]
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    assert "namespaceSelector" in source  # Prometheus pods of their namespace, not any pod with the label
    assert [p["port"] for p in allowed["ports"]] == ["metrics"]
    for name in WORKERS:
        container = containers(find("Deployment", name))[0]
        assert [p["name"] for p in container["ports"]] == ["metrics"]  # the only port it has
        labels = find("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] in selected["values"]
    web = by_name["web-from-ingress-and-prometheus"]
    assert web["podSelector"]["matchLabels"] == find("Deployment", "web")["spec"]["selector"]["matchLabels"]
    assert [p["port"] for rule in web["ingress"] for p in rule["ports"]] == ["http"]


def test_the_cluster_scrape_config_sends_the_metrics_token_and_finds_the_pods(tmp_path):
    from tests.deploy.test_observability import promtool_check

    path = ROOT / "deploy" / "prometheus" / "kubernetes.yml"
    config = yaml.safe_load(path.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    token_file = jobs["web"]["authorization"]["credentials_file"]
    assert "METRICS_TOKEN" in find("Secret", "softserve-secrets")["stringData"]
    keep = {
        name: re.compile(next(r["regex"] for r in job["relabel_configs"] if r["action"] == "keep"))
        for name, job in jobs.items()
    }
    for deployment, job in (("web", "web"), *((name, "softserve-workers") for name in WORKERS)):
        doc = find("Deployment", deployment)
        label = doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        port = doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"]
        assert keep[job].fullmatch(f"{label};{port}"), (deployment, job)
        assert not any(keep[other].fullmatch(f"{label};{port}") for other in keep if other != job)
    # Debian's promtool is built without Kubernetes discovery: the discovery block is checked here, and
    # promtool checks the rest (authorization, relabelling, rules) on a copy with static targets instead.
    for job in jobs.values():
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod", "namespaces": {"names": ["softserve"]}}]
        job["static_configs"] = [{"targets": ["127.0.0.1:8000"]}]
    copy = tmp_path / "source" / path.name
    copy.parent.mkdir()
    copy.write_text(yaml.safe_dump(config))
    (copy.parent / "alerts.yml").write_text((path.parent / "alerts.yml").read_text())
    result = promtool_check(copy, {token_file: "t"}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
