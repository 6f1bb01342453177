"""docker-compose.yml, checked offline on what `docker-compose config` (Debian's docker-compose) parses."""

from __future__ import annotations

import re

from tests.deploy.tools import ROOT, SECRETS, assert_queues_split, compose_config, env_example

SOFTSERVE = ("migrate", "web", "tuning-worker", "default-worker", "serving-worker", "beat")
# The Celery workers: SIGTERM starts their time-limited soft shutdown.
CELERY_WORKERS = ("tuning-worker", "default-worker")
ONE_SHOT = ("createbuckets", "migrate")
PUBLISHING = {"web", "grafana"}


def test_compose_refuses_to_start_without_the_secret_key(tmp_path):
    # One run (each costs seconds); every other secret is required the same way, checked on the file below.
    result = compose_config(tmp_path, **{k: v for k, v in SECRETS.items() if k != "DJANGO_SECRET_KEY"})
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr, result.stderr


def test_every_service_of_the_stack_is_there(config):
    expected = {
        *("postgres", "redis", "minio", "createbuckets", "migrate", "web", "tuning-worker"),
        *("default-worker", "serving-worker", "beat", "flower", "prometheus", "grafana"),
    }
    assert set(config["services"]) == expected


def test_only_web_and_grafana_publish_ports(config):
    publishing = {name for name, svc in config["services"].items() if svc.get("ports")}
    assert publishing == PUBLISHING
    assert [p["target"] for p in config["services"]["web"]["ports"]] == [8000]


def test_healthchecks_restarts_and_healthy_dependencies(config):
    services = config["services"]
    for name, svc in services.items():
        if name in ONE_SHOT:
            assert svc.get("restart") == "no", f"{name} runs once"
            continue
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        assert svc.get("restart") == "unless-stopped", f"{name} must restart unless stopped"
    for name, svc in services.items():
        for dep, rule in svc.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert rule == {"condition": wanted}, f"{name} -> {dep}: {rule}"
    # Nothing Softserve starts before its data services, the bucket and the migrations.
    for name in set(SOFTSERVE) - set(ONE_SHOT):
        assert {"postgres", "redis", "minio", "createbuckets", "migrate"} <= set(services[name]["depends_on"])


def test_softserve_services_run_the_one_image_and_others_are_pinned(config):
    services = config["services"]
    images = {services[n]["image"] for n in SOFTSERVE}
    builds = {str(services[n].get("build")) for n in SOFTSERVE}
    assert len(images) == 1 and len(builds) == 1, (images, builds)
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert images == {f"softserve:{version}-cuda"}
    for name, svc in services.items():
        assert "volumes" not in svc or all(".:/app" not in str(v) for v in svc["volumes"]), name
        if name in SOFTSERVE:
            continue
        repo, _, tag = svc["image"].partition("@")[0].rpartition(":")
        assert repo and tag != "latest" and re.search(r"\d", tag), f"{name}: pin {svc['image']}"
        assert "build" not in svc


def test_gpu_workers_reserve_gpus_and_stop_after_their_soft_shutdown(config):
    services = config["services"]
    for name in ("tuning-worker", "serving-worker"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"], name
        # docker-compose 1.29 `up` rejects a string count ("1" from a ${VAR}); `config` lets it through.
        assert devices[0]["count"] == 1 and isinstance(devices[0]["count"], int), name
    # The default worker's tasks wait on the network: it runs without a GPU.
    assert "deploy" not in services["default-worker"]
    for name in CELERY_WORKERS:
        worker = services[name]
        soft_shutdown = float(worker["environment"]["SOFTSERVE_SOFT_SHUTDOWN_S"])
        assert soft_shutdown == float(env_example()["SOFTSERVE_SOFT_SHUTDOWN_S"])
        assert seconds(worker["stop_grace_period"]) > soft_shutdown + 15, name
        # SIGTERM must start Celery's time-limited soft shutdown, not a warm one that waits for the job.
        assert worker["environment"]["REMAP_SIGTERM"] == "SIGQUIT", name
    serving = services["serving-worker"]
    assert seconds(serving["stop_grace_period"]) > int(serving["environment"]["SERVING_TIMEOUT_MS"]) / 1000


def test_every_queue_has_a_worker_and_training_holds_up_nothing_else(config):
    assert_queues_split({name: svc.get("command") or [] for name, svc in config["services"].items()})


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and any(match.groups()), duration
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_secrets_reach_the_services_redis_has_a_password_and_aof(config):
    services = config["services"]
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--requirepass" in redis_cmd and "--appendonly yes" in redis_cmd
    for name in SOFTSERVE:
        env = services[name]["environment"]
        assert env["DJANGO_SECRET_KEY"] == SECRETS["DJANGO_SECRET_KEY"]
        for url in ("REDIS_URL", "CELERY_BROKER_URL"):
            assert f":{SECRETS['REDIS_PASSWORD']}@redis:6379/" in env[url], f"{name} {url}"
        assert f":{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/" in env["DATABASE_URL"]
        assert env["AWS_SECRET_ACCESS_KEY"] == SECRETS["MINIO_ROOT_PASSWORD"]
        unknown = set(env) - set(env_example())
        assert not unknown, f"{name} sets variables .env.example does not list: {sorted(unknown)}"
    flower = services["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == SECRETS["FLOWER_BASIC_AUTH"]
    assert (
        services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == SECRETS["GRAFANA_ADMIN_PASSWORD"]
    )
    bucket_cmd = " ".join(services["createbuckets"]["command"])
    assert "mc mb --ignore-existing" in bucket_cmd
    # The committed files hold no secret value: compose reads them from the environment or .env.
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in SECRETS:
        assert re.search(rf"\${{{secret}:\?[^}}]+}}", text), f"{secret} must be required (${{{secret}:?…}})"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    substituted = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    assert not substituted - set(env_example()), "list every compose variable in .env.example"
