# Two commands matter on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck pytest bench clean venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# A stamp is written only once the installed command has started: an install that
# succeeds but cannot import (a missing dependency) must not look done next time.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	rm -f $@
	$(BIN)/pip install --quiet -e '.[fast]'
	$(BIN)/otpy --version
	touch $@

$(STAMP): $(BIN)/python pyproject.toml
	rm -f $@ $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[fast,dev]'
	$(BIN)/otpy --version
	touch $@ $(VENV)/.installed

venv: $(STAMP)

# The demo exports no telemetry unless you ask for it (set OTEL_TRACES_EXPORTER=otlp
# and a collector endpoint): without a collector the exporter only adds noise.
demo: $(VENV)/.installed
	OTEL_TRACES_EXPORTER=$${OTEL_TRACES_EXPORTER:-none} \
	OTEL_METRICS_EXPORTER=$${OTEL_METRICS_EXPORTER:-none} \
	$(BIN)/otpy run supervisors.demo:root --console

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest --cov --cov-report=term -q

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .coverage .mypy_cache .ruff_cache .pytest_cache
