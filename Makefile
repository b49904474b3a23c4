# One command each: `make demo` (set up, train and test offline on the bundled sample), `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/eurosat_sample.yaml

.PHONY: setup demo test test-slow lint

$(BIN)/imgcls: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/imgcls

setup: $(BIN)/imgcls

demo: setup
	$(BIN)/imgcls fit --config $(CONFIG)
	$(BIN)/imgcls test --config $(CONFIG) --ckpt_path best
	@echo "tensorboard --logdir runs"

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
