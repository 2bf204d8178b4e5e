# vistarank: `make demo` runs the whole pipeline on the demo world; `make test` runs the tests.
# Both create .venv and install what they need on first use (Python 3.11 and Java 17 required);
# `make test` also builds .venv-hvd, the Horovod backend's environment (needs g++ and cmake 3).
# `make test-fast` is the day-to-day tier (tests/README.md); `make bench` the benchmark suite.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed
JARS  := .cache/jars/PACKAGE
ARGS  ?=

# serialises the two editable installs when the environments build side by side (test-deps)
LOCK  := $(shell command -v flock >/dev/null 2>&1 && echo flock .cache/editable.lock)

HVD   := .venv-hvd
HVD_STAMP := $(HVD)/.installed

.PHONY: setup horovod-env peers-env py312 test-deps demo test test-fast test-all bench bench-docs peers wheel clean-lakehouse clean

setup: $(STAMP) $(JARS)

# The embedded default: Spark and Delta (extra `local`), the CPU TensorFlow (extra `cpu`) and
# the test tools, at the versions constraints.txt pins.
$(STAMP): setup.py constraints.txt
	@PY=$$(scripts/check_prereqs.sh) && { [ -x $(BIN)/python ] || $$PY -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	@mkdir -p .cache
	$(LOCK) $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[local,cpu,dev]"
	@touch $(STAMP)

# Delta's jars, fetched once from Maven Central into .cache/jars (later runs need no network).
$(JARS): $(STAMP)
	$(BIN)/vistarank-setup-jars --jars-dir .cache/jars --ivy-dir .cache/ivy

# The Horovod backend's pinned environment (TF 2.15.1 + horovod 0.28.1 over Gloo), built
# with the system cmake (about 2 minutes on 2 cores); training.horovod_python points at it.
horovod-env: $(HVD_STAMP)

$(HVD_STAMP): scripts/horovod-requirements.txt scripts/build_horovod_env.sh
	scripts/build_horovod_env.sh
	@touch $(HVD_STAMP)

# The peers of benchmarks/peers.py (Microsoft Recommenders' SAR, implicit's ALS and BPR) in their
# own environment: numpy < 2 for SAR; recommenders without its heavy dependencies.
PEERS := .venv-peers
peers-env: $(PEERS)/.installed

$(PEERS)/.installed: benchmarks/peers-requirements.txt
	@PY=$$(scripts/check_prereqs.sh) && { [ -x $(PEERS)/bin/python ] || $$PY -m venv $(PEERS); }
	$(PEERS)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS)/bin/python -m pip install --quiet -r benchmarks/peers-requirements.txt
	$(PEERS)/bin/python -m pip install --quiet --no-deps recommenders==1.2.1
	@touch $@

# vistarank against its peers on a finished demo lakehouse (make demo first)
peers: setup peers-env
	$(BIN)/python benchmarks/peers.py --lakehouse ./lakehouse $(ARGS)

demo: setup
	$(BIN)/vistarank-pipeline $(ARGS)

# The tests of the horovod backend run its workers in .venv-hvd (and fail, not skip, here);
# the standalone-cluster test packs a Python 3.12 environment (tests/test_cluster.py).
test: test-deps
	VISTARANK_REQUIRE_HOROVOD=1 $(BIN)/python -m pytest -q --durations=12 $(ARGS)

# The two environments build side by side: pip unpacks .venv's wheels while g++ compiles
# horovod for .venv-hvd (both editable installs of vistarank take .cache/editable.lock, as
# they write the same egg-info in the checkout).
test-deps:
	@$(MAKE) --no-print-directory -j2 --output-sync=target setup horovod-env py312

py312:
	@PY312=$${VISTARANK_PY312:-$$(ls -d $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -n 1)}; \
	PY312=$${PY312:-$$(command -v python3.12 || true)}; \
	if [ -z "$$PY312" ] || ! "$$PY312" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then \
	  echo "error: make test needs Python 3.12 too (the cluster test runs on it): install it (e.g. pyenv install 3.12) or set VISTARANK_PY312=/path/to/python3.12" >&2; exit 1; fi

# The fast tier: unit and local-Spark tests, without the cluster, Horovod, the notebooks, the
# wheel and the whole-pipeline tests (markers in pytest.ini; tests/README.md).
FAST := not slow and not gpu and not cluster and not horovod and not notebooks and not wheel and not pipeline
test-fast: setup
	$(BIN)/python -m pytest -q --durations=8 -m "$(FAST)" $(ARGS)

test-all: test-deps
	VISTARANK_REQUIRE_HOROVOD=1 $(BIN)/python -m pytest -q -m "slow or not slow" $(ARGS)

# The benchmark suite (benchmarks/suite.py); QUICK=1 runs it small, into .cache/bench-quick/.
bench: setup
	$(BIN)/python benchmarks/run.py $(if $(QUICK),--quick) $(ARGS)

# docs/benchmarks.md and the README's headline table, rendered from benchmarks/results/*.json
bench-docs: setup
	$(BIN)/python benchmarks/report.py

wheel: setup
	$(BIN)/python -m pip wheel --no-deps --quiet -w dist .

clean-lakehouse:
	rm -rf lakehouse

clean: clean-lakehouse
	rm -rf $(VENV) $(HVD) .cache build dist *.egg-info
