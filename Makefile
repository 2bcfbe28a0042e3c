# Two commands matter: `make demo` and `make check`. Both build their own virtual environment.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export HYPOTHESIS_PROFILE ?= ci
# The MQTT adapter tests run a real broker: Debian's mosquitto, installed here when missing.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: demo check services lint typecheck test deploy-check deploy docs bench bench-smoke clean

$(STAMP): pyproject.toml
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# The demo needs the core only (attrs, jsonpatch): its own small environment, not the toolchain.
DEMO_VENV ?= .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

$(DEMO_STAMP): pyproject.toml
	rm -f $(DEMO_VENV)/.installed-*
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet -e .
	touch $@

demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/python -m shadowsync.demo

check: lint typecheck test deploy-check docs bench-smoke
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

# The stack's static checks; tests/deploy (in `test`) translates it and creates it in moto.
deploy-check: $(STAMP)
	$(VENV)/bin/cfn-lint deploy/template.yaml
	$(VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
	  --file deploy/template.yaml

# The function package (this repository's wheel with the powertools extra and their
# dependencies, for Lambda's python3.12 on arm64; boto3 is the runtime's), then a guided
# deploy. Needs the SAM CLI.
deploy: $(STAMP)
	rm -rf deploy/build deploy/dist
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir deploy/dist .
	$(PY) -m pip install --quiet --target deploy/build --platform manylinux2014_aarch64 \
	  --python-version 3.12 --implementation cp --only-binary=:all: \
	  "$$(ls deploy/dist/shadowsync-*.whl)[powertools]"
	cd deploy && sam deploy --guided

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
	rm -rf $(VENV) $(DEMO_VENV) site .mypy_cache .ruff_cache .pytest_cache .hypothesis
