# The two commands of the README: `make demo` (the main job) and `make test`.
# Each creates .venv with python3 and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck unit bench bench-smoke e2e e2e-ui e2e-distributed clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check airflow_provider_mediapocket tests scripts example_dags bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict airflow_provider_mediapocket

unit: $(STAMP)
	$(VENV)/bin/pytest

test: lint typecheck unit

# A real deployment (api-server, scheduler, dag-processor, triggerer, LocalExecutor, SQLite) in a
# throwaway AIRFLOW_HOME runs mediapocket_ingest against the sandbox; deferred waits go through the
# real triggerer. About 1.5 minutes.
e2e: $(STAMP)
	$(PY) -m pytest -m deployment -rP tests/deployment

# A distributed deployment on loopback: PostgreSQL and Redis (Debian's, apt-get when missing, started in a
# throwaway dir), CeleryExecutor with two workers, two triggerers, scheduler, dag-processor, api-server.
# mediapocket_ingest over 100 items with a triggerer SIGKILLed mid-wait, then over 2 items with a Celery
# worker SIGKILLed between a start's POST and its wait. Report in build/e2e-distributed/report.json.
# Installs the `distributed` extra (Celery provider, psycopg2, asyncpg) when missing, Airflow held at its
# installed version.
e2e-distributed: $(STAMP)
	$(PY) -c "import airflow.providers.celery, psycopg2, asyncpg" 2>/dev/null || $(PY) -m pip install --quiet \
		-e '.[dev,distributed]' "apache-airflow==$$($(PY) -c 'import airflow; print(airflow.__version__)')"
	$(PY) -m pytest -m deployment -rP tests/distributed

# The first hour in the Airflow UI, in a real browser: the sandbox and a real deployment on loopback, then
# Chromium (Debian's, installed when missing) driven by Playwright (the `ui` extra, installed when missing)
# adds the connection in the form, tests it, triggers mediapocket_ingest and follows the extra links.
# Screenshots in build/e2e-ui/. About 2-3 minutes.
e2e-ui: $(STAMP)
	$(PY) -c "import playwright" 2>/dev/null || $(PY) -m pip install --quiet -e '.[dev,ui]'
	$(PY) scripts/e2e_ui.py

# Benchmarks print ratios against baselines measured in the same run and write bench/results.json.
# A missed target prints FAIL but does not fail the command; a crash does.
bench: $(STAMP)
	$(PY) bench/run.py

bench-smoke: $(STAMP)
	$(PY) bench/run.py --smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
