# vistarank: `make demo` runs the whole pipeline on the demo world; `make test` runs the tests.
# Both create .venv and install what they need on first use (Python 3.11 and Java 17 required).
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed
JARS  := .cache/jars/PACKAGE
ARGS  ?=

.PHONY: setup demo test test-all bench wheel clean-lakehouse clean

setup: $(STAMP) $(JARS)

$(STAMP): setup.py
	@PY=$$(scripts/check_prereqs.sh) && { [ -x $(BIN)/python ] || $$PY -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

# Delta's jars, fetched once from Maven Central into .cache/jars (later runs need no network).
$(JARS): $(STAMP)
	$(BIN)/vistarank-setup-jars --jars-dir .cache/jars --ivy-dir .cache/ivy

demo: setup
	$(BIN)/vistarank-pipeline $(ARGS)

test: setup
	$(BIN)/python -m pytest -q $(ARGS)

test-all: setup
	$(BIN)/python -m pytest -q -m "slow or not slow" $(ARGS)

bench: setup
	$(BIN)/python benchmarks/score_throughput.py $(ARGS)

wheel: setup
	$(BIN)/python -m pip wheel --no-deps --quiet -w dist .

clean-lakehouse:
	rm -rf lakehouse

clean: clean-lakehouse
	rm -rf $(VENV) .cache build dist *.egg-info
