//! Statistics.db (`io/sstable/metadata/MetadataSerializer.java`): a table of contents of metadata
//! components — validation (partitioner), compaction, stats (timestamps, TTLs, histograms, row counts)
//! and the serialization header (column names and types, the minimums deltas are encoded against).
//! From `na` on, the table of contents and every component carry a CRC32 that is verified here.

use std::path::Path;

use crate::bytes::Cursor;
use crate::descriptor::Version;
use crate::error::{Error, Result};
use crate::types::CqlType;

/// Microseconds at 2015-09-22T00:00:00Z: EncodingStats' epoch for timestamps.
pub const TIMESTAMP_EPOCH: i64 = 1_442_880_000_000_000;
/// Seconds at 2015-09-22T00:00:00Z: EncodingStats' epoch for local deletion times.
pub const DELETION_TIME_EPOCH: i64 = 1_442_880_000;
/// "No deletion time" as this crate represents it (Cassandra: `Integer.MAX_VALUE` before `oa`,
/// unsigned `0xFFFFFFFF` from `oa`).
pub const NO_DELETION_TIME: i64 = i64::MAX;

/// Validation metadata: the partitioner and the bloom filter's false-positive chance.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ValidationMetadata {
    pub partitioner: String,
    pub bloom_filter_fp_chance: f64,
}

/// The stats component: what `sstablemetadata` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatsMetadata {
    /// (bucket offset, count) pairs of the estimated partition size histogram.
    pub partition_sizes: Vec<(i64, i64)>,
    pub cells_per_partition: Vec<(i64, i64)>,
    pub min_timestamp: i64,
    pub max_timestamp: i64,
    /// Seconds since epoch; [`NO_DELETION_TIME`] when nothing in the file expires or is deleted.
    pub min_local_deletion_time: i64,
    pub max_local_deletion_time: i64,
    pub min_ttl: i64,
    pub max_ttl: i64,
    pub compression_ratio: f64,
    /// (deletion time in seconds, count) pairs: when tombstones become droppable.
    pub tombstone_drop_times: Vec<(i64, i64)>,
    pub sstable_level: i32,
    pub repaired_at: i64,
    pub has_legacy_counter_shards: bool,
    pub total_columns_set: i64,
    pub total_rows: i64,
}

impl StatsMetadata {
    /// Estimated number of partitions (sum of the partition size histogram).
    pub fn estimated_partitions(&self) -> i64 {
        self.partition_sizes.iter().map(|(_, c)| c).sum()
    }

    /// Estimated tombstones droppable at `gc_before` (seconds), as `sstablemetadata` estimates it.
    pub fn droppable_tombstones(&self, gc_before: i64) -> i64 {
        self.tombstone_drop_times
            .iter()
            .filter(|(t, _)| *t <= gc_before)
            .map(|(_, c)| c)
            .sum()
    }
}

/// The serialization header: the minimums deltas are relative to, and the columns with their types.
#[derive(Debug, Clone)]
pub struct SerializationHeader {
    pub min_timestamp: i64,
    /// Raw 32-bit form of the minimum local deletion time (signed before `oa`, unsigned from `oa`).
    pub min_local_deletion_time_raw: u32,
    pub min_ttl: i32,
    pub key_type: CqlType,
    pub clustering_types: Vec<CqlType>,
    /// Static and regular columns, each in Data.db order (simple columns first, then by name).
    pub static_columns: Vec<(String, CqlType)>,
    pub regular_columns: Vec<(String, CqlType)>,
}

/// Everything Statistics.db holds that the reader uses.
#[derive(Debug, Clone)]
pub struct Statistics {
    pub validation: Option<ValidationMetadata>,
    pub stats: Option<StatsMetadata>,
    pub header: Option<SerializationHeader>,
    /// Where the compaction component's key cardinality estimate lies in the file (offset, length),
    /// for `verify`: a read does not use it.
    pub cardinality: Option<(usize, usize)>,
}

const VALIDATION: i32 = 0;
const COMPACTION: i32 = 1;
const STATS: i32 = 2;
const HEADER: i32 = 3;

fn crc_of_ints(ints: &[i32]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for i in ints {
        h.update(&i.to_be_bytes());
    }
    h.finalize()
}

impl Statistics {
    pub fn parse(bytes: &[u8], path: &Path, version: Version) -> Result<Statistics> {
        let checksummed = version.has_metadata_checksum();
        let mut c = Cursor::new(bytes);
        let corrupt = |at: usize, what: &str| Error::corrupt(path, at as u64, what.to_string());
        let count = c.i32().map_err(|_| corrupt(0, "a component count"))?;
        if !(1..=16).contains(&count) {
            return Err(corrupt(
                0,
                &format!("a component count between 1 and 16, found {count}"),
            ));
        }
        let mut ints = vec![count];
        if checksummed {
            let stored = c
                .u32()
                .map_err(|_| corrupt(4, "the component count's CRC32"))?;
            if stored != crc_of_ints(&ints) {
                return Err(corrupt(4, "the CRC32 of the component count to match"));
            }
        }
        let toc_start = c.pos();
        let mut toc = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let ty = c.i32().map_err(|_| corrupt(c.pos(), "a component type"))?;
            let off = c
                .i32()
                .map_err(|_| corrupt(c.pos(), "a component offset"))?;
            if off < 0 || off as usize > bytes.len() {
                return Err(corrupt(
                    c.pos() - 4,
                    &format!("a component offset inside the file, found {off}"),
                ));
            }
            ints.extend([ty, off]);
            toc.push((ty, off as usize));
        }
        if checksummed {
            let at = c.pos();
            let stored = c
                .u32()
                .map_err(|_| corrupt(at, "the table of contents' CRC32"))?;
            if stored != crc_of_ints(&ints) {
                return Err(corrupt(
                    toc_start,
                    "the CRC32 of the table of contents to match",
                ));
            }
        }
        let mut out = Statistics {
            validation: None,
            stats: None,
            header: None,
            cardinality: None,
        };
        let mut sorted = toc.clone();
        sorted.sort_by_key(|(_, off)| *off);
        for (idx, &(ty, off)) in sorted.iter().enumerate() {
            let end = sorted.get(idx + 1).map(|(_, o)| *o).unwrap_or(bytes.len());
            if end < off {
                return Err(corrupt(off, "components that do not overlap"));
            }
            let mut body = &bytes[off..end];
            if checksummed {
                if body.len() < 4 {
                    return Err(corrupt(off, "a component followed by its CRC32"));
                }
                let (b, crc) = body.split_at(body.len() - 4);
                let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
                if stored != crc32fast::hash(b) {
                    return Err(corrupt(
                        off,
                        &format!("the CRC32 of metadata component {ty} to match"),
                    ));
                }
                body = b;
            }
            let at = |c: &Cursor<'_>| off + c.pos();
            match ty {
                VALIDATION => {
                    let mut c = Cursor::new(body);
                    let p = c
                        .utf()
                        .map_err(|_| corrupt(at(&c), "the partitioner class name"))?;
                    let fp = c
                        .f64()
                        .map_err(|_| corrupt(at(&c), "the bloom filter fp chance"))?;
                    out.validation = Some(ValidationMetadata {
                        partitioner: String::from_utf8_lossy(p).into_owned(),
                        bloom_filter_fp_chance: fp,
                    });
                }
                COMPACTION => {
                    // From `ma` on (every version read here) the component is the estimate alone,
                    // as an int length and its bytes.
                    let mut c = Cursor::new(body);
                    let len = c
                        .i32()
                        .map_err(|_| corrupt(at(&c), "the key cardinality estimate's length"))?;
                    match usize::try_from(len) {
                        Ok(len) if len <= c.remaining() => {
                            out.cardinality = Some((at(&c), len));
                        }
                        _ => {
                            return Err(corrupt(
                                off,
                                &format!(
                                    "a key cardinality estimate inside the component, found a length of {len}"
                                ),
                            ))
                        }
                    }
                }
                STATS => {
                    let mut c = Cursor::new(body);
                    out.stats = Some(
                        parse_stats(&mut c, version)
                            .map_err(|_| corrupt(at(&c), "a complete stats component"))?,
                    );
                }
                HEADER => {
                    let mut c = Cursor::new(body);
                    out.header = Some(parse_header(&mut c, path, off)?);
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

fn histogram(c: &mut Cursor<'_>) -> crate::bytes::ShortResult<Vec<(i64, i64)>> {
    let n = c.i32()?;
    let n = usize::try_from(n).unwrap_or(0).min(c.remaining() / 16);
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push((c.i64()?, c.i64()?));
    }
    Ok(v)
}

/// A stored 32-bit local deletion time as seconds: signed before `oa` (`Integer.MAX_VALUE` = none),
/// unsigned from `oa` (`0xFFFFFFFF` = none).
pub fn ldt_from_raw(raw: u32, unsigned: bool) -> i64 {
    match (unsigned, raw) {
        (true, u32::MAX) => NO_DELETION_TIME,
        (true, r) => r as i64,
        (false, r) if r as i32 == i32::MAX => NO_DELETION_TIME,
        (false, r) => r as i32 as i64,
    }
}

fn read_ldt(c: &mut Cursor<'_>, version: Version) -> crate::bytes::ShortResult<i64> {
    Ok(ldt_from_raw(c.u32()?, version.has_uint_deletion_time()))
}

fn parse_stats(c: &mut Cursor<'_>, version: Version) -> crate::bytes::ShortResult<StatsMetadata> {
    let partition_sizes = histogram(c)?;
    let cells_per_partition = histogram(c)?;
    c.skip(12)?; // commit log upper bound: segment id (long) + position (int)
    let min_timestamp = c.i64()?;
    let max_timestamp = c.i64()?;
    let min_local_deletion_time = read_ldt(c, version)?;
    let max_local_deletion_time = read_ldt(c, version)?;
    let min_ttl = c.i32()? as i64;
    let max_ttl = c.i32()? as i64;
    let compression_ratio = c.f64()?;
    // Tombstone histogram (legacy serializer in every Apache version): max bin size, size, (double, long)*.
    c.i32()?;
    let n = usize::try_from(c.i32()?)
        .unwrap_or(0)
        .min(c.remaining() / 16);
    let mut tombstone_drop_times = Vec::with_capacity(n);
    for _ in 0..n {
        tombstone_drop_times.push((c.f64()? as i64, c.i64()?));
    }
    let sstable_level = c.i32()?;
    let repaired_at = c.i64()?;
    if version.has_legacy_min_max() {
        for _ in 0..2 {
            let n = c.i32()?;
            for _ in 0..n.max(0) {
                let len = c.u16()? as usize;
                c.skip(len)?;
            }
        }
    } else if version.has_improved_min_max() {
        skip_improved_min_max(c)?;
    }
    let has_legacy_counter_shards = c.u8()? != 0;
    let total_columns_set = c.i64()?;
    let total_rows = c.i64()?;
    Ok(StatsMetadata {
        partition_sizes,
        cells_per_partition,
        min_timestamp,
        max_timestamp,
        min_local_deletion_time,
        max_local_deletion_time,
        min_ttl,
        max_ttl,
        compression_ratio,
        tombstone_drop_times,
        sstable_level,
        repaired_at,
        has_legacy_counter_shards,
        total_columns_set,
        total_rows,
    })
}

/// Clustering types (vint count, vint-length type strings) and the covered slice (two bounds: kind
/// byte, u16 size, then clustering values with their presence header).
fn skip_improved_min_max(c: &mut Cursor<'_>) -> crate::bytes::ShortResult<()> {
    let n = c.uvint()? as usize;
    let mut types = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let len = c.uvint_len()?;
        let s = c.take(len)?;
        types.push(
            std::str::from_utf8(s)
                .ok()
                .and_then(|s| CqlType::from_marshal(s).ok())
                .unwrap_or(CqlType::Blob),
        );
    }
    for _ in 0..2 {
        c.u8()?;
        let size = c.u16()? as usize;
        crate::clustering::skip_clustering_values(c, &types, size)?;
    }
    Ok(())
}

fn parse_header(c: &mut Cursor<'_>, path: &Path, base: usize) -> Result<SerializationHeader> {
    let corrupt = |c: &Cursor<'_>, what: &str| {
        Error::corrupt(path, (base + c.pos()) as u64, what.to_string())
    };
    let min_ts = c.uvint().map_err(|_| corrupt(c, "the minimum timestamp"))?;
    let min_ldt = c
        .uvint()
        .map_err(|_| corrupt(c, "the minimum local deletion time"))?;
    let min_ttl = c.uvint().map_err(|_| corrupt(c, "the minimum TTL"))?;
    let epoch = DELETION_TIME_EPOCH as u32;
    let min_local_deletion_time_raw = (min_ldt as u32).wrapping_add(epoch);
    let read_type = |c: &mut Cursor<'_>, what: &str| -> Result<CqlType> {
        let at = c.pos();
        let len = c.uvint_len().map_err(|_| corrupt(c, what))?;
        let s = c.take(len).map_err(|_| corrupt(c, what))?;
        let s = std::str::from_utf8(s)
            .map_err(|_| Error::corrupt(path, (base + at) as u64, format!("{what} as UTF-8")))?;
        CqlType::from_marshal(s)
            .map_err(|e| Error::corrupt(path, (base + at) as u64, format!("{what}: {e}")))
    };
    let key_type = read_type(c, "the partition key type")?;
    let n = c
        .uvint()
        .map_err(|_| corrupt(c, "the clustering column count"))? as usize;
    let mut clustering_types = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        clustering_types.push(read_type(c, "a clustering type")?);
    }
    let columns = |c: &mut Cursor<'_>, what: &str| -> Result<Vec<(String, CqlType)>> {
        let n = c.uvint().map_err(|_| corrupt(c, what))? as usize;
        let mut cols = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let len = c.uvint_len().map_err(|_| corrupt(c, what))?;
            let name = c.take(len).map_err(|_| corrupt(c, what))?;
            let name = String::from_utf8_lossy(name).into_owned();
            let ty = read_type(c, what)?;
            cols.push((name, ty));
        }
        // Data.db order (`Columns`): simple columns before complex ones, then by name bytes.
        cols.sort_by(|(an, at), (bn, bt)| {
            (at.is_multi_cell(), an.as_bytes()).cmp(&(bt.is_multi_cell(), bn.as_bytes()))
        });
        Ok(cols)
    };
    let static_columns = columns(c, "the static columns")?;
    let regular_columns = columns(c, "the regular columns")?;
    Ok(SerializationHeader {
        min_timestamp: (min_ts as i64).wrapping_add(TIMESTAMP_EPOCH),
        min_local_deletion_time_raw,
        min_ttl: min_ttl as u32 as i32,
        key_type,
        clustering_types,
        static_columns,
        regular_columns,
    })
}
