# Two commands do all the set-up on a fresh machine (Python >= 3.11 and make):
#   make run    the local stack serving root-example (PORT=8000 by default)
#   make test   the whole offline test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test lint bench bench-smoke example tomo clean help browser

help:
	@echo "make run [PORT=8000]   start moto + two regional APIs serving root-example"
	@echo "make test              lint + the whole offline test suite (installs chromium for the browser tests)"
	@echo "make browser           install Debian's chromium for the web UI's browser tests (root + apt)"
	@echo "make bench             benchmarks (writes bench/results/<date>-<commit>.json)"
	@echo "make bench-smoke       the benchmarks on tiny data, once (no install; /tmp/bench-smoke.json)"
	@echo "make example           regenerate root-example/ (small datasets)"
	@echo "make sam-check         cfn-lint, sam validate --lint and sam build (SAM CLI in .venv-sam)"

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (set PY=python3.11)")'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m infra.local --port $(PORT)

# The web UI's browser tests drive Debian's chromium (Playwright never downloads a browser here).
# Installed when missing and possible (root with apt-get); otherwise those tests skip, loudly.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (Debian) for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "WARNING: chromium is missing and cannot be installed here (needs root + apt-get): browser tests will be skipped"; \
	  fi; \
	fi

test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check . || true

bench: $(STAMP)
	$(BIN)/python -m bench

bench-smoke: $(STAMP)
	$(BIN)/python -m bench --quick --no-install --out /tmp/bench-smoke.json

example: $(STAMP)
	$(BIN)/python -m infra.example_data root-example

tomo: $(STAMP)
	$(BIN)/python -m infra.example_data --tomo root-example

clean:
	rm -rf $(VENV) .venv-sam .aws-sam .pytest_cache .ruff_cache

-include infra/sam.mk
