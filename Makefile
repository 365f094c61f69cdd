# Roomchat developer commands. Every target works from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt requirements-tokenizer.txt | sha1sum | cut -c1-12)
PORT ?= 8000

.PHONY: install run test check format services clean bench

$(STAMP): requirements.txt requirements-dev.txt requirements-tokenizer.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	# The fakes' tokenizer, outside sys.path (see requirements-tokenizer.txt).
	$(PY) -m pip install -q --no-deps --upgrade --target $(VENV)/claude-tokenizer -r requirements-tokenizer.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

## run: serve on http://127.0.0.1:8000 (SQLite, in-memory layer and the demo model unless configured)
run: install
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) manage.py migrate --noinput
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(VENV)/bin/daphne -b 127.0.0.1 -p $(PORT) chatsite.asgi:application

## test: the whole suite; starts or installs what it needs (PostgreSQL under CI=true, Chromium)
test: install services
	$(PY) -m pytest $(PYTEST_ARGS)

services:
	@bash scripts/ensure-services.sh

## check: formatting, lint and types
check: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	# The Django plugin loads settings, which need a secret key when debug is off.
	DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-mypy-only} $(VENV)/bin/mypy chatsite consumers

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install services
	$(PY) -m bench.fanout $(BENCH_ARGS)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .mypy_cache .ruff_cache
