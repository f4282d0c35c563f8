# Development tasks. Needs only python3 (3.11+) and access to PyPI; `make test` also installs
# redis-server and PostgreSQL with apt when the machine lacks them (see `services`).

PYTHON ?= python3
VENV = .venv
PY = $(VENV)/bin/python
RUFF = $(VENV)/bin/ruff
MYPY = $(VENV)/bin/mypy
STAMP = $(VENV)/.installed
PYTEST_ARGS ?=

# Django's own checks on the example project: system checks, and models that agree with
# their migrations. PostgreSQL 16 (pgserver), PostgreSQL 15 and Redis are found or started by
# tests/services.py the first time a collected test needs them (pytest tests/core needs none).
TEST_PREP = $(PY) manage.py check --fail-level WARNING && \
	$(PY) manage.py makemigrations --check --dry-run

.PHONY: venv lint format docs services test test-matrix dist bench bench-cache bench-peers demo screenshots clean

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch for the `local` extra (sentence-transformers) goes in first, pinned: the extras then find
# it satisfied (they ask for torch>=2.2), whereas left to itself pip would take the newest torch,
# on Linux a CUDA build of several GB. pip takes torch 2.13.0 from a wheel in a folder of its
# find-links when one is there: TORCH_WHEELS, added when it exists, holds a CPU build (~190 MB)
# on this project's machines. On a machine without that file pip downloads torch 2.13.0 from
# PyPI instead (on Linux x86_64 the CUDA build and its nvidia-* wheels, several GB; it runs on the
# CPU all the same). To avoid that, install a CPU build of torch 2.13.0 into .venv first (PyTorch
# publishes them on its own index): this step then finds it and installs nothing.
TORCH ?= torch==2.13.0
TORCH_WHEELS ?= /opt/wheels

# Reinstall only when pyproject.toml changes, so repeated `make test` starts at once.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(if $(wildcard $(TORCH_WHEELS)),--find-links $(TORCH_WHEELS)) '$(TORCH)'
	$(PY) -m pip install -e '.[all,dev]'
	touch $@

# mypy reads its configuration (warlock_ai/, strict on warlock_ai.core) from pyproject.toml.
lint: venv
	$(RUFF) check .
	$(RUFF) format --check .
	$(MYPY)

format: venv
	$(RUFF) format .
	$(RUFF) check --fix .

# What tests/services.py needs to start its private servers and that the machine lacks:
# redis-server, and PostgreSQL (Debian 12's `postgresql` is 15, without pgvector) when nothing
# answers on 127.0.0.1:5432 / WARLOCK_TEST_PG15_URL. apt-get as root, else through sudo.
services: venv
	@pkgs="$$($(PY) tests/services.py apt-packages)" || exit 1; \
	[ -z "$$pkgs" ] && exit 0; \
	if ! command -v apt-get >/dev/null 2>&1; then sudo=none; \
	elif [ "$$(id -u)" = 0 ]; then sudo=; \
	elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	else sudo=none; fi; \
	if [ "$$sudo" = none ]; then \
		echo "make test needs these packages, not installed: $$pkgs; run \`apt-get install $$pkgs\` as root (or your system's equivalent)" >&2; \
		exit 1; \
	fi; \
	echo "Installing $$pkgs for the tests"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$pkgs

# The docs site, API reference included (mkdocstrings), into site/: a broken link, a missing
# page or an API reference that cannot be generated fails the build.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

test: venv lint docs services
	$(TEST_PREP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The suite again on Django 6.1 with Python 3.12 and 3.13 (noxfile.py: what each session runs
# and leaves out); the interpreters come from PATH or pyenv. NOX_ARGS to pass nox options.
test-matrix: venv services
	$(VENV)/bin/nox -f noxfile.py $(NOX_ARGS)

# The sdist and the wheel a user installs (templates, static files, migrations, py.typed), in
# dist/, checked by twine; tests/packaging builds them again and runs the demo from the wheel.
dist: venv
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

# The admin screenshots in docs/img come from the browser tests (tests/e2e); regenerate them
# after changing an admin page.
screenshots: venv services
	WARLOCK_SCREENSHOT_DIR=docs/img $(PY) -m pytest tests/e2e -q

bench: venv
	$(PY) bench/step_overhead.py

# Semantic-cache lookup at 100,000 x 384 entries on PostgreSQL 16 + pgvector (a pgserver of its
# own): exact numpy search, pgvector's defaults and the ORM driver, side by side; about 5
# minutes on 2 cores, most of it building the two HNSW indexes. BENCH_ARGS to change it.
bench-cache: venv
	$(PY) bench/semantic_cache.py $(BENCH_ARGS)

# Per-step cost of warlock_ai (execute, aexecute), DBOS and LangGraph's PostgresSaver on one
# PostgreSQL 16 (a pgserver of its own), next to a raw psycopg upsert, with states of 1 KB to
# 10 MiB; DBOS and LangGraph are pip-installed, pinned, into .bench/peers-venv the first time.
# About 4 minutes on 2 cores. BENCH_ARGS to change it (--rounds, --runs, --sizes, --only).
bench-peers: venv
	$(PY) bench/peers/run.py $(BENCH_ARGS)

# The catalog import (a workflow killed mid-step, resumed, then migrated after a deploy), the
# support-ticket triage (a supervisor killed mid-iteration, resumed without paying twice), then
# the support chat (an orchestrator session whose turn is killed mid-way and resumed).
demo: venv
	$(PY) -m example_project.demo
	$(PY) -m example_project.support_demo
	$(PY) -m example_project.chat_demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build dist site .bench *.egg-info
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
