"""Settings from environment variables only; every one has an embedded default (see .env.example)."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from softserve.storage import storages_setting

ROOT = Path(__file__).resolve().parents[2]
VAR = Path(os.environ.get("SOFTSERVE_VAR_DIR", ROOT / "var"))
VAR.mkdir(parents=True, exist_ok=True)  # the embedded SQLite files and storage folder live here


def _bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).lower() in ("1", "true", "yes", "on")


DEBUG = _bool("DJANGO_DEBUG", False)
# The embedded default is for a laptop; production sets its own secret.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "softserve-embedded-default-not-for-production")
ALLOWED_HOSTS = [
    h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver").split(",") if h
]

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
    "webui",  # the team pages (/app/) and operator pages (/ops/); a top-level package beside platform/
]
MIGRATION_MODULES = {
    app: f"migrations.{app}" for app in ("tenancy", "datasets", "prompts", "jobs", "serving", "ops")
}

MIDDLEWARE = [
    # /healthz and /readyz first: no host check, session or authentication in front of a probe.
    "softserve.ops.middleware.ProbeMiddleware",
    "webui.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from the web process (gunicorn or runserver), compressed and cached.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR / 'softserve.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A database that does not answer fails a request (and /readyz) in seconds, not the OS's minutes.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Concurrent writers (usage counts under prediction load) queue for SQLite's lock instead of failing
    # with "database is locked" when a read transaction tries to upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 30})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Rate-limit counters: Redis when REDIS_URL is set (shared by all web processes), else in-process.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["REDIS_URL"]}
    if os.environ.get("REDIS_URL")
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
# `collectstatic` (the image build) writes here; until then WhiteNoise serves the apps' static folders.
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/app/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
STORAGES = storages_setting(VAR)
# Uploads above this many bytes stream to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 2**20
DATA_UPLOAD_MAX_MEMORY_SIZE = None

# Dataset limits (bytes, rows, characters per text, rows per label).
DATASET_MAX_BYTES = int(os.environ.get("DATASET_MAX_BYTES", 512 * 2**20))
DATASET_MAX_ROWS = int(os.environ.get("DATASET_MAX_ROWS", 2_000_000))
DATASET_MAX_TEXT_CHARS = int(os.environ.get("DATASET_MAX_TEXT_CHARS", 20_000))
DATASET_MIN_ROWS_PER_LABEL = int(os.environ.get("DATASET_MIN_ROWS_PER_LABEL", 2))

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
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Softserve API",
    "DESCRIPTION": "Soft prompts on one frozen model: datasets, prompts, jobs, predictions.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the drf-spectacular-sidecar package, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery, as a producer only: the embedded default needs no broker service.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", f"sqla+sqlite:///{VAR / 'celery.sqlite3'}")

# The base models a tenant may train against; the first is the default.
SOFTSERVE_BASE_MODELS = [
    m for m in os.environ.get("SOFTSERVE_BASE_MODELS", "smollm2-135m-instruct").split(",") if m
]

# Serving (predictions). Redis: the base model's request stream, read by `python -m workers.serving`
# workers; empty (and no REDIS_URL): the batching loop runs inside this web process (embedded default).
SERVING_REDIS_URL = os.environ.get("SERVING_REDIS_URL") or os.environ.get("REDIS_URL", "")
# Default and longest deadline of a request; requests queued or in flight per model before a 503.
SERVING_TIMEOUT_MS = int(os.environ.get("SERVING_TIMEOUT_MS", 30_000))
SERVING_QUEUE_MAX = int(os.environ.get("SERVING_QUEUE_MAX", 1000))
# Inputs per request, and characters per input (all its fields together).
SERVING_MAX_INPUTS = int(os.environ.get("SERVING_MAX_INPUTS", 64))
SERVING_MAX_INPUT_CHARS = int(os.environ.get("SERVING_MAX_INPUT_CHARS", 4000))
# The serving workers' generation limit (the same variable they read): the most a request may ask for.
SERVING_MAX_NEW_TOKENS = int(os.environ.get("SERVING_MAX_NEW_TOKENS", 32))

# Operations. /readyz: each dependency (database, broker, storage) must answer within this many seconds.
SOFTSERVE_READY_TIMEOUT_S = float(os.environ.get("SOFTSERVE_READY_TIMEOUT_S", 2))
