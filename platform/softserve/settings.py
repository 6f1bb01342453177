"""Django's settings: every value from the platform's one configuration object (softserve/config.py), which
reads the environment variables declared in common/settings.py (each with its default; see .env.example)."""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from common.settings import EMBEDDED_SECRET_KEY as EMBEDDED_SECRET_KEY
from softserve.clientaddr import parse_networks
from softserve.config import PlatformSettings
from softserve.storage import storages_setting
from workers.logs import logging_config

SETTINGS = PlatformSettings.from_env()
ROOT = Path(__file__).resolve().parents[2]
VAR = SETTINGS.var_dir
VAR.mkdir(parents=True, exist_ok=True)  # the embedded SQLite files and storage folder live here

DEBUG = SETTINGS.debug
# Production mode: HTTPS only (secure cookies, HSTS, redirect to https). The secret key is needed whatever
# this says: the embedded one (the default, for the tests in-process) is refused by the `softserve.E001`
# system check whenever DEBUG is off, so no server starts with a secret everyone knows. `make secrets`
# writes one into .env (`make run` reads it from there).
SECURE = SETTINGS.secure
SECRET_KEY = SETTINGS.secret_key  # empty (as in .env.example): unset, the embedded key
ALLOWED_HOSTS = list(SETTINGS.allowed_hosts)

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served locally: /api/docs/ works offline
    "django_htmx",
    "softserve.tenancy",
    "softserve.datasets",
    "softserve.prompts",
    "softserve.jobs",
    "softserve.serving",
    "softserve.ops",
    "softserve.webhooks",
    "webui",  # the team pages (/app/) and operator pages (/ops/); a top-level package beside platform/
]
MIGRATION_MODULES = {
    app: f"migrations.{app}"
    for app in ("tenancy", "datasets", "prompts", "jobs", "serving", "ops", "webhooks")
}

MIDDLEWARE = [
    # /healthz and /readyz first: no host check, session or authentication in front of a probe.
    "softserve.ops.middleware.ProbeMiddleware",
    # Then a request id on every answer, and outages (database, Redis, broker) as 503s with Retry-After.
    "softserve.api.middleware.OutageMiddleware",
    # That request id on every log line of the request, the access line and the request metrics.
    "softserve.ops.middleware.RequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from the web process (gunicorn or runserver), compressed and cached.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Refuses an over-sized request (413, the API's error shape) before anything reads its body (CSRF's
    # check reads it in process_view, which runs after every middleware's __call__); after authentication,
    # so only a signed-in user's (or an API key's) dataset upload may be large.
    "softserve.api.middleware.RequestSizeLimit",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Content-Security-Policy on every answer (CONTENT_SECURITY_POLICY below; softserve/csp.py).
    "softserve.csp.ContentSecurityPolicyMiddleware",
]
ROOT_URLCONF = "softserve.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "webui.context.team",
            ]
        },
    }
]
WSGI_APPLICATION = "softserve.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        SETTINGS.database_url,
        conn_max_age=SETTINGS.database_conn_max_age_s,
        # A persistent connection is checked before a request reuses it, so a restarted database costs
        # the requests made while it was down (503s), not every request of a stale connection afterwards.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A database host that does not answer fails the request in this long instead of hanging its thread.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = SETTINGS.database_connect_timeout_s
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Concurrent writers (usage counts under prediction load) queue for SQLite's lock instead of failing
    # with "database is locked" when a read transaction tries to upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 30})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Every Redis client of the web process (the cache, Celery's producer) gives up after these many seconds
# on connecting and on each reply: a Redis that accepts connections but never answers costs a request
# this long, never a web thread for good.
REDIS_CONNECT_TIMEOUT_S = SETTINGS.redis_connect_timeout_s
REDIS_SOCKET_TIMEOUT_S = SETTINGS.redis_socket_timeout_s
REDIS_CLIENT_OPTIONS = {
    "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_S,
    "socket_timeout": REDIS_SOCKET_TIMEOUT_S,
    "health_check_interval": 30,
}
# Rate-limit counters: Redis when REDIS_URL is set (shared by all web processes), else in-process.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": SETTINGS.redis_url,
        "OPTIONS": REDIS_CLIENT_OPTIONS,
    }
    if SETTINGS.redis_url
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
# When the rate-limit cache is down: 1 lets requests through unthrottled (a warning and the counter
# softserve_rate_limit_unavailable_total), 0 answers 503. Open by default: the limit guards capacity that
# has bounds of its own (SERVING_QUEUE_MAX, job quotas in the database), and a cache outage should not
# take the whole API down with it.
RATE_LIMIT_FAIL_OPEN = SETTINGS.rate_limit_fail_open
# A 503 for an outage (database, Redis, broker) tells the client to retry after this many seconds.
OUTAGE_RETRY_AFTER_S = SETTINGS.outage_retry_after_s
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
# `collectstatic` (the image build) writes here; until then WhiteNoise serves the apps' static folders.
STATIC_ROOT = SETTINGS.static_root
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/app/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
STORAGES = storages_setting(SETTINGS.storage)
# Every bound on tenant input (request and upload bytes, dataset rows and lines, labels, verbalizers,
# templates, page sizes): softserve/limits.py, each from its own environment variable.
LIMITS = SETTINGS.limits
# Uploads above this many bytes stream to a temporary file instead of memory, in a folder of their own
# (not /tmp): only dataset uploads may be that large, at most UPLOAD_MAX_CONCURRENT at once per process.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 2**20
FILE_UPLOAD_TEMP_DIR = SETTINGS.upload_spool_dir
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
# A non-file body is read into memory: Django refuses one over this (the middleware answers first).
DATA_UPLOAD_MAX_MEMORY_SIZE = LIMITS.body_max_bytes

# --- accounts and transport security ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The proxies in front of the web (CIDRs or addresses, comma-separated): when the peer is one of them,
# the client's address is read from X-Forwarded-For, right to left through these hops only
# (softserve/clientaddr.py). Empty: the peer is the client, and X-Forwarded-For is never read.
TRUSTED_PROXIES = parse_networks(SETTINGS.trusted_proxies)
# The sign-in throttle (softserve/tenancy/accounts.py), counted in the cache (Redis when REDIS_URL is
# set): per account, this many failures are free, then each attempt waits a delay that starts at
# LOGIN_ACCOUNT_DELAY_S and doubles per failure up to LOGIN_ACCOUNT_MAX_DELAY_S (429 with Retry-After);
# per client address, this many failures (any accounts) refuse the address for the window; a browser
# that signed in to the account before skips both, with a delay of its own, for LOGIN_DEVICE_DAYS.
LOGIN_ACCOUNT_FREE_FAILURES = SETTINGS.login_account_free_failures
LOGIN_ACCOUNT_DELAY_S = SETTINGS.login_account_delay_s
LOGIN_ACCOUNT_MAX_DELAY_S = SETTINGS.login_account_max_delay_s
LOGIN_ADDRESS_MAX_FAILURES = SETTINGS.login_address_max_failures
# Failures are counted for this many seconds from the first one.
LOGIN_WINDOW_S = SETTINGS.login_window_s
LOGIN_DEVICE_DAYS = SETTINGS.login_device_days
X_FRAME_OPTIONS = "DENY"
# Scripts, styles, images and fetches from this origin only; no inline script or style attribute, no eval,
# no plugins, no framing, forms post here only. Empty: no header. (softserve/csp.py adds the hashes of
# the three fixed <style> blocks: the 500 and 503 pages and the Swagger page.)
CONTENT_SECURITY_POLICY = SETTINGS.content_security_policy
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE
# Probes and scrapes reach the pods over plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = SETTINGS.hsts_seconds if SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (the only way Django learns it was https).
if SETTINGS.behind_proxy:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "softserve.tenancy.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["softserve.tenancy.permissions.TenantPermission"],
    # Runs after the permission check, which resolves the caller's tenant.
    "DEFAULT_THROTTLE_CLASSES": ["softserve.tenancy.throttling.TenantRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "softserve.api.errors.exception_handler",
    # JSON bodies only (the dataset upload takes multipart itself): form encodings would treat an empty
    # field as an omitted one, so `role=` would quietly mean "the default role".
    "DEFAULT_PARSER_CLASSES": ["softserve.api.parsers.StrictJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PAGINATION_CLASS": "softserve.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": LIMITS.page_default,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Softserve API",
    "DESCRIPTION": "Soft prompts on one frozen model: datasets, prompts, jobs, predictions.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The error shape and statuses on every operation (softserve/api/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "softserve.api.schema.add_error_responses",
    ],
    # Two models have a `status` field with different choices: each enum gets its own name.
    "ENUM_NAME_OVERRIDES": {"InvitationStatusEnum": "softserve.tenancy.models.InvitationStatus"},
    # Swagger UI from the drf-spectacular-sidecar package, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# GPU jobs' time budget, attempt cap and heartbeat timeout (SOFTSERVE_JOB_*; shared with the workers).
SOFTSERVE_JOB_POLICY = SETTINGS.job_policy

# Celery, as a producer only: the embedded default needs no broker service.
CELERY_BROKER_URL = SETTINGS.broker_url

# The base models a tenant may train against; the first is the default.
SOFTSERVE_BASE_MODELS = list(SETTINGS.base_models)

# Aliases created protected (comma-separated): only owners and admins move, split, shadow or delete them.
PROTECTED_ALIASES = list(SETTINGS.protected_aliases)

# Serving (predictions). Redis: the base model's request stream, read by `python -m workers.serving`
# workers; empty (and no REDIS_URL): the batching loop runs inside this web process (embedded default).
SERVING_REDIS_URL = SETTINGS.serving_redis_url
# "redis": requests go to the model's Redis stream (SERVING_REDIS_URL) for `python -m workers.serving`;
# "embedded": the batching loop runs in this web process and loads the model here (one per process).
# Empty: redis when a serving Redis URL is set, else embedded (common/contracts.py's ServingMode). A system
# check warns when embedded serving would load a model in each of several gunicorn processes.
SERVING_MODE = SETTINGS.serving_mode
# Gunicorn's processes (deploy/gunicorn.conf.py reads the same variable); None outside gunicorn's setup.
WEB_CONCURRENCY = SETTINGS.web_concurrency
# Default and longest deadline of a request; requests queued or in flight per model before a 503.
SERVING_TIMEOUT_MS = SETTINGS.serving_timeout_ms
SERVING_QUEUE_MAX = SETTINGS.serving_queue_max
# Fair shares: requests one tenant may have queued or in flight per base model (above it: 429), and
# predictions one tenant may have waiting in this web process's threads at once (above it: 429).
SERVING_TENANT_QUEUE_MAX = SETTINGS.serving_tenant_queue_max
SERVING_TENANT_MAX_CONCURRENT = SETTINGS.serving_tenant_max_concurrent
# Seconds a Redis call of the predict path may take to connect or answer before the request gets a 503.
SERVING_REDIS_TIMEOUT_S = SETTINGS.serving_redis_timeout_s
# Inputs per request, and characters per input (all its fields together).
SERVING_MAX_INPUTS = SETTINGS.serving_max_inputs
SERVING_MAX_INPUT_CHARS = SETTINGS.serving_max_input_chars
# The serving workers' generation limit (the same variable they read): the most a request may ask for.
SERVING_MAX_NEW_TOKENS = SETTINGS.serving_max_new_tokens
# The most rows a prompt's pinned evaluation set may have: every new version is scored on all of them
# through the serving pool (the workers' SOFTSERVE_PARITY_TOLERANCE says when a gap fails parity).
EVAL_SET_MAX_ROWS = SETTINGS.eval_set_max_rows

# One JSON object per log line (SOFTSERVE_LOG_FORMAT, SOFTSERVE_LOG_LEVEL), the workers' format too.
LOGGING = logging_config()
# /ops/ reads serving request rates, latencies and cache hit rates from this Prometheus (empty: not shown).
PROMETHEUS_URL = SETTINGS.prometheus_url
# The web's /metrics answers only `Authorization: Bearer <this>` (Prometheus' scrape config sends it); the
# series name teams' prompts. Empty: the web port serves no metrics (404).
METRICS_TOKEN = SETTINGS.metrics_token
# Operations. /readyz: each dependency (database, broker, storage) must answer within this many seconds.
SOFTSERVE_READY_TIMEOUT_S = SETTINGS.ready_timeout_s
# Where objects live (common/contracts.py's StorageLocation, the rule the jobs use too); /readyz checks it.
SOFTSERVE_STORAGE = SETTINGS.storage

# Webhooks (softserve/webhooks; sent by the workers, which read the same variables in workers/config.py).
# Hosts and CIDR networks a hook may reach although they are private, loopback or link-local
# (comma-separated, e.g. "127.0.0.1" in tests; empty: none: no SSRF into the cluster), and whether plain
# http:// URLs are allowed (otherwise https only). Hooks per team.
WEBHOOK_ALLOW_PRIVATE_HOSTS = SETTINGS.webhook_allow_private_hosts
WEBHOOK_ALLOW_HTTP = SETTINGS.webhook_allow_http
WEBHOOKS_MAX_PER_TEAM = SETTINGS.webhooks_max_per_team
