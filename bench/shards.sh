#!/usr/bin/env bash
# Issue 23 benchmark: sharded runs against the single run, measured in one invocation.
#  1. bench-data: the single run and N=4 shards (one after another, each `--threads 1`,
#     RAYON_NUM_THREADS=1), facts compared row for row. Prints the CPU time of all shards together over
#     the single run's (target <= 1.15: each shard decodes only its ranges) and the slowest shard's wall
#     time over the single run's (target <= 0.35), and each shard's partial-facts size.
#  2. A simulated 8-node cluster (`funnel gen --nodes 8 --rf 3`): the single run and 8 shards as separate
#     processes; facts equal; the time of each shard.
#   bench/shards.sh [DATA=bench-data/ev]      N=4 shards; SIM_ACTORS=40000 actors of the simulation;
#   PROBES=0 skips the cold/warm single-thread rates; REPS=3 rounds (the single run and the shards take
#   turns in each round; the ratios compare each side's best round, as the machine is noisy)
# The binary: a release build without LTO in its own target dir (FUNNEL_BIN to use another):
#   cargo build --release -p cli --target-dir target/nolto --config profile.release.lto=false \
#     --config profile.release.codegen-units=16 --config profile.release.debug=0
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${1:-$root/bench-data/ev}"
bin="${FUNNEL_BIN:-$root/target/nolto/release/funnel}"
[ -x "$bin" ] || { echo "build $bin first (see the header of $0)" >&2; exit 2; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
python3 - "$bin" "$data" "$root/bench/activation.toml" "$out" "${N:-4}" "${SIM_ACTORS:-40000}" "${REPS:-3}" <<'PY'
import os, re, sqlite3, subprocess, sys, time, resource

bin, data, funnels, out, n, sim_actors, reps = sys.argv[1:5] + [int(a) for a in sys.argv[5:8]]
now = "2026-11-01"
env = dict(os.environ, RAYON_NUM_THREADS="1")

def run(args):
    """Runs funnel; its wall time, CPU time (user + sys of the child) and stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    done = subprocess.run([bin, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"funnel {' '.join(args)} failed:\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stderr

def published(db):
    c = sqlite3.connect(db)
    q = lambda sql: c.execute(sql).fetchall()
    return (q("""SELECT s.app_id, s.funnel_id, s.funnel_version, s.day, s.breakdown, s.step, s.actors,
                        s.ttc_median_s, s.ttc_p90_s FROM funnel_steps s JOIN watermarks w
                 USING (app_id, funnel_id, funnel_version, run_id) ORDER BY 1,2,3,4,5,6"""),
            q("""SELECT t.app_id, t.funnel_id, t.funnel_version, t.day, t.step, t.actors, t.ttc_median_s,
                        t.ttc_p90_s FROM funnel_totals t JOIN watermarks w
                 USING (app_id, funnel_id, funnel_version, run_id) ORDER BY 1,2,3,4,5"""),
            q("SELECT app_id, funnel_id, funnel_version, batch_until FROM watermarks ORDER BY 1,2,3"))

def compare(data_path, shards, label, funnels_file):
    """The single run and the shards, REPS rounds taking turns; ratios of each side's best round."""
    common = ["run", "--quiet", "--data", data_path, "--funnels", funnels_file, "--now", now, "--threads", "1"]
    single_db = os.path.join(out, f"{label}-single.db")
    sharded_db = os.path.join(out, f"{label}-sharded.db")
    s_walls, s_cpus, walls, cpus = [], [], [[] for _ in range(shards)], [[] for _ in range(shards)]
    reads = [0] * shards
    for rep in range(reps):
        s_wall, s_cpu, s_err = run(common + ["--facts", f"sqlite:{single_db}"])
        s_walls.append(s_wall); s_cpus.append(s_cpu)
        rows = [l for l in s_err.splitlines() if l.startswith("run ")]
        print(f"[{label}] round {rep + 1}: single run: wall {s_wall:.2f} s, CPU {s_cpu:.2f} s  ({rows[0] if rows else ''})")
        for i in range(1, shards + 1):
            wall, cpu, err = run(common + ["--facts", f"sqlite:{sharded_db}", "--shard", f"{i}/{shards}",
                                           "--run-name", f"{label}-{rep}"])
            size = re.search(r"partial facts ([0-9.]+) kB", err)
            read = re.search(r"\(([0-9]+) row versions read", err)
            walls[i - 1].append(wall); cpus[i - 1].append(cpu); reads[i - 1] = int(read.group(1)) if read else 0
            print(f"[{label}] round {rep + 1}: shard {i}/{shards}: wall {wall:.2f} s, CPU {cpu:.2f} s, "
                  f"{read.group(1) if read else '?'} row versions read, partial facts {size.group(1) if size else '?'} kB")
        same = published(single_db) == published(sharded_db)
        n_rows = len(published(single_db)[0])
        print(f"[{label}] round {rep + 1}: facts of the {shards} shards equal the single run's: {same} "
              f"({n_rows} funnel_steps rows)")
        if not same:
            sys.exit(1)
    s_read = re.search(r"\(([0-9]+) row versions read", s_err)
    if s_read:
        print(f"[{label}] row versions read by all shards / single run: {sum(reads) / int(s_read.group(1)):.4f} "
              "(1: no shard decodes another's ranges)")
    best = f"best of {reps}" if reps > 1 else "one round"
    print(f"[{label}] CPU of all shards / single run ({best} each): "
          f"{sum(min(c) for c in cpus) / min(s_cpus):.3f} (target <= 1.15)")
    print(f"[{label}] slowest shard wall / single run wall, one thread each ({best} each): "
          f"{max(min(w) for w in walls) / min(s_walls):.3f} (target <= 0.35; ideal 1/{shards} = {1 / shards:.3f})")

def evict(path):
    """Drops the page cache of the files under `path` (theirs only: POSIX_FADV_DONTNEED)."""
    for d, _, files in os.walk(path):
        for f in files:
            fd = os.open(os.path.join(d, f), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)

def per_core(label, wall, cpu, err):
    m = re.search(r"\(([0-9]+) row versions read", err)
    rows = int(m.group(1)) if m else 0
    disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(data) for f in fs if f.endswith("Data.db"))
    print(f"[{label}] one thread: wall {wall:.2f} s, CPU {cpu:.2f} s, {rows} row versions: "
          f"{rows / cpu / 1e6:.2f} M rows per CPU-second, {rows / wall / 1e6:.2f} M rows/s wall; "
          f"{disk / max(rows, 1):.1f} Data.db bytes per row")

print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
probe = ["run", "--quiet", "--data", data, "--funnels", funnels, "--now", now, "--threads", "1",
         "--facts", f"sqlite:{os.path.join(out, 'probe.db')}"]
if os.environ.get("PROBES", "1") != "0":  # PROBES=0: skip the cold/warm single-thread rates
    evict(data)
    per_core("cold (page cache of the data dropped)", *run(probe))
    per_core("warm (data in the page cache)", *run(probe))
compare(data, n, "bench-data", funnels)
sim = os.path.join(out, "sim8")
subprocess.run([bin, "gen", "--quiet", "--out", sim, "--actors", str(sim_actors), "--days", "14",
                "--sstables", "2", "--nodes", "8", "--rf", "3", "--seed", "23", "--end-date", now, "--ttl", "0"],
               check=True, stdout=subprocess.DEVNULL)
compare(sim, 8, "sim-8-nodes", os.path.join(os.path.dirname(funnels), "..", "testdata", "funnels.toml"))
print(f"load average at the end {os.getloadavg()[0]:.1f}")
PY
