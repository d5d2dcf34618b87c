#!/usr/bin/env bash
# Provides .tools/bin/tansu, the Kafka-compatible broker the stream tests and benchmark run against.
#
# Order of preference (the build takes 10+ minutes on 2 cores, so it happens at most once per machine):
#   1. .tools/bin/tansu already present and runnable      -> reuse it
#   2. $HOME/.cache/funnel-engine/bin/tansu (machine cache) -> copy it into .tools/bin
#   3. build it: cargo install tansu --locked --features dynostore,libsql, with its own target dir
#      under .tools (never the workspace target/), then copy it into the machine cache.
# Set TANSU_VERSION to pin a version (default: the newest on crates.io).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
bin="$tools/bin/tansu"
cache_dir="${FUNNEL_TOOLS_CACHE:-$HOME/.cache/funnel-engine}/bin"
cached="$cache_dir/tansu"

runs() { [ -x "$1" ] && "$1" --help >/dev/null 2>&1; }

if runs "$bin"; then
  echo "tansu ready (reused): $bin"
  exit 0
fi

mkdir -p "$tools/bin"
if runs "$cached"; then
  cp "$cached" "$bin.tmp.$$"
  mv "$bin.tmp.$$" "$bin"
  echo "tansu ready (from machine cache $cached): $bin"
  exit 0
fi

version_args=()
if [ -n "${TANSU_VERSION:-}" ]; then
  version_args=(--version "$TANSU_VERSION")
fi
echo "building tansu (once per machine; 10+ minutes on 2 cores)..."
CARGO_TARGET_DIR="$tools/tansu-target" cargo install tansu "${version_args[@]}" \
  --locked --features dynostore,libsql --root "$tools"
runs "$bin" || { echo "tansu was built but $bin does not run" >&2; exit 1; }

# Keep the machine-level cache so a fresh clone on this machine does not rebuild.
mkdir -p "$cache_dir"
cp "$bin" "$cached.tmp.$$"
mv "$cached.tmp.$$" "$cached"
# The intermediate build artefacts are large and no longer needed.
rm -rf "$tools/tansu-target"
echo "tansu ready (built): $bin (cached at $cached)"
