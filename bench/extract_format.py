"""Issue 21's format measurement: the extract of one SSTable (as the cache wrote it: Arrow IPC, LZ4
buffers, arrow-rs) rewritten by pyarrow (Arrow C++) as Arrow IPC (uncompressed, LZ4, ZSTD) and
Parquet (Snappy, LZ4, ZSTD): bytes against the SSTable's Data.db, time to write, and time to read
back the columns a funnel needs (best of 3), both formats by the same library in the same process.
usage: extract_format.py EXTRACT.arrow DATA.db"""
import io, os, sys, tempfile, time

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

extract, data = sys.argv[1], sys.argv[2]
raw = open(extract, "rb").read()
assert raw[-8:] == b"FNLXTR01", "not an extract"
table = ipc.open_file(pa.BufferReader(raw[:-20])).read_all().combine_chunks()
data_bytes = os.path.getsize(data)
fixed = ["kind", "bound", "key", "position", "token", "del_at", "del_ldt", "end_at", "end_ldt",
         "shadow_at", "shadow_ldt", "lv_ts", "lv_ttl", "lv_exp", "clen"]
funnel = [c for c in table.column_names if c in fixed or c.startswith("c:") or c.startswith("r:name")]
out = tempfile.mkdtemp()


def w_ipc(path, comp):
    with ipc.new_file(path, table.schema, options=ipc.IpcWriteOptions(compression=comp)) as w:
        w.write_table(table, max_chunksize=1 << 16)


def r_ipc(path):
    with pa.memory_map(path) as f:
        return ipc.open_file(f).read_all().select(funnel).num_rows


def w_pq(path, comp):
    pq.write_table(table, path, compression=comp, row_group_size=1 << 16)


def r_pq(path):
    return pq.read_table(path, columns=funnel).num_rows


print(f"extract of {data}: {table.num_rows} entries, {len(table.column_names)} columns; "
      f"Data.db {data_bytes / 1e6:.0f} MB; the cache's own file (arrow-rs, IPC+ZSTD) "
      f"{len(raw) / 1e6:.0f} MB = {100 * len(raw) / data_bytes:.1f} %")
print(f"{'format':<16} {'MB':>8} {'% Data':>8} {'write s':>8} {'read s':>8}   (read: {len(funnel)} columns a funnel needs)")
for name, write, read, comp in [("ipc", w_ipc, r_ipc, None), ("ipc+lz4", w_ipc, r_ipc, "lz4"),
                                ("ipc+zstd", w_ipc, r_ipc, "zstd"), ("parquet+snappy", w_pq, r_pq, "snappy"),
                                ("parquet+lz4", w_pq, r_pq, "lz4"), ("parquet+zstd", w_pq, r_pq, "zstd")]:
    path = os.path.join(out, name)
    t0 = time.perf_counter()
    write(path, comp)
    wt = time.perf_counter() - t0
    size = os.path.getsize(path)
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        assert read(path) == table.num_rows
        best = min(best, time.perf_counter() - t0)
    print(f"{name:<16} {size / 1e6:>8.1f} {100 * size / data_bytes:>7.1f}% {wt:>8.2f} {best:>8.3f}")
    os.remove(path)
os.rmdir(out)
