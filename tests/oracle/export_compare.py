"""Reads the files of a `funnel export` with DuckDB or chdb (ClickHouse) and compares every row and value
with `funnel dump`'s JSON lines of the same table.

usage: export_compare.py duckdb|chdb|spark parquet|arrow DIR DUMP.jsonl [parquet|arrow DIR DUMP.jsonl …]

Both sides are brought to one canonical form, directed by the column types of the exported files' Arrow
schema (read with pyarrow): timestamps as epoch milliseconds, uuids as lower-case text, blobs as bytes,
maps as dicts, tuples/UDTs as lists of field values, durations in dump's text form, numbers as numbers
(float columns rounded to float32), decimal and varint text as text. Rows are compared as multisets.
Prints one JSON summary line per export; exits 1 when the rows of any differ.
"""

import collections
import datetime
import glob
import json
import os
import struct
import sys
import uuid

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def to_ms(v):
    if isinstance(v, str):
        s = v.replace("T", " ").replace("Z", "+00:00")
        v = datetime.datetime.fromisoformat(s)
    if v.tzinfo is None:
        v = v.replace(tzinfo=datetime.timezone.utc)
    return (v - EPOCH) // datetime.timedelta(milliseconds=1)


def to_nanos(v):
    if isinstance(v, int):
        return v
    if isinstance(v, datetime.time):
        return ((v.hour * 60 + v.minute) * 60 + v.second) * 10**9 + v.microsecond * 1000
    # ClickHouse reads Parquet's TIME as a DateTime64 on 1970-01-01.
    v = v.removeprefix("1970-01-01 ")
    h, m, s = v.split(":")
    sec, _, frac = s.partition(".")
    return ((int(h) * 60 + int(m)) * 60 + int(sec)) * 10**9 + int((frac + "000000000")[:9])


def duration_text(months, days, nanos):
    """dump's duration format (sstable-reader json.rs format_duration)."""
    s = "-" if months < 0 or days < 0 or nanos < 0 else ""

    def part(value, divisor, unit):
        nonlocal s
        if value == 0 or value < divisor:
            return value
        s += f"{value // divisor}{unit}"
        return value % divisor

    rem = part(abs(months), 12, "y")
    part(rem, 1, "mo")
    part(abs(days), 1, "d")
    rem = abs(nanos)
    for div, unit in [(3600 * 10**9, "h"), (60 * 10**9, "m"), (10**9, "s"), (10**6, "ms"), (1000, "us"), (1, "ns")]:
        rem = part(rem, div, unit)
    return s


def canon(v, t):
    if v is None:
        return None
    if isinstance(t, pa.BaseExtensionType) or pa.types.is_fixed_size_binary(t):
        if isinstance(v, (bytes, bytearray)):
            return str(uuid.UUID(bytes=bytes(v)))
        return str(v).lower()
    if pa.types.is_timestamp(t):
        return to_ms(v)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return str(v)
    if pa.types.is_boolean(t):
        return v if isinstance(v, bool) else v in ("true", 1, "1")
    if pa.types.is_integer(t):
        return int(v)
    if pa.types.is_float32(t):
        return struct.unpack("f", struct.pack("f", float(v)))[0]
    if pa.types.is_floating(t):
        return float(v)
    if pa.types.is_binary(t):
        if isinstance(v, str):
            return bytes.fromhex(v[2:] if v.startswith("0x") else v).hex()
        return bytes(v).hex()
    if pa.types.is_date(t):
        return str(v)
    if pa.types.is_time(t):
        return to_nanos(v)
    if pa.types.is_map(t):
        items = v.items() if isinstance(v, dict) else v
        return sorted((json.dumps(canon(k, t.key_type)), canon(x, t.item_type)) for k, x in items)
    if pa.types.is_list(t):
        return [canon(x, t.value_type) for x in v]
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        if names == ["months", "days", "nanoseconds"]:
            if isinstance(v, str):
                return v
            parts = [int(v[n]) for n in names] if isinstance(v, dict) else [int(x) for x in v]
            return duration_text(*parts)
        values = [v.get(n) for n in names] if isinstance(v, dict) else list(v)
        values += [None] * (len(names) - len(values))
        return [canon(x, t.field(i).type) for i, x in enumerate(values)]
    if pa.types.is_null(t):
        return None
    raise SystemExit(f"no canonical form for type {t}")


def schema_of(fmt, files):
    if fmt == "parquet":
        return pq.read_schema(files[0])
    return ipc.open_file(files[0]).schema


def read_duckdb(fmt, pattern, files):
    import duckdb

    con = duckdb.connect()
    if fmt == "parquet":
        cur = con.execute(f"SELECT * FROM read_parquet('{pattern}')")
    else:
        # DuckDB reads Arrow IPC files through pyarrow (a table handed over without copying).
        table = pa.concat_tables(ipc.open_file(f).read_all() for f in files)
        con.register("exported", table)
        cur = con.execute("SELECT * FROM exported")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def read_chdb(fmt, pattern, schema):
    import chdb

    # Blobs as hex text: JSON cannot carry raw bytes.
    cols = ", ".join(
        f"hex(`{f.name}`) AS `{f.name}`" if pa.types.is_binary(f.type) else f"`{f.name}`" for f in schema
    )
    fmt_name = "Parquet" if fmt == "parquet" else "Arrow"
    out = chdb.query(
        f"SELECT {cols} FROM file('{pattern}', {fmt_name}) "
        "SETTINGS output_format_json_quote_64bit_integers=0, output_format_json_named_tuples_as_objects=1",
        "JSONEachRow",
    )
    text = out.bytes().decode() if hasattr(out, "bytes") else str(out)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def read_spark(fmt, out_dir):
    from pyspark.sql import SparkSession

    if fmt != "parquet":
        raise SystemExit("Spark reads the Parquet export only")
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    # Timestamps come back as naive datetimes in the session's zone (UTC).
    return [r.asDict(recursive=True) for r in spark.read.parquet(out_dir).collect()]


def main():
    reader, rest = sys.argv[1], sys.argv[2:]
    if not rest or len(rest) % 3:
        raise SystemExit(__doc__)
    ok = True
    for i in range(0, len(rest), 3):
        ok = compare(reader, *rest[i : i + 3]) and ok
    sys.exit(0 if ok else 1)


def compare(reader, fmt, out_dir, dump_path):
    pattern = os.path.join(out_dir, f"*.{fmt}")
    files = sorted(glob.glob(pattern))
    if not files:
        raise SystemExit(f"no {pattern}")
    schema = schema_of(fmt, files)
    if reader == "duckdb":
        rows = read_duckdb(fmt, pattern, files)
    elif reader == "spark":
        rows = read_spark(fmt, out_dir)
    else:
        rows = read_chdb(fmt, pattern, schema)
    with open(dump_path) as f:
        dumped = [json.loads(line, parse_float=str, parse_int=str) for line in f if line.strip()]

    def key(row):
        return json.dumps([canon(row.get(f.name), f.type) for f in schema])

    got = collections.Counter(key(r) for r in rows)
    want = collections.Counter(key(r) for r in dumped)
    extra = list((got - want).elements())[:3]
    missing = list((want - got).elements())[:3]
    summary = {
        "reader": reader,
        "format": fmt,
        "files": len(files),
        "rows": len(rows),
        "dump_rows": len(dumped),
        "columns": [f.name for f in schema],
        "only_in_export": extra,
        "only_in_dump": missing,
    }
    same = got == want and len(rows) == len(dumped)
    summary["same"] = same
    print(json.dumps(summary), flush=True)
    return same


if __name__ == "__main__":
    main()
