# Set-up is part of every entry point: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-kernels install clean arm64 docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[train,export,app,bench,test,docs]'
	$(BIN)/python -m animeedge.generator.faces  # the train extra's face models: from the mediapipe wheel, never installed
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/animeedge demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

test-kernels: $(STAMP)  # the training tests under each CPU type's float kernels (tests/test_kernels.py)
	$(BIN)/python -m pytest -m slow tests/test_kernels.py

docs: $(STAMP)  # the guides, the API reference and the research notebook as one site, in site/ (mkdocs.yml)
	$(BIN)/python -m mkdocs build --strict -f mkdocs.yml -d site

arm64: $(STAMP)  # qemu + Debian arm64 rootfs + aarch64 wheels for emulated ARM64 runs (animeedge/arm64.py)
	$(BIN)/python -m animeedge.arm64

clean:
	rm -rf $(VENV) build *.egg-info demo_out site
