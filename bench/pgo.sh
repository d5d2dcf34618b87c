#!/usr/bin/env bash
# A profile-guided (PGO) release build of `funnel`, the same code as `cargo build --release` laid out by
# the compiler for the paths a real job takes:
#   1. an instrumented release build (target/pgo-gen) runs a training job: `funnel run` over a small
#      dataset of its own (`funnel gen`, 20 000 actors, seed 7: not the benchmark's data) and the
#      README's main job over testdata/ (every funnel mode, conversions, a shuffle);
#   2. llvm-profdata (rustup's llvm-tools component, added when missing) merges the profiles;
#   3. the release build is redone with them (target/pgo).
# Prints the optimised binary's path on stdout (progress on stderr).
#   bench/pgo.sh            -> target/pgo/release/funnel
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" # (cargo reads .cargo/config.toml from the working directory)
host="$(rustc -vV | sed -n 's/^host: //p')"
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata" ]; then
  rustup component add llvm-tools >&2
fi
prof="$root/target/pgo-profile"
rm -rf "$prof"
mkdir -p "$prof/raw"
echo "pgo: instrumented build (target/pgo-gen)" >&2
# (The profile flags join the workspace's own, .cargo/config.toml's target CPU, through --config.)
cargo build --config "target.$host.rustflags=['-Cprofile-generate=$prof/raw']" --release -p cli --manifest-path "$root/Cargo.toml" --target-dir "$root/target/pgo-gen" >&2
gen="$root/target/pgo-gen/release/funnel"
train="$root/target/pgo-train"
if [ ! -d "$train/data" ]; then
  mkdir -p "$train"
  "$gen" gen --out "$train/data" --actors 20000 --events-per-actor 20 --days 30 --sstables 4 \
    --compression lz4 --format nb --seed 7 --end-date 2026-11-01 --quiet >"$train/data.json"
fi
# Only the training runs' profiles count (not the build scripts' nor the generator's).
rm -rf "$prof/raw"
mkdir -p "$prof/raw"
echo "pgo: training runs" >&2
rm -f "$train/facts.db" "$train/readme.db"
"$gen" run --data "$train/data" --funnels "$root/bench/activation.toml" --facts "sqlite:$train/facts.db" \
  --now 2026-11-01 --threads 2 --quiet >&2
"$gen" run --data "$root/testdata/snapshot" --funnels "$root/testdata/funnels.toml" \
  --facts "sqlite:$train/readme.db" --quiet >&2
"$profdata" merge -o "$prof/merged.profdata" "$prof/raw"
echo "pgo: optimised build (target/pgo)" >&2
cargo build --config "target.$host.rustflags=['-Cprofile-use=$prof/merged.profdata']" --release -p cli --manifest-path "$root/Cargo.toml" --target-dir "$root/target/pgo" >&2
echo "$root/target/pgo/release/funnel"
