# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo paper-mini test bench bench-full install clean help system-deps

help:
	@echo "make demo       create $(VENV) if missing, install, run the demo study, print the report path"
	@echo "make paper-mini create $(VENV) if missing, install, run configs/paper-mini.yaml (3 seeds,"
	@echo "                the six findings' axes) two runs at a time, print the report path"
	@echo "make test       create $(VENV) if missing, install, run the test suite"
	@echo "make bench      quick benchmarks (tables of ratios);  make bench-full: the long ones"
	@echo "make system-deps  (root, Debian) slurm-wlm + munge for the real-Slurm tests"

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

# The six findings on a fresh world seed (configs/paper-mini.yaml): sweep, run locally two
# at a time, report with its Findings section; ends by printing the report path.
paper-mini: $(STAMP)
	$(VENV)/bin/scaling demo --sweep_file configs/paper-mini.yaml --parallel 2

test: $(STAMP)
	$(PY) -m pytest -q

# System packages for tests/slurm (a real one-node Slurm); idempotent, needs root + apt-get.
system-deps:
	@if command -v slurmctld >/dev/null && command -v munged >/dev/null; then \
	  echo "slurm-wlm and munge already installed"; \
	else \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends slurm-wlm munge; \
	fi

bench: $(STAMP)
	$(PY) bench/run.py --quick

bench-full: $(STAMP)
	$(PY) bench/run.py --full

clean:
	rm -rf sweeps bench/out .pytest_cache
