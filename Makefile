# The two commands: `make demo` and `make test`. Each installs what it needs first:
# ngspice from Debian's packages (when missing), a virtual environment in .venv, the package.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast ngspice netlists bench clean

demo: ngspice $(STAMP)
	$(VENV)/bin/mtjsim demo

test: ngspice $(STAMP)
	$(PY) -m pytest -q -ra

# Quick iteration: skips tests marked slow.
test-fast: ngspice $(STAMP)
	$(PY) -m pytest -q -ra -m "not slow"

ngspice:
	@bash scripts/ensure-ngspice.sh

$(STAMP): pyproject.toml
	@echo "mtjsim: creating $(VENV) and installing the package"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

# Regenerate the example netlists checked in under netlists/.
netlists: ngspice $(STAMP)
	$(VENV)/bin/mtjsim netlist --all-examples --out netlists

bench: ngspice $(STAMP)
	$(PY) benchmarks/bench_read.py

clean:
	rm -rf $(VENV) runs .pytest_cache
