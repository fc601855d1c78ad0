#!/usr/bin/env bash
# Install time, pip against uv: a new venv plus `pip install -e '.[dev]'` (the Makefile's
# $(VENV)/.installed step with INSTALLER=pip, then INSTALLER=uv), in turn, PAIRS times, so
# the machine's load falls on both alike. Removing the previous venv and flushing the disk
# (sync) happen before each timed install, outside it: pip writes ~5.5 GB that uv hardlinks
# from its cache, and that write-back would otherwise land in the next install's time.
# Run it once first to warm both caches (pip's wheel cache, uv's cache). Prints each pair
# and the median pip/uv ratio of wall seconds. Usage: bench/install_time.sh [PAIRS] [DIR]
set -euo pipefail
pairs="${1:-3}"
dir="${2:-/tmp/wsl-scaling-install-bench}"
cd "$(dirname "$0")/.."
mkdir -p "$dir"
venv="$dir/venv"
ratios=()
printf '%-5s %-9s %9s %9s %9s\n' pair installer wall_s user_s sys_s
for pair in $(seq 1 "$pairs"); do
  declare -A wall=()
  for installer in pip uv; do
    rm -rf "$venv"
    sync
    /usr/bin/time -f '%e %U %S' -o "$dir/time" \
      make -s VENV="$venv" INSTALLER="$installer" "$venv/.installed" >"$dir/$installer.log" 2>&1
    read -r w u s <"$dir/time"
    wall[$installer]=$w
    printf '%-5s %-9s %9s %9s %9s\n' "$pair" "$installer" "$w" "$u" "$s"
  done
  ratios+=("$(python3 -c "print(${wall[pip]} / ${wall[uv]})")")
  printf '%-5s pip/uv wall %.2f\n' "$pair" "${ratios[-1]}"
done
python3 -c "import statistics, sys; print(f'median pip/uv wall ratio over {len(sys.argv)-1} pairs:'
                                          f' {statistics.median(map(float, sys.argv[1:])):.2f}')" \
  "${ratios[@]}"
rm -rf "$venv"
