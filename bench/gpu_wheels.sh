#!/usr/bin/env bash
# Before a GPU session: download, here, the wheels the GPU machine lacks (it has torch 2.11
# and torchvision 0.26 but no network) into .whl/ (ignored by git), for Python 3.12 x86-64.
# The device call then carries .whl and bench/gpu_check.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
PLAT="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64"
for spec in deepspeed==0.19.8 fairscale==0.4.13 jsonargparse==4.53.0 hjson ninja py-cpuinfo \
            msgpack einops pydantic pydantic-core annotated-types typing-inspection \
            docstring-parser typeshed-client typing-extensions; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp $PLAT -d .whl "$spec" 2>/dev/null \
  || python3 -m pip download -q --no-deps --python-version 3.12 -d .whl "$spec"
done
# deepspeed and fairscale publish source only: build them into wheels here (pure Python;
# DeepSpeed's ops are compiled at run time, where they are needed), since the GPU side
# installs *.whl alone, offline
PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python
for sdist in .whl/*.tar.gz; do
  [ -e "$sdist" ] || continue
  DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl "$sdist" \
    && rm -f "$sdist"
done
ls -la .whl
