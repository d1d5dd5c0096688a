# Two commands: `make run` (the whole middleware on the local services, with demo channels and
# the sandbox) and `make test` (the whole suite). Each sets itself up on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export WHEEL_SECRETS_DIR ?= $(CURDIR)/var/secrets
BENCH ?=

.PHONY: help install run test test-fast lint bench chaos clean

help:
	@echo "make run    start bridge, workers, beat, sandbox and Flower with demo channels (Ctrl-C stops all)"
	@echo "make test   run the whole test suite against the local Postgres, Redis and RabbitMQ"
	@echo "make test-fast  the same without the end-to-end and slow tests (the inner loop)"
	@echo "make bench  run the benchmarks (BENCH=bridge for one); figures go to build/bench/"
	@echo "make chaos  5 minutes of load while processes are killed and services fail, then an audit; build/chaos/report.json"
	@echo "make lint   ruff, the import contracts (docs/architecture.md), and that models and migrations agree"

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[run,test]'
	@# PyPA's `wheel` shares our import name and would shadow the `wheel` package.
	@if $(BIN)/python -m pip show -q wheel >/dev/null 2>&1; then $(BIN)/python -m pip uninstall -y -q wheel; fi
	@touch $@

install: $(VENV)/.installed

run: install
	@$(BIN)/wheelctl services check
	@$(BIN)/wheelctl --log-level WARNING migrate
	@$(BIN)/wheelctl demo seed
	@$(BIN)/wheelctl demo banner
	@exec $(BIN)/honcho -f Procfile start

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	@# The check compares the models with a database at the migrations' head: make sure it is there.
	@$(BIN)/wheelctl --log-level WARNING migrate
	$(BIN)/wheelctl --log-level WARNING migrate --check

# Two pytest-xdist workers, each with a database and a Redis database of its own
# (tests/support/services.py): most end-to-end tests spend their time waiting (outages, feeds,
# retries), so two at once nearly halve the wall time on two cores. A test that stops a service
# stops a private one of its own (tests/support/private.py). The slowest tests are handed out
# first (tests/conftest.py), so that none starts last and holds up the end.
TEST_WORKERS ?= 2

test: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 1

# The inner loop: everything but the end-to-end tests (real processes) and the slow ones.
test-fast: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -n $(TEST_WORKERS) --dist load --maxschedchunk 1 -m "not e2e and not slow"

bench: install
	$(BIN)/python -m tests.bench $(BENCH)

# The chaos run (tests/chaos/): its own Postgres, Redis and RabbitMQ on ports of their own (the
# machine's are never stopped), the whole stack under load while everything fails, then the audit.
# WHEEL_CHAOS_SECONDS, _MESSAGES, _SKUS, _ORDERS, _CANCELLATIONS, _BROKER_OUTAGE_S change its size.
chaos: install
	$(BIN)/python -m tests.chaos

clean:
	rm -rf $(VENV) var build .pytest_cache
