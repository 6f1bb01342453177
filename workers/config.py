"""The tuning workers' configuration: one frozen object from environment variables, each with an embedded
default (see .env.example). Nothing else in the tuning workers reads the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path

from common.contracts import JobPolicy, StorageLocation

ROOT = Path(__file__).resolve().parents[1]

# field name → its environment variable, where that is not SOFTSERVE_<NAME>.
_NAMES = {
    "broker_url": "CELERY_BROKER_URL",
    "database_url": "DATABASE_URL",
    # Shared with the platform (settings.py), which checks the same rules when a hook is created.
    "webhook_allow_private_hosts": "WEBHOOK_ALLOW_PRIVATE_HOSTS",
    "webhook_allow_http": "WEBHOOK_ALLOW_HTTP",
    "webhook_max_attempts": "WEBHOOK_MAX_ATTEMPTS",
    "webhook_disable_after": "WEBHOOK_DISABLE_AFTER",
    "webhook_backoff_s": "WEBHOOK_BACKOFF_S",
    "webhook_backoff_max_s": "WEBHOOK_BACKOFF_MAX_S",
    "webhook_sweep_every_s": "WEBHOOK_SWEEP_EVERY_S",
    # The serving settings the platform reads too: an evaluation reaches the pool the way predictions do.
    "serving_mode": "SERVING_MODE",
    "serving_max_inputs": "SERVING_MAX_INPUTS",
    "serving_timeout_ms": "SERVING_TIMEOUT_MS",
}


def sqlalchemy_url(url: str) -> str:
    """A Django-style DATABASE_URL in SQLAlchemy's spelling (psycopg 3 for PostgreSQL)."""
    for scheme in ("postgres://", "postgresql://", "pgsql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


@dataclass(frozen=True)
class WorkerConfig:
    # Where the embedded SQLite database, broker and storage folder live when nothing else is set.
    var_dir: str = str(ROOT / "var")
    # Django's DATABASE_URL (same default: SQLite under var_dir), in SQLAlchemy's spelling.
    database_url: str = ""
    # Empty: Celery over SQLAlchemy on SQLite under var_dir (the embedded default).
    broker_url: str = ""
    # Worker processes per machine: one per GPU.
    worker_processes: int = 1
    # On SIGTERM, running jobs get this long to reach a step boundary and checkpoint.
    soft_shutdown_s: float = 60.0
    # A running job writes its heartbeat and progress this often.
    heartbeat_s: float = 5.0
    # A training job adds a loss and tokens/s point to its curve this often (and one at every dev evaluation).
    curve_every_s: float = 5.0
    # Training state goes to storage every this many steps.
    checkpoint_every: int = 50
    # The reconciler's period, and how long a queued job may wait unclaimed before its message is re-sent.
    reconcile_every_s: float = 30.0
    requeue_unclaimed_s: float = 600.0
    # Prediction inputs kept past their prompt's retention period are forgotten this often (Celery beat).
    expire_inputs_every_s: float = 3600.0
    # /metrics, /healthz and /readyz of this worker on this port (0: not served), and how long /readyz
    # waits for each dependency (the web's SOFTSERVE_READY_TIMEOUT_S).
    worker_metrics_port: int = 0
    ready_timeout_s: float = 2.0
    # Tests only (tests/reliability): a job whose seed equals this kills its own worker process at its
    # first step, the way a native crash would. -1 (the default): off.
    test_crash_seed: int = -1
    # Webhooks (workers/webhooks.py): hosts and CIDR networks a delivery may reach although they are
    # private or loopback (comma-separated; empty: none), and whether plain http:// URLs are allowed.
    webhook_allow_private_hosts: str = ""
    webhook_allow_http: bool = False
    # A delivery is tried at most this many times, the n-th retry after backoff_s·2^(n-1) (at most
    # backoff_max_s); a hook whose deliveries gave up this many times in a row is disabled.
    webhook_max_attempts: int = 8
    webhook_disable_after: int = 5
    webhook_backoff_s: float = 30.0
    webhook_backoff_max_s: float = 3600.0
    # The sweep (Celery beat) sends deliveries that are due (retries, and sends lost after commit).
    webhook_sweep_every_s: float = 30.0
    # Evaluation sets (workers/evalset.py): a ready version is scored through the serving pool, in requests
    # of serving_max_inputs rows, each given serving_timeout_ms; serving_mode as the platform's (empty:
    # redis when a serving Redis URL is set, else the embedded loop in this process).
    serving_mode: str = ""
    serving_max_inputs: int = 64
    serving_timeout_ms: int = 30_000
    # Train/serve parity: the largest gap (absolute accuracy, or exact match) between the serving pool's score
    # on the training job's dev rows and training's own dev score; more dev rows than parity_max_dev_rows
    # are not re-scored (the evaluation set's score is compared instead, and the evaluation says so).
    parity_tolerance: float = 0.02
    parity_max_dev_rows: int = 2000
    policy: JobPolicy = field(default_factory=JobPolicy)
    storage: StorageLocation = field(
        default_factory=lambda: StorageLocation(folder=str(ROOT / "var" / "storage"))
    )

    def __post_init__(self) -> None:
        if self.heartbeat_s <= 0 or self.heartbeat_s >= self.policy.heartbeat_timeout_s:
            raise ValueError("SOFTSERVE_HEARTBEAT_S must be > 0 and below SOFTSERVE_HEARTBEAT_TIMEOUT_S.")
        if self.curve_every_s <= 0:
            raise ValueError("SOFTSERVE_CURVE_EVERY_S must be > 0.")
        if self.checkpoint_every < 1 or self.worker_processes < 1:
            raise ValueError("SOFTSERVE_CHECKPOINT_EVERY and SOFTSERVE_WORKER_PROCESSES must be at least 1.")
        if self.webhook_max_attempts < 1 or self.webhook_disable_after < 1:
            raise ValueError("WEBHOOK_MAX_ATTEMPTS and WEBHOOK_DISABLE_AFTER must be at least 1.")
        if self.webhook_backoff_s <= 0 or self.webhook_sweep_every_s <= 0:
            raise ValueError("WEBHOOK_BACKOFF_S and WEBHOOK_SWEEP_EVERY_S must be > 0.")

    @property
    def heartbeat_timeout_s(self) -> float:
        return self.policy.heartbeat_timeout_s

    @property
    def message_visibility_s(self) -> int:
        """Redis re-delivers an unacknowledged job message after this: longer than any job may run."""
        return int(self.policy.job_max_minutes * 60 + 3600)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> WorkerConfig:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            if f.name in ("policy", "storage"):
                continue
            raw = env.get(_NAMES.get(f.name, f"SOFTSERVE_{f.name.upper()}"), "")
            if raw != "":
                values[f.name] = (
                    int(raw)
                    if f.type == "int"
                    else float(raw)
                    if f.type == "float"
                    else raw.strip().lower() in ("1", "true", "yes", "on")
                    if f.type == "bool"
                    else raw
                )
        var_dir = Path(str(values.get("var_dir", cls.var_dir)))
        values["var_dir"] = str(var_dir)
        values["database_url"] = sqlalchemy_url(
            str(values.get("database_url") or f"sqlite:///{var_dir / 'softserve.sqlite3'}")
        )
        values["broker_url"] = values.get("broker_url") or f"sqla+sqlite:///{var_dir / 'celery.sqlite3'}"
        values["policy"] = JobPolicy.from_env(env)
        values["storage"] = StorageLocation.from_env(env, str(var_dir / "storage"))
        values.update(overrides)
        return cls(**values)


@cache
def worker_config() -> WorkerConfig:
    """This process's configuration, read once."""
    return WorkerConfig.from_env()
