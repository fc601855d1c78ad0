# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo paper-mini test test-fast test-unit lint bench bench-full install clean help system-deps

help:
	@echo "make demo       create $(VENV) if missing, install, run the demo study, print the report path"
	@echo "make paper-mini create $(VENV) if missing, install, run configs/paper-mini.yaml (3-6 seeds,"
	@echo "                the six findings' axes) two runs at a time, print the report path"
	@echo "make test       create $(VENV) if missing, install, run the test suite"
	@echo "make test-unit  the tests that start no Python process (not slow, slurm or integration)"
	@echo "make test-fast  the inner loop: the tests not marked slow or slurm, on 2 workers"
	@echo "make lint       ruff, import-linter layers and mypy; fails on any finding"
	@echo "make bench      quick benchmarks (tables of ratios);  make bench-full: the long ones"
	@echo "make system-deps  (root, Debian) slurm-wlm, munge, iproute2, util-linux for the real-Slurm tests"

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

# The inner loop: everything not marked slow or slurm, on two pytest-xdist workers (one test
# file per worker at a time, so module fixtures are built once). The full suite is `make test`.
test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow and not slurm"

# The unit tier: test-fast less the tests marked integration (those that start a Python
# process: the scaling CLI, torchrun, spawned ranks). tests/conftest.py fails any unmarked
# test that starts one, so this tier stays in-process.
test-unit: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not slow and not slurm and not integration"

# ruff (lint), the import layers (import-linter) and mypy (the packages and bench/): all
# three run, and any finding makes the target fail. CI (.ci/run) runs it before the tests.
lint: $(STAMP)
	@status=0; \
	$(VENV)/bin/ruff check . || status=1; \
	PATH=$(VENV)/bin:$$PATH $(VENV)/bin/lint-imports || status=1; \
	$(VENV)/bin/mypy || status=1; \
	exit $$status

# System packages for tests/slurm: a real one-node Slurm (slurm-wlm, munge) and the
# two-node cluster in network namespaces (ip from iproute2; nsenter, unshare, mount,
# hostname). Idempotent, needs root + apt-get.
SYSTEM_PACKAGES := slurm-wlm munge iproute2 util-linux mount hostname
system-deps:
	@if command -v slurmctld >/dev/null && command -v munged >/dev/null && \
	    command -v ip >/dev/null && command -v nsenter >/dev/null && \
	    command -v unshare >/dev/null && command -v mount >/dev/null && \
	    command -v hostname >/dev/null; then \
	  echo "system packages already installed: $(SYSTEM_PACKAGES)"; \
	else \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends $(SYSTEM_PACKAGES); \
	fi

bench: $(STAMP)
	$(PY) bench/run.py --quick

bench-full: $(STAMP)
	$(PY) bench/run.py --full

clean:
	rm -rf sweeps bench/out .pytest_cache
