"""The layering contracts: the web side never loads torch; the engine never loads Django or Celery."""

import subprocess
import sys

from tests.conftest import ROOT

PLATFORM = """
import os, sys
sys.path[:0] = ["platform", "."]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "softserve.settings")
import django
django.setup()
from django.urls import get_resolver
get_resolver().url_patterns  # import every view
import softserve.producer, softserve.datasets.actions, softserve.jobs.actions, softserve.prompts.actions
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
print(loaded)
"""

ENGINE = """
import sys, pkgutil, importlib
import workers.engine
for module in pkgutil.walk_packages(workers.engine.__path__, "workers.engine."):
    if module.name.rsplit(".", 1)[-1] not in ("demo", "__main__"):
        importlib.import_module(module.name)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("django", "celery", "kombu", "rest_framework")))
"""


def _loaded(code: str, env_extra: dict | None = None) -> str:
    import os

    env = {**os.environ, "SOFTSERVE_VAR_DIR": "/tmp/softserve-boundaries", **(env_extra or {})}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def test_platform_never_imports_torch():
    assert _loaded(PLATFORM, {"DATABASE_URL": "sqlite:////tmp/softserve-boundaries.sqlite3"}) == "[]"


def test_engine_never_imports_django_or_celery():
    assert _loaded(ENGINE) == "[]"


SHARED = """
import sys, pkgutil, importlib
before = set(sys.modules)
import common
for module in pkgutil.iter_modules(common.__path__):
    importlib.import_module(f"common.{module.name}")
loaded = {m.split(".")[0] for m in set(sys.modules) - before}
print(sorted(loaded - set(sys.stdlib_module_names) - {"common"}))
"""


def test_the_shared_package_is_standard_library_only():
    """Both sides import `common` (the web side without torch, the engine without Django): it may import
    nothing but the standard library."""
    assert _loaded(SHARED) == "[]"
