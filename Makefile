# Two commands set everything up on a fresh machine (Python >= 3.11 on PATH as python3):
#   make demo   creates .venv, installs arbiter, runs the whole job end to end
#   make test   creates .venv, installs arbiter with its test tools, lints and runs the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell $(PYTHON) -c "import hashlib,sys;print(hashlib.sha1(open('pyproject.toml','rb').read()).hexdigest()[:12])")
HOME_DIR ?= ./arbiter-home
PYTEST_ARGS ?=

.PHONY: demo test test-all lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 'arbiter needs Python >= 3.11; set PYTHON=python3.11')"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/arbiter demo --home $(HOME_DIR)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The full-size simulations too (marked slow; the default run has reduced versions).
test-all: $(STAMP)
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/events.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
