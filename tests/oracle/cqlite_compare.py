"""Independent-reader oracle for `funnel gen`: reads one generated table with cqlite (PyPI `cqlite-py`, a
separate Rust implementation of the SSTable format) and compares every row with `funnel dump`'s JSON lines.

usage: cqlite_compare.py TABLE_DIR SCHEMA_CQL KEYSPACE.TABLE DUMP_JSONL
prints one JSON object: {"cqlite_rows": n, "dump_rows": m, "only_cqlite": [...], "only_dump": [...], "differ": [...]}
and exits 1 when the row sets differ.
"""
import datetime
import ipaddress
import json
import sys
import uuid

import cqlite


def norm(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return int(round(v.timestamp() * 1000))
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(v)
    if isinstance(v, dict):
        return {str(k): norm(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    return v


def norm_dump(col, v, ts_cols):
    if col in ts_cols and isinstance(v, str):
        return int(round(datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() * 1000))
    if v == {}:
        return None
    return v


def main():
    table_dir, schema, qualified, dump_path = sys.argv[1:5]
    db = cqlite.open(table_dir, schema=schema)
    cols = [c.name for c in db.execute(f"SELECT * FROM {qualified} LIMIT 1").columns]
    # An explicit column list: cqlite's `SELECT *` full scan flattens non-frozen maps.
    res = db.execute(f"SELECT {', '.join(cols)} FROM {qualified}")
    ts_cols = {c.name for c in res.columns if c.data_type == "Timestamp"}
    key_of = None
    cq = {}
    for row in res.rows:
        d = {k: norm(v) for k, v in row.items()}
        d = {k: (None if v == {} else v) for k, v in d.items()}
        cq[json.dumps(d, sort_keys=True)] = d
    dump = {}
    with open(dump_path) as f:
        for line in f:
            if not line.strip():
                continue
            d = json.loads(line)
            d = {k: norm_dump(k, d.get(k), ts_cols) for k in cols}
            dump[json.dumps(d, sort_keys=True)] = d
    only_c = sorted(set(cq) - set(dump))
    only_d = sorted(set(dump) - set(cq))
    out = {
        "cqlite_rows": len(res.rows),
        "cqlite_distinct": len(cq),
        "dump_rows": len(dump),
        "only_cqlite": only_c[:5],
        "only_dump": only_d[:5],
        "mismatches": len(only_c) + len(only_d),
    }
    print(json.dumps(out))
    sys.exit(1 if out["mismatches"] else 0)


if __name__ == "__main__":
    main()
