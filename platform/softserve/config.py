"""The platform's configuration: one frozen object read once from the declarations in common/settings.py.

settings.py exposes its values under Django's names (Django wants module-level constants); nothing else in
the platform reads the environment. Values both sides read (the database, broker, storage, serving, job
policy and webhook settings) are the same declarations the workers' WorkerConfig and ServingConfig use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common import settings as decl
from common.contracts import JobPolicy, StorageLocation
from common.settings import read_settings, setting
from softserve.limits import Limits


@dataclass(frozen=True)
class PlatformSettings:
    debug: bool = setting(decl.DEBUG)
    secure: bool = setting(decl.SECURE)
    secret_key: str = setting(decl.SECRET_KEY)
    allowed_hosts: tuple[str, ...] = setting(decl.ALLOWED_HOSTS)
    database_conn_max_age_s: int = setting(decl.DATABASE_CONN_MAX_AGE_S)
    database_connect_timeout_s: int = setting(decl.DATABASE_CONNECT_TIMEOUT_S)
    redis_url: str = setting(decl.REDIS_URL)
    redis_connect_timeout_s: float = setting(decl.REDIS_CONNECT_TIMEOUT_S)
    redis_socket_timeout_s: float = setting(decl.REDIS_SOCKET_TIMEOUT_S)
    rate_limit_fail_open: bool = setting(decl.RATE_LIMIT_FAIL_OPEN)
    outage_retry_after_s: int = setting(decl.OUTAGE_RETRY_AFTER_S)
    trusted_proxies: str = setting(decl.TRUSTED_PROXIES)
    login_account_free_failures: int = setting(decl.LOGIN_ACCOUNT_FREE_FAILURES)
    login_account_delay_s: float = setting(decl.LOGIN_ACCOUNT_DELAY_S)
    login_account_max_delay_s: float = setting(decl.LOGIN_ACCOUNT_MAX_DELAY_S)
    login_address_max_failures: int = setting(decl.LOGIN_ADDRESS_MAX_FAILURES)
    login_window_s: int = setting(decl.LOGIN_WINDOW_S)
    login_device_days: int = setting(decl.LOGIN_DEVICE_DAYS)
    content_security_policy: str = setting(decl.CONTENT_SECURITY_POLICY)
    hsts_seconds: int = setting(decl.HSTS_SECONDS)
    behind_proxy: bool = setting(decl.BEHIND_PROXY)
    base_models: tuple[str, ...] = setting(decl.BASE_MODELS)
    protected_aliases: tuple[str, ...] = setting(decl.PROTECTED_ALIASES)
    serving_mode: str = setting(decl.SERVING_MODE)
    web_concurrency: int | None = setting(decl.WEB_CONCURRENCY)
    serving_timeout_ms: int = setting(decl.SERVING_TIMEOUT_MS)
    serving_queue_max: int = setting(decl.SERVING_QUEUE_MAX)
    serving_tenant_queue_max: int = setting(decl.SERVING_TENANT_QUEUE_MAX)
    serving_tenant_max_concurrent: int = setting(decl.SERVING_TENANT_MAX_CONCURRENT)
    serving_redis_timeout_s: float = setting(decl.SERVING_REDIS_TIMEOUT_S)
    serving_max_inputs: int = setting(decl.SERVING_MAX_INPUTS)
    serving_max_input_chars: int = setting(decl.SERVING_MAX_INPUT_CHARS)
    serving_max_new_tokens: int = setting(decl.SERVING_MAX_NEW_TOKENS)
    eval_set_max_rows: int = setting(decl.EVAL_SET_MAX_ROWS)
    prometheus_url: str = setting(decl.PROMETHEUS_URL)
    metrics_token: str = setting(decl.METRICS_TOKEN)
    ready_timeout_s: float = setting(decl.READY_TIMEOUT_S)
    webhook_allow_private_hosts: str = setting(decl.WEBHOOK_ALLOW_PRIVATE_HOSTS)
    webhook_allow_http: bool = setting(decl.WEBHOOK_ALLOW_HTTP)
    webhooks_max_per_team: int = setting(decl.WEBHOOKS_MAX_PER_TEAM)
    # Derived from several variables, each by its one rule (common/settings.py, common/contracts.py).
    var_dir: Path = field(default_factory=decl.var_dir)
    database_url: str = ""
    broker_url: str = ""
    serving_redis_url: str = ""
    static_root: Path = Path()
    upload_spool_dir: str = ""
    storage: StorageLocation = field(default_factory=StorageLocation.from_env)
    job_policy: JobPolicy = field(default_factory=JobPolicy)
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PlatformSettings:
        """The web process's settings (`env`: the process environment when None)."""
        var_dir = decl.var_dir(env)
        return read_settings(
            cls,
            env,
            var_dir=var_dir,
            database_url=decl.database_url(env),
            broker_url=decl.broker_url(env),
            serving_redis_url=decl.serving_redis_url(env),
            static_root=Path(decl.STATIC_ROOT.read(env) or var_dir / "static"),
            upload_spool_dir=decl.UPLOAD_SPOOL_DIR.read(env) or str(var_dir / "uploads"),
            storage=StorageLocation.from_env(env),
            job_policy=JobPolicy.from_env(env),
            limits=Limits.from_env(env),
        )
