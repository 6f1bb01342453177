"""The tuning workers' configuration: one frozen object read from the declarations in common/settings.py,
each with its default (see .env.example). Nothing else in the tuning workers reads the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from common import settings as decl
from common.contracts import JobPolicy, StorageLocation
from common.settings import read_settings, setting

ROOT = decl.ROOT


def sqlalchemy_url(url: str) -> str:
    """A Django-style DATABASE_URL in SQLAlchemy's spelling (psycopg 3 for PostgreSQL)."""
    for scheme in ("postgres://", "postgresql://", "pgsql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


@dataclass(frozen=True)
class WorkerConfig:
    # Where the embedded SQLite database, broker and storage folder live when nothing else is set.
    var_dir: str = setting(decl.VAR_DIR)
    # Django's DATABASE_URL (same default: SQLite under var_dir), in SQLAlchemy's spelling.
    database_url: str = setting(decl.DATABASE_URL)
    # Empty: Celery over SQLAlchemy on SQLite under var_dir (the embedded default).
    broker_url: str = setting(decl.BROKER_URL)
    # Worker processes per machine: one per GPU on the gpu queue; a few on default (its tasks wait on I/O).
    worker_processes: int = setting(decl.WORKER_PROCESSES)
    # On SIGTERM, running jobs get this long to reach a step boundary and checkpoint.
    soft_shutdown_s: float = setting(decl.SOFT_SHUTDOWN_S)
    # A running job writes its heartbeat and progress this often.
    heartbeat_s: float = setting(decl.HEARTBEAT_S)
    # A training job adds a loss and tokens/s point to its curve this often (and one at every dev evaluation).
    curve_every_s: float = setting(decl.CURVE_EVERY_S)
    # Training state goes to storage every this many steps.
    checkpoint_every: int = setting(decl.CHECKPOINT_EVERY)
    # The reconciler's period, and how long a queued job may wait unclaimed before its message is re-sent.
    reconcile_every_s: float = setting(decl.RECONCILE_EVERY_S)
    requeue_unclaimed_s: float = setting(decl.REQUEUE_UNCLAIMED_S)
    # Prediction inputs kept past their prompt's retention period are forgotten this often (Celery beat).
    expire_inputs_every_s: float = setting(decl.EXPIRE_INPUTS_EVERY_S)
    # /metrics, /healthz and /readyz of this worker on this port (0: not served), and how long /readyz
    # waits for each dependency (the web's SOFTSERVE_READY_TIMEOUT_S).
    worker_metrics_port: int = setting(decl.WORKER_METRICS_PORT)
    ready_timeout_s: float = setting(decl.READY_TIMEOUT_S)
    # Tests only (tests/reliability): a job whose seed equals this kills its own worker process at its
    # first step, the way a native crash would. -1 (the default): off.
    test_crash_seed: int = setting(decl.TEST_CRASH_SEED)
    # Webhooks (workers/webhooks.py): hosts and CIDR networks a delivery may reach although they are
    # private or loopback (comma-separated; empty: none), and whether plain http:// URLs are allowed.
    webhook_allow_private_hosts: str = setting(decl.WEBHOOK_ALLOW_PRIVATE_HOSTS)
    webhook_allow_http: bool = setting(decl.WEBHOOK_ALLOW_HTTP)
    # A delivery is tried at most this many times, the n-th retry after backoff_s·2^(n-1) (at most
    # backoff_max_s); a hook whose deliveries gave up this many times in a row is disabled.
    webhook_max_attempts: int = setting(decl.WEBHOOK_MAX_ATTEMPTS)
    webhook_disable_after: int = setting(decl.WEBHOOK_DISABLE_AFTER)
    webhook_backoff_s: float = setting(decl.WEBHOOK_BACKOFF_S)
    webhook_backoff_max_s: float = setting(decl.WEBHOOK_BACKOFF_MAX_S)
    # The sweep (Celery beat) sends deliveries that are due (retries, and sends lost after commit).
    webhook_sweep_every_s: float = setting(decl.WEBHOOK_SWEEP_EVERY_S)
    # Evaluation sets (workers/evalset.py): a ready version is scored through the serving pool, in requests
    # of serving_max_inputs rows, each given serving_timeout_ms; serving_mode as the platform's (empty:
    # redis when a serving Redis URL is set, else the embedded loop in this process).
    serving_mode: str = setting(decl.SERVING_MODE)
    serving_max_inputs: int = setting(decl.SERVING_MAX_INPUTS)
    serving_timeout_ms: int = setting(decl.SERVING_TIMEOUT_MS)
    # Train/serve parity: the largest gap (absolute accuracy, or exact match) between the serving pool's score
    # on the training job's dev rows and training's own dev score; more dev rows than parity_max_dev_rows
    # are not re-scored (the evaluation set's score is compared instead, and the evaluation says so).
    parity_tolerance: float = setting(decl.PARITY_TOLERANCE)
    parity_max_dev_rows: int = setting(decl.PARITY_MAX_DEV_ROWS)
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
        """`env`: the process environment when None. The database, broker and storage follow the rules
        the platform uses (common/settings.py, common/contracts.py), the URL in SQLAlchemy's spelling."""
        values: dict[str, object] = {
            "var_dir": str(decl.var_dir(env)),
            "database_url": sqlalchemy_url(decl.database_url(env)),
            "broker_url": decl.broker_url(env),
            "policy": JobPolicy.from_env(env),
            "storage": StorageLocation.from_env(env),
        }
        values.update(overrides)
        return read_settings(cls, env, **values)


@cache
def worker_config() -> WorkerConfig:
    """This process's configuration, read once."""
    return WorkerConfig.from_env()
