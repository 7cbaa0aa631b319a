# Two commands do all the set-up on a fresh machine (Python >= 3.11 and make):
#   make run    the local stack serving root-example (PORT=8000 by default)
#   make test   the whole offline test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed
# Held while .venv is created or updated: two make run/test on one checkout never pip-install
# into it at once. Outside .venv, which may not exist yet.
VENV_LOCK := .venv.lock
PYTEST_ARGS ?=
# Options of the local stack (python -m infra.local --help), e.g. ARGS="--tomo --regions 3"
ARGS ?=
# What make run writes for shells: set -a; . ./.cat-local.env; set +a (removed on stop)
ENV_FILE ?= .cat-local.env
# Where --tomo and make tomo build the published root (git-ignored; root-example/ stays as committed)
TOMO_ROOT := .cache/root-tomo

# Caterva2's own test suite wants pytest < 8 (ours: >= 8), hence a venv of its own
CONF_VENV := .venv-conformance
CONF_STAMP := $(CONF_VENV)/.installed
CATERVA2_TESTS := caterva2[tests]==2026.9.2
# Options of python -m infra.conformance, e.g. CONF_ARGS="--modules test_api --modes login"
CONF_ARGS ?=

.PHONY: run test lint bench bench-smoke bench-writes example tomo clean help browser conformance

help:
	@echo "make run [PORT=8000] [ARGS=...]  start moto + two regional APIs serving root-example;"
	@echo "                       ARGS are python -m infra.local's options, e.g. ARGS=\"--tomo --regions 3\";"
	@echo "                       writes $(ENV_FILE) (set -a; . ./$(ENV_FILE); set +a) while it runs"
	@echo "make test              lint + the whole offline test suite (installs chromium for the browser tests)"
	@echo "make browser           install Debian's chromium for the web UI's browser tests (root + apt)"
	@echo "make bench             benchmarks (writes bench/results/<date>-<commit>.json)"
	@echo "make bench-smoke       the benchmarks on tiny data, once (no install; /tmp/bench-smoke.json)"
	@echo "make bench-writes      copy/move/remove/compute=True latencies through caterva2.Client"
	@echo "make conformance       Caterva2's own test suite against the local stack, both modes (CONF_ARGS=...)"
	@echo "make example           regenerate the tracked root-example/ (small datasets)"
	@echo "make tomo              build $(TOMO_ROOT): root-example + the 64 MiB tomography stack"
	@echo "make sam-check         cfn-lint, sam validate --lint and sam build (SAM CLI in .venv-sam)"
	@echo "make sam-smoke         run each handler from the built artifact alone against moto (after sam-build)"

# One shell for the whole recipe, so the lock (fd 9) is held from the first check to the stamp.
# flock is util-linux's (always on Debian/Ubuntu); without it (macOS) the install runs unlocked.
# After the lock is taken the stamp is checked again: a concurrent make may have just installed.
$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (set PY=python3.11)")'
	@set -e; \
	if command -v flock >/dev/null 2>&1; then \
		exec 9>"$(VENV_LOCK)"; \
		flock 9 || { echo "make: cannot lock $(VENV_LOCK)" >&2; exit 1; }; \
	else \
		echo "make: flock not found; installing into $(VENV) without a lock" >&2; \
	fi; \
	if [ -f "$(STAMP)" ] && [ "$(STAMP)" -nt pyproject.toml ]; then exit 0; fi; \
	test -x $(BIN)/python || $(PY) -m venv $(VENV); \
	echo "$(BIN)/python -m pip install -q -e \".[dev]\""; \
	$(BIN)/python -m pip install -q --upgrade pip; \
	$(BIN)/python -m pip install -q -e ".[dev]"; \
	touch "$(STAMP)"

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m infra.local --port $(PORT) --env-file $(ENV_FILE) $(ARGS)

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

$(CONF_STAMP): pyproject.toml
	@test -x $(CONF_VENV)/bin/python || $(PY) -m venv $(CONF_VENV)
	$(CONF_VENV)/bin/python -m pip install -q --upgrade pip
	$(CONF_VENV)/bin/python -m pip install -q -e ".[local]" "$(CATERVA2_TESTS)" "pytest-timeout>=2.3"
	@touch "$(CONF_STAMP)"

conformance: $(CONF_STAMP)
	$(CONF_VENV)/bin/python -m infra.conformance $(CONF_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check . || true

bench: $(STAMP)
	$(BIN)/python -m bench

bench-writes: $(STAMP)
	$(BIN)/python -m bench.write_latency --repeat 5 --out bench/results/write-latency-$$(date +%F).json

bench-smoke: $(STAMP)
	$(BIN)/python -m bench --quick --no-install --out /tmp/bench-smoke.json

example: $(STAMP)
	$(BIN)/python -m infra.example_data root-example

tomo: $(STAMP)
	$(BIN)/python -m infra.example_data root-example --tomo-root $(TOMO_ROOT)

clean:
	rm -rf $(VENV) $(VENV_LOCK) $(CONF_VENV) .venv-sam .aws-sam .pytest_cache .ruff_cache .cache

-include infra/sam.mk
