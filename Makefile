# Two commands set everything up on a fresh machine (Python >= 3.11 on PATH as python3):
#   make demo   creates .venv, installs arbiter, runs the whole job end to end
#               (again on an existing home: make demo FORCE=1)
#   make test   creates .venv, installs arbiter with its test tools, lints and runs the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell $(PYTHON) -c "import hashlib,sys;print(hashlib.sha1(open('pyproject.toml','rb').read()).hexdigest()[:12])")
TORCH_STAMP := $(VENV)/.installed-torch
AIRFLOW_VENV := .venv-airflow
HOME_DIR ?= ./arbiter-home
PYTEST_ARGS ?=
# `make demo FORCE=1` deletes an earlier demo's home and starts over (the demo says what it
# deletes, and refuses while `arbiter serve` uses the home).
FORCE ?=

.PHONY: demo test test-all lint bench clean chromium promtool java

$(STAMP): pyproject.toml
	@$(PYTHON) -c "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 'arbiter needs Python >= 3.11; set PYTHON=python3.11')"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

# The torch extra (PyTorch model tests) for `make test` only: `make demo` does not need it. Its
# name starts with .installed- so that a pyproject change (a new pin) reinstalls it too.
$(TORCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[torch]"
	@touch $@

# Airflow lives in its own venv: it pins an older FastAPI than MLflow gets in .venv. The DAG
# test runs dag.test() with this interpreter and the checkout's arbiter on its path.
$(AIRFLOW_VENV)/.installed:
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet "apache-airflow>=3.0,<4"
	@touch $@

demo: $(STAMP)
	$(BIN)/arbiter demo --home $(HOME_DIR) $(if $(FORCE),--force)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: $(STAMP) $(TORCH_STAMP) $(AIRFLOW_VENV)/.installed chromium promtool java lint
	ARBITER_REQUIRE_AIRFLOW=1 ARBITER_REQUIRE_TORCH=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

# The dashboard's browser tests (tests/ui) drive Debian's Chromium through Playwright; install
# it when missing (CI runs as root; elsewhere it asks for sudo). Playwright's own browser
# download is not used.
chromium:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi; }

# The Spark engine's tests (tests/events/test_engines.py) run PySpark local[2]: they need a JVM.
java:
	@java -version 2>&1 | awk -F'"' '/version/ {split($$2, v, "."); exit !(v[1] >= 17)}' || \
	  { echo "make test needs Java 17+ for the Spark tests: apt-get install -y openjdk-17-jre-headless"; exit 1; }

# The full-size simulations too (marked slow; the default run has reduced versions).
test-all: $(STAMP) $(TORCH_STAMP) $(AIRFLOW_VENV)/.installed chromium promtool java
	ARBITER_REQUIRE_AIRFLOW=1 ARBITER_REQUIRE_TORCH=1 $(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

# promtool checks deploy/prometheus/alerts.yml in the tests (tests/alerts); Debian's
# `prometheus` package carries it. Installed only when missing (CI runs as root).
promtool:
	@command -v promtool >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus; }

bench: $(STAMP)
	$(BIN)/python benchmarks/events.py

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) .pytest_cache .ruff_cache .hypothesis
