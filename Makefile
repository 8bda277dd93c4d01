# The two commands of the README: `make demo` (main job) and `make test` (test suite).
# Both create/refresh the local virtual environment first; every step is idempotent.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp-install
FASHION_MNIST_DIR ?= /usr/share/datasets/fashion-mnist
# the torch build the project is tested with, installed before the package (whose metadata allows a range)
TORCH ?= torch==2.13.0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint setup dataset docs peers onnx clean adder

setup: $(STAMP)

$(STAMP): pyproject.toml $(wildcard setup.py) $(shell find src/sparsewino -name '*.cpp' -o -name '*.h' 2>/dev/null)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]" "$(TORCH)"
	touch $(STAMP)

dataset:
	@if [ ! -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
		echo "Installing Debian package dataset-fashion-mnist"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y dataset-fashion-mnist; \
	fi

demo: setup dataset
	$(PY) -m sparsewino.demo $(DEMO_ARGS)

# CNN vs AdderNet vs Winograd AdderNet on Fashion-MNIST (docs/adder.md), about 30 min on 2 cores
adder: setup dataset
	$(PY) benchmarks/adder_fashion_mnist.py $(ADDER_ARGS)

lint: setup
	$(PY) -m ruff check .

test: lint onnx
	$(PY) -m pytest tests

# The peer runtimes for benchmarks/peers.py: ONNX Runtime and OpenVINO in .venv, DeepSparse 1.8
# (numpy < 2, onnx < 1.15) in its own .venv-deepsparse, which peers.py finds by itself.
peers: setup
	$(PY) -m pip install --quiet -e ".[peers]" "$(TORCH)"
	-test -x $(VENV)/bin/opt_in_out && $(VENV)/bin/opt_in_out --opt_out >/dev/null   # OpenVINO telemetry off
	test -x .venv-deepsparse/bin/python || $(PYTHON) -m venv .venv-deepsparse
	.venv-deepsparse/bin/python -m pip install --quiet "deepsparse==1.8.0" "numpy<2" "onnx<1.15"

# sparsewino.from_onnx: onnx and onnx2torch without its torchvision requirement (only its
# NonMaxSuppression / RoiAlign converters use it; installing it could replace the torch build)
# (the tests use it: `make test` installs it once)
ONNX_STAMP := $(VENV)/.stamp-onnx
onnx: $(ONNX_STAMP)

$(ONNX_STAMP): $(STAMP)
	$(PY) -m pip install --quiet "onnx>=1.15"
	$(PY) -m pip install --quiet --no-deps "onnx2torch>=1.5"
	touch $(ONNX_STAMP)

docs: setup
	$(PY) -m sparsewino.doc_tables

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
