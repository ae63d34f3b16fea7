# Zynk — every set-up step lives here, so a fresh clone needs only `make run` / `make test`.
SHELL := /bin/bash
PY_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := $(VENV)/bin/buf
STAMP := $(VENV)/.installed
BREAKING_AGAINST ?= main
PYTEST_ARGS ?=

.PHONY: help venv run gen gen-check lint test test-fast clean

help:
	@echo "make run        run Zynk on embedded defaults (zynk up)"
	@echo "make test       lint + generated-code drift check + the whole test suite"
	@echo "make gen        regenerate gen/ from proto/"
	@echo "make lint       buf lint (STANDARD), buf breaking (WIRE_JSON vs $(BREAKING_AGAINST)), ruff"

# A new top-level package (a new */__init__.py) needs a re-install: the editable install maps
# only the packages that existed when it ran.
$(STAMP): pyproject.toml $(wildcard */__init__.py)
	test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/zynk up

gen: $(STAMP)
	$(PY) tools/gen.py --clean

# Regenerate into a scratch directory and compare: CI fails when gen/ drifted from proto/.
gen-check: $(STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	$(PY) tools/gen.py --out $$tmp/gen --clean >/dev/null && \
	if diff -r -q -x __pycache__ gen $$tmp/gen; then echo "gen/ matches proto/"; \
	else echo "gen/ is stale: run 'make gen' and commit" >&2; exit 1; fi

lint: $(STAMP)
	$(BUF) lint gen/zynk.binpb --path zynk
	$(PY) tools/breaking.py --against $(BREAKING_AGAINST)
	$(VENV)/bin/ruff check .

test: $(STAMP) gen-check lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -x -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .zynk-data .pytest_cache
