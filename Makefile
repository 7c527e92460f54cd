# Two commands on a fresh machine: `make run` (set up, then serve the example config) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXAMPLE := examples/config.json

.PHONY: setup test-setup run test lint typecheck bench clean

setup: $(VENV)/.installed

# The runtime install: the router, its default embedder (int8 ONNX, no PyTorch) and the example's two servers.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[example]"
	touch $@

# Tests, checks and benchmarks add their own extras. torch is pinned and installed first: that exact
# version resolves to a CPU build here, while an unpinned torch (pulled in by sentence-transformers)
# would fetch GBs of CUDA packages.
test-setup: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test,bench,torch]"
	touch $@

run: setup
	-$(BIN)/discovery-router --config $(EXAMPLE) status
	@echo "Serving the example config at http://127.0.0.1:8765/mcp (Ctrl-C to stop)" >&2
	$(BIN)/discovery-router --config $(EXAMPLE) serve --transport http --port 8765

lint: test-setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: test-setup
	$(BIN)/mypy

test: test-setup
	$(BIN)/python -m pytest -q

bench: test-setup
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
