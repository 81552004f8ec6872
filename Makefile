# aifkit: two commands on a fresh machine.
#   make hub        the main job: the local training hub on http://127.0.0.1:8000 (Ctrl-C stops it)
#   make test       the whole test suite (CI runs it after make lint, through .ci/run)
#   make test-fast  the loop while editing: no SLURM, hub, PostgreSQL, browser, course notebooks
#                   or slow tests (markers in pyproject.toml, applied in tests/conftest.py)
#   make validate   execute every course notebook at cpu-tiny
# Each target builds or refreshes .venv first; with nothing changed that takes well under 10 s.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.aifkit-installed
JOBS   ?= 2
TIER   ?= cpu-tiny
GPU_TIER ?= gpu
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: venv hub validate validate-gpu test test-fast lint check bench clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml src/aifkit/data/jupyter/kernels/aifkit/kernel.json
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "aifkit needs Python >= 3.11 (nbgrader 0.9.6 does); set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/aifkit kernels install --sys-prefix
	@touch $(STAMP)

hub: $(STAMP)
	$(BIN)/aifkit hub run --config hub-config/local/config.yml

validate: $(STAMP)
	$(BIN)/aifkit validate courses --tier $(TIER) --jobs $(JOBS) --report build/validate

validate-gpu: $(STAMP)
	PYTHON=$(BIN)/python scripts/gpu-validate.sh $(GPU_TIER)

test: $(STAMP)
	scripts/system-deps.sh
	$(BIN)/python -m pytest

FAST := not (slurm or hub or postgres or oidc or browser or notebook or slow)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "$(FAST)"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks grading
	$(BIN)/ruff format --check src tests benchmarks grading
	$(BIN)/mypy
	$(BIN)/aifkit nb lint courses
	$(BIN)/aifkit catalog check courses

bench: $(STAMP)
	$(BIN)/python benchmarks/validate.py
	$(BIN)/python benchmarks/autograde.py
	$(BIN)/python benchmarks/guard.py
	$(BIN)/python benchmarks/hub_load.py
	$(BIN)/python benchmarks/similarity.py

clean:
	rm -rf build .aifkit .pytest_cache .mypy_cache .ruff_cache
