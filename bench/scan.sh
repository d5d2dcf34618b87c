#!/usr/bin/env bash
# Issue 4 benchmark, one run, one dataset: merged full scan and funnel-column projection of the canonical
# `events` table (nb, LZ4, >= 1 GB uncompressed) on 1 and 2 threads, a decompress-only pass over the same
# chunks, and cqlite-py's full scan of the same files; prints rows/s and the ratios.
#   bench/scan.sh [DATA=bench-data/ev] [ACTORS=1900000: about 21 M events, 4.2 GB uncompressed]
# Generates DATA with `funnel gen` when missing (git-ignored bench-data/). REPS=N: best of N runs per mode.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$root/bench-data/ev}"
actors="${2:-1900000}"
cargo build --release -p cli --manifest-path "$root/Cargo.toml" >&2
bin="$root/target/release/funnel"
if [ ! -d "$data" ]; then
  "$bin" gen --out "$data" --actors "$actors" --events-per-actor 20 --days 30 --sstables 4 --compression lz4 \
    --format nb --seed 1 --end-date 2026-11-01 --quiet >"$data.json"
fi
now=2026-11-01
out="$(mktemp -d)"
# Best of REPS runs (default 3): these 2-core machines are shared and noisy; the fastest run is the one
# least disturbed by neighbours.
reps="${REPS:-3}"
run() {
  local best="" line
  for _ in $(seq "$reps"); do
    line=$("$bin" scan "$data" --table tracking.events --now "$now" "$@" | tail -1)
    if [ -z "$best" ] || python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["seconds"] < json.loads(sys.argv[2])["seconds"] else 1)' "$line" "$best"; then
      best=$line
    fi
  done
  echo "$best"
}
run --decompress-only --threads 1 >"$out/dec1"
run --threads 1 >"$out/full1"
run --threads 1 --columns name,props >"$out/proj1"
run --decompress-only --threads 2 >"$out/dec2"
run --threads 2 >"$out/full2"
run --threads 2 --columns name,props >"$out/proj2"
"$root/.tools/venv/bin/python" "$root/bench/scan_cqlite.py" "$data" >"$out/cqlite"
python3 - "$out" <<'PY'
import json, sys, os
d = sys.argv[1]
r = {k: json.loads(open(os.path.join(d, k)).read().strip().splitlines()[-1]) for k in os.listdir(d)}
mb = r["full1"]["uncompressed_bytes"] / 1e6
print(f"events table: {r['full1']['sstables']} SSTables, {mb:.0f} MB uncompressed, {r['full1']['row_versions_read']} rows read, {r['full1']['live_rows']} live merged rows")
for k in ["dec1", "dec2", "full1", "full2", "proj1", "proj2"]:
    x = r[k]
    print(f"{k:7} {x['seconds']:7.2f} s  {x.get('rows_per_s', 0)/1e6:7.2f} M rows/s  {mb / x['seconds']:8.1f} MB/s uncompressed")
x = r["cqlite"]
print(f"cqlite  {x['seconds']:7.2f} s  {x['rows_per_s']/1e6:7.2f} M rows/s  ({x['rows']} rows, {'complete' if x['complete'] else 'stopped early'})")
c = r["cqlite"]["rows_per_s"]
print(f"projection vs cqlite full scan, 1 thread: {r['proj1']['rows_per_s'] / c:.1f}x (target >= 5x)")
print(f"full merged scan vs cqlite, 1 thread:      {r['full1']['rows_per_s'] / c:.1f}x")
print(f"speed-up 1 -> 2 threads: full {r['full1']['seconds'] / r['full2']['seconds']:.2f}x, projection {r['proj1']['seconds'] / r['proj2']['seconds']:.2f}x (target >= 1.8x)")
print(f"projection / decompress-only time, 1 thread: {r['proj1']['seconds'] / r['dec1']['seconds']:.2f}x (target <= 3x)")
PY
