#!/usr/bin/env bash
# The one prepared script for a single-GPU machine (H100 / H200; torch and torchvision
# preinstalled, no network). Packages it lacks travel as wheels in .whl/ (made here by
# bench/gpu_wheels.sh). It runs the gpu-marked tests, then bench/gpu_bench.py: ResNeXt-101
# 32x8d, 224 px, bf16, the engine under ddp / fsdp2 / deepspeed ZeRO-2 (NCHW and
# channels_last, eager and torch.compile) against a plain torchvision AMP loop.
# Figures go to $OUT (default ./gpu_check). At most 5 minutes (225 s bench, 60 s tests, 15 s set-up).
#   OUT=/some/dir bash bench/gpu_check.sh [--dry_run]
#   (--dry_run: CPU, tiny model, no torch.compile, whose CPU build takes minutes; CI runs it)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
DRY=0; [ "${1:-}" = "--dry_run" ] && DRY=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ "$DRY" = 0 ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

"$PY" - "$OUT/env.json" <<'PYEOF' 2>&1 | grep -v WARNING
import json, sys, torch, torchvision
out = {"torch": torch.__version__, "torchvision": torchvision.__version__,
       "cuda": torch.cuda.is_available()}
if out["cuda"]:
    out["gpu"] = torch.cuda.get_device_name(0)
for mod in ("deepspeed", "fairscale", "jsonargparse", "datasets"):
    try:
        out[mod] = __import__(mod).__version__
    except Exception as exc:  # recorded, not fatal: its strategies will report FAILED
        out[mod] = f"missing: {exc}"
with open(sys.argv[1], "w") as handle:  # the file holds the JSON alone (libraries log)
    json.dump(out, handle)
PYEOF
cat "$OUT/env.json"

if [ "$DRY" = 1 ]; then TESTS="-m gpu --co"; BENCH="--dry_run --no_compile"; else TESTS="-m gpu"; BENCH=""; fi
# the bench first (the figures the issue asks for), saved phase by phase: eager cases, then
# the compiled ones only if --budget_s leaves time for their compile
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
timeout 225 "$PY" bench/gpu_bench.py $BENCH --budget_s 195 --out "$OUT" 2>&1 \
  | grep -v "Warning\|warn(" | tee "$OUT/gpu_bench.txt"
rc=${PIPESTATUS[0]}
echo "gpu bench rc=$rc"
timeout 60 "$PY" -m pytest -q -p no:cacheprovider $TESTS tests/scaling > "$OUT/gpu_tests.txt" 2>&1
trc=$?
echo "gpu tests rc=$trc" | tee -a "$OUT/gpu_tests.txt"; tail -5 "$OUT/gpu_tests.txt"
[ "$DRY" = 1 ] && [ "$trc" = 5 ] && trc=0  # dry run: the gpu tests are deselected on a CPU
[ "$rc" = 0 ] && rc=$trc
exit "$rc"
