PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch 2.13.0 ships as a local wheel on this project's machines.
TORCH_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: setup test demo bench clean chromium

$(BIN)/colortrack: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_LINKS) "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

setup: $(BIN)/colortrack

# Headless Chromium for tests/test_report.py (renders the HTML report) and tests/test_app_browser.py
# (drives the annotation app through Playwright, installed by the test extra). Installed with apt-get
# only when missing; without apt (or root) the browser test skips with a message.
chromium:
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium) \
		|| echo "make chromium: apt-get could not install chromium; the report's browser test will be skipped"; \
	elif command -v apt-get >/dev/null 2>&1 && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		(sudo -n apt-get update -q && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium) \
		|| echo "make chromium: apt-get could not install chromium; the report's browser test will be skipped"; \
	else \
		echo "make chromium: no apt-get (or no root): chromium not installed; the report's browser test will be skipped"; \
	fi

test: setup chromium
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/colortrack demo --out out/demo

bench: setup
	$(BIN)/pip install -q --no-deps vos-benchmark==0.1.0
	$(BIN)/python benchmarks/davis_baselines.py --out out/bench

clean:
	rm -rf $(VENV) out build *.egg-info src/*.egg-info
