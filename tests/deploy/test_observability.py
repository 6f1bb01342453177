"""The compose stack's Prometheus: its scrape config (promtool) reaches every Softserve service on the
ports and paths the code serves, and loads the operations work's alert rules (deploy/prometheus/alerts.yml).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from django.urls import resolve

from tests.deploy.tools import ROOT, SECRETS, run, tool


def test_prometheus_scrapes_every_softserve_service_and_loads_the_alerts(config, tmp_path):
    services = config["services"]
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert any(str(ROOT / "deploy" / "prometheus") in v for v in services["prometheus"]["volumes"])
    assert prom["rule_files"] == ["alerts.yml"] and (ROOT / "deploy" / "prometheus" / "alerts.yml").is_file()
    targets = {
        job["job_name"]: (sd["names"], sd["port"])
        for job in prom["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
    }
    ports = {
        name: int(services[name]["environment"][variable])
        for name, variable in (
            ("tuning-worker", "SOFTSERVE_WORKER_METRICS_PORT"),
            ("default-worker", "SOFTSERVE_WORKER_METRICS_PORT"),
            ("serving-worker", "SERVING_METRICS_PORT"),
        )
    }
    assert targets == {"web": (["web"], 8000), **{name: ([name], port) for name, port in ports.items()}}
    paths = {job["job_name"]: job.get("metrics_path", "/metrics") for job in prom["scrape_configs"]}
    assert resolve(paths["web"]).url_name == "metrics", "the web's /metrics is in the URL conf"
    # The compose healthchecks probe the same ports' /healthz.
    for name, port in ports.items():
        assert services[name]["healthcheck"]["test"][-1] == f"http://127.0.0.1:{port}/healthz"
    assert services["web"]["healthcheck"]["test"][-1] == "http://127.0.0.1:8000/healthz"
    assert services["web"]["environment"]["PROMETHEUS_URL"] == "http://prometheus:9090"
    # The web's /metrics needs METRICS_TOKEN: the web and Prometheus get the same one, and Prometheus'
    # start writes it to the file its web job reads (promtool checks that file exists: a copy here).
    web_job = next(job for job in prom["scrape_configs"] if job["job_name"] == "web")
    token_file = web_job["authorization"]["credentials_file"]
    assert web_job["authorization"].get("type", "Bearer") == "Bearer"
    assert services["web"]["environment"]["METRICS_TOKEN"] == SECRETS["METRICS_TOKEN"]
    assert services["prometheus"]["environment"]["METRICS_TOKEN"] == SECRETS["METRICS_TOKEN"]
    start = " ".join(services["prometheus"]["entrypoint"] + services["prometheus"]["command"])
    # (`docker-compose config` keeps compose's $$ escape: the shell sees $METRICS_TOKEN.)
    assert f'"$$METRICS_TOKEN" > {token_file} &&' in start and "exec /bin/prometheus" in start, start
    result = promtool_check(ROOT / "deploy" / "prometheus" / "prometheus.yml", {token_file: "t"}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def promtool_check(config: Path, files: dict[str, str], folder: Path):
    """`promtool check config` on a copy of `config` (and its rule files) whose credential files (paths
    inside a container) are written under `folder`."""
    text = config.read_text()
    for path, content in files.items():
        local = folder / Path(path).name
        local.write_text(content)
        text = text.replace(path, str(local))
    for rules in config.parent.glob("alerts*.yml"):
        (folder / rules.name).write_text(rules.read_text())
    copy = folder / config.name
    copy.write_text(text)
    return run(tool("promtool"), "check", "config", str(copy))


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard(config):
    grafana = config["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith("/")}
    provisioning = Path(mounts["/etc/grafana/provisioning"])
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "softserve.yml").read_text())["providers"][0]
    dashboards = Path(mounts[provider["options"]["path"]])
    assert (dashboards / "softserve.json").is_file(), "the operations dashboard is mounted"
    # The dashboard's panels take the default Prometheus datasource, which is the provisioned one.
    dashboard = json.loads((dashboards / "softserve.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == source["type"] and source["isDefault"] is True
