# One command each: `make demo` (set up, train and test offline on the bundled sample), `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/eurosat_sample.yaml
TORCH := torch==2.14.1 torchvision==0.29.1
# Where torch comes from. Without an NVIDIA GPU (no nvidia-smi): PyTorch's CPU-only wheels, under 1 GB
# installed where PyPI's bring CUDA libraries (6.0 GB measured). Empty (`make setup TORCH_INDEX=`):
# PyPI's wheels. Any other of PyTorch's indexes works too (the URL pytorch.org/get-started gives).
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,https://download.pytorch.org/whl/cpu)

.PHONY: setup demo test test-slow test-slurm lint

# A 5 s timeout and no retries: an index this machine cannot reach costs seconds (3.5 s measured where
# its name does not resolve), then PyPI's wheels are installed instead.
$(BIN)/imgcls: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@if [ -n "$(TORCH_INDEX)" ] && $(BIN)/pip install --quiet --timeout 5 --retries 0 \
			--index-url $(TORCH_INDEX) $(TORCH) 2>$(VENV)/torch-index.log; then \
		echo "torch and torchvision from $(TORCH_INDEX)"; \
	else \
		[ -z "$(TORCH_INDEX)" ] || echo "$(TORCH_INDEX) could not be used ($(VENV)/torch-index.log says why)"; \
		echo "torch and torchvision from PyPI, with CUDA libraries"; \
		$(BIN)/pip install --quiet $(TORCH); \
	fi
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/imgcls

setup: $(BIN)/imgcls

demo: setup
	$(BIN)/imgcls fit --config $(CONFIG)
	$(BIN)/imgcls test --config $(CONFIG) --ckpt_path best
	@echo "$(BIN)/tensorboard --logdir runs/$(basename $(notdir $(CONFIG)))"

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

# Slurm's templates, requeue and job arrays on a one-node cluster on this machine (root and apt-get:
# tests/slurm/setup_cluster.sh installs slurm-wlm and munge). Where Slurm cannot be installed the
# tests are skipped, and the line before says why.
test-slurm: setup
	@bash tests/slurm/setup_cluster.sh || { code=$$?; [ $$code -eq 3 ] || exit $$code; \
		echo "Slurm tests skipped: Slurm cannot run on this machine (the line above says why)"; }
	$(BIN)/python -m pytest -m slurm -rsP

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
