"""cqlite-py (an independent Rust SSTable reader with Python bindings) full scan of the canonical events
table of a `funnel gen` dataset, streamed, as the baseline of bench/scan.sh. Prints one JSON line.
usage: scan_cqlite.py DATA_DIR [MAX_SECONDS]
cqlite is given the events table directory and the snapshot's schema.cql; the scan stops after MAX_SECONDS
(default 120) and reports the rate so far (rows/s), since a full pass can take long."""
import glob, json, os, sys, time

import cqlite

data = sys.argv[1]
limit = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
snap = sorted(glob.glob(os.path.join(data, "**", "events-*", "snapshots", "*"), recursive=True))[0]
table_dir = os.path.dirname(os.path.dirname(snap))  # cqlite reads the table directory (and its snapshot)
db = cqlite.open(table_dir, schema=os.path.join(snap, "schema.cql"))
cols = "app_id, actor_id, ts, event_id, ip, name, props, user_agent"
t0 = time.perf_counter()
n = 0
complete = True
for row in db.execute_streaming(f"SELECT {cols} FROM tracking.events"):
    n += 1
    if n % 100000 == 0 and time.perf_counter() - t0 > limit:
        complete = False
        break
secs = time.perf_counter() - t0
print(json.dumps({"mode": "cqlite_full", "rows": n, "complete": complete, "seconds": secs, "rows_per_s": n / secs}))
