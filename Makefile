# Development tasks. Needs only python3 (3.11+) and access to PyPI.

PYTHON ?= python3
VENV = .venv
PY = $(VENV)/bin/python
RUFF = $(VENV)/bin/ruff
STAMP = $(VENV)/.installed
PYTEST_ARGS ?=

# Django's own checks on the example project: system checks, and models that agree with
# their migrations. PostgreSQL (pgserver) and Redis are found or started by tests/services.py
# when the test settings load.
TEST_PREP = $(PY) manage.py check --fail-level WARNING && \
	$(PY) manage.py makemigrations --check --dry-run

.PHONY: venv lint format test bench demo clean

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changes, so repeated `make test` starts at once.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[all,dev]'
	touch $@

lint: venv
	$(RUFF) check .
	$(RUFF) format --check .

format: venv
	$(RUFF) format .
	$(RUFF) check --fix .

test: venv lint
	$(TEST_PREP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: venv
	$(PY) bench/step_overhead.py

demo: venv
	$(PY) -m example_project.demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist site .bench *.egg-info
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
