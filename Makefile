# `make demo` trains a small PixelCNN on the built-in digits, then puts the shipped Fashion-MNIST PixelCNN (if any) to
# work; `make test` runs the test suite.
# Both create .venv and install what they need. torch is pinned: 2.13.0 is a CPU build that installs from local
# disk on the project's machines, where an unpinned torch would download a multi-GB CUDA build.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: install demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[$*]" "$(TORCH)"
	touch $@

install: $(VENV)/.installed-dev

demo: $(VENV)/.installed-demo
	rm -rf runs/demo
	$(BIN)/pixelrnn train --preset digits --out runs/demo
	$(BIN)/pixelrnn evaluate runs/demo --split test
	$(BIN)/pixelrnn sample runs/demo -n 64 -o runs/demo/samples.png
	@echo "samples: runs/demo/samples.png"
	$(BIN)/python -m pixelrnn.pretrained.demo --out runs/demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs
