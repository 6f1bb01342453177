"""The serving mode is explicit and checked: unknown modes and redis without a URL are errors; embedded
serving under several gunicorn processes is a warning."""

from __future__ import annotations

from django.core.checks import run_checks
from softserve.serving.client import serving_mode


def _ids() -> list[str]:
    return [m.id for m in run_checks() if m.id.startswith("softserve.")]


def test_the_mode_follows_the_url_unless_set(settings):
    settings.SERVING_MODE, settings.SERVING_REDIS_URL = "", ""
    assert serving_mode() == "embedded"
    settings.SERVING_REDIS_URL = "redis://127.0.0.1:1/0"
    assert serving_mode() == "redis"
    settings.SERVING_MODE = "embedded"
    assert serving_mode() == "embedded"  # explicit: the Redis URL is not used for serving


def test_embedded_serving_under_several_gunicorn_processes_is_a_warning(settings, monkeypatch):
    settings.SERVING_MODE, settings.SERVING_REDIS_URL = "embedded", ""
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    assert "softserve.W101" in _ids()
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    assert "softserve.W101" not in _ids()
    settings.SERVING_MODE, settings.SERVING_REDIS_URL = "redis", "redis://127.0.0.1:1/0"
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    assert "softserve.W101" not in _ids()


def test_bad_modes_are_errors(settings):
    settings.SERVING_MODE, settings.SERVING_REDIS_URL = "gpu", ""
    assert "softserve.E101" in _ids()
    settings.SERVING_MODE = "redis"
    assert "softserve.E102" in _ids()
