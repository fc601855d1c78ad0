# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench bench-full install clean help

help:
	@echo "make demo       create $(VENV) if missing, install, run the demo study, print the report path"
	@echo "make test       create $(VENV) if missing, install, run the test suite"
	@echo "make bench      quick benchmarks (tables of ratios);  make bench-full: the long ones"

# The venv is (re)installed when pyproject.toml changes. torch comes from the local wheel
# cache where pip is capped at torch<=2.14.1 (see pyproject.toml).
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/scaling demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/run.py --quick

bench-full: $(STAMP)
	$(PY) bench/run.py --full

clean:
	rm -rf sweeps bench/out .pytest_cache
