# `make train` and `make test` work on a fresh machine: they create .venv and install on first use.
# CUDA users: make install TORCH_SPEC='torch==2.6.0' TORCH_INDEX='--index-url https://download.pytorch.org/whl/cu124'
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=


.PHONY: install train report evaluate test test-fast lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_INDEX) '$(TORCH_SPEC)'
	$(PY) -c "import torch; print('torch==' + torch.__version__)" 2>/dev/null > $(VENV)/constraints.txt
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# the built-in CPU demo; EXPERIMENT= (empty) trains the paper's StyleGAN2 defaults instead
EXPERIMENT ?= mnist_demo
train: $(STAMP)
	$(PY) -m stylegan.train $(if $(EXPERIMENT),experiment=$(EXPERIMENT)) $(ARGS)

# e.g. make report ARGS="multirun/<date>_<time> --metric fid50k_full"
report: $(STAMP)
	$(PY) -m stylegan.report $(ARGS)

# e.g. make evaluate ARGS="ckpt=outputs/<run>/checkpoints/best.ckpt metric_names=[fid50k_full]"
evaluate: $(STAMP)
	$(PY) -m stylegan.evaluate $(ARGS)

# two pytest-xdist workers of one torch thread each (tests/conftest.py): the demo's minutes overlap the rest
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" -x $(ARGS)

# ruff's lint rules (pyproject.toml); the code is wrapped by hand at 120 columns, not by `ruff format`
lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/networks.py $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .ruff_cache
