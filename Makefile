# Build and test entry points. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Lint only the dirs that exist: git does not keep empty dirs, so a fresh
# clone may lack bench/ or examples/ and ruff errors on a missing path.
LINT_DIRS := $(wildcard src tests bench examples)
# Supported Pythons besides the one .venv runs on (noxfile.py finds them on PATH or in pyenv's
# versions directory). Each gets the unit tests. The integration tests, which the main Python
# runs whole, are shared between the oldest and the newest (each file runs on one of them);
# 3.12 gets none, since the Django 6 session runs workers on 3.12 already. More integration
# runs beside the main one push `make test` past 20 minutes on a 2-core machine;
# `nox -s tests-3.13` (no arguments) runs all of them on one Python.
OTHER_PYTHONS := 3.10 3.12 3.13
NOX_ARGS_3.12 := -- tests/unit -m "not slow"
NOX_ARGS_3.10 := -- tests/unit tests/integration -m "not slow and not timed" --integration-share 0/2
NOX_ARGS_3.13 := -- tests/unit tests/integration -m "not slow and not timed" --integration-share 1/2

.PHONY: venv redis ruby sentinel postgresql faketime chromium lint test unit demo bench soak screenshots clean \
	check-main check-unit check-integration check-cluster check-soaks check-web-interop check-timed \
	check-django $(addprefix python-,$(OTHER_PYTHONS))

venv: $(STAMP)

# Re-installs only when pyproject.toml changes (the stamp is older).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
		|| { echo "Python >= 3.10 is required ($(PYTHON) is $$($(PYTHON) -V 2>&1))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $@

# Only installs the binary; the tests start their own server on a free port.
redis:
	@command -v redis-server >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server; \
	else \
		echo "redis-server is missing: run 'sudo apt-get install redis-server' (Debian/Ubuntu) and try again"; \
		exit 1; \
	fi

# Ruby Sidekiq (Debian's ruby-sidekiq 6.4.1) for the interop tests in tests/interop. Without
# root it only says how to get it: those tests skip locally when it is missing (CI fails them).
ruby:
	@ruby -e 'require "sidekiq"' >/dev/null 2>&1 && command -v sidekiq >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ruby-sidekiq; \
	else \
		echo "Ruby Sidekiq is missing: run 'sudo apt-get install ruby-sidekiq' (Debian/Ubuntu); the interop tests skip without it"; \
	fi

# redis-sentinel (Debian package) for tests/fault/test_sentinel.py; skipped locally without
# it, failed under CI=true. The tests start their own sentinels on free loopback ports.
sentinel:
	@command -v redis-sentinel >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-sentinel; \
	else \
		echo "redis-sentinel is missing: run 'sudo apt-get install redis-sentinel'; the Sentinel fault test skips without it"; \
	fi

# PostgreSQL (Debian package) for tests/django/test_postgres.py, which starts a private
# server of its own; skipped locally without it, failed under CI=true.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; \
	else \
		echo "PostgreSQL is missing: run 'sudo apt-get install postgresql'; the Django PostgreSQL test skips without it"; \
	fi

# faketime (Debian package: libfaketime's wrapper) for the clock-skew test
# tests/fault/test_clock_skew.py; skipped locally without it, failed under CI=true.
faketime:
	@command -v faketime >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y faketime; \
	else \
		echo "faketime is missing: run 'sudo apt-get install faketime'; the clock-skew fault test skips without it"; \
	fi

# Debian's Chromium for the dashboard's browser tests (tests/web/test_browser.py), driven by
# Playwright; never `playwright install`, which downloads browsers of its own. Without root it
# only says how to get it: those tests skip locally when it is missing (CI fails them).
chromium:
	@command -v chromium >/dev/null 2>&1 && exit 0; \
	if [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "chromium is missing: run 'sudo apt-get install chromium' (Debian/Ubuntu); the browser tests skip without it"; \
	fi

lint: venv
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/mypy

# The whole suite on .venv's Python; on the other Pythons the unit tests, and on 3.10 and
# 3.13 half of the integration tests each.
# Three phases to fit a 2-core machine, each running its parts side by side; --output-sync
# prints each part's output whole when it ends. First the linters and what can share a busy
# machine; then the fault, dashboard and Ruby tests, which start worker processes and mostly
# wait on them; last, alone, the tests marked `timed`, which assert a wall-clock time or an
# idle cost that only a quiet machine can show.
test: venv redis ruby sentinel postgresql faketime chromium
	$(MAKE) -j --output-sync=target lint check-unit check-integration-0 check-integration-1 \
		check-cluster check-soaks check-django $(addprefix python-,$(OTHER_PYTHONS))
	$(MAKE) -j --output-sync=target check-faults-0 check-faults-1 check-web-interop
	$(MAKE) check-timed

check-main: check-unit check-integration

check-unit:
	$(BIN)/pytest -q tests/unit

check-integration:
	$(BIN)/pytest -q -m "not timed" tests/integration

check-integration-%:
	$(BIN)/pytest -q -m "not timed" tests/integration --integration-share $*/2

# A Redis Cluster of 3 primaries and 3 replicas, started by tests/cluster/conftest.py.
check-cluster:
	$(BIN)/pytest -q tests/cluster

check-soaks:
	$(BIN)/pytest -q -m soak tests/fault

# Every other fault test, in two shares run side by side.
check-faults-%:
	$(BIN)/pytest -q -m "not soak and not timed" tests/fault --share $*/2

check-web-interop:
	$(BIN)/pytest -q -m "not timed" tests/web tests/interop

check-timed:
	$(BIN)/pytest -q -m timed tests/integration tests/fault tests/web tests/interop

# tests/django (a real Django project and workers) in two nox environments: Django 6 on
# Python 3.12, and Django 5.2 with the django-tasks backport on 3.11. Without Python 3.12 it
# says how to get it and skips the Django 6 run (under CI=true it fails).
PYTHON312 := $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python3.12) \
	$(shell command -v python3.12 2>/dev/null))
NO_PYTHON312 := Django 6 needs Python 3.12 and it was not found: install it ('pyenv install \
	3.12' or 'sudo apt-get install python3.12'), so that python3.12 is on PATH or in pyenv
check-django: venv redis postgresql
	@if [ -n "$(PYTHON312)" ]; then $(BIN)/nox -s django6; \
	elif [ "$$CI" = true ]; then echo "$(NO_PYTHON312)"; exit 1; \
	else echo "skipping the Django 6 tests: $(NO_PYTHON312)"; fi
	$(BIN)/nox -s django52

$(addprefix python-,$(OTHER_PYTHONS)): python-%: venv
	$(BIN)/nox -s tests-$* $(NOX_ARGS_$*)

unit: venv
	$(BIN)/pytest -q tests/unit

demo: venv redis
	$(BIN)/sidequest dev

# Sidequest against Ruby Sidekiq and the Python peers (installed on first use under
# bench/.venvs); rewrites docs/performance.md. Then async jobs against arq (printed only).
# Flags: make bench BENCH_ARGS="--quick" ASYNC_BENCH_ARGS="-n 5000 --runs 1".
bench: venv redis
	$(BIN)/python bench/suite.py $(BENCH_ARGS)
	$(BIN)/python bench/async_bench.py $(ASYNC_BENCH_ARGS)

# Not part of `make test`: a million jobs, a mixed run with kills, then five minutes of
# --max-memory recycling under -P 2 (see bench/soak.py).
soak: venv redis
	$(BIN)/python bench/soak.py

# Retakes the README's dashboard screenshots (docs/images/*.png) with the browser tests.
screenshots: venv redis chromium
	SIDEQUEST_SCREENSHOTS=1 $(BIN)/pytest -q tests/web/test_browser.py

clean:
	rm -rf $(VENV) .nox build dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +
