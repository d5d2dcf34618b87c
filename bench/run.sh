#!/usr/bin/env bash
# Issue 5 benchmark, one run, one dataset (>= 20 M events): `funnel run` end to end from the SSTables
# (discover, decode, merge, funnels, facts published to SQLite) vs chdb's windowFunnel over the same live
# events already loaded into a chdb MergeTree table (only the query is timed). Peak RSS of both.
#   bench/run.sh [DATA=bench-data/ev] [THREADS=2]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$root/bench-data/ev}"
threads="${2:-2}"
cargo build --release -p cli --manifest-path "$root/Cargo.toml" >&2
bin="$root/target/release/funnel"
[ -d "$data" ] || "$root/bench/scan.sh" "$data" >/dev/null  # generates the dataset
now=2026-11-01
out="$(mktemp -d)"
cat >"$out/funnels.toml" <<'TOML'
[[funnel]]
id = "activation"
window = "7d"
steps = [ { event = "install" }, { event = "signup" }, { event = "purchase" } ]
TOML
/usr/bin/time -v "$bin" run --data "$data" --funnels "$out/funnels.toml" --facts "sqlite:$out/facts.db" \
  --now "$now" --threads "$threads" --quiet >"$out/run.out" 2>"$out/run.err"
# The same live events for chdb (merged by our reader: what Cassandra would answer at --now).
"$bin" dump "$data" --table tracking.events --columns app_id,actor_id,ts,name --now "$now" >"$out/events.jsonl"
"$root/.tools/venv/bin/python" "$root/bench/run_chdb.py" "$out/events.jsonl" >"$out/chdb.json"
python3 - "$out" <<'PY'
import json, re, sys, os
d = sys.argv[1]
err = open(os.path.join(d, "run.err")).read()
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", err).group(1)
parts = [float(x) for x in wall.split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) / 1024
c = json.load(open(os.path.join(d, "chdb.json")))
print(open(os.path.join(d, "run.out")).read().rstrip())
print([l for l in err.splitlines() if l.startswith("run ")][0])
print(f"funnel run (end to end from SSTables): {secs:.2f} s, peak RSS {rss:.0f} MiB")
print(f"chdb windowFunnel on {c['events']} pre-loaded events: query {c['query_seconds']:.2f} s (load {c['load_seconds']:.1f} s not counted), peak RSS {c['peak_rss_mib']:.0f} MiB")
print(f"ratio funnel run / chdb query: {secs / c['query_seconds']:.2f} (target <= 1)")
print("chdb levels:", c["result"])
PY
