#!/usr/bin/env bash
# Issue 21 benchmark, one run, one dataset (>= 20 M events): the extract cache against the cold run and
# chdb's windowFunnel over the same live events pre-loaded (only its query is timed). Best of REPS
# rounds (default 3), the sides taking turns in each round: chdb query, `funnel run` without cache,
# cold `funnel run --cache` (an empty cache: every SSTable extracted), warm (every SSTable cached), and
# the rerun after one new events SSTable with ~3 % of the rows appeared (hard links of the dataset plus
# that SSTable: only it is extracted). Prints the ratios, cache bytes against Data.db bytes and the
# peak RSS of each kind of run.
#   bench/cache.sh [DATA=bench-data/ev] [THREADS=2]
#   FUNNEL=path/to/funnel: use that binary (default: a no-LTO release build, built here)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$root/bench-data/ev}"
threads="${2:-2}"
if [ -z "${FUNNEL:-}" ]; then
  # The workspace's fat-LTO release profile takes too long to build on 2 shared cores.
  (cd "$root" && cargo build --release -p cli --config profile.release.lto=false \
    --config profile.release.codegen-units=16 --config profile.release.debug=0 >&2)
  FUNNEL="$root/target/release/funnel"
  build="release, no LTO, 16 codegen units"
else
  build="$FUNNEL"
fi
now=2026-11-01
work="$(mktemp -d "${TMPDIR:-/tmp}/funnel-cache-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# The dataset plus one new events SSTable (~3 % of its rows), as hard links: nothing is copied.
"$FUNNEL" gen --out "$work/new" --actors 33000 --events-per-actor 20 --days 30 --sstables 1 \
  --seed 2121 --end-date "$now" --quiet >/dev/null
cp -al "$data" "$work/data2"
events_dir="$(find "$work/data2" -path '*/events-*/snapshots/*' -name '*-Data.db' -printf '%h\n' | head -1)"
for f in "$work"/new/tracking/events-*/snapshots/*/nb-1-big-*; do
  ln "$f" "$events_dir/$(basename "$f" | sed 's/^nb-1-big-/nb-100-big-/')"
done
"$FUNNEL" dump "$data" --table tracking.events --columns app_id,actor_id,ts,name --now "$now" \
  >"$work/events.jsonl"
"$root/.tools/venv/bin/python" "$root/bench/cache_runs.py" "$work" "${REPS:-3}" "$build" -- \
  "$FUNNEL" run --funnels "$root/bench/activation.toml" --now "$now" --threads "$threads" --quiet \
  --data "$data" ::: "$work/data2"
