"""SERVING_MODE: explicit when set (embedded | redis), derived from the serving Redis URL otherwise, and a
Django check that warns when embedded serving would load the model in each of several gunicorn processes."""

from __future__ import annotations

from django.core.management import call_command

from common.contracts import ServingMode
from softserve.serving.apps import check_serving_mode
from softserve.serving.client import serving_mode


def _ids(settings) -> list[str]:
    return [message.id for message in check_serving_mode()]


def test_the_mode_is_explicit_when_set_and_derived_from_the_redis_url_otherwise(settings):
    settings.SERVING_MODE, settings.SERVING_REDIS_URL = "", ""
    assert serving_mode() == ServingMode.EMBEDDED
    settings.SERVING_REDIS_URL = "redis://127.0.0.1:1/0"
    assert serving_mode() == ServingMode.REDIS
    settings.SERVING_MODE = "embedded"  # a Redis for the rate-limit cache does not move serving there
    assert serving_mode() == ServingMode.EMBEDDED


def test_the_check_warns_about_embedded_serving_under_several_gunicorn_processes(settings, capsys):
    settings.SERVING_MODE, settings.SERVING_REDIS_URL, settings.WEB_CONCURRENCY = "embedded", "", 4
    assert _ids(settings) == ["serving.W001"]
    # The whole `check` runs every check: with DEBUG off (as in tests) it needs a key of its own.
    settings.SECRET_KEY = "a-key-of-its-own-" + "x" * 40
    call_command("check")
    assert "serving.W001" in capsys.readouterr().err
    settings.WEB_CONCURRENCY = 1
    assert _ids(settings) == []
    settings.SERVING_MODE = "redis"
    assert _ids(settings) == ["serving.E002"]  # redis mode without a Redis URL
    settings.SERVING_REDIS_URL = "redis://127.0.0.1:1/0"
    settings.WEB_CONCURRENCY = 4
    assert _ids(settings) == []
    settings.SERVING_MODE = "gpu"
    assert _ids(settings) == ["serving.E001"]
