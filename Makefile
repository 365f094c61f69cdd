# Roomchat developer commands. Every target works from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Two stamps: what running needs (requirements.txt, all `make run` installs) and the test and
# lint toolchain on top (requirements-dev.txt + the fakes' tokenizer, for test/check/format).
RUN_STAMP := $(VENV)/.run-installed-$(shell cat requirements.txt | sha1sum | cut -c1-12)
DEV_STAMP := $(VENV)/.dev-installed-$(shell cat requirements.txt requirements-dev.txt requirements-tokenizer.txt | sha1sum | cut -c1-12)
PORT ?= 8000

.PHONY: install install-run run test check format services clean node-tools bench bench-quick bench-fanout bench-tools

$(RUN_STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.run-installed-*
	@touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt requirements-tokenizer.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	# The fakes' tokenizer, outside sys.path (see requirements-tokenizer.txt).
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --upgrade --target $(VENV)/claude-tokenizer -r requirements-tokenizer.txt
	@rm -f $(VENV)/.dev-installed-*
	@touch $(DEV_STAMP)

## install-run: what `make run` needs (requirements.txt only)
install-run: $(RUN_STAMP)

## install: everything, test and lint tools included
install: $(DEV_STAMP)

## run: serve on http://127.0.0.1:8000 (SQLite, in-memory layer and the demo model unless configured)
run: install-run
	@PORT=$(PORT) DJANGO_DEBUG=$${DJANGO_DEBUG:-1} bash scripts/serve-dev.sh $(VENV)

## test: the whole suite; starts or installs what it needs (PostgreSQL under CI=true, Chromium)
test: install services node-tools
	$(PY) -m pytest $(PYTEST_ARGS)

# axe-core for the browser accessibility tests (package.json devDependencies; Node is only a
# test tool here, the app never needs it).
NODE_STAMP := node_modules/.installed-$(shell sha1sum package-lock.json 2>/dev/null | cut -c1-12)
node-tools: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@rm -f node_modules/.installed-*
	@touch $(NODE_STAMP)

services:
	@bash scripts/ensure-services.sh

## check: formatting, lint and types
check: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	# The Django plugin loads settings, which need a secret key when debug is off.
	DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-mypy-only} $(VENV)/bin/mypy chatsite consumers tests

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## bench: issue 15's suite, product and naive recipe side by side (< 10 min); docs/benchmarks.md
bench: install bench-tools
	ulimit -n $$(ulimit -Hn); $(PY) -m bench.suite $(BENCH_ARGS)

## bench-quick: the same scenarios at small sizes (< 1 min)
bench-quick: install bench-tools
	ulimit -n $$(ulimit -Hn); $(PY) -m bench.suite --quick $(BENCH_ARGS)

## bench-fanout: one fan-out run with every knob (bench/README.md)
bench-fanout: install
	$(PY) -m bench.fanout $(BENCH_ARGS)

bench-tools: $(VENV)/.bench-tools-$(shell sha1sum requirements-bench.txt 2>/dev/null | cut -c1-12)

$(VENV)/.bench-tools-%: requirements-bench.txt
	$(PY) -m pip install -q -r requirements-bench.txt
	@rm -f $(VENV)/.bench-tools-*
	@touch $@

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache
