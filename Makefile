# Build and test entry points. `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Lint only the dirs that exist: git does not keep empty dirs, so a fresh
# clone may lack bench/ or examples/ and ruff errors on a missing path.
LINT_DIRS := $(wildcard src tests bench examples)

.PHONY: venv redis lint test unit demo bench clean

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

lint: venv
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/mypy

test: venv redis
	$(MAKE) lint
	$(BIN)/pytest -q

unit: venv
	$(BIN)/pytest -q tests/unit

demo: venv redis
	$(BIN)/sidequest dev

bench: venv redis
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +
