"""The rounds of bench/cache.sh: chdb's windowFunnel query over the events of WORK/events.jsonl
(loaded once, not timed) and `funnel run` without cache, cold with --cache, warm, and over the data
with one new SSTable, taking turns REPS times; prints the best of each, the ratios, the cache's bytes
against the SSTables' Data.db bytes and each run's peak RSS (GNU time).
usage: cache_runs.py WORK REPS BUILD -- FUNNEL run ARGS... --data DATA ::: DATA2"""
import atexit, glob, os, re, shutil, subprocess, sys, tempfile, time

from chdb import session

work, reps, build = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rest = sys.argv[sys.argv.index("--") + 1:]
run, data2 = rest[:rest.index(":::")], rest[rest.index(":::") + 1]
data = run[run.index("--data") + 1]

store = tempfile.mkdtemp(prefix="chdb-")
atexit.register(shutil.rmtree, store, ignore_errors=True)
s = session.Session(store)
s.query("CREATE DATABASE IF NOT EXISTS b")
s.query("CREATE TABLE b.events (app_id String, actor_id String, ts DateTime64(3, 'UTC'), name String) "
        "ENGINE = MergeTree ORDER BY (app_id, actor_id, ts)")
s.query(f"INSERT INTO b.events SELECT app_id, actor_id, parseDateTime64BestEffort(ts, 3, 'UTC'), name "
        f"FROM file('{work}/events.jsonl', 'JSONEachRow', 'app_id String, actor_id String, ts String, name String')")
events = int(str(s.query("SELECT count() FROM b.events", "CSV")).strip())
q = """SELECT app_id, level, count() AS actors FROM (
  SELECT app_id, actor_id, windowFunnel(604800000)(toUInt64(toUnixTimestamp64Milli(ts)),
         name = 'install', name = 'signup', name = 'purchase') AS level
  FROM b.events GROUP BY app_id, actor_id)
WHERE level > 0 GROUP BY app_id, level ORDER BY app_id, level"""

cache = os.path.join(work, "cache")


def funnel(name, args):
    facts = os.path.join(work, f"facts-{name}.db")
    for f in glob.glob(facts + "*"):
        os.remove(f)
    cmd = ["/usr/bin/time", "-f", "maxrss-kb=%M"] + args + ["--facts", f"sqlite:{facts}"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"{name} failed:\n{out.stderr}")
    rss = max(int(k) for k in re.findall(r"maxrss-kb=(\d+)", out.stderr)) / 1024
    return secs, rss, out.stdout


def facts_rows(name):
    import sqlite3
    db = sqlite3.connect(os.path.join(work, f"facts-{name}.db"))
    rows = db.execute("SELECT app_id, funnel_id, funnel_version, day, breakdown, step, actors, ttc_median_s, ttc_p90_s "
                      "FROM funnel_steps WHERE layer = 'batch' "
                      "ORDER BY 1, 2, 3, 4, 5, 6").fetchall()
    db.close()
    return rows


kinds = ["no-cache", "cold", "warm", "new-sstable"]
times = {k: [] for k in ["chdb"] + kinds}
rss = {k: 0.0 for k in kinds}
stdout = {}
for _ in range(reps):
    t0 = time.perf_counter()
    res = str(s.query(q, "CSV"))
    times["chdb"].append(time.perf_counter() - t0)
    shutil.rmtree(cache, ignore_errors=True)
    for kind in kinds:
        args = list(run)
        if kind != "no-cache":
            args += ["--cache", cache]
        if kind == "new-sstable":
            args[args.index("--data") + 1] = data2
        secs, r, out = funnel(kind, args)
        times[kind].append(secs)
        rss[kind] = max(rss[kind], r)
        stdout[kind] = out

same = facts_rows("no-cache") == facts_rows("cold") == facts_rows("warm")
data_bytes = sum(os.path.getsize(p) for p in glob.glob(f"{data}/**/*-Data.db", recursive=True))
cache_bytes = sum(os.path.getsize(p) for p in glob.glob(f"{cache}/**/*.arrow", recursive=True))
best = {k: min(v) for k, v in times.items()}
fmt = lambda k: ", ".join(f"{t:.2f}" for t in times[k])
print(f"funnel binary: {build}; {events} live events; best of {reps} rounds, the sides taking turns")
print(f"chdb windowFunnel query (events pre-loaded): best {best['chdb']:.2f} s of {fmt('chdb')}")
for k in kinds:
    print(f"funnel run {k:<12}: best {best[k]:.2f} s of {fmt(k)}; peak RSS {rss[k]:.0f} MiB")
print(f"ratio warm / chdb query: {best['warm'] / best['chdb']:.2f} (target <= 0.5)")
print(f"ratio cold --cache / no cache: {best['cold'] / best['no-cache']:.2f} (target <= 1.25)")
print(f"ratio rerun after one new SSTable / warm: {best['new-sstable'] / best['warm']:.2f} (target <= 1.2)")
print(f"ratio no cache / chdb query: {best['no-cache'] / best['chdb']:.2f}")
print(f"cache {cache_bytes / 1e6:.0f} MB = {100 * cache_bytes / data_bytes:.0f} % of the SSTables' "
      f"{data_bytes / 1e6:.0f} MB Data.db (target <= 60 %)")
print(f"facts of the no-cache, cold and warm runs identical: {same}")
print("chdb levels:", res.strip().splitlines())
print(stdout["warm"].rstrip())
