#!/usr/bin/env bash
# Creates .tools/venv with the Python tools the tests use:
#   chdb       ClickHouse in-process, runs windowFunnel (the oracle for `ordered` and `strict_order`)
#   cqlite-py  an independent Cassandra SSTable reader (checks what our writer writes)
#   duckdb     DuckDB in-process: reads `funnel export`'s Parquet files back (tests/tests/export_e2e.rs)
#   pyspark    Apache Spark with its jars: the sharded-run job of deploy/spark/ on a local standalone
#              cluster (tests/tests/spark_shards.rs; Spark needs a JRE, which .ci/test installs)
# Reused when present.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.tools/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import chdb, cqlite, duckdb, pyspark' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'chdb>=3' 'cqlite-py>=0.17' 'duckdb>=1.1' 'pyspark>=3.5,<4.1'
fi
"$venv/bin/python" -c 'import chdb, cqlite, duckdb, pyspark; print("python tools ready:", chdb.__version__, "duckdb", duckdb.__version__, "pyspark", pyspark.__version__)'
