"""Job budgets through the real worker: wall time against `max_minutes`, live-curve points per minute, and
the worker's training tokens/s against `softserve-engine train` on the same rows and settings.

The platform path as a team uses it: the REST API (in this process) uploads AG News rows (the shared
`agnews` split: 540 train rows, 60 dev rows, the issue's first real task), creates a four-topic prompt on the
default model (SmolLM2) and starts tune jobs with every default but `max_minutes`; one `celery worker -B`
process (the command `make run` starts, on the embedded SQLite broker) runs them. The worker loads the
model on its first job, inside that job's budget, as a fresh worker does. Wall = the job row's claim to
finish (`started_at` to `finished_at`). Targets: wall ≤ 1.1x the budget; the worker's tokens/s ≥ 0.9x the
CLI's, whose run uses the same rows (as CSV files), template, labels and settings, in its own process.
Tokens/s on both sides is the trainer's own figure (real tokens over optimisation time, dev evaluations
excluded). The rows go in as the dataset has them, those that begin with `=`, `+`, `-` or `@` included.

Budgets: 3, 6 and 15 minutes (the CLI beside the 3-minute job); `--quick`: one 1.5-minute job and the CLI
at 1.5 minutes. `--speed-pairs N` adds N pairs of fixed-length runs, the CLI and then a worker job of
SPEED_STEPS steps each with the same evaluation schedule, taking turns so that a change in the machine's
load falls on both sides; the worker/CLI figure is the median of the pairs' ratios (`--budgets none`:
the pairs alone). CPU-bound: the load average is recorded, other work on the machine slows both sides.
Uses its own PostgreSQL database (BENCH_JOB_BUDGET_DATABASE_URL), created afresh. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import dataset_path
from common.defaults import STEPS, eval_every_for

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(1, str(ROOT / "platform"))
DATABASE_URL = os.environ.get(
    "BENCH_JOB_BUDGET_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/softserve_bench_job_budget"
)
TEMPLATE = "Article: {text}\nTopic:"
LABELS = ["business", "sci_tech", "sports", "world"]
TRAIN_ROWS, DEV_ROWS = 540, 60
BUDGETS = (3.0, 6.0, 15.0)
QUICK_BUDGETS = (1.5,)
TARGET_WALL_RATIO = 1.1
TARGET_SPEED_RATIO = 0.9
SPEED_STEPS = 24  # a pair's runs: long enough that the first steps' warm-up is a small share
SPEED_MINUTES = 10.0  # a budget that never ends a pair's run: the steps do


def _rows(split: str, count: int) -> list[dict[str, str]]:
    with dataset_path("agnews", split).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))[:count]


def _write(path: Path, rows: list[dict[str, str]], split: str | None = None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        fields = ["text", "label", *(["split"] if split is not None else [])]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {"text": row["text"], "label": row["label"], **({"split": split} if split else {})}
            )
    return path


def _fresh_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def run_cli(train_csv: Path, dev_csv: Path, minutes: float, out: Path, steps: int | None = None) -> dict:
    """`softserve-engine train` with the platform job's settings (its defaults, its evaluation interval)."""
    command = [
        *(
            sys.executable,
            "-m",
            "workers.engine.cli",
            "train",
            "--train",
            str(train_csv),
            "--dev",
            str(dev_csv),
        ),
        *("--template", TEMPLATE.replace("\n", "\\n"), "--out", str(out), "--max-minutes", str(minutes)),
        *("--eval-every", str(eval_every_for(steps or STEPS)), "--json"),
        *(("--steps", str(steps)) if steps else ()),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"softserve-engine train exited {done.returncode}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "minutes": minutes,
        "process_wall_s": round(wall, 1),
        "tokens_per_s": result["tokens_per_s"],
        "steps_run": result["steps_run"],
        "stop_reason": result["stop_reason"],
        "dev_accuracy": result["dev"].get("accuracy"),
        "final_eval_rows": result.get("final_eval_rows"),
        "load_1m": round(os.getloadavg()[0], 2),
    }


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [
        *(sys.executable, "-m", "celery", "-A", "workers.celeryconf", "worker", "-B", "-Q", "gpu,default"),
        *("--concurrency", "1", "--loglevel", "INFO", "--without-mingle", "--without-gossip"),
    ]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def run_job(
    client, dataset_id: str, minutes: float, worker: subprocess.Popen, log: Path, steps: int | None = None
) -> dict:
    from common.contracts import JOB_ENDED, JobStatus
    from softserve.jobs.models import Job

    body = {"kind": "tune", "prompt": "topics", "dataset_version": dataset_id, "max_minutes": minutes}
    if steps:
        body["steps"] = steps
    response = client.post("/api/v1/jobs", body, format="json")
    if response.status_code != 201:
        raise SystemExit(f"job refused: {response.status_code} {response.content[:500]!r}")
    job_id = response.json()["id"]
    deadline = time.monotonic() + 3 * 60 * minutes + 600
    while True:
        job = Job.objects.select_related("prompt_version").get(pk=job_id)
        if job.status in JOB_ENDED:
            break
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker stopped or the job never ended:\n{log.read_text()[-3000:]}")
        time.sleep(2)
    if job.status != JobStatus.SUCCEEDED:
        raise SystemExit(f"job {job.status}: {job.error}\n{log.read_text()[-3000:]}")
    wall = (job.finished_at - job.started_at).total_seconds()
    points = [p for p in job.metric_history if "loss" in p and "event" not in p]
    before_first_eval = [
        p
        for p in points
        if "n" not in p and p["step"] < min((q["step"] for q in points if "n" in q), default=10**9)
    ]
    metrics = job.prompt_version.metrics
    # The worker's own line at the start of training: its torch threads, precision and time before training.
    starts = [json.loads(line) for line in log.read_text().splitlines() if '"training starts"' in line]
    worker_side = (
        {k: starts[-1].get(k) for k in ("torch_threads", "precision", "before_training_s")} if starts else {}
    )
    return {
        "minutes": minutes,
        "wall_s": round(wall, 1),
        "wall_ratio": round(wall / (60 * minutes), 3),
        "queued_to_finished_s": round((job.finished_at - job.queued_at).total_seconds(), 1),
        "tokens_per_s": metrics["tokens_per_s"],
        "steps_run": metrics["steps_run"],
        "stop_reason": metrics["stop_reason"],
        "train_seconds": metrics["train_seconds"],
        "dev_accuracy": metrics["dev"].get("accuracy"),
        "final_eval_rows": metrics.get("final_eval_rows"),
        "dev_rows": metrics.get("dev_rows"),
        "final_eval_seconds": metrics.get("final_eval_seconds"),
        "eval_s_per_row": metrics.get("eval_s_per_row"),
        "loss_points": len(points),
        "loss_points_before_first_eval": len(before_first_eval),
        "loss_points_per_minute": round(len(points) / (wall / 60), 1),
        **worker_side,
        "load_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one 1.5-minute job and the CLI beside it")
    parser.add_argument(
        "--budgets", default=None, help="comma-separated minutes (default 3,6,15; quick 1.5; none: no jobs)"
    )
    parser.add_argument(
        "--speed-pairs", type=int, default=0, help=f"pairs of {SPEED_STEPS}-step runs, CLI then worker"
    )
    args = parser.parse_args()
    budgets = (
        ()
        if args.budgets == "none"
        else tuple(float(b) for b in args.budgets.split(","))
        if args.budgets
        else QUICK_BUDGETS
        if args.quick
        else BUDGETS
    )
    scratch = Path(tempfile.mkdtemp(prefix="softserve-job-budget-"))
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "STORAGE_DIR": str(scratch / "storage"),
        "SOFTSERVE_VAR_DIR": str(scratch / "var"),
        "CELERY_BROKER_URL": f"sqla+sqlite:///{scratch / 'celery.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "softserve.settings",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "SOFTSERVE_SOFT_SHUTDOWN_S": "5",  # an idle worker otherwise waits the whole soft shutdown (60 s)
    }
    for name in (
        "S3_ENDPOINT_URL",
        "S3_USE_AWS",
        "REDIS_URL",
        "SERVING_REDIS_URL",
        "SOFTSERVE_JOB_DEFAULT_MINUTES",
    ):
        env.pop(name, None)
    (scratch / "var").mkdir()
    for name in set(os.environ) - set(env):
        del os.environ[name]
    os.environ.update(env)
    _fresh_database(DATABASE_URL)

    import django
    import torch
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from rest_framework.test import APIClient

    from softserve.tenancy.actions import create_tenant

    train, dev = _rows("train", TRAIN_ROWS), _rows("dev", DEV_ROWS)
    train_csv, dev_csv = _write(scratch / "train.csv", train), _write(scratch / "dev.csv", dev)
    upload_csv = scratch / "agnews.csv"
    with upload_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label", "split"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "label": r["label"], "split": "train"} for r in train)
        writer.writerows({"text": r["text"], "label": r["label"], "split": "dev"} for r in dev)
    _, _, key = create_tenant("bench", "bench@example.com")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    with upload_csv.open("rb") as handle:
        uploaded = client.post("/api/v1/datasets", {"name": "agnews", "file": handle}, format="multipart")
    if uploaded.status_code != 201:
        raise SystemExit(f"upload refused: {uploaded.status_code} {uploaded.content[:500]!r}")
    prompt = {"name": "topics", "task_type": "classification", "template": TEMPLATE, "labels": LABELS}
    created = client.post("/api/v1/prompts", prompt, format="json")
    if created.status_code != 201:
        raise SystemExit(f"prompt refused: {created.status_code} {created.content[:500]!r}")

    load_at_start = round(os.getloadavg()[0], 2)
    print(f"load average at start: {load_at_start} (2 cores, shared); scratch {scratch}", file=sys.stderr)
    log = scratch / "worker.log"
    worker = _start_worker(env, log)
    jobs, cli, pairs = [], None, []
    try:
        for minutes in budgets:
            if cli is None:  # the CLI beside the first (smallest) budget, same rows and settings
                cli = run_cli(train_csv, dev_csv, minutes, scratch / "cli.safetensors")
                print("cli", json.dumps(cli), file=sys.stderr, flush=True)
            jobs.append(run_job(client, uploaded.json()["id"], minutes, worker, log))
            print("job", json.dumps(jobs[-1]), file=sys.stderr, flush=True)
        for _ in range(args.speed_pairs):
            pair_cli = run_cli(train_csv, dev_csv, SPEED_MINUTES, scratch / "cli.safetensors", SPEED_STEPS)
            pair_job = run_job(client, uploaded.json()["id"], SPEED_MINUTES, worker, log, SPEED_STEPS)
            pairs.append(
                {
                    "cli_tokens_per_s": pair_cli["tokens_per_s"],
                    "worker_tokens_per_s": pair_job["tokens_per_s"],
                    "ratio": round(pair_job["tokens_per_s"] / pair_cli["tokens_per_s"], 3),
                    "steps": [pair_cli["steps_run"], pair_job["steps_run"]],
                    "load_1m": pair_job["load_1m"],
                }
            )
            print("pair", json.dumps(pairs[-1]), file=sys.stderr, flush=True)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
    speed = round(jobs[0]["tokens_per_s"] / cli["tokens_per_s"], 3) if cli and cli["tokens_per_s"] else None
    paired = round(statistics.median(p["ratio"] for p in pairs), 3) if pairs else None
    worst = max((job["wall_ratio"] for job in jobs), default=None)
    print(
        json.dumps(
            {
                "rows": {"train": len(train), "dev": len(dev)},
                "jobs": jobs,
                "cli": cli,
                "worker_vs_cli_tokens_per_s": speed,
                "speed_pairs": pairs,
                "worker_vs_cli_paired_median": paired,
                "worst_wall_ratio": worst,
                "cli_torch_threads": torch.get_num_threads(),  # a fresh process's default, as the CLI's
                "targets": {"wall_ratio": TARGET_WALL_RATIO, "worker_vs_cli": TARGET_SPEED_RATIO},
                "targets_met": {
                    "wall_ratio": worst <= TARGET_WALL_RATIO if worst is not None else None,
                    # The paired median where pairs ran: one budget run each side is a single sample.
                    "worker_vs_cli": (paired or speed or 0.0) >= TARGET_SPEED_RATIO,
                },
                "load_1m_start": load_at_start,
                "load_1m_end": round(os.getloadavg()[0], 2),
                "quick": args.quick,
            }
        )
    )
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
