# Newcomer commands: `make quickstart` (set up, then a small real training on the CPU, offline)
# and `make setup test` (set up, then lint and the test suite). PYTHON picks the interpreter.
PYTHON ?= python3
TORCH ?= torch==2.13.0
RUN ?= runs/quickstart

.PHONY: setup quickstart test lint format

setup:
	$(PYTHON) -m pip install -q "$(TORCH)"
	$(PYTHON) -m pip install -q -e ".[test]"

quickstart: setup
	$(PYTHON) -m gpt2train prepare text --input pydoc -o data/pydoc --name pydoc
	$(PYTHON) -m gpt2train train -i "data/pydoc/pydoc_train_*.bin" -j "data/pydoc/pydoc_val_*.bin" -o $(RUN) \
	    -e d6 --n-layer 4 --n-head 4 --n-embd 128 --max-seq-len 128 -b 8 -t 128 -d 1024 \
	    -x 200 -l 3e-3 -u 10 -q 0.1 -c 0.1 -v 50 -m 8 -s 100 -g 48 -n 50 -y 1
	$(PYTHON) -m gpt2train status $(RUN)

lint:
	$(PYTHON) -m ruff check src tests bench
	$(PYTHON) -m ruff format --check src tests bench

test: lint
	$(PYTHON) -m pytest -q -n 2 --durations=10

format:
	$(PYTHON) -m ruff format src tests bench
	$(PYTHON) -m ruff check --fix src tests bench
