"""A real Prometheus scrapes the web server (gunicorn), a tuning worker running jobs and a serving worker
answering a prediction; every metric in docs/metrics.md is found through its HTTP API, the queue depth is
non-zero while jobs wait, and the alert rules are loaded and evaluated."""

from __future__ import annotations

import time

import pytest
import redis
import requests

from tests.conftest import ROOT
from tests.net import free_port
from tests.ops.services import Prometheus, WebServer
from tests.ops.test_metrics_doc import documented
from tests.serving.helpers import REDIS_URL, make_artifact, publish, start_worker, stop_worker, worker_env
from tests.workers import conftest as workers_conftest
from tests.workers.conftest import BROKER_URL, ended_job, wait_for
from tests.workers.test_jobs_e2e import _setup, _start
from workers.storage import S3Store

pytestmark = pytest.mark.django_db(transaction=True)
S3_KEYS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
METRICS_TOKEN = "ops-test-metrics-token"


def _series(prom: Prometheus, name: str, kind: str) -> list[dict]:
    return prom.query(f"{name}_count" if kind == "histogram" else name)


def test_prometheus_scrapes_every_documented_metric(
    acme, workers, s3, s3_endpoint, tiny_model_dirs, tiny_models, tmp_path
):
    model_dir = str(tiny_model_dirs["gpt2"])
    serving_redis = redis.Redis.from_url(REDIS_URL)
    serving_redis.flushdb()
    storage = {**S3_KEYS, "S3_ENDPOINT_URL": s3_endpoint, "S3_BUCKET": s3.bucket}
    tuning_port, serving_port = free_port(), free_port()
    web = WebServer(
        {
            **storage,
            "DATABASE_URL": workers_conftest.test_database_url(),
            "CELERY_BROKER_URL": BROKER_URL,
            "SERVING_REDIS_URL": REDIS_URL,
            "SOFTSERVE_BASE_MODELS": model_dir,
            "SOFTSERVE_VAR_DIR": str(tmp_path / "web-var"),
            "METRICS_TOKEN": METRICS_TOKEN,
        },
        tmp_path / "web.log",
        workers=2,  # two gunicorn processes: /metrics adds both up (PROMETHEUS_MULTIPROC_DIR)
    )
    serving = start_worker(
        worker_env(model_dir, {**storage, "SERVING_METRICS_PORT": str(serving_port)}),
        tmp_path / "serving.log",
    )
    prom = Prometheus(
        {
            "softserve-web": [f"127.0.0.1:{web.port}"],
            "softserve-tuning": [f"127.0.0.1:{tuning_port}"],
            "softserve-serving": [f"127.0.0.1:{serving_port}"],
        },
        tmp_path / "prometheus",
        [ROOT / "deploy" / "prometheus" / "alerts.yml"],
        tokens={"softserve-web": METRICS_TOKEN},  # the web's /metrics answers nothing else
    )
    try:
        # Jobs wait: no tuning worker yet. Prometheus sees the depth through the web's /metrics.
        dataset = _setup(acme, tiny_model_dirs)
        # Two jobs wait (the team's quota); the second is short. 6 steps: one checkpoint (every 5 steps).
        jobs = [_start(acme, dataset, kind="tune", steps=steps)["id"] for steps in (6, 2)]
        depth = wait_for(
            lambda: [s for s in prom.query('softserve_queue_depth{queue="gpu"} > 0')],
            60,
            "queue depth in Prometheus",
        )
        assert float(depth[0]["value"][1]) == 2

        workers.env["SOFTSERVE_WORKER_METRICS_PORT"] = str(tuning_port)
        workers.start()
        for job_id in jobs:
            done = wait_for(lambda job_id=job_id: ended_job(acme, job_id), 240, f"job {job_id}", workers)
            assert done["status"] == "succeeded", done

        # A prediction through the web server, answered by the serving worker.
        store = S3Store(s3.bucket, s3_endpoint, "us-east-1")
        publish(store, acme.tenant, "served", make_artifact(tiny_models["gpt2"]), model_dir)
        response = requests.post(
            f"{web.url}/api/v1/prompts/served:predict",
            json={"inputs": ["a fine film"]},
            headers={"Authorization": f"Bearer {acme.key}", "X-Request-ID": "ops-test-1"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert response.headers["X-Request-ID"] == "ops-test-1"

        expected = documented()
        missing = dict(expected)

        def all_found() -> bool:
            for name, kind in list(missing.items()):
                if _series(prom, name, kind):
                    del missing[name]
            return not missing

        deadline = time.monotonic() + 60
        while not all_found() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not missing, f"not in Prometheus after 60 s: {sorted(missing)}\n{prom.query('up')}"
        up = {s["metric"]["job"]: s["value"][1] for s in prom.query("up")}
        assert up == {"softserve-web": "1", "softserve-tuning": "1", "softserve-serving": "1"}, up
        finished = prom.query('sum(softserve_worker_jobs_finished_total{outcome="succeeded"})')
        assert float(finished[0]["value"][1]) == 2
        assert prom.query('sum(softserve_http_requests_total{view="prompt-predict",status="200"})')
        rules = [r["name"] for g in prom.get("/api/v1/rules")["groups"] for r in g["rules"]]
        assert len(rules) == 5 and all(r.startswith("Softserve") for r in rules), rules
        # What Prometheus itself holds (its own names, not the document's): histograms as _bucket/_sum/_count.
        names = prom.get("/api/v1/label/__name__/values")
        scraped = sorted(n for n in names if n.startswith("softserve_"))
        assert all(any(n == m or n.startswith(f"{m}_") for n in scraped) for m in expected), scraped
        (tmp_path / "scraped-metrics.txt").write_text("\n".join(scraped) + "\n")
        print(f"\nPrometheus scraped {len(scraped)} softserve_ series names:\n  " + "\n  ".join(scraped))
        # Without the token, the web's /metrics answers nobody (here: a request from the same host).
        anonymous = requests.get(f"{web.url}/metrics", timeout=10)
        assert anonymous.status_code == 401 and "softserve_" not in anonymous.text
        # The tuning worker's own probes answer on its metrics port.
        assert requests.get(f"http://127.0.0.1:{tuning_port}/healthz", timeout=5).status_code == 200
        ready = requests.get(f"http://127.0.0.1:{tuning_port}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert requests.get(f"http://127.0.0.1:{serving_port}/readyz", timeout=10).status_code == 200
    finally:
        prom.stop()
        stop_worker(serving)
        web.stop()
        serving_redis.flushdb()
