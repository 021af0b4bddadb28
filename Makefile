# The two commands of the README: `make demo` (the main job) and `make test`.
# Each creates .venv with python3 and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck unit bench bench-smoke e2e e2e-ui e2e-distributed compat clean

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

# Two real deployments (api-server, scheduler, dag-processor, triggerer, LocalExecutor, SQLite), each in a
# throwaway AIRFLOW_HOME, against the sandbox: one runs mediapocket_ingest, its deferred waits going through
# the real triggerer (tests/deployment/test_deployment.py); the other runs the event-driven
# mediapocket_on_ingest while assets are ingested, with the triggerer SIGKILLed mid-stream
# (tests/deployment/test_events_deployment.py). About 6-9 minutes on a loaded 2-core machine (2-5 each).
e2e: $(STAMP)
	$(PY) -m pytest -m deployment -rP tests/deployment

# A distributed deployment on loopback: PostgreSQL and Redis (Debian's, apt-get when missing, started in a
# throwaway dir), CeleryExecutor with two workers, two triggerers, scheduler, dag-processor, api-server.
# mediapocket_ingest over 100 items with a triggerer SIGKILLed mid-wait, then over 2 items with a Celery
# worker SIGKILLed between a start's POST and its wait. Report in build/e2e-distributed/report.json.
# About 10-15 minutes on a 2-core machine (578 s, 724 s and 871 s measured).
# Installs the `distributed` extra (Celery provider, psycopg2, asyncpg) when missing, Airflow held at its
# installed version.
e2e-distributed: $(STAMP)
	$(PY) -c "import airflow.providers.celery, psycopg2, asyncpg" 2>/dev/null || $(PY) -m pip install --quiet \
		-e '.[dev,distributed]' "apache-airflow==$$($(PY) -c 'import airflow; print(airflow.__version__)')"
	$(PY) -m pytest -m deployment -rP tests/distributed

# The first hour in the Airflow UI, in a real browser: the sandbox and a real deployment on loopback, then
# Chromium (Debian's, installed when missing) driven by Playwright (the `ui` extra, installed when missing)
# adds the connection in the form, tests it, triggers mediapocket_ingest and follows the extra links.
# Screenshots in build/e2e-ui/. About 2-3 minutes; 7 (404 s) measured on a loaded 2-core machine.
e2e-ui: $(STAMP)
	$(PY) -c "import playwright" 2>/dev/null || $(PY) -m pip install --quiet -e '.[dev,ui]'
	$(PY) scripts/e2e_ui.py

# The provider against the latest patch of Airflow 3.0, 3.1, 3.2 and 3.3, each in its own venv under
# build/compat/ with the release's constraints (constraints/, rebuilt by scripts/compat_constraints.py):
# hook, operator, sensor, trigger, notifier and asset tests and the example DAGs under dag.test(). Two rows at a time.
# Report in build/compat/report.json. About 15-20 minutes on two cores.
compat:
	$(PYTHON) scripts/compat.py

# Benchmarks print ratios against baselines measured in the same run and write bench/results.json.
# A missed target prints FAIL but does not fail the command; a crash does. `make bench` runs the full sizes
# (including 5,000 waits on one triggerer, before and after, in one run): several minutes. `make bench-smoke`
# runs small sizes: about 2 minutes on a loaded 2-core machine.
bench: $(STAMP)
	$(PY) bench/run.py

bench-smoke: $(STAMP)
	$(PY) bench/run.py --smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build/compat
