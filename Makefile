# Two commands matter: `make run` and `make test`. Everything else is for work on the template.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
UV_VERSION := 0.13.9
TOOLS := .tools
# uv from PATH when present; otherwise a private copy bootstrapped with pip.
UV ?= $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
PY := $(VENV)/bin/python
# `make bench`: a database of its own (created if missing) and a Redis db it may fill.
BENCH_DATABASE_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/groundwork_bench
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/15

export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: help install run dev test test-faults test-browser test-lb image-test lint fmt migrate revision bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --python $(PYTHON)
	@touch $@

install: $(VENV)/.installed ## create the environment from uv.lock

run: install ## migrate, create FIRST_ADMIN_EMAIL if set, serve on HOST:PORT
	$(PY) -m app migrate
	exec $(PY) -m app serve

# Development wins over .env here: console logs, reset mails printed, reload on change.
DEV_ENV := APP_ENV=development LOG_FORMAT=console MAIL_BACKEND=console

dev: install ## like run, restarting on every change under app/; console logs and mail
	$(DEV_ENV) $(PY) -m app migrate
	$(DEV_ENV) exec $(PY) -m app serve --reload

# Two pytest-xdist workers, each with its own database; one process with
# TEST_REDIS_URL, as every test flushes that one Redis database.
TEST_WORKERS ?= $(if $(TEST_REDIS_URL),0,2)

test: install ## the whole suite (SQLite; PostgreSQL/Redis with TEST_DATABASE_URL/TEST_REDIS_URL)
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

test-faults: install ## fault tests on real processes: private PostgreSQL and Redis, SIGTERM, the job worker
	$(PY) -m pytest -m faults $(PYTEST_ARGS)

test-browser: install ## /docs and /redoc in headless Chromium (apt-get install chromium)
	$(PY) -m pytest -m browser $(PYTEST_ARGS)

test-lb: install ## nginx, PgBouncer, two replicas (needs TEST_DATABASE_URL, TEST_REDIS_URL)
	$(PY) -m pytest -m lb $(PYTEST_ARGS)

# Where container-standins.sh is: beside the clone in CI.
CONTAINER_STANDINS ?= ../shared/tools/container-standins.sh

image-test: install ## build and run the image and compose stack with podman (root; docs/deploying.md)
	CONTAINER_STANDINS="$(CONTAINER_STANDINS)" PY="$(PY)" bash tests/image/run.sh $(PYTEST_ARGS)

lint: install ## ruff (lint and format check), mypy --strict, and the import layers of app/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: install ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

migrate: install ## apply migrations to DATABASE_URL
	$(PY) -m app migrate

revision: install ## new migration from the models: make revision m="add orders"
	@test -n "$(m)" || { echo 'usage: make revision m="what changes"'; exit 2; }
	$(VENV)/bin/alembic revision --autogenerate -m "$(m)"

bench: install ## the project against a bare app under wrk, on PostgreSQL + Redis (docs/benchmarks.md)
	$(PY) bench/compare.py --database-url "$(BENCH_DATABASE_URL)" --redis-url "$(BENCH_REDIS_URL)"

clean: ## remove environments, caches and the local database
	rm -rf $(VENV) .venv-* $(TOOLS) .data .pytest_cache .mypy_cache .ruff_cache
