#!/usr/bin/env bash
# Short coverage-guided fuzz run of the row decoder (cargo fuzz / libFuzzer). Not part of CI.
#   bench/fuzz.sh [SECONDS]    (default 120)
# cargo-fuzz is installed into .tools/ once. The stable toolchain is used with RUSTC_BOOTSTRAP=1 for the
# sanitizer flags cargo-fuzz passes (no nightly toolchain can be fetched on these machines).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-120}"
if [ ! -x .tools/bin/cargo-fuzz ]; then
  cargo install cargo-fuzz --locked --root .tools
fi
mkdir -p fuzz/corpus/row_decoder
# Seed the corpus with real Data.db files (uncompressed 3.11 tables).
for f in ../shared/sstables/cassandra-3.11-types/data/testtypes1/*/md-1-big-Data.db ../shared/sstables/cassandra-3.11-types/data/testalltypes/*/md-1-big-Data.db; do
  cp "$f" "fuzz/corpus/row_decoder/$(basename "$(dirname "$f")").db"
done
cd fuzz
RUSTC_BOOTSTRAP=1 ../.tools/bin/cargo-fuzz run row_decoder corpus/row_decoder -- -max_total_time="$secs" -rss_limit_mb=4096
