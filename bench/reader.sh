#!/usr/bin/env bash
# Reader benchmark: generates an events dataset with `funnel gen` (once, into bench-data/, git-ignored)
# and runs the scan benchmark on it: decompress-only vs full scan vs two-column projection vs dump.
#   bench/reader.sh [ACTORS]      (default 200000 actors ≈ a few hundred MB uncompressed)
set -euo pipefail
cd "$(dirname "$0")/.."
actors="${1:-200000}"
shift || true
out="bench-data/reader-$actors"
cargo build --release -p cli --quiet
if [ ! -d "$out" ]; then
  ./target/release/funnel gen --out "$out" --actors "$actors" --sstables 4 --seed 7
fi
events=$(find "$PWD/$out" -maxdepth 2 -type d -name 'events-*' | head -1)
cargo bench -p sstable-reader --bench scan -- "$events" --columns name,actor_id "$@"
