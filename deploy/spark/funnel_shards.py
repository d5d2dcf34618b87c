#!/usr/bin/env python3
"""Run a sharded `funnel run` on Apache Spark: N shards fan out as N Spark tasks, each running the
`funnel` binary with `--shard i/N --run-name R` on an executor; Spark retries a failed or killed task
(`spark.task.maxFailures`), and a retry replaces that shard's partial facts. The shard completing the
set publishes the merged run; the driver then runs `funnel run --finalize R`, which publishes nothing
new when the set was already published (and publishes it when the last shard's own finalization lost a
race). Facts equal one `funnel run` over all the data, whatever the order and retries of the tasks.

Every executor needs the `funnel` binary, the funnels file, the data paths and the fact store URL
(a shared SQLite file on a shared filesystem, or — the scalable choice — a Cassandra keyspace,
`cql://…`). See docs/SCALE.md for node-local data and sizing.

    spark-submit --master spark://host:7077 deploy/spark/funnel_shards.py \
        --funnel /opt/funnel/bin/funnel --shards 64 --run-name nightly-2026-12-07 \
        --funnels /etc/funnel/funnels.toml --facts cql://cass1,cass2/funnel \
        --now 2026-12-07 --data /mnt/snapshots/node1 /mnt/snapshots/node2 /mnt/snapshots/node3

Arguments after `--` are passed to every shard's `funnel run` unchanged (e.g. `-- --threads 4`).
"""

import argparse
import os
import subprocess
import sys


def shard_command(args, index):
    """The `funnel run` command line of shard `index` (1-based)."""
    cmd = [
        args.funnel, "run", "--quiet",
        "--funnels", args.funnels,
        "--facts", args.facts,
        "--shard", f"{index}/{args.shards}",
        "--run-name", args.run_name,
    ]
    if args.now:
        cmd += ["--now", args.now]
    if args.token_ranges_dir:
        cmd += ["--token-ranges", os.path.join(args.token_ranges_dir, f"shard-{index}.txt")]
    cmd += ["--data", *args.data]
    return cmd + args.extra


def run_shard(args, index):
    """Runs one shard; a non-zero exit fails the Spark task (which Spark then retries)."""
    cmd = shard_command(args, index)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"shard {index}/{args.shards} exited with {done.returncode}: {' '.join(cmd)}\n{done.stderr[-4000:]}"
        )
    return index, done.stderr.strip().splitlines()[-4:]


def parse(argv):
    extra = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--master", help="Spark master URL (default: spark-submit's)")
    p.add_argument("--funnel", default="funnel", help="the funnel binary on every executor")
    p.add_argument("--shards", type=int, required=True, help="N: shards (Spark tasks)")
    p.add_argument("--run-name", required=True, help="the sharded run's name (unique per run)")
    p.add_argument("--funnels", required=True, help="funnel definitions (TOML) on every executor")
    p.add_argument("--facts", required=True, help="fact store URL every executor can write")
    p.add_argument("--now", help="--now of every shard (the same for all: a shard of another --now is refused)")
    p.add_argument("--token-ranges-dir",
                   help="a directory of shard-I.txt token-range files (instead of equal parts of the ring)")
    p.add_argument("--data", nargs="+", required=True, help="data paths, as every executor sees them")
    args = p.parse_args(argv)
    args.extra = extra
    if args.shards < 1:
        p.error("--shards must be at least 1")
    return args


def main(argv):
    args = parse(argv)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(f"funnel shards {args.run_name}")
    if args.master:
        builder = builder.master(args.master)
    spark = builder.getOrCreate()
    try:
        sc = spark.sparkContext
        # One task per shard: numSlices = N puts each shard in its own partition.
        shards = sc.parallelize(range(1, args.shards + 1), args.shards)
        results = shards.map(lambda i: run_shard(args, i)).collect()
        for index, lines in sorted(results):
            for line in lines:
                print(f"shard {index}: {line}", file=sys.stderr)
    finally:
        spark.stop()
    # Every shard succeeded (else collect() raised after Spark's retries): publish the set, or confirm
    # that the shard completing it did.
    final = [args.funnel, "run", "--funnels", args.funnels, "--facts", args.facts, "--finalize", args.run_name]
    return subprocess.run(final).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
