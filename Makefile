# Gitplane: `make demo` runs the main job on the embedded default (git server, reconciler,
# agent, MLflow, endpoints) and stops everything it started; `make test` installs everything
# and runs the whole suite.
PYTHON ?= python3
# The suite's workers (pytest-xdist): each test file runs whole on one of them, so a module's
# fixtures are made once. WORKERS=0 runs it in this one process.
WORKERS ?= 2
XDIST   := -n $(WORKERS) --dist loadfile
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-future lint unit schema-check bench install services dist clean deploy-check

install: $(STAMP) services

# What the suite runs beside Python: redis-server (a Kubernetes plane's online feature store is
# tested against a real one), from Debian's package when it is missing (as root, or with sudo).
services:
	@command -v redis-server >/dev/null 2>&1 || { \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; }

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[test,ml,kubernetes]'
	touch $(STAMP)

demo: install
	$(BIN)/gitplane demo

test: install lint unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/gitplane schema export --check
	$(BIN)/gitplane schema docs --check
	$(BIN)/python -m cli.reference --check

unit: install
	$(BIN)/pytest $(XDIST) --cov --cov-report=term

# The image's Dockerfile and `kubectl kustomize deploy/kubernetes/...`, checked (also in `unit`).
deploy-check: install
	$(BIN)/pytest -q tests/packaging/test_dockerfile.py tests/packaging/test_deploy_manifests.py

# The whole suite again with every process's clock 400 days ahead: a test that depends on
# today's date fails here first (tests/clock.py, ADR 0010).
test-future: install
	$(BIN)/python -m tests.clock +400d $(BIN)/pytest $(XDIST) -p no:cacheprovider -q

# The wheel and sdist to install from (nothing is published): dist/gitplane-*.whl, *.tar.gz.
dist: install
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

bench: install
	$(BIN)/python benchmarks/validate.py
	$(BIN)/python benchmarks/ledger_bench.py
	$(BIN)/python benchmarks/fleet.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/kube_runtime.py

clean:
	rm -rf $(VENV) dist .pytest_cache .mypy_cache .ruff_cache .coverage .gitplane-demo
