# Passerelle — every set-up step lives here so a fresh clone needs only `make demo` / `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-fast test-deep check bench lock clean install

# Installs the venv, and Debian's Chromium for the browser tests (Playwright never downloads one)
# and wrk for bench_access's load (optional).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo 'note: Debian chromium not installed (needs root); the browser tests will skip'
	command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) \
		|| echo 'note: Debian wrk not installed (needs root); bench_access falls back to its asyncio client'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/passerelle demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

test-deep: $(STAMP)
	PASSERELLE_HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check passerelle tests benchmarks tools
	$(BIN)/ruff format --check passerelle tests benchmarks tools
	$(BIN)/mypy passerelle

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Re-pin every dependency to what is installed now (run after changing pyproject.toml).
lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^passerelle' > constraints.txt

clean:
	rm -rf $(VENV) passerelle-data .pytest_cache .mypy_cache .ruff_cache
