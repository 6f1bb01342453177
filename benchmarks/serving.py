"""Closed-loop load over REST against the serving pool, requests spread over 1, 16 and 64 prompts.

A real stack in one command: the Django platform (gunicorn; PostgreSQL, database softserve_bench made
afresh; artifacts in a scratch folder), Redis (db 11) and one `python -m workers.serving` worker process
with the default model (SmolLM2-135M). Prompts are random-initialised artifacts of the right shape
(P=20): speed does not depend on trained values.
C client threads each send one input at a time to a prompt drawn uniformly at random. Row sets
(`--row-set`): `multi` (the default: prompts in turn for AG News, RTE and SST-2, each with its task's
template and labels, and each request one row of its prompt's task, so batches mix four-topic news with a
three-token label, sentence pairs with multi-token labels and sentiment) or `sst2` (every prompt SST-2).

Baselines: (a) the same load on one prompt (the limit); (b) the worker restarted with
SERVING_GROUP_BY_PROMPT=1, which batches only requests of the same prompt, as a PEFT model with one
active prompt must (both use the soft-prompt KV cache). Also the REST overhead at p50: one client, one
prompt; per request, the client's latency minus the queue and model time the platform reports for that
same request (its Server-Timing header), so the figure is paired and the model's own jitter cancels out.
Last line: one JSON object for the 64-prompt load.

`--split 50/50` and/or `--shadow`: instead, the cost of traffic splitting. Each of SPLIT_PROMPTS prompts
gets two more versions; the same load runs with each alias on one version (the baseline), with a 50/50
split between two versions, and with that split plus a third version as shadow (its rows scored in the
same mixed batches), in turns (two loads of each) on one worker. Reported per mode: primary rows/s (the
rows callers get answers for) and model rows/s (the shadow's extra rows counted), against the baseline.
Throughput here counts the requests that end inside each window. Then the same modes in this process on
the worker's Batcher alone (`batcher`: batches of the worker's row budget, no REST, Redis or database),
which isolates what a shadow costs per model row in the mixed batch. Last line: one JSON object for that
comparison.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

from benchmarks.common import TASKS, dataset_path  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/softserve_bench")
PROMPT_COUNTS = (1, 16, 64)
ROW_SETS = {"sst2": ("sst2",), "multi": ("agnews", "rte", "sst2")}
# One default for the quick and the full run: quick once ran 32 clients against a full run's 8, and its
# figures (latency, batching ratios) were not comparable.
CLIENTS = 8
# The serving worker's torch threads. Its default (one per core) has it fight gunicorn and the clients for
# this 2-core box's cores: latency then swings with the scheduler, and quick and full runs disagreed.
TORCH_THREADS = 1
# Each load's first seconds (clients starting, batches filling) are not counted, nor the drain at its end.
WARMUP_S = 3.0
# Single-client requests behind the REST overhead figure (the same in quick and full runs).
OVERHEAD_SAMPLES = 100
# `--split` / `--shadow`: the prompts the split comparison spreads its load over (each with 3 versions).
SPLIT_PROMPTS = 16
# ... and the batches its in-process part times per mode (quick, full).
BATCH_ROUNDS_QUICK, BATCH_ROUNDS = 12, 40


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _server_timing(header: str | None) -> dict[str, float]:
    """`queue;dur=1.0, model;dur=2.0` -> {"queue": 1.0, "model": 2.0} (milliseconds)."""
    parts = (item.strip().split(";dur=") for item in (header or "").split(",") if ";dur=" in item)
    return {name: float(value) for name, value in parts}


def _post(
    port: int,
    key: str,
    name: str,
    row: str | dict[str, str],
    extra: dict | None = None,
    seen: dict | None = None,
) -> tuple[int, float, dict[str, float]]:
    """One prediction; `extra` goes into the body; `seen` counts the versions that answered."""
    body = json.dumps({"inputs": [row], **(extra or {})})
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(
            "POST",
            f"/api/v1/prompts/{name}:predict",
            body,
            {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            print(f"error {response.status}: {body[:300]!r}", file=sys.stderr, flush=True)
        elif seen is not None:
            version = json.loads(body)["version"]
            seen[version] = seen.get(version, 0) + 1
        timing = _server_timing(response.getheader("Server-Timing"))
        return response.status, time.perf_counter() - started, timing
    except OSError:
        return 0, time.perf_counter() - started, {}
    finally:
        conn.close()


def closed_loop(
    port: int,
    key: str,
    names: list[str],
    rows: dict[str, list],
    clients: int,
    seconds: float,
    seen: dict | None = None,
) -> dict:
    """`seconds` of measurement after WARMUP_S: only requests that start and end inside the window count,
    so neither the ramp-up nor the requests still draining when the clients stop skew req/s or latency."""
    latencies: list[float] = []
    errors = 0
    done = 0  # requests that end inside the window, wherever they started (throughput)
    lock = threading.Lock()
    opens = time.monotonic() + WARMUP_S
    closes = opens + seconds

    def client(seed: int) -> None:
        nonlocal errors, done
        rng = random.Random(seed)
        while (started := time.monotonic()) < closes:
            name = rng.choice(names)
            status, latency, _ = _post(port, key, name, rng.choice(rows[name]), seen=seen)
            if status == 200 and opens <= started + latency <= closes:
                with lock:
                    done += 1
            if started < opens or started + latency > closes:
                continue
            with lock:
                if status == 200:
                    latencies.append(latency)
                else:
                    errors += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "rps": len(latencies) / seconds,
        "p50_ms": 1000 * _percentile(latencies, 0.5),
        "p99_ms": 1000 * _percentile(latencies, 0.99),
        "errors": errors,
        "requests": len(latencies),
        "done_rps": done / seconds,
    }


def _set_split(names: list[str], weights: list[int], shadow: bool) -> None:
    """Each prompt's `production` alias: on v1 alone (no weights, no shadow), or split v1/v2 by `weights`
    with v3 as shadow when `shadow`. The web processes read the alias on every request."""
    from softserve.prompts.models import Alias, PromptVersion

    for alias in Alias.objects.filter(prompt__name__in=names, name="production"):
        alias.split = (
            [{"version": 1, "weight": weights[0]}, {"version": 2, "weight": weights[1]}] if weights else []
        )
        alias.shadow = PromptVersion.objects.get(prompt_id=alias.prompt_id, number=3) if shadow else None
        alias.save(update_fields=["split", "shadow"])


def split_loads(
    args: argparse.Namespace,
    env: dict,
    seconds: float,
    key: str,
    names: list[str],
    rows: dict[str, list],
    weights: list[int],
    worker_log: Path,
) -> dict:
    """The same closed-loop load with each alias on one version, split (no shadow) and split with a
    shadow, in turns on one worker: primary rows/s (callers' rows) and model rows/s (the shadow's
    counted). Throughput counts the requests that end inside each window (`done_rps`): at several
    seconds per request a window sees few requests that also start in it."""
    from softserve.serving.models import Prediction

    modes = {"one_version": ([], False)}
    if weights:
        modes["split"] = (weights, False)
    if args.shadow:
        modes["split_shadow" if weights else "shadow"] = (weights, True)
    worker = _start(
        [sys.executable, "-m", "workers.serving"], {**env, "SERVING_GROUP_BY_PROMPT": "0"}, worker_log
    )
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    seen: dict[int, int] = {}
    try:
        _wait_ready(worker_log, worker, "serving worker ready")
        # Warm the prompt cache with every version (loading is not what is measured).
        warm = [
            threading.Thread(target=_post, args=(args.port, key, n, rows[n][0], {"version": v}))
            for n in names
            for v in (1, 2, 3)
        ]
        for t in warm:
            t.start()
        for t in warm:
            t.join()
        for _ in range(2):  # in turns: a drift of the shared machine's load hits every mode alike
            for mode, (split, shadow) in modes.items():
                _set_split(names, split, shadow)
                shadowed = Prediction.objects.filter(shadow_outputs__isnull=False).count()
                result = closed_loop(
                    args.port, key, names, rows, args.clients, seconds, seen if split else None
                )
                result["shadowed"] = (
                    Prediction.objects.filter(shadow_outputs__isnull=False).count() - shadowed
                )
                runs[mode].append(result)
                print(
                    f"{mode:12s} prompts={len(names)} "
                    + " ".join(
                        f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
                    ),
                    flush=True,
                )
    finally:
        _stop(worker)

    def mean(mode: str, field: str) -> float:
        return statistics.mean(r[field] for r in runs[mode])

    base = mean("one_version", "done_rps")  # one input per request: rows/s
    served = sum(seen.values()) or 1
    report: dict = {
        "mode": "split",
        "split": "/".join(str(w) for w in weights) or "none",
        "shadow": args.shadow,
        "prompts": len(names),
        "one_version_rows_s": round(base, 2),
    }
    for mode, (_, shadow) in modes.items():
        if mode == "one_version":
            continue
        primary = mean(mode, "done_rps")
        model = primary * (2 if shadow else 1)  # a shadow scores every input once more
        report[f"{mode}_primary_rows_s"] = round(primary, 2)
        report[f"{mode}_model_rows_s"] = round(model, 2)
        report[f"{mode}_ratio_primary"] = round(primary / base, 3)
        report[f"{mode}_ratio_model_rows"] = round(model / base, 3)
        report[f"{mode}_p50_ms"] = round(mean(mode, "p50_ms"), 1)
        print(
            f"{mode}: primary {primary:.2f} rows/s ({primary / base:.2f}x one version's {base:.2f}), "
            f"model rows {model:.2f}/s ({model / base:.2f}x)"
        )
    report.update(
        {
            "one_version_p50_ms": round(mean("one_version", "p50_ms"), 1),
            "versions_reached": {str(v): round(n / served, 3) for v, n in sorted(seen.items())},
            "shadow_outputs_logged": sum(r["shadowed"] for m in runs for r in runs[m]),
            "clients": args.clients,
            "seconds_per_load": seconds,
            "loads_per_mode": 2,
            "worker_torch_threads": args.torch_threads,
            "errors": sum(r["errors"] for m in runs for r in runs[m]),
        }
    )
    return report


def batcher_split(
    fm, env: dict, names: list[str], rows: dict[str, list], weights: list[int], shadow: bool, rounds: int
) -> dict:
    """The same comparison in this process, on the worker's Batcher alone (no REST, Redis or database,
    so the shared machine's noise in those is out): batches of the worker's row budget (SERVING_MAX_BATCH_ROWS
    = clients) taken as the worker takes them (a request with a shadow counts its rows twice), one
    request per prompt drawn at random, the modes in turns, `rounds` batches each. Primary rows/s and
    model rows/s (medians over the batches)."""
    import uuid

    from common.task import template_fields
    from softserve.prompts.models import PromptVersion, TaskPrompt
    from workers.serving.batcher import Batcher
    from workers.serving.cache import PromptCache
    from workers.serving.config import ServingConfig
    from workers.serving.queueing import Pending, fair_pick
    from workers.storage import default_store

    config = ServingConfig.from_env(env, base_model=fm.model_id)
    batcher = Batcher(fm, PromptCache(fm, default_store(), 256, 4096, config.kv_cache), config)
    targets = {
        (v.prompt.name, v.number): {
            "version": v.number,
            "version_id": str(v.pk),
            "artifact_key": v.artifact_key,
            "artifact_sha256": v.artifact_sha256,
        }
        for v in PromptVersion.objects.filter(prompt__name__in=names).select_related("prompt")
    }
    modes = {"one_version": ([], False)}
    if weights:
        modes["split"] = (weights, False)
    if shadow:
        modes["split_shadow" if weights else "shadow"] = (weights, True)
    fields = {p.name: template_fields(p.template) for p in TaskPrompt.objects.filter(name__in=names)}
    rng = random.Random(0)

    def request(name: str, number: int, with_shadow: bool, row=None) -> Pending:
        row = rng.choice(rows[name]) if row is None else row
        now = time.time()
        body = {
            "request_id": uuid.uuid4().hex,
            "tenant_id": "bench",
            "prompt": name,
            **targets[name, number],
            "base_model": fm.model_id,
            "inputs": [{fields[name][0]: row} if isinstance(row, str) else row],
            "enqueued_at": now,
            "deadline": now + 3600,
        }
        if with_shadow:
            body["shadow"] = targets[name, 3]
        return Pending(body)  # type: ignore[arg-type]

    def drawn(name: str, row, split: list[int], with_shadow: bool) -> Pending:
        number = rng.choices([1, 2], weights=split)[0] if split else 1
        return request(name, number, with_shadow, row)

    # Load every version once: loading is not what is measured.
    batcher.process([request(name, n, False) for name in names for n in (1, 2, 3)])
    samples: dict[str, list[tuple[int, int, float, float]]] = {mode: [] for mode in modes}
    for _ in range(rounds):
        # Every mode's batch is drawn from the same prompts and rows this round (paired: what the rows
        # are moves a batch's time more than anything measured here).
        draw = [(name, rng.choice(rows[name])) for name in rng.choices(names, k=2 * config.max_batch_rows)]
        for mode, (split, with_shadow) in modes.items():
            backlog = [drawn(name, row, split, with_shadow) for name, row in draw]
            batch, _ = fair_pick(backlog, config.max_batch_rows)
            primary = sum(len(p.request["inputs"]) for p in batch)
            wall, cpu = time.perf_counter(), time.process_time()
            replies = batcher.process(batch)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert all(r["status"] == "ok" for r in replies), replies
            assert not with_shadow or all("shadow_outputs" in r for r in replies)
            samples[mode].append((primary, primary * (2 if with_shadow else 1), wall, cpu))
    # CPU seconds of this process (one torch thread: the forward runs in this thread) are the figure that
    # other jobs on a shared machine do not move; wall seconds are given beside them.
    out: dict = {"rounds": rounds, "max_batch_rows": config.max_batch_rows, "clock": "cpu"}
    base = sum(p for p, _, _, _ in samples["one_version"]) / sum(c for _, _, _, c in samples["one_version"])
    base_wall = sum(p for p, _, _, _ in samples["one_version"]) / sum(
        w for _, _, w, _ in samples["one_version"]
    )
    for mode, values in samples.items():
        cpu_s, wall_s = sum(c for *_, c in values), sum(w for _, _, w, _ in values)
        primary, model = sum(p for p, *_ in values) / cpu_s, sum(m for _, m, _, _ in values) / cpu_s
        primary_wall = sum(p for p, *_ in values) / wall_s
        out[mode] = {
            "primary_rows_s": round(primary, 2),
            "model_rows_s": round(model, 2),
            "ratio_primary": round(primary / base, 3),
            "ratio_model_rows": round(model / base, 3),
            "wall_primary_rows_s": round(primary_wall, 2),
            "wall_ratio_primary": round(primary_wall / base_wall, 3),
        }
        print(
            f"batcher {mode:12s}: primary {primary:.2f} rows/CPU-s ({primary / base:.2f}x), model rows "
            f"{model:.2f}/CPU-s ({model / base:.2f}x); wall: primary {primary_wall:.2f} rows/s "
            f"({primary_wall / base_wall:.2f}x)",
            flush=True,
        )
    return out


def _wait_ready(log: Path, proc: subprocess.Popen, marker: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise SystemExit(f"{log.name} exited:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    raise SystemExit(f"{log.name} not ready in {timeout}s")


def _start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def _fresh_database(url: str) -> None:
    """Drop and create the benchmark's own PostgreSQL database (never the tests' or the platform's)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of a minute or two")
    parser.add_argument("--clients", type=int, default=CLIENTS, help="concurrent closed-loop clients")
    parser.add_argument(
        "--torch-threads", type=int, default=TORCH_THREADS, help="the worker's SERVING_TORCH_THREADS"
    )
    parser.add_argument("--seconds", type=float, default=None, help="per load (default 15 quick, 60 full)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--row-set", choices=sorted(ROW_SETS), default="multi")
    parser.add_argument(
        "--split", default="", help="e.g. 50/50: measure a split between two versions (see the docstring)"
    )
    parser.add_argument("--shadow", action="store_true", help="with a third version as shadow")
    args = parser.parse_args()
    split_weights = [int(w) for w in args.split.split("/")] if args.split else []
    if split_weights and (len(split_weights) != 2 or sum(split_weights) != 100):
        parser.error("--split takes two weights that sum to 100, e.g. 50/50")
    seconds = args.seconds or (15 if args.quick else 60)
    warnings.filterwarnings("ignore")
    scratch = Path(tempfile.mkdtemp(prefix="softserve-bench-serving-"))
    env = {
        **os.environ,
        "SOFTSERVE_VAR_DIR": str(scratch),
        "DATABASE_URL": DATABASE_URL,
        "STORAGE_DIR": str(scratch / "storage"),
        "SERVING_REDIS_URL": REDIS_URL,
        "SERVING_MAX_BATCH_ROWS": str(args.clients),
        "SERVING_TORCH_THREADS": str(args.torch_threads),
        "SERVING_TIMEOUT_MS": "120000",
        # One tenant sends all the load here: the per-tenant fair shares are not what is measured.
        "SERVING_TENANT_MAX_CONCURRENT": str(args.clients + 4),
        "SERVING_TENANT_QUEUE_MAX": str(10 * args.clients),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    for name in ("S3_ENDPOINT_URL", "S3_USE_AWS", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    os.environ.update({k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"})
    os.environ["DJANGO_SETTINGS_MODULE"] = "softserve.settings"

    import django
    import redis
    import torch
    from django.core.management import call_command

    _fresh_database(DATABASE_URL)
    django.setup()
    redis.Redis.from_url(REDIS_URL).flushdb()
    call_command("migrate", verbosity=0)
    from common.task import TaskSpec
    from softserve.prompts.models import Alias, PromptVersion, TaskPrompt
    from softserve.tenancy.actions import create_tenant
    from softserve.tenancy.models import Quota
    from workers.engine.artifacts.artifact import PromptArtifact, artifact_bytes
    from workers.engine.base_model import DEFAULT_MODEL_ID, load_base_model
    from workers.engine.inference.predict import LoadedPrompt, predict_mixed
    from workers.engine.training.data import read_rows
    from workers.serving.config import ServingConfig
    from workers.serving.kv import with_cached_states
    from workers.storage import default_store, prompt_key

    fm = load_base_model()
    tasks = ROW_SETS[args.row_set]
    tenant, _, key = create_tenant("bench", "bench@example.com")
    Quota.objects.update_or_create(tenant=tenant, defaults={"requests_per_minute": 10**9})
    store, names, artifacts, rows = default_store(), [], {}, {}
    splitting = bool(split_weights) or args.shadow

    def add_version(prompt, spec, number: int, seed: int):
        """A ready version of random values (P=20) whose artifact is in the store."""
        generator = torch.Generator().manual_seed(seed)
        artifact = PromptArtifact(
            tensors={"prompt": torch.empty(20, fm.embed_dim).uniform_(-0.5, 0.5, generator=generator)},
            method="prompt",
            base_model=fm.model_id,
            fingerprint=fm.fingerprint,
            spec=spec,
        )
        data = artifact_bytes(artifact)
        artifact_key = prompt_key(str(tenant.pk), str(prompt.pk), number, "prompt.safetensors")
        store.put_bytes(artifact_key, data)
        version = PromptVersion.objects.create(
            tenant=tenant,
            prompt=prompt,
            number=number,
            method="prompt",
            status="ready",
            artifact_key=artifact_key,
            artifact_sha256=hashlib.sha256(data).hexdigest(),
        )
        return version, artifact

    for i in range(SPLIT_PROMPTS if splitting else max(PROMPT_COUNTS)):
        name = f"task{i:03d}"
        task = TASKS[tasks[i % len(tasks)]]
        spec = TaskSpec("classification", task.template, list(task.labels))
        prompt = TaskPrompt.objects.create(
            tenant=tenant,
            name=name,
            task_type="classification",
            template=task.template,
            labels=spec.labels,
            verbalizer=spec.verbalizer,
            base_model=DEFAULT_MODEL_ID,
        )
        version, artifact = add_version(prompt, spec, 1, i)
        Alias.objects.create(tenant=tenant, prompt=prompt, name="production", version=version)
        if splitting:  # the canary (v2) and the shadow (v3): other random values, the same task
            for number in (2, 3):
                add_version(prompt, spec, number, 1000 * number + i)
        names.append(name)
        artifacts[name] = artifact
        # A request's input: one dev row of its prompt's task (one text, or a pair's two fields).
        fields = spec.fields
        rows[name] = [
            row["text"] if fields == ["text"] else {field: row[field] for field in fields}
            for row in read_rows(dataset_path(task.name, "dev"))
        ]

    server_log, worker_log = scratch / "web.log", scratch / "worker.log"
    # The production web server (docker-compose's `web`); each waiting prediction holds a thread.
    gunicorn = [str(Path(sys.executable).with_name("gunicorn")), "softserve.wsgi", "--chdir", "platform"]
    server = _start(
        [*gunicorn, "--bind", f"127.0.0.1:{args.port}", "--workers", "2", "--threads", str(args.clients + 4)],
        env,
        server_log,
    )
    _wait_ready(server_log, server, "Booting worker")

    def run_loads(grouped: bool, counts: tuple[int, ...]) -> dict[int, dict]:
        worker_env = {**env, "SERVING_GROUP_BY_PROMPT": "1" if grouped else "0"}
        worker = _start([sys.executable, "-m", "workers.serving"], worker_env, worker_log)
        try:
            _wait_ready(worker_log, worker, "serving worker ready")
            # Warm the prompt cache (loading is not what is measured), many requests at once.
            warm = [threading.Thread(target=_post, args=(args.port, key, n, rows[n][0])) for n in names]
            for t in warm:
                t.start()
            for t in warm:
                t.join()
            out = {}
            for count in counts:
                out[count] = closed_loop(args.port, key, names[:count], rows, args.clients, seconds)
                label = "grouped" if grouped else "mixed"
                print(
                    f"{label:8s} prompts={count:3d} "
                    + " ".join(
                        f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in out[count].items()
                    ),
                    flush=True,
                )
            if not grouped:  # REST overhead: one client, one prompt, paired per request
                sample = [_post(args.port, key, names[0], r) for r in rows[names[0]][:OVERHEAD_SAMPLES]]
                sample = [(1000 * latency, timing) for status, latency, timing in sample if status == 200]
                out["rest_single_p50_ms"] = statistics.median(ms for ms, _ in sample)
                # Per request: what the client waited beyond the queue and the model time the platform
                # reports for that very request (Server-Timing), i.e. HTTP, Django, the database, Redis.
                out["overhead_p50_ms"] = statistics.median(
                    ms - t.get("queue", 0.0) - t.get("model", 0.0) for ms, t in sample
                )
                out["web_p50_ms"] = statistics.median(ms - t.get("pool", 0.0) for ms, t in sample)
                out["redis_and_reply_p50_ms"] = statistics.median(
                    t.get("pool", 0.0) - t.get("queue", 0.0) - t.get("model", 0.0) for _, t in sample
                )
                for part in ("queue", "model", "pool"):
                    out[f"{part}_p50_ms"] = statistics.median(t.get(part, 0.0) for _, t in sample)
            return out
        finally:
            _stop(worker)

    load_at_start = os.getloadavg()[0]
    print(
        f"load average at start: {load_at_start:.2f} (2 cores; other jobs share them); "
        f"{args.clients} clients, {seconds:.0f} s per load after {WARMUP_S:.0f} s warm-up, "
        f"worker torch threads {args.torch_threads}",
        flush=True,
    )
    if splitting:
        try:
            report = split_loads(args, env, seconds, key, names, rows, split_weights, worker_log)
        finally:
            _stop(server)
        torch.set_num_threads(args.torch_threads or torch.get_num_threads())  # as the worker runs
        report["batcher"] = batcher_split(
            fm,
            env,
            names,
            rows,
            split_weights,
            args.shadow,
            BATCH_ROUNDS_QUICK if args.quick else BATCH_ROUNDS,
        )
        report["load_average_at_start"] = round(load_at_start, 2)
        print(json.dumps(report))
        return
    try:
        mixed = run_loads(False, PROMPT_COUNTS)
        grouped = run_loads(True, (max(PROMPT_COUNTS),))
    finally:
        _stop(server)
    # The reference forward runs with the worker's thread count: with one per core on a busy box its
    # threads spin waiting on each other and it measured 1.2 s for a 0.1 s forward.
    torch.set_num_threads(args.torch_threads or torch.get_num_threads())
    prompt = with_cached_states(fm, LoadedPrompt.from_artifact(fm, artifacts[names[0]]))
    bare = []
    first_fields = artifacts[names[0]].spec.fields
    serving_precision = ServingConfig.from_env(env).precision  # as the worker scored them
    for row in rows[names[0]][:OVERHEAD_SAMPLES]:
        fields = {first_fields[0]: row} if isinstance(row, str) else row
        started = time.perf_counter()
        predict_mixed(fm, [(prompt, fields)], precision=serving_precision)
        bare.append(time.perf_counter() - started)
    bare_p50 = 1000 * statistics.median(bare)
    overhead = mixed["overhead_p50_ms"]
    parts = {
        "web": mixed["web_p50_ms"],
        "redis_and_reply": mixed["redis_and_reply_p50_ms"],
        "queue": mixed["queue_p50_ms"],
        "model": mixed["model_p50_ms"],
    }
    print(
        f"REST p50 {mixed['rest_single_p50_ms']:.1f} ms; overhead (latency - queue - model, paired) "
        f"p50 {overhead:.1f} ms; bare in-process forward p50 {bare_p50:.1f} ms (the benchmark process, "
        f"{torch.get_num_threads()} threads, for reference); by part (p50s): "
        + ", ".join(f"{name} {ms:.1f}" for name, ms in parts.items())
    )
    top = mixed[max(PROMPT_COUNTS)]
    for count in PROMPT_COUNTS:
        print(
            f"prompts={count:3d}: {mixed[count]['rps']:.1f} req/s, "
            f"{mixed[count]['rps'] / mixed[1]['rps']:.2f}x single"
        )
    print(f"grouped (PEFT-style) at {max(PROMPT_COUNTS)}: {grouped[max(PROMPT_COUNTS)]['rps']:.1f} req/s")
    print(
        json.dumps(
            {
                "row_set": args.row_set,
                "tasks": list(tasks),
                "rps": round(top["rps"], 2),
                "ratio_vs_single_prompt": round(top["rps"] / mixed[1]["rps"], 3),
                "ratio_vs_grouped": round(top["rps"] / grouped[max(PROMPT_COUNTS)]["rps"], 3),
                "p50_ms": round(top["p50_ms"], 1),
                "p99_ms": round(top["p99_ms"], 1),
                "overhead_p50_ms": round(overhead, 1),
                "rest_single_p50_ms": round(mixed["rest_single_p50_ms"], 1),
                "bare_forward_p50_ms": round(bare_p50, 1),
                "clients": args.clients,
                "seconds_per_load": seconds,
                "worker_torch_threads": args.torch_threads,
                "load_average_at_start": round(load_at_start, 2),
                "overhead_parts_ms": {name: round(ms, 1) for name, ms in parts.items()},
                "errors": top["errors"] + mixed[1]["errors"] + grouped[max(PROMPT_COUNTS)]["errors"],
            }
        )
    )


if __name__ == "__main__":
    main()
