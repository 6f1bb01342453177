"""One configuration mechanism (issue 24): every environment variable is declared once in common/settings.py,
.env.example is generated from the declarations, and nothing else reads the environment."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from common import settings as decl
from common.contracts import JobPolicy, StorageLocation
from common.settings import SettingError
from tests.conftest import ROOT

# The one module that reads the process environment (the declarations), and what else may touch it: writes
# (os.environ.setdefault / os.environ[...] = ...) are not reads; Django's manage.py and wsgi.py set
# DJANGO_SETTINGS_MODULE that way, the engine's CLI sets HF_HUB_OFFLINE, the worker its metrics folder.
DECLARATIONS = {"common/settings.py"}
TREES = ("platform", "workers", "webui", "common")


def _env_reads(tree: ast.AST) -> list[int]:
    """Lines that read os.environ / os.getenv (or `from os import environ/getenv`), writes aside."""
    allowed: set[int] = set()
    for node in ast.walk(tree):
        # os.environ.setdefault(...) and os.environ[...] = ... write; everything else on os.environ reads.
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "setdefault"
        ):
            allowed.add(id(node.func.value))
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            allowed.add(id(node.value))
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(a.name in ("environ", "getenv", "environb", "getenvb") for a in node.names)
        ):
            lines.append(node.lineno)
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in ("environ", "getenv", "environb", "getenvb")
            and id(node) not in allowed
        ):
            lines.append(node.lineno)
    return lines


def test_nothing_outside_the_declarations_reads_the_environment():
    found = []
    for top in TREES:
        for path in sorted((ROOT / top).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in DECLARATIONS or "/migrations/" in name:
                continue
            found += [f"{name}:{line}" for line in _env_reads(ast.parse(path.read_text(), name))]
    assert not found, "environment read outside common/settings.py (declare a Var there):\n" + "\n".join(
        found
    )


def test_the_walker_sees_a_read_and_lets_a_write_pass():
    source = (
        "import os\nfrom os import getenv\na = os.environ.get('X')\nb = os.getenv('Y')\nc = {**os.environ}\n"
        "os.environ.setdefault('Z', '1')\nos.environ['W'] = '2'\n"
    )
    assert sorted(set(_env_reads(ast.parse(source)))) == [2, 3, 4, 5]


def test_the_checked_in_env_example_is_what_the_declarations_generate():
    generated = subprocess.run(
        [sys.executable, "-m", "common.settings", "--env-example"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (ROOT / ".env.example").read_text() == generated, (
        ".env.example differs from common/settings.py's declarations: run `make env-example`"
    )


def test_each_variable_is_declared_once_with_documentation():
    names = [v.name for v in decl.declared()]
    assert len(names) == len(set(names))
    assert all(v.doc.strip() for v in decl.declared())
    example = (ROOT / ".env.example").read_text()
    for name in names:
        assert f"\n{name}=" in example or f"\n# {name}=" in example, name


def test_a_bad_value_names_the_variable_and_what_was_expected():
    with pytest.raises(SettingError, match=r"SOFTSERVE_JOB_MAX_ATTEMPTS must be a whole number, got 'many'"):
        JobPolicy.from_env({"SOFTSERVE_JOB_MAX_ATTEMPTS": "many"})
    with pytest.raises(SettingError, match=r"DATASET_MAX_ROWS must be a positive whole number, got '0'"):
        decl.DATASET_MAX_ROWS.read({"DATASET_MAX_ROWS": "0"})
    with pytest.raises(SettingError, match=r"SOFTSERVE_READY_TIMEOUT_S must be a number, got 'soon'"):
        decl.READY_TIMEOUT_S.read({"SOFTSERVE_READY_TIMEOUT_S": "soon"})


def test_empty_means_the_default_unless_empty_is_a_value():
    assert decl.READY_TIMEOUT_S.read({"SOFTSERVE_READY_TIMEOUT_S": ""}) == 2.0
    assert decl.CONTENT_SECURITY_POLICY.read({"CONTENT_SECURITY_POLICY": ""}) == ""  # empty: no header
    assert decl.PROTECTED_ALIASES.read({"PROTECTED_ALIASES": ""}) == ()
    assert decl.PROTECTED_ALIASES.read({}) == ("production",)


def test_both_sides_take_shared_values_from_one_declaration(tmp_path: Path):
    """The web's settings and the workers' configuration agree on every variable both read."""
    from softserve.config import PlatformSettings
    from workers.config import WorkerConfig, sqlalchemy_url
    from workers.serving.config import ServingConfig

    env = {
        "SOFTSERVE_VAR_DIR": str(tmp_path),
        "SOFTSERVE_READY_TIMEOUT_S": "3.5",
        "SOFTSERVE_JOB_MAX_ATTEMPTS": "7",
        "SERVING_MAX_INPUTS": "9",
        "SERVING_TIMEOUT_MS": "1234",
        "SERVING_QUEUE_MAX": "77",
        "SERVING_MAX_NEW_TOKENS": "5",
        "WEBHOOK_ALLOW_HTTP": "1",
        "REDIS_URL": "redis://example:6379/2",
    }
    web, worker, serving = (
        PlatformSettings.from_env(env),
        WorkerConfig.from_env(env),
        ServingConfig.from_env(env),
    )
    assert web.var_dir == Path(worker.var_dir) == tmp_path
    assert sqlalchemy_url(web.database_url) == worker.database_url
    assert web.broker_url == worker.broker_url
    assert (
        web.storage
        == worker.storage
        == StorageLocation.from_env(env)
        == StorageLocation(str(tmp_path / "storage"))
    )
    assert web.ready_timeout_s == worker.ready_timeout_s == 3.5
    assert web.job_policy == worker.policy and worker.policy.job_max_attempts == 7
    assert web.serving_max_inputs == worker.serving_max_inputs == 9
    assert web.serving_timeout_ms == worker.serving_timeout_ms == 1234
    assert web.serving_queue_max == serving.queue_max == 77
    assert web.serving_max_new_tokens == serving.max_new_tokens == 5
    assert web.webhook_allow_http is worker.webhook_allow_http is True
    assert web.serving_redis_url == serving.redis_url == "redis://example:6379/2"
    assert web.base_models[0] == serving.base_model == decl.DEFAULT_MODEL_ID


def test_readyz_checks_the_storage_the_platform_and_the_jobs_use():
    from django.conf import settings

    from softserve.ops import health
    from workers.config import worker_config

    assert health._configuration()[1] == settings.SOFTSERVE_STORAGE == worker_config().storage


def test_every_config_field_is_read_from_a_declaration():
    from softserve.config import PlatformSettings
    from softserve.limits import Limits
    from workers.config import WorkerConfig
    from workers.serving.config import ServingConfig

    derived = {
        "var_dir",
        "database_url",
        "broker_url",
        "serving_redis_url",
        "static_root",
        "upload_spool_dir",
    }
    derived |= {"storage", "job_policy", "policy", "limits", "base_model", "redis_url"}
    for cls in (PlatformSettings, WorkerConfig, ServingConfig, Limits, JobPolicy):
        bare = [f.name for f in fields(cls) if "var" not in f.metadata and f.name not in derived]
        assert not bare, f"{cls.__name__}: {bare} have no declaration"
