PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test demo bench clean

$(BIN)/colortrack: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

setup: $(BIN)/colortrack

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/colortrack demo --out out/demo

bench: setup
	$(BIN)/pip install -q --no-deps vos-benchmark==0.1.0
	$(BIN)/python benchmarks/davis_baselines.py --out out/bench

clean:
	rm -rf $(VENV) out build *.egg-info src/*.egg-info
