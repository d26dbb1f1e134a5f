# The README's two commands are `make serve` and `make test`; everything else is a helper.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test lint fmt bench install dev clean chromium fuzz services

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

serve: $(VENV)/.installed
	$(BIN)/leaderboard-api serve --host $(HOST) --port $(PORT)

chromium:
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || \
		( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
		  || echo "chromium could not be installed; browser tests will be skipped" )
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || \
		( (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx) >/dev/null 2>&1 \
		  || echo "nginx could not be installed; nginx tests will be skipped" )

# PostgreSQL (postgresql) and Redis (redis-server) from Debian: the tests start their own
# servers on 127.0.0.1 in temporary folders, never the system services.
services:
	bash scripts/ci-services.sh

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(VENV)/.dev-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(VENV)/.dev-installed chromium services lint
	$(BIN)/python -m pytest

# schemathesis with every check and many examples, on the sample and the whole MTEB data
# (`make test` runs the same with a few examples per operation).
fuzz: $(VENV)/.dev-installed
	LEADERBOARD_FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} LEADERBOARD_FUZZ_MTEB=1 \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_hardening_openapi.py

bench: $(VENV)/.dev-installed
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
