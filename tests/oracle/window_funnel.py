#!/usr/bin/env python3
"""ClickHouse (chdb, in-process) as the outside oracle for `ordered` and `strict_order` funnels.

Usage: window_funnel.py EVENTS_CSV SPEC_JSON OUT_DIR

EVENTS_CSV: header-less CSV rows `actor,ts_ms,name,k` (one event per row).
SPEC_JSON:  [{"id": "f1", "window_ms": 5000, "mode": "ordered"|"strict_order",
              "conds": ["name = 'a'", "name IN ('b','c')", ...]}, ...]
Writes OUT_DIR/<id>.levels.csv (`actor,level` for every actor, sorted by actor) and
OUT_DIR/<id>.totals.csv (`step,actors`: actors whose level >= step, for step 1..N), both computed
by ClickHouse's windowFunnel.
"""
import json
import os
import sys

import chdb


def main() -> int:
    events, spec_path, out_dir = sys.argv[1:4]
    with open(spec_path) as f:
        specs = json.load(f)
    source = f"file('{events}', 'CSV', 'actor String, ts UInt64, name String, k String')"
    for spec in specs:
        mode = spec["mode"]
        params = str(int(spec["window_ms"]))
        if mode == "strict_order":
            params += ", 'strict_order'"
        elif mode != "ordered":
            raise SystemExit(f"unsupported mode {mode}")
        conds = ", ".join(spec["conds"])
        per_actor = (
            f"SELECT actor, windowFunnel({params})(ts, {conds}) AS level "
            f"FROM {source} GROUP BY actor"
        )
        levels = chdb.query(f"{per_actor} ORDER BY actor", "CSV").bytes().decode()
        with open(os.path.join(out_dir, f"{spec['id']}.levels.csv"), "w") as f:
            f.write(levels)
        n = len(spec["conds"])
        totals = chdb.query(
            f"SELECT step, countIf(level >= step) FROM ({per_actor}) "
            f"ARRAY JOIN range(1, {n + 1}) AS step GROUP BY step ORDER BY step",
            "CSV",
        ).bytes().decode()
        with open(os.path.join(out_dir, f"{spec['id']}.totals.csv"), "w") as f:
            f.write(totals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
