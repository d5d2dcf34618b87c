#!/usr/bin/env bash
# Issue 4 benchmark, one run, one dataset: merged full scan and funnel-column projection of the canonical
# `events` table (nb, LZ4, >= 1 GB uncompressed) on 1 and 2 threads, a decompress-only pass over the same
# chunks, and cqlite-py's full scan of the same files; prints rows/s and the ratios.
#   bench/scan.sh [DATA=bench-data/ev] [ACTORS=1900000: about 21 M events, 4.2 GB uncompressed]
# Generates DATA with `funnel gen` when missing (git-ignored bench-data/). REPS=N: best of N runs per mode
# (default 5).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$root/bench-data/ev}"
actors="${2:-1900000}"
cargo build --release -p cli --manifest-path "$root/Cargo.toml" >&2
bin="$root/target/release/funnel"
if [ ! -d "$data" ]; then
  mkdir -p "$(dirname "$data")" # a fresh clone has no bench-data/ yet; the tally goes next to DATA
  "$bin" gen --out "$data" --actors "$actors" --events-per-actor 20 --days 30 --sstables 4 --compression lz4 \
    --format nb --seed 1 --end-date 2026-11-01 --quiet >"$data.json"
fi
now=2026-11-01
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# Best of REPS runs (default 5): these 2-core machines are shared and noisy; the fastest run is the one
# least disturbed by neighbours. The modes take turns within each round, so that a noisy spell does not
# fall on one mode's runs only.
reps="${REPS:-5}"
modes=(dec1 full1 proj1 dec2 full2 proj2)
args() {
  case "$1" in
    dec1) echo "--decompress-only --threads 1" ;;
    full1) echo "--threads 1" ;;
    proj1) echo "--threads 1 --columns name,props" ;;
    dec2) echo "--decompress-only --threads 2" ;;
    full2) echo "--threads 2" ;;
    proj2) echo "--threads 2 --columns name,props" ;;
  esac
}
for _ in $(seq "$reps"); do
  for m in "${modes[@]}"; do
    # shellcheck disable=SC2046  # the mode's flags are words
    line=$("$bin" scan "$data" --table tracking.events --now "$now" $(args "$m") | tail -1)
    if [ ! -s "$out/$m" ] || python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1])["seconds"] < json.loads(sys.argv[2])["seconds"] else 1)' "$line" "$(cat "$out/$m")"; then
      echo "$line" >"$out/$m"
    fi
  done
done
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
