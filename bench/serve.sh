#!/usr/bin/env bash
# `funnel serve` under load (issue 22): p50 / p99 latency of the funnel page and the funnel API with
# CLIENTS concurrent keep-alive clients, on a fact store of 90 days × 3 apps × 20 funnels — first idle
# (the baseline), then while computations run (a funnel is posted, computed over all history by the batch
# job, and posted again as soon as it is done, for the whole measurement). Prints both and their ratio.
# Target: p99 <= 50 ms while a computation runs.
#   bench/serve.sh [CLIENTS=50] [SECONDS=20]      ACTORS=N: actors of the generated data (default 30000)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
clients="${1:-50}"
seconds="${2:-20}"
target="$root/target/bench"
# Release without fat LTO (the workspace default), so the build stays short on a shared machine.
(cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release -p cli -p serve --bins --examples \
  --config profile.release.lto=false --config profile.release.codegen-units=16 \
  --config profile.release.debug=0 >&2)
bin="$target/release/funnel"
load="$target/release/examples/serve_load"
work="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

now=2026-11-02
"$bin" gen --out "$work/data" --actors "${ACTORS:-30000}" --days 90 --apps 3 --seed 11 \
  --end-date 2026-11-01 --ttl 0 --quiet >/dev/null
# 20 funnels: every mode, windows from an hour to two weeks, half with a breakdown.
python3 - "$work/funnels.toml" <<'PY'
import sys
steps = [["install", "signup", "purchase"], ["install", "open", "purchase"], ["open", "add_to_cart", "purchase"],
         ["install", "view_item", "add_to_cart", "purchase"], ["signup", "purchase"]]
modes = ["ordered", "strict_order", "unordered", "ordered"]
windows = ["1h", "24h", "7d", "14d"]
with open(sys.argv[1], "w") as f:
    for i in range(20):
        f.write(f'[[funnel]]\nid = "f{i:02}"\nwindow = "{windows[i % 4]}"\nmode = "{modes[i % 4]}"\n')
        if i % 2 == 0:
            f.write('breakdown = "props.os"\n')
        f.write("steps = [" + ", ".join(f'{{ event = "{s}" }}' for s in steps[i % 5]) + "]\n\n")
PY
"$bin" run --data "$work/data" --funnels "$work/funnels.toml" --facts "sqlite:$work/facts.db" \
  --now "$now" --quiet >/dev/null
"$bin" serve --facts "sqlite:$work/facts.db" --funnels "$work/funnels.toml" --data "$work/data" \
  --listen 127.0.0.1:0 --now "$now" >"$work/serve.out" 2>"$work/serve.err" &
server=$!
for _ in $(seq 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
base="$(sed -n 's/^listening on //p' "$work/serve.out")"
addr="${base#http://}"
paths=()
for i in 03 08 15; do
  for app in app-001 app-002 app-003; do
    paths+=("/funnels/f$i?app=$app" "/api/funnels/f$i?app=$app")
  done
done
curl -sf "$base/funnels/f03?app=app-001" | grep -q 'id="steps"' || { echo "the funnel page shows no steps" >&2; exit 1; }

# Idle: the baseline.
"$load" "$addr" "$clients" "$seconds" "${paths[@]}" >"$work/idle.jsonl"

# Busy: computations run back to back during the whole measurement.
"$load" "$addr" "$clients" "$seconds" "${paths[@]}" >"$work/busy.jsonl" &
loader=$!
jobs_done=0
while kill -0 "$loader" 2>/dev/null; do
  version="$(curl -sf "$base/api/funnels" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')"
  body="$(python3 -c 'import json,sys; print(json.dumps({"version": sys.argv[1], "toml": "[[funnel]]\nid = \"bench\"\nwindow = \"%dd\"\nsteps = [{ event = \"install\" }, { event = \"purchase\" }]\n" % (1 + int(sys.argv[2]) % 13)}))' "$version" "$jobs_done")"
  job="$(curl -sf -X POST "$base/api/funnels" -H 'Content-Type: application/json' -d "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["id"])')"
  until curl -sf "$base/api/jobs/$job" | grep -q '"state":"\(done\|failed\)"'; do sleep 0.2; done
  curl -sf "$base/api/jobs/$job" | grep -q '"state":"done"' || { echo "job $job failed" >&2; exit 1; }
  jobs_done=$((jobs_done + 1))
done
wait "$loader"

python3 - "$work/idle.jsonl" "$work/busy.jsonl" "$clients" "$seconds" "$jobs_done" <<'PY'
import json, sys
def load(p):
    rows = [json.loads(l) for l in open(p)]
    out = {}
    for kind in ("page", "api"):
        sel = [r for r in rows if r["path"].startswith("/api/") == (kind == "api")]
        out[kind] = {
            "requests": sum(r["requests"] for r in sel),
            "errors": sum(r["errors"] for r in sel),
            # per path percentiles; the worst path counts
            "p50": max(r["p50_ms"] for r in sel),
            "p99": max(r["p99_ms"] for r in sel),
        }
    return out
idle, busy = load(sys.argv[1]), load(sys.argv[2])
clients, seconds, jobs = sys.argv[3], sys.argv[4], sys.argv[5]
print(f"funnel serve: {clients} clients for {seconds} s each phase, 9 funnel pages + 9 funnel API paths "
      f"(90 days x 3 apps x 20 funnels); busy phase: {jobs} computations finished meanwhile")
for kind in ("page", "api"):
    i, b = idle[kind], busy[kind]
    print(f"{kind:>4}: idle p50 {i['p50']:.1f} ms p99 {i['p99']:.1f} ms ({i['requests']} requests, {i['errors']} errors) | "
          f"computing p50 {b['p50']:.1f} ms p99 {b['p99']:.1f} ms ({b['requests']} requests, {b['errors']} errors) | "
          f"ratio p99 computing/idle {b['p99'] / max(i['p99'], 1e-9):.2f}; target p99 <= 50 ms: "
          f"{'met' if b['p99'] <= 50 else 'NOT met'}")
PY
