# Two commands matter: `make demo` and `make check`. Both build their own virtual environment.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export HYPOTHESIS_PROFILE ?= ci
# The MQTT adapter tests run a real broker: Debian's mosquitto, installed here when missing.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: demo check services lint typecheck test docs bench bench-smoke clean

$(STAMP): pyproject.toml
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(STAMP)
	$(PY) -m shadowsync.demo

check: lint typecheck test docs bench-smoke
	@echo "all checks passed"

services:
	@PATH="$$PATH:/usr/sbin" command -v mosquitto >/dev/null || { \
	  echo "installing Debian's mosquitto broker for the MQTT adapter tests"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    mosquitto >/dev/null; }

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(PY) -m mypy --strict src tests

test: $(STAMP) services
	$(PY) -m pytest -q -p no:cacheprovider

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir $(VENV)/site

bench: $(STAMP) services
	$(PY) -m benchmarks
	$(PY) -m benchmarks.offline
	$(PY) -m benchmarks.cloud
	$(PY) -m benchmarks.adapters
	$(PY) -m benchmarks.reconcile

bench-smoke: $(STAMP) services
	$(PY) -m benchmarks --smoke
	$(PY) -m benchmarks.offline --smoke
	$(PY) -m benchmarks.cloud --smoke
	$(PY) -m benchmarks.adapters --smoke
	$(PY) -m benchmarks.reconcile --smoke

clean:
	rm -rf $(VENV) site .mypy_cache .ruff_cache .pytest_cache .hypothesis
