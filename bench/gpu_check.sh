#!/usr/bin/env bash
# One prepared GPU session: the gpu-marked tests, then a short throughput / MFU check of a
# ResNeXt-101 32x8d at bf16 under each strategy. Figures go to $OUT (default ./gpu_check).
#   OUT=/some/dir bash bench/gpu_check.sh [--dry_run]   (--dry_run: CPU, tiny model)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
DRY=0; [ "${1:-}" = "--dry_run" ] && DRY=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$PY" - <<'PYEOF' > "$OUT/env.json" 2>&1
import json, torch
out = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
if out["cuda"]:
    out["gpu"] = torch.cuda.get_device_name(0)
for mod in ("deepspeed", "fairscale"):
    try:
        out[mod] = __import__(mod).__version__
    except Exception as exc:  # recorded, not fatal: its strategies will report FAILED
        out[mod] = f"missing: {exc}"
print(json.dumps(out))
PYEOF
cat "$OUT/env.json"

if [ "$DRY" = 1 ]; then
  DEVICE=cpu; MODEL=tiny; SIZE=16; BATCH=16; STEPS=4; PREC=bf16; TESTS="-m gpu --co"
else
  DEVICE=cuda; MODEL=resnext101_32x8d; SIZE=224; BATCH=64; STEPS=12; PREC=bf16; TESTS="-m gpu"
fi

timeout 300 "$PY" -m pytest -q -p no:cacheprovider $TESTS tests/scaling > "$OUT/gpu_tests.txt" 2>&1
echo "gpu tests rc=$?" | tee -a "$OUT/gpu_tests.txt"; tail -5 "$OUT/gpu_tests.txt"

timeout 420 "$PY" bench/bench_engine.py --device "$DEVICE" --nproc 1 --model "$MODEL" \
  --image_size "$SIZE" --batch "$BATCH" --steps "$STEPS" --precision "$PREC" --threads 4 \
  --strategies ddp fsdp2_z3 fsdp2_z2 fsdp1_z3 deepspeed_z2 deepspeed_z3 fairscale_z2 \
  --json "$OUT/throughput.json" 2>&1 | tee "$OUT/throughput.txt"
