"""chdb (in-process ClickHouse) baseline for bench/run.sh: loads the events of a JSONEachRow file
(`funnel dump --columns app_id,actor_id,ts,name`) into a MergeTree table, then times only the
windowFunnel query (install -> signup -> purchase within 7 days, actors per level per app).

With a command after `--` (bench/run.sh passes `funnel run ...`), the query and the command take
turns, REPS rounds of each (these 2-core machines are shared and noisy: a noisy spell then falls on
both sides), and the best time of each side is reported. Prints one JSON line: load time, query
times, command times, the command's last stdout/stderr, and the peak RSS of this process (chdb) and
of the command.
usage: run_chdb.py EVENTS_JSONL [REPS] [-- COMMAND ...]"""
import atexit, json, re, resource, shutil, subprocess, sys, tempfile, time

from chdb import session

args = sys.argv[1:]
cmd = args[args.index("--") + 1:] if "--" in args else []
args = args[:args.index("--")] if "--" in args else args
path = args[0]
reps = int(args[1]) if len(args) > 1 else 1
# The session's MergeTree (~450 MB for 21 M events) goes when this process ends.
store = tempfile.mkdtemp(prefix="chdb-")
atexit.register(shutil.rmtree, store, ignore_errors=True)
s = session.Session(store)
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
query_times, cmd_times, out, cmd_rss = [], [], None, 0.0
# The command's own peak RSS, from GNU time (a forked child's rusage would count chdb's pages too).
timed = ["/usr/bin/time", "-f", "funnel-bench-maxrss-kb=%M"] + cmd
for _ in range(reps):
    t0 = time.perf_counter()
    res = str(s.query(q, "CSV"))
    query_times.append(time.perf_counter() - t0)
    if cmd:
        t0 = time.perf_counter()
        out = subprocess.run(timed, capture_output=True, text=True, check=True)
        cmd_times.append(time.perf_counter() - t0)
        kb = re.findall(r"funnel-bench-maxrss-kb=(\d+)", out.stderr)
        cmd_rss = max([cmd_rss] + [int(k) / 1024 for k in kb])
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"mode": "chdb_windowFunnel", "events": n, "load_seconds": load,
                  "query_seconds": min(query_times), "query_times": query_times,
                  "command_seconds": min(cmd_times) if cmd_times else None, "command_times": cmd_times,
                  "command_stdout": out.stdout if out else "", "command_stderr": out.stderr if out else "",
                  "peak_rss_mib": rss, "command_peak_rss_mib": cmd_rss,
                  "result": res.strip().splitlines()}))
