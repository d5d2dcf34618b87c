#!/usr/bin/env bash
# Writer throughput and peak memory: generates ~SIZE_GB of uncompressed SSTable data with `funnel gen`
# (release build) and prints MB/s (uncompressed) and the peak resident set size.
#   bench/writer.sh [SIZE_GB=1] [COMPRESSION=lz4] [OUT=bench-data/writer]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
size_gb="${1:-1}"
compression="${2:-lz4}"
out="${3:-$root/bench-data/writer}"
cargo build --release -p cli --manifest-path "$root/Cargo.toml" >&2
bin="$root/target/release/funnel"
# ~3.4 kB uncompressed per actor at 20 events/actor (events + hits + conversions), measured on small runs.
actors=$(python3 -c "print(int($size_gb * 1e9 / 3400))")
rm -rf "$out"
mkdir -p "$(dirname "$out")" # a fresh clone has no bench-data/ yet; the tally goes next to OUT
/usr/bin/time -v "$bin" gen --out "$out" --actors "$actors" --events-per-actor 20 --days 30 --sstables 4 \
  --compression "$compression" --seed 1 --end-date 2026-11-01 --quiet >"$out.json" 2>"$out.time"
python3 - "$out.json" "$out.time" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
t = open(sys.argv[2]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
mb = r["uncompressed_bytes"] / 1e6
print(f"uncompressed {mb:.0f} MB, on disk {r['data_bytes']/1e6:.0f} MB, {r['seconds']:.1f} s, "
      f"{mb / r['seconds']:.1f} MB/s, peak RSS {rss/1024:.0f} MiB")
PY
