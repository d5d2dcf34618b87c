//! What `sstablemetadata` prints, per SSTable ([`Stats`]): version, partitioner, compression, sizes,
//! exact partition, row and tombstone counts, timestamp and TTL ranges, droppable tombstones and the
//! columns' types.

use serde::Serialize;

use crate::error::Result;
use crate::json::{format_seconds, format_timestamp_us};
use crate::row::Unfiltered;
use crate::scanner::Projection;
use crate::schema::ColumnKind;
use crate::sstable::SSTable;
use crate::statistics::NO_DELETION_TIME;

/// What `sstablemetadata` prints about one SSTable, with exact counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// The Data.db file.
    pub path: String,
    /// The format version (`nb`, `oa`, `da` …).
    pub version: String,
    /// `big` or `bti`.
    pub format: String,
    /// The partitioner class.
    pub partitioner: Option<String>,
    /// The chunk compression (`lz4`, `zstd` …), `None` when uncompressed.
    pub compression: Option<String>,
    /// Uncompressed bytes per chunk.
    pub chunk_length: Option<u32>,
    /// Compressed / uncompressed size, as Statistics.db records it.
    pub compression_ratio: Option<f64>,
    /// Data.db bytes on disk.
    pub data_bytes_on_disk: u64,
    /// Data.db bytes uncompressed.
    pub data_bytes_uncompressed: u64,
    /// Partitions (counted).
    pub partitions: u64,
    /// Rows, not counting static rows (counted).
    pub rows: u64,
    /// Static rows (counted).
    pub static_rows: u64,
    /// Range tombstone markers (counted).
    pub range_tombstone_markers: u64,
    /// Rows with a row deletion (counted).
    pub row_tombstones: u64,
    /// Partitions with a partition deletion (counted).
    pub partition_tombstones: u64,
    /// Partitions, as Statistics.db estimates them.
    pub estimated_partitions: Option<i64>,
    /// Rows, as Statistics.db records them.
    pub total_rows_in_statistics: Option<i64>,
    /// Oldest write time (µs since the epoch).
    pub min_timestamp: Option<i64>,
    /// Newest write time (µs since the epoch).
    pub max_timestamp: Option<i64>,
    /// Oldest write time, ISO-8601 UTC.
    pub min_timestamp_utc: Option<String>,
    /// Newest write time, ISO-8601 UTC.
    pub max_timestamp_utc: Option<String>,
    /// Smallest TTL (s).
    pub min_ttl: Option<i64>,
    /// Largest TTL (s).
    pub max_ttl: Option<i64>,
    /// Earliest deletion or expiry time, ISO-8601 UTC.
    pub min_local_deletion_time_utc: Option<String>,
    /// Latest deletion or expiry time, ISO-8601 UTC.
    pub max_local_deletion_time_utc: Option<String>,
    /// Tombstones droppable at `now` (Statistics.db's estimate).
    pub droppable_tombstones: Option<i64>,
    /// The keyspace, when known.
    pub keyspace: Option<String>,
    /// The table, when known.
    pub table: Option<String>,
    /// The columns in `SELECT *` order.
    pub columns: Vec<StatsColumn>,
}

/// One column of [`Stats::columns`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsColumn {
    /// Its name.
    pub name: String,
    /// Partition key, clustering, static or regular.
    pub kind: ColumnKind,
    /// Its CQL type.
    #[serde(rename = "type")]
    pub ty: String,
}

impl Stats {
    /// Describes `sst`: partitions, rows and tombstones counted exactly by scanning Data.db (keys and row
    /// headers only), the rest from Statistics.db and CompressionInfo.db; droppable tombstones judged at
    /// `now` (seconds since the epoch).
    pub fn describe(sst: &SSTable, now: i64) -> Result<Stats> {
        let mut scan = sst.scanner(Projection::none(&sst.schema));
        let (
            mut partitions,
            mut rows,
            mut statics,
            mut markers,
            mut row_tombstones,
            mut partition_tombstones,
        ) = (0, 0, 0, 0, 0, 0);
        while let Some(p) = scan.next_partition()? {
            partitions += 1;
            if !p.deletion.is_live() {
                partition_tombstones += 1;
            }
            while let Some(u) = scan.next_unfiltered()? {
                match u {
                    Unfiltered::Row(r) if r.is_static() => statics += 1,
                    Unfiltered::Row(r) => {
                        rows += 1;
                        if !r.deletion().is_live() {
                            row_tombstones += 1;
                        }
                    }
                    Unfiltered::Marker(_) => markers += 1,
                }
            }
        }
        let st = sst.statistics.stats.as_ref();
        let ci = sst.data.compression();
        let ldt = |v: i64| (v != NO_DELETION_TIME).then(|| format_seconds(v)).flatten();
        Ok(Stats {
            path: sst.data_path().display().to_string(),
            version: sst.descriptor.version.to_string(),
            format: sst.descriptor.kind.to_string(),
            partitioner: sst.partitioner().map(str::to_string),
            compression: ci.map(|c| format!("{:?}", c.algorithm).to_lowercase()),
            chunk_length: ci.map(|c| c.chunk_length),
            compression_ratio: st.map(|s| s.compression_ratio).filter(|r| *r >= 0.0),
            data_bytes_on_disk: sst.data.file_len(),
            data_bytes_uncompressed: sst.data.len(),
            partitions,
            rows,
            static_rows: statics,
            range_tombstone_markers: markers,
            row_tombstones,
            partition_tombstones,
            estimated_partitions: st.map(|s| s.estimated_partitions()),
            total_rows_in_statistics: st.map(|s| s.total_rows),
            min_timestamp: st.map(|s| s.min_timestamp),
            max_timestamp: st.map(|s| s.max_timestamp),
            min_timestamp_utc: st.and_then(|s| format_timestamp_us(s.min_timestamp)),
            max_timestamp_utc: st.and_then(|s| format_timestamp_us(s.max_timestamp)),
            min_ttl: st.map(|s| s.min_ttl),
            max_ttl: st.map(|s| s.max_ttl),
            min_local_deletion_time_utc: st.and_then(|s| ldt(s.min_local_deletion_time)),
            max_local_deletion_time_utc: st.and_then(|s| ldt(s.max_local_deletion_time)),
            droppable_tombstones: st.map(|s| s.droppable_tombstones(now)),
            keyspace: sst.schema.keyspace.clone(),
            table: sst.schema.table.clone(),
            columns: sst
                .schema
                .select_order()
                .into_iter()
                .map(|c| StatsColumn {
                    name: c.name.clone(),
                    kind: c.kind,
                    ty: c.ty.to_string(),
                })
                .collect(),
        })
    }
}
