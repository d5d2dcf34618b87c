#!/usr/bin/env bash
# funnel export's parallel scaling: the same export with 1 and 2 threads, alternating, REPS pairs; prints
# each run's wall and CPU seconds, then the ratios (2 threads / 1 thread) of the best runs.
#   bench/export.sh [DATA] [TABLE] [FORMAT]   (default: bench-data/ev tracking.events parquet)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$root/bench-data/ev}"
table="${2:-tracking.events}"
format="${3:-parquet}"
reps="${REPS:-2}"
target="${BENCH_TARGET:-$root/target/bench-export}"
CARGO_TARGET_DIR="$target" cargo build --release --locked -q -p export --example export_bench \
  --config profile.release.lto=false --config profile.release.codegen-units=16 --config profile.release.debug=0
bin="$target/release/examples/export_bench"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
now="${NOW:-1793500000}" # seconds; the default is bench-data's last day (its rows have 60-day TTLs)
declare -A best_wall best_cpu
for i in $(seq "$reps"); do
  for t in 1 2; do
    line="$(/usr/bin/time -f '%e %U %S' -o "$out/time" "$bin" "$data" "$table" "$format" "$out/x" "$t" "$now")"
    read -r wall user sys < "$out/time"
    cpu="$(echo "$user + $sys" | bc)"
    echo "threads=$t wall=${wall}s cpu=${cpu}s $line"
    if [ -z "${best_wall[$t]:-}" ] || [ "$(echo "$wall < ${best_wall[$t]}" | bc)" = 1 ]; then
      best_wall[$t]=$wall; best_cpu[$t]=$cpu
    fi
  done
done
echo "best wall: 1 thread ${best_wall[1]}s, 2 threads ${best_wall[2]}s, ratio $(echo "scale=3; ${best_wall[2]} / ${best_wall[1]}" | bc)"
echo "their CPU: 1 thread ${best_cpu[1]}s, 2 threads ${best_cpu[2]}s, ratio $(echo "scale=3; ${best_cpu[2]} / ${best_cpu[1]}" | bc)"
