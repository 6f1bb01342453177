"""Server time of the team pages for a big team: 10,000 jobs, 1,000 versions of one prompt (and 10,000
datasets, prompts, keys and members), against the same pages for a team of 10 rows (the baseline).

One process: a fresh database (`test_<name>` of BENCH_DATABASE_URL, PostgreSQL by default, made and
dropped here), a scratch storage folder, Django's test client signed in as the team's owner. Server
time is the time Django takes to answer a GET in this process (no network, no browser), measured
after one warm-up request per page (templates are not instrumented as in tests). Target: p95 under
150 ms on every page. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/softserve_bench_webui"
)
TARGET_MS = 150.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _setup(scratch: str) -> None:
    os.environ["DATABASE_URL"] = DATABASE_URL
    os.environ["STORAGE_DIR"] = scratch
    os.environ["SOFTSERVE_VAR_DIR"] = scratch
    for name in ("REDIS_URL", "S3_ENDPOINT_URL", "S3_USE_AWS"):
        os.environ.pop(name, None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "softserve.settings")
    import django

    django.setup()


def _team(name: str, rows: int, versions: int, history: int):
    """A team with `rows` rows of everything, `versions` versions of its first prompt, a job with a
    `history`-point metric history, and a 1,000-row stored dataset version."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from softserve.datasets.models import DatasetVersion
    from softserve.jobs.models import Job
    from softserve.tenancy.actions import create_tenant
    from tests.webui.fill import fill_team

    tenant, owner, _ = create_tenant(name, f"owner@{name}.example")
    prompt = fill_team(tenant, rows, versions)
    dataset = DatasetVersion.objects.for_tenant(tenant).first()
    body = "".join(
        json.dumps(
            {"text": f"row {i} of a review", "label": "ab"[i % 2], "split": "dev" if i % 10 == 0 else "train"}
        )
        + "\n"
        for i in range(1000)
    )
    default_storage.save(dataset.storage_key, ContentFile(body.encode()))
    job = Job.objects.for_tenant(tenant).first()
    job.metric_history = [{"step": s, "loss": 1 / (s + 1), "accuracy": s / history} for s in range(history)]
    job.progress = {"step": history, "total_steps": history, "loss": 0.1, "elapsed_s": 60.0}
    job.save(update_fields=["metric_history", "progress"])
    pages = {
        "home": "/app/",
        "datasets": "/app/datasets",
        "dataset_version": f"/app/datasets/{dataset.dataset_id}/versions/{dataset.number}",
        "prompts": "/app/prompts",
        "prompt_detail": f"/app/prompts/{prompt.name}",
        "prompt_detail_last_page": f"/app/prompts/{prompt.name}?page=last",
        "version_tokens": f"/app/prompts/{prompt.name}/versions/1/tokens",
        "jobs": "/app/jobs",
        "jobs_filtered": "/app/jobs?status=succeeded&kind=tune&page=last",
        "job_new": "/app/jobs/new",
        "job_detail": f"/app/jobs/{job.pk}",
        "job_live": f"/app/jobs/{job.pk}/live",
        "playground": "/app/playground",
        "settings": "/app/settings",
    }
    return owner, pages


def _measure(owner, pages: dict[str, str], repeats: int) -> dict[str, dict[str, float]]:
    from django.test import Client

    client = Client()
    client.force_login(owner)
    out = {}
    for name, url in pages.items():
        first = client.get(url)
        assert first.status_code in (200, 286), (url, first.status_code)
        times, cpu = [], []
        for _ in range(repeats):
            started, started_cpu = time.perf_counter(), time.process_time()
            client.get(url)
            times.append(1000 * (time.perf_counter() - started))
            cpu.append(1000 * (time.process_time() - started_cpu))
        out[name] = {
            "p50": round(statistics.median(times), 1),
            "p95": round(_percentile(times, 0.95), 1),
            # This process's CPU only (not PostgreSQL's): steadier than wall time on a shared machine.
            "cpu_p50": round(statistics.median(cpu), 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1,000 jobs and 100 versions, 10 requests a page"
    )
    args = parser.parse_args()
    jobs, versions, repeats = (1_000, 100, 10) if args.quick else (10_000, 1_000, 40)
    with tempfile.TemporaryDirectory() as scratch:
        _setup(scratch)
        from django.db import connection

        old_name = connection.settings_dict["NAME"]
        connection.creation.create_test_db(verbosity=0, autoclobber=True)
        try:
            started = time.perf_counter()
            small_owner, small_pages = _team("small", 10, 10, 50)
            big_owner, big_pages = _team("big", jobs, versions, 5_000)
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:  # as autovacuum would soon after a bulk load
                    cursor.execute("ANALYZE")
            print(
                f"filled in {time.perf_counter() - started:.0f} s: {jobs} jobs, {versions} versions",
                file=sys.stderr,
            )
            small = _measure(small_owner, small_pages, repeats)
            big = _measure(big_owner, big_pages, repeats)
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
    print(f"{'page':<24}{'p50 ms':>9}{'p95 ms':>9}{'cpu p50':>9}{'small p50':>11}{'ratio':>7}")
    for name, f in big.items():
        ratio = f["p50"] / max(small[name]["p50"], 0.1)
        print(f"{name:<24}{f['p50']:>9}{f['p95']:>9}{f['cpu_p50']:>9}{small[name]['p50']:>11}{ratio:>7.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", file=sys.stderr)
    worst = max(big.values(), key=lambda f: f["p95"])["p95"]
    print(
        json.dumps(
            {
                "jobs": jobs,
                "versions": versions,
                "requests_per_page": repeats,
                "pages": big,
                "baseline_10_rows_p50": {k: v["p50"] for k, v in small.items()},
                "max_p95_ms": worst,
                "target_ms": TARGET_MS,
                "target_met": worst < TARGET_MS,
                "database": connection.vendor,
                "load_average": round(os.getloadavg()[0], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
