"""Browser tests: Debian's Chromium through Playwright against the live server on PostgreSQL, one real
Celery worker on the tiny GPT-2 (shared by the module), S3 over HTTP, embedded serving in the server.

Nothing here skips: a missing Chromium, Redis or database fails the tests."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import boto3
import pytest
import redis
from django.test import override_settings

from tests.net import redis_db_url
from tests.workers.conftest import WORKER_COMMAND, Workers, test_database_url

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parent / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
BROKER_URL = redis_db_url(12)
assert WORKER_COMMAND  # the same worker command line as the workers' tests


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, s3_endpoint, tiny_model_dirs, tmp_path_factory):
    """Settings of the live server (this process) and one worker, on the test database, Redis db 12
    and a fresh bucket; tiny GPT-2 is an allowed base model; predictions run embedded, here."""
    broker = redis.Redis.from_url(BROKER_URL)
    broker.ping()  # fails loudly when Redis is down
    broker.flushdb()
    bucket = f"webui-{uuid.uuid4().hex[:10]}"
    creds = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    tiny = str(tiny_model_dirs["gpt2"])
    env_here = {
        **creds,
        "S3_ENDPOINT_URL": s3_endpoint,
        "S3_BUCKET": bucket,
        "DJANGO_ALLOW_ASYNC_UNSAFE": "true",
    }
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls in the tests are
    # still synchronous, so its async-context guard would refuse them.
    saved = {name: os.environ.get(name) for name in [*env_here, "SERVING_REDIS_URL", "REDIS_URL"]}
    os.environ.update(env_here)
    for name in ("SERVING_REDIS_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    from softserve.producer import celery_app
    from workers import storage
    from workers.serving import local

    storages = {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "file_overwrite": False,
                "default_acl": None,
                "access_key": "test",
                "secret_key": "test",
            },
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    overrides = override_settings(
        STORAGES=storages,
        CELERY_BROKER_URL=BROKER_URL,
        SERVING_REDIS_URL="",
        SOFTSERVE_BASE_MODELS=[tiny, "smollm2-135m-instruct"],
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    )
    overrides.enable()
    celery_app.cache_clear()
    storage.default_store.cache_clear()
    local.close_pools()
    logs = tmp_path_factory.mktemp("webui-worker")
    with django_db_blocker.unblock():
        database = test_database_url()
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "CELERY_BROKER_URL": BROKER_URL,
        "SOFTSERVE_VAR_DIR": str(logs / "var"),
        "SOFTSERVE_HEARTBEAT_S": "0.3",
        "SOFTSERVE_CHECKPOINT_EVERY": "50",
        # Tiny GPT-2 runs its first 50 steps (the first dev evaluation) in about a second: curve points
        # this often show that the loss is drawn between evaluations.
        "SOFTSERVE_CURVE_EVERY_S": "0.05",
        "HF_HUB_OFFLINE": "1",
    }
    (logs / "var").mkdir()
    pool = Workers(env, logs)
    pool.start()
    try:
        yield {"tiny": tiny, "workers": pool}
    finally:
        pool.stop_all()
        local.close_pools()
        overrides.disable()
        celery_app.cache_clear()
        storage.default_store.cache_clear()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        broker.flushdb()


@pytest.fixture(scope="module")
def chromium(stack):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, live_server):
    """A fresh browser context at 1280x800 that may reach the live server only (offline check)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, base_url=live_server.url)
    host = live_server.url.split("//", 1)[1]
    context.route(
        "**/*", lambda route: route.continue_() if f"//{host}/" in route.request.url else route.abort()
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # What the Content-Security-Policy refused (an inline script or style, eval) is a defect of the page:
    # Chromium reports each refusal on the console.
    page.on(
        "console",
        lambda msg: errors.append(f"CSP: {msg.text}") if "Content Security Policy" in msg.text else None,
    )
    page.on("dialog", lambda dialog: errors.append(f"dialog opened: {dialog.message}"))
    page.js_errors = errors
    yield page
    context.close()
    assert not errors, errors


def look(page, name: str) -> None:
    """axe-core on the page (no serious or critical violation), then a full-page screenshot."""
    # Evaluated through the DevTools protocol: a <script> tag added to the page would be refused by its
    # Content-Security-Policy (no inline scripts), as it should be.
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate("() => {" + AXE.read_text(encoding="utf-8") + "\n}")
    violations = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
             .filter(v => ['serious', 'critical'].includes(v.impact))
             .map(v => ({id: v.id, impact: v.impact, help: v.help,
                         nodes: v.nodes.slice(0, 3).map(n => n.target)}))"""
    )
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    assert violations == [], f"{name}: {violations}"


def sign_in(page, email: str, password: str) -> None:
    page.goto("/")
    assert page.url.endswith("/accounts/login/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/app/")
