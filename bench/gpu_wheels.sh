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
            docstring-parser typeshed-client; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp $PLAT -d .whl "$spec" 2>/dev/null \
  || python3 -m pip download -q --no-deps --python-version 3.12 -d .whl "$spec"
done
ls -la .whl
