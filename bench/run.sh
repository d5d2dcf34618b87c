#!/usr/bin/env bash
# Issue 5 benchmark, one run, one dataset (>= 20 M events): `funnel run` end to end from the SSTables
# (discover, decode, merge, funnels, facts published to SQLite) vs chdb's windowFunnel over the same live
# events already loaded into a chdb MergeTree table (only the query is timed). Peak RSS of both.
# The peak RSS of `funnel run` counts the pages of the mapped SSTables it touched (page cache).
#   bench/run.sh [DATA=bench-data/ev] [THREADS=2]   REPS=N: rounds (default 3), the best of each side counts
#   PGO=1: time the profile-guided build of the same code (bench/pgo.sh; about 12 minutes of building)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$root/bench-data/ev}"
threads="${2:-2}"
(cd "$root" && cargo build --release -p cli >&2) # (in the workspace: its .cargo/config.toml counts)
bin="$root/target/release/funnel"
build="cargo build --release"
if [ "${PGO:-0}" = 1 ]; then
  bin="$("$root/bench/pgo.sh")"
  build="bench/pgo.sh (profile-guided)"
fi
[ -d "$data" ] || "$root/bench/scan.sh" "$data" >/dev/null  # generates the dataset
now=2026-11-01
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT  # the dumped events alone are ~2 GB
# The same live events for chdb (merged by our reader: what Cassandra would answer at --now).
"$bin" dump "$data" --table tracking.events --columns app_id,actor_id,ts,name --now "$now" >"$out/events.jsonl"
# The chdb query and `funnel run` take turns, REPS rounds (default 3); the best of each is compared.
"$root/.tools/venv/bin/python" "$root/bench/run_chdb.py" "$out/events.jsonl" "${REPS:-3}" -- \
  "$bin" run --data "$data" --funnels "$root/bench/activation.toml" --facts "sqlite:$out/facts.db" \
  --now "$now" --threads "$threads" >"$out/chdb.json"
python3 - "$out" "$build" <<'PY'
import json, sys, os
c = json.load(open(os.path.join(sys.argv[1], "chdb.json")))
print(f"funnel binary: {sys.argv[2]}")
secs, rss = c["command_seconds"], c["command_peak_rss_mib"]
print(c["command_stdout"].rstrip())
print([l for l in c["command_stderr"].splitlines() if l.startswith("run ")][0])
times = lambda k: ", ".join(f"{t:.2f}" for t in c[k])
print(f"funnel run (end to end from SSTables): best {secs:.2f} s of {times('command_times')}; peak RSS {rss:.0f} MiB")
print(f"chdb windowFunnel on {c['events']} pre-loaded events: best query {c['query_seconds']:.2f} s of {times('query_times')} (load {c['load_seconds']:.1f} s not counted), peak RSS {c['peak_rss_mib']:.0f} MiB")
print(f"ratio funnel run / chdb query (best of each): {secs / c['query_seconds']:.2f} (target <= 1)")
print("chdb levels:", c["result"])
PY
