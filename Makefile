# Two entry points for a fresh machine with only Python 3.11: `make demo` and `make test`.
# Both create .venv, install the CPU build of torch when torch is absent, then the package.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
# Where the CPU build comes from when torch is absent: PyPI's Linux torch is the CUDA build (GBs), the PyTorch
# CPU index serves `2.13.0+cpu`, which pip prefers. Offline, pip warns that it cannot reach it and uses the
# indexes it is configured with; `make TORCH_INDEX=` skips it, or point it at a mirror.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
CORE_STAMP := $(VENV)/.core-stamp
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# A second environment for MosaicML Streaming, which tests/test_peers.py compares against: it needs
# torchvision, hence a torch of its own (a CUDA build from PyPI, about 6 GB), so it cannot share .venv.
# Only `make test-peers` builds it; `make test` never does.
PEERS_VENV ?= .venv-peers
PEERS_SPEC ?= torch==2.14.1 torchvision==0.29.1 mosaicml-streaming==0.13.0
PEERS_STAMP := $(PEERS_VENV)/.installed-stamp

.PHONY: install peers demo test test-min test-peers lint typecheck check bench mutation clean

# The package with the command's extra (enough for `make demo`), then the test and integration extras (`make test`).
$(CORE_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# A plain `torch` requirement would pull a multi-GB CUDA build; take the CPU wheel when torch is absent.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[cli]"
	touch $(CORE_STAMP)

$(STAMP): $(CORE_STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

$(PEERS_STAMP):
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet $(PEERS_SPEC)
	touch $(PEERS_STAMP)

peers: $(PEERS_STAMP)

demo: $(CORE_STAMP)
	$(BIN)/mixweave demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite on the lowest versions pyproject.toml declares (.ci/lowest.txt), in a venv of its own (.venv-min).
MIN_VENV ?= .venv-min
test-min:
	test -x $(MIN_VENV)/bin/python || $(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -c "import torch" 2>/dev/null || $(MIN_VENV)/bin/python -m pip install --quiet $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(MIN_VENV)/bin/python -m pip install --quiet -e ".[dev]" -c .ci/lowest.txt
	$(MIN_VENV)/bin/python -c "import numpy, pydantic, yaml, sklearn, matplotlib, PIL, rich; print('test-min on numpy', numpy.__version__, 'pydantic', pydantic.VERSION, 'PyYAML', yaml.__version__, 'scikit-learn', sklearn.__version__, 'matplotlib', matplotlib.__version__, 'Pillow', PIL.__version__)"
	$(MIN_VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The README's comparison with HF datasets, torchdata and MosaicML Streaming, checked against the peers
# themselves: installs the `peers` extra and builds .venv-peers (about 6 GB on first run).
test-peers: $(STAMP) $(PEERS_STAMP)
	$(BIN)/python -m pip install --quiet -e ".[peers]"
	$(BIN)/python -m pytest -m peers tests/test_peers.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples docs tools conftest.py
	$(BIN)/ruff format --check src tests bench examples docs tools conftest.py
	@# the layers of docs/design.md: contracts in pyproject.toml ([tool.importlinter])
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python -m bench

# Mutation testing of the engine's core and this round's modules ([tool.mutmut] in pyproject.toml; docs/testing.md): over an hour
# on 2 cores, so CI does not run it. MUTATION_JOBS sets the parallel test processes.
MUTATION_JOBS ?= 2
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[mutation]"
	rm -rf mutants
	@# one OpenMP thread: a forked test process whose parent started torch's thread pool can deadlock
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/mutmut run --max-children $(MUTATION_JOBS) > mutants.log 2>&1 || (tail -c 2000 mutants.log; exit 1)
	$(BIN)/python tools/mutation_report.py

clean:
	rm -rf $(VENV) $(PEERS_VENV) $(MIN_VENV) .pytest_cache .mypy_cache .ruff_cache mutants mutants.log
