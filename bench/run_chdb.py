"""chdb (in-process ClickHouse) baseline for bench/run.sh: loads the events of a JSONEachRow file
(`funnel dump --columns app_id,actor_id,ts,name`) into a MergeTree table, then times only the
windowFunnel query (install -> signup -> purchase within 7 days, actors per level per app).
Prints one JSON line with the load time, the query time and the process's peak RSS.
usage: run_chdb.py EVENTS_JSONL"""
import json, resource, sys, tempfile, time

from chdb import session

path = sys.argv[1]
s = session.Session(tempfile.mkdtemp(prefix="chdb-"))
s.query("CREATE DATABASE IF NOT EXISTS b")
s.query("CREATE TABLE b.events (app_id String, actor_id String, ts DateTime64(3, 'UTC'), name String) "
        "ENGINE = MergeTree ORDER BY (app_id, actor_id, ts)")
t0 = time.perf_counter()
s.query(f"INSERT INTO b.events SELECT app_id, actor_id, parseDateTime64BestEffort(ts, 3, 'UTC'), name "
        f"FROM file('{path}', 'JSONEachRow', 'app_id String, actor_id String, ts String, name String')")
load = time.perf_counter() - t0
n = int(str(s.query("SELECT count() FROM b.events", "CSV")).strip())
q = """SELECT app_id, level, count() AS actors FROM (
  SELECT app_id, actor_id, windowFunnel(604800000)(toUInt64(toUnixTimestamp64Milli(ts)),
         name = 'install', name = 'signup', name = 'purchase') AS level
  FROM b.events GROUP BY app_id, actor_id)
WHERE level > 0 GROUP BY app_id, level ORDER BY app_id, level"""
t0 = time.perf_counter()
res = str(s.query(q, "CSV"))
secs = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"mode": "chdb_windowFunnel", "events": n, "load_seconds": load, "query_seconds": secs,
                  "peak_rss_mib": rss, "result": res.strip().splitlines()}))
