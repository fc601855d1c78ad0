# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo paper-mini test test-fast test-unit lint bench bench-full install clean help system-deps

help:
	@echo "make demo       create $(VENV) if missing, install, run the demo study, print the report path"
	@echo "make paper-mini create $(VENV) if missing, install, run configs/paper-mini.yaml (3 worlds,"
	@echo "                the six findings' axes) two runs at a time, print the report path"
	@echo "make install    create $(VENV) if missing and install (uv from PyPI where it works, else"
	@echo "                pip; INSTALLER=pip asks for pip), DeepSpeed's CPU comm op built in"
	@echo "make test       create $(VENV) if missing, install, run the test suite"
	@echo "make test-unit  the tests that start no Python process (not slow, slurm or integration)"
	@echo "make test-fast  the inner loop: the tests not marked slow or slurm, on 2 workers"
	@echo "make lint       ruff, import-linter layers and mypy; fails on any finding"
	@echo "make bench      quick benchmarks (tables of ratios);  make bench-full: the long ones"
	@echo "make system-deps  (root, Debian) slurm-wlm, munge, iproute2, util-linux for the real-Slurm tests"

# The venv is (re)installed when pyproject.toml changes. The installer is uv (from PyPI, put
# into the venv by pip) where it works, else pip; `make install INSTALLER=pip` asks for pip.
# uv reads neither pip.conf nor PIP_* variables, so pip's indexes, find-links and constraints
# are handed to it as flags (PIP_AS_UV_FLAGS): without them uv would resolve past the
# machine's cap (torch<=2.14.1 here, see pyproject.toml) and download a CUDA torch instead of
# taking the wheels on local disk. unsafe-best-match picks each package's newest version
# across all indexes, as pip does (uv's default takes a package only from the first index
# that has it, which here gave older releases than pip). If uv cannot be installed or fails,
# pip installs (the fallback needs nothing from uv).
INSTALLER ?= uv
PIP_AS_UV_FLAGS = $(PY) -m pip config list | \
  sed -n "s/^[^.]*\.\(index-url\|extra-index-url\|find-links\|constraint\)='\(.*\)'$$/\1 \2/p" | \
  sort -u | while read -r key values; do \
    for v in $$values; do printf -- '--%s=%s ' "$$key" "$$v"; done; done

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if [ "$(INSTALLER)" = uv ] && $(PY) -m pip install --quiet uv && \
	    $(VENV)/bin/uv pip install --quiet --python $(PY) --index-strategy unsafe-best-match \
	      $$($(PIP_AS_UV_FLAGS)) -e '.[dev]'; then \
	  echo "installed $(VENV) with uv"; \
	else \
	  if [ "$(INSTALLER)" = uv ]; then echo "uv did not install: installing with pip"; fi; \
	  $(PY) -m pip install --quiet --upgrade pip && \
	  $(PY) -m pip install --quiet -e '.[dev]' && echo "installed $(VENV) with pip"; \
	fi
	@touch $(STAMP)

# DeepSpeed on the CPU compiles its shared-memory comm op (deepspeed_shm_comm, csrc/cpu/comm)
# with the system C++ compiler the first time a process initialises its comm backend
# (deepspeed.initialize), because PyPI's deepspeed is a source release built with no ops:
# a minute or more of CPU, into ~/.cache/torch_extensions, and again whenever a venv at
# another path has built it there. So it is built once, into the venv's deepspeed, with
# DeepSpeed's install switch DS_BUILD_SHM_COMM=1 (without build isolation: the build needs
# the venv's torch, and a setuptools with bdist_wheel); the wheel is kept in DS_WHEELS per
# deepspeed, torch, Python and machine, so later venvs install it in seconds. Nothing is built
# where the op is already in place or DeepSpeed has no such op (its CUDA accelerator). If the
# build fails, DeepSpeed compiles the op at first use as before (the tests then fail:
# tests/scaling/test_deepspeed_ops.py).
DS_OPS   := $(VENV)/.deepspeed-ops
DS_WHEELS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/wsl-scaling/deepspeed-ops
# writes to fd 3 the wheel's cache key when the venv's deepspeed lacks the op, nothing otherwise
# (deepspeed logs to stdout)
DS_OP_MISSING = import os, platform, sys, torch, deepspeed; \
  from deepspeed.accelerator import get_accelerator; \
  from deepspeed.git_version_info import installed_ops; \
  b = get_accelerator().create_op_builder('ShareMemCommBuilder'); \
  v = sys.version_info; \
  key = f'{deepspeed.__version__}/torch{torch.__version__}-cp{v[0]}{v[1]}-{platform.machine()}'; \
  os.write(3, key.encode() if b is not None and not installed_ops.get(b.NAME) else b'')

$(DS_OPS): $(STAMP)
	@key=$$($(PY) -c "$(DS_OP_MISSING)" 3>&1 >/dev/null) || exit 1; \
	if [ -n "$$key" ]; then \
	  wheels="$(DS_WHEELS)/$$key"; tmp="$$wheels.tmp.$$$$"; \
	  if ! ls "$$wheels"/deepspeed-*.whl >/dev/null 2>&1; then \
	    echo "building DeepSpeed's CPU comm op once (a minute or more of CPU): $$wheels"; \
	    mkdir -p "$$(dirname "$$wheels")" && \
	    $(PY) -m pip install --quiet 'setuptools>=70.1' && \
	    DS_BUILD_SHM_COMM=1 $(PY) -m pip wheel --quiet --no-build-isolation --no-deps \
	      --no-cache-dir --no-binary deepspeed -w "$$tmp" "deepspeed==$${key%%/*}" && \
	    mv -T "$$tmp" "$$wheels" 2>/dev/null; rm -rf "$$tmp"; \
	  fi; \
	  $(PY) -m pip install --quiet --no-deps --force-reinstall "$$wheels"/deepspeed-*.whl || \
	    echo "DeepSpeed's CPU comm op was not built: DeepSpeed compiles it at first use"; \
	fi
	@touch $@

install: $(STAMP) $(DS_OPS)

demo: $(STAMP)
	$(VENV)/bin/scaling demo

# The six findings on a fresh world seed (configs/paper-mini.yaml): sweep, run locally two
# at a time, report with its Findings section; ends by printing the report path.
paper-mini: $(STAMP)
	$(VENV)/bin/scaling demo --sweep_file configs/paper-mini.yaml --parallel 2

# Every test; prints the packages' in-process coverage (pyproject.toml [tool.coverage]) and
# fails below its fail_under.
test: $(STAMP) $(DS_OPS)
	$(PY) -m pytest -q --cov --cov-report=term

# The inner loop: everything not marked slow or slurm, on two pytest-xdist workers (one test
# file per worker at a time, so module fixtures are built once). The full suite is `make test`.
test-fast: $(STAMP) $(DS_OPS)
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
