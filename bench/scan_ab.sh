#!/usr/bin/env bash
# A/B of two `funnel` binaries on the scan benchmark (bench/scan.sh's full and projection modes, 1
# thread): the binaries take turns within each round, N rounds, and the best and median of each are
# compared — the "no measurable slowdown" check of a change to the reader (build both the same way,
# e.g. release without LTO into two target directories). Wall time (the scan's own `seconds`) and CPU
# time (user + system, /usr/bin/time) are both compared: on a busy machine the CPU time varies less.
#   bench/scan_ab.sh OLD_BINARY NEW_BINARY [ROUNDS=7] [DATA=bench-data/ev]
# Also checks that both return the same live rows and value checksum. The machine is usually shared:
# note its load (printed per round); the best of N is the run least disturbed by neighbours.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -lt 2 ]; then
  sed -n '2,8p' "$0" >&2
  exit 2
fi
a="$1"
b="$2"
rounds="${3:-7}"
data="${4:-$root/bench-data/ev}"
[ -d "$data" ] || { echo "no $data: run bench/scan.sh once to generate it" >&2; exit 2; }
out=$(mktemp)
cpu=$(mktemp)
trap 'rm -f "$out" "$cpu"' EXIT
for i in $(seq "$rounds"); do
  echo "round $i, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  for mode in full proj; do
    extra=()
    [ "$mode" = proj ] && extra=(--columns name,props)
    # Alternate which binary goes first, so that neither always runs after the other's page-cache use.
    sides=(a b)
    [ $((i % 2)) = 0 ] && sides=(b a)
    for side in "${sides[@]}"; do
      bin=$a
      [ "$side" = b ] && bin=$b
      line=$(/usr/bin/time -f '%U %S' -o "$cpu" "$bin" scan "$data" --table tracking.events --now 2026-11-01 \
        --threads 1 "${extra[@]}" | tail -1)
      echo "$mode $side $(awk '{print $1 + $2}' "$cpu") $line" >>"$out"
    done
  done
done
python3 - "$out" "$a" "$b" <<'PY'
import json, statistics, sys
t, same = {}, {}
for l in open(sys.argv[1]):
    mode, side, cpu, js = l.split(" ", 3)
    j = json.loads(js)
    t.setdefault((mode, side, "wall"), []).append(j["seconds"])
    t.setdefault((mode, side, "cpu"), []).append(float(cpu))
    same.setdefault((mode, side), set()).add((j["live_rows"], j["checksum"]))
print(f"a = {sys.argv[2]}\nb = {sys.argv[3]}")
for mode in ("full", "proj"):
    if same[(mode, "a")] != same[(mode, "b")]:
        sys.exit(f"{mode}: the binaries disagree: a {same[(mode, 'a')]} b {same[(mode, 'b')]}")
    for kind in ("wall", "cpu"):
        a, b = t[(mode, "a", kind)], t[(mode, "b", kind)]
        print(f"{mode} {kind:4}: best a {min(a):.2f} s, b {min(b):.2f} s, b/a {min(b) / min(a):.3f}; "
              f"median a {statistics.median(a):.2f} s, b {statistics.median(b):.2f} s, "
              f"b/a {statistics.median(b) / statistics.median(a):.3f} ({len(a)} rounds)")
PY
