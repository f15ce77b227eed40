# Newcomer commands: `make quickstart` (install what training needs, then a small real training on the CPU,
# offline) and `make setup test` (install with the test extra, then lint and the test suite).
# Installs go into a virtual environment in .venv, made on first use; PYTHON=/path/to/python uses that
# interpreter (and its environment) instead. Every install is pinned by constraints.txt.
ifeq ($(origin PYTHON),undefined)
VENV := .venv
PYTHON := $(VENV)/bin/python
endif
BASE_PYTHON ?= python3
TORCH ?= torch==2.13.0
PIP_INSTALL = $(PYTHON) -m pip install -q -c constraints.txt
RUN ?= runs/quickstart

.PHONY: venv install setup quickstart test lint format

venv: $(if $(VENV),$(VENV)/bin/python)

$(VENV)/bin/python:
	@echo "== making a virtual environment in $(VENV) (activate it with: . $(VENV)/bin/activate)"
	$(BASE_PYTHON) -m venv $(VENV)

# torch first, alone: the pinned version, a CPU build where the local wheel folder has one
install: venv
	@echo "== installing $(TORCH) (about 200 MB for the CPU build; a few minutes on a first install)"
	$(PIP_INSTALL) "$(TORCH)"
	@echo "== installing gpt2train and its core dependencies (numpy, tiktoken, safetensors, matplotlib, tensorboard)"
	$(PIP_INSTALL) -e .

setup: install
	@echo "== installing the test extra (pytest, ruff, hypothesis, datasets, transformers, triton: about 1.5 GB)"
	$(PIP_INSTALL) -e ".[test]"

quickstart: install
	@echo "== tokenizing Python's own docs (offline) into data/pydoc"
	$(PYTHON) -m gpt2train prepare text --input pydoc -o data/pydoc --name pydoc
	@echo "== training a 4-layer model for 200 steps on the CPU into $(RUN)"
	$(PYTHON) -m gpt2train train -i "data/pydoc/pydoc_train_*.bin" -j "data/pydoc/pydoc_val_*.bin" -o $(RUN) \
	    -e d6 --n-layer 4 --n-head 4 --n-embd 128 --max-seq-len 128 -b 8 -t 128 -d 1024 \
	    -x 200 -l 3e-3 -u 10 -q 0.1 -c 0.1 -v 50 -m 8 -s 100 -g 48 -n 50 -y 1
	$(PYTHON) -m gpt2train status $(RUN)

lint:
	$(PYTHON) -m ruff check src tests bench
	$(PYTHON) -m ruff format --check src tests bench

test: lint
	$(PYTHON) -m pytest -q -n 2 --dist worksteal --durations=15

format:
	$(PYTHON) -m ruff format src tests bench
	$(PYTHON) -m ruff check --fix src tests bench
