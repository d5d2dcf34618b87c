//! Statistics.db (`MetadataSerializer`, `ValidationMetadata`, `CompactionMetadata`, `StatsMetadata`,
//! `SerializationHeader.Component`, `MetadataCollector`, `EstimatedHistogram`, `TombstoneHistogram`).
//!
//! Layout: `int count`, [from `na`: CRC32 of the count], `count × (int type, int offset)`, [CRC32 of count
//! and TOC], then each component, [each followed by its CRC32]. Components: VALIDATION (partitioner, bloom
//! fp chance), COMPACTION (key cardinality HLL), STATS (histograms, min/max timestamps, deletion times and
//! TTLs, …, version dependent), HEADER (EncodingStats, key/clustering types, static and regular columns
//! with their marshal types). Min/max clustering values are written as "covers everything" (an empty
//! legacy list for `nb`, the full slice for `oa`), which is always correct.

use std::collections::BTreeMap;

use crate::descriptor::Version;
use crate::row::DeletionTime;
use crate::schema::TableSchema;
use crate::statistics::NO_DELETION_TIME;
use crate::types::CqlType;

use super::data::EncodingStats;
use super::encode::{
    put_bool, put_f64, put_i32, put_i64, put_int_bytes, put_java_utf, put_u16, put_unsigned_vint,
    put_vint_bytes,
};
use super::model::{Cell, CellState, ColumnContent, MarkerDeletion, Partition, Row, Unfiltered};
use crate::cardinality::Cardinality;
use crate::partitioner::murmur3_token;

pub const MURMUR3_PARTITIONER: &str = "org.apache.cassandra.dht.Murmur3Partitioner";
const TOMBSTONE_HISTOGRAM_BINS: usize = 100;
const TOMBSTONE_ROUND_SECONDS: i64 = 60;

/// Cassandra's `EstimatedHistogram`: buckets bounded by offsets growing ×1.2, plus an overflow bucket.
#[derive(Debug, Clone)]
pub struct EstimatedHistogram {
    offsets: Vec<i64>,
    buckets: Vec<i64>,
}

impl EstimatedHistogram {
    pub fn new(size: usize) -> Self {
        let mut offsets = Vec::with_capacity(size);
        let mut last: i64 = 1;
        offsets.push(last);
        while offsets.len() < size {
            // Java Math.round(last * 1.2) = floor(x + 0.5)
            let mut next = (last as f64 * 1.2 + 0.5).floor() as i64;
            if next == last {
                next += 1;
            }
            offsets.push(next);
            last = next;
        }
        EstimatedHistogram {
            buckets: vec![0; size + 1],
            offsets,
        }
    }

    pub fn add(&mut self, v: i64) {
        let idx = self.offsets.partition_point(|&o| o < v);
        self.buckets[idx] += 1;
    }

    fn serialize(&self, out: &mut Vec<u8>) {
        put_i32(out, self.buckets.len() as i32);
        for (i, b) in self.buckets.iter().enumerate() {
            put_i64(out, self.offsets[if i == 0 { 0 } else { i - 1 }]);
            put_i64(out, *b);
        }
    }
}

/// Streaming histogram of local deletion times (rounded up to the minute, at most 100 bins).
#[derive(Debug, Clone, Default)]
pub struct TombstoneHistogram {
    bins: BTreeMap<i64, i64>,
}

impl TombstoneHistogram {
    pub fn update(&mut self, ldt: i64) {
        let rem = ldt.rem_euclid(TOMBSTONE_ROUND_SECONDS);
        let point = if rem > 0 {
            ldt + TOMBSTONE_ROUND_SECONDS - rem
        } else {
            ldt
        };
        *self.bins.entry(point).or_insert(0) += 1;
        while self.bins.len() > TOMBSTONE_HISTOGRAM_BINS {
            // merge the two nearest points into their weighted mean (Ben-Haim & Tom-Tov)
            let pts: Vec<(i64, i64)> = self.bins.iter().map(|(k, v)| (*k, *v)).collect();
            let Some(i) = (0..pts.len() - 1).min_by_key(|&i| pts[i + 1].0 - pts[i].0) else {
                break;
            };
            let ((p1, c1), (p2, c2)) = (pts[i], pts[i + 1]);
            self.bins.remove(&p1);
            self.bins.remove(&p2);
            let merged =
                ((p1 as i128 * c1 as i128 + p2 as i128 * c2 as i128) / (c1 + c2) as i128) as i64;
            *self.bins.entry(merged).or_insert(0) += c1 + c2;
        }
    }

    fn serialize(&self, out: &mut Vec<u8>) {
        put_i32(out, self.bins.len() as i32);
        put_i32(out, self.bins.len() as i32);
        for (p, c) in &self.bins {
            put_f64(out, *p as f64);
            put_i64(out, *c);
        }
    }
}

/// Everything Statistics.db reports, gathered while partitions are written (`MetadataCollector`).
#[derive(Debug, Clone)]
pub struct MetadataCollector {
    pub min_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
    pub min_local_deletion_time: Option<i64>,
    pub max_local_deletion_time: Option<i64>,
    pub min_ttl: Option<i32>,
    pub max_ttl: Option<i32>,
    pub partition_sizes: EstimatedHistogram,
    pub cells_per_partition: EstimatedHistogram,
    pub tombstones: TombstoneHistogram,
    pub cardinality: Cardinality,
    pub total_columns_set: i64,
    pub total_rows: i64,
    pub partitions: u64,
    pub has_partition_level_deletions: bool,
    pub first_key: Option<Vec<u8>>,
    pub last_key: Vec<u8>,
    cells: i64,
}

impl Default for MetadataCollector {
    fn default() -> Self {
        MetadataCollector {
            min_timestamp: None,
            max_timestamp: None,
            min_local_deletion_time: None,
            max_local_deletion_time: None,
            min_ttl: None,
            max_ttl: None,
            partition_sizes: EstimatedHistogram::new(150),
            cells_per_partition: EstimatedHistogram::new(118),
            tombstones: TombstoneHistogram::default(),
            cardinality: Cardinality::default(),
            total_columns_set: 0,
            total_rows: 0,
            partitions: 0,
            has_partition_level_deletions: false,
            first_key: None,
            last_key: Vec::new(),
            cells: 0,
        }
    }
}

fn min_opt<T: Ord + Copy>(a: &mut Option<T>, v: T) {
    *a = Some(a.map_or(v, |m| m.min(v)));
}
fn max_opt<T: Ord + Copy>(a: &mut Option<T>, v: T) {
    *a = Some(a.map_or(v, |m| m.max(v)));
}

impl MetadataCollector {
    fn timestamp(&mut self, t: i64) {
        min_opt(&mut self.min_timestamp, t);
        max_opt(&mut self.max_timestamp, t);
    }
    fn ldt(&mut self, t: i64) {
        min_opt(&mut self.min_local_deletion_time, t);
        max_opt(&mut self.max_local_deletion_time, t);
        if t != NO_DELETION_TIME {
            self.tombstones.update(t);
        }
    }
    fn ttl(&mut self, t: i32) {
        min_opt(&mut self.min_ttl, t);
        max_opt(&mut self.max_ttl, t);
    }
    fn deletion(&mut self, d: &DeletionTime) {
        if !d.is_live() {
            self.timestamp(d.marked_for_delete_at);
            self.ldt(d.local_deletion_time);
        }
    }
    fn cell(&mut self, c: &Cell) {
        self.cells += 1;
        self.timestamp(c.timestamp);
        match c.state {
            CellState::Live => {
                self.ttl(0);
                self.ldt(NO_DELETION_TIME);
            }
            CellState::Expiring(e) => {
                self.ttl(e.ttl);
                self.ldt(e.local_expiration_time);
            }
            CellState::Tombstone {
                local_deletion_time,
            } => {
                self.ttl(0);
                self.ldt(local_deletion_time);
            }
        }
    }
    fn row(&mut self, r: &Row) {
        if let Some(l) = r.liveness {
            self.timestamp(l.timestamp);
            match l.expiry {
                Some(e) => {
                    self.ttl(e.ttl);
                    self.ldt(e.local_expiration_time);
                }
                None => {
                    self.ttl(0);
                    self.ldt(NO_DELETION_TIME);
                }
            }
        }
        self.deletion(&r.deletion);
        self.deletion(&r.shadowable);
        for cd in &r.columns {
            match &cd.content {
                ColumnContent::Simple(c) => self.cell(c),
                ColumnContent::Complex { deletion, cells } => {
                    self.deletion(deletion);
                    cells.iter().for_each(|c| self.cell(c));
                }
            }
        }
        self.total_columns_set += r.columns.len() as i64;
        self.total_rows += 1;
    }

    /// Records a written partition and its size in Data.db (uncompressed bytes).
    pub fn partition(&mut self, p: &Partition, size: u64) {
        self.partitions += 1;
        self.cardinality.offer_key(&p.key);
        if self.first_key.is_none() {
            self.first_key = Some(p.key.clone());
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(&p.key);
        self.cells = 0;
        if !p.deletion.is_live() {
            self.has_partition_level_deletions = true;
        }
        self.deletion(&p.deletion);
        if let Some(s) = p.static_row.as_ref().filter(|s| {
            !s.columns.is_empty()
                || s.liveness.is_some()
                || !s.deletion.is_live()
                || !s.shadowable.is_live()
        }) {
            self.row(s);
        }
        for u in &p.unfiltereds {
            match u {
                Unfiltered::Row(r) => self.row(r),
                Unfiltered::Marker(m) => match m.deletion {
                    MarkerDeletion::Bound(d) => self.deletion(&d),
                    MarkerDeletion::Boundary { end, start } => {
                        self.deletion(&end);
                        self.deletion(&start);
                    }
                },
            }
        }
        self.partition_sizes.add(size as i64);
        let cells = self.cells;
        self.cells_per_partition.add(cells);
    }
}

/// Inputs of Statistics.db besides the collector.
pub struct StatisticsInput<'a> {
    pub version: Version,
    pub schema: &'a TableSchema,
    pub encoding: EncodingStats,
    pub bloom_fp_chance: f64,
    /// `compressed / uncompressed`, or -1 when Data.db is not compressed.
    pub compression_ratio: f64,
}

fn put_type(out: &mut Vec<u8>, t: &CqlType) {
    put_vint_bytes(out, t.to_marshal().as_bytes());
}

/// The marshal type of the partition key (`CompositeType` for several columns).
pub fn key_type(schema: &TableSchema) -> CqlType {
    match schema.partition_key.as_slice() {
        [one] => one.ty.clone(),
        many => CqlType::Composite(many.iter().map(|c| c.ty.clone()).collect()),
    }
}

/// The marshal types of the clustering columns (`ReversedType` for DESC).
pub fn clustering_types(schema: &TableSchema) -> Vec<CqlType> {
    schema
        .clustering
        .iter()
        .map(|c| match (&c.ty, c.reversed) {
            (CqlType::Reversed(_), _) | (_, false) => c.ty.clone(),
            (t, true) => CqlType::Reversed(Box::new(t.clone())),
        })
        .collect()
}

fn ldt_int(version: &Version, v: Option<i64>) -> i32 {
    let v = v.unwrap_or(NO_DELETION_TIME);
    if version.has_uint_deletion_time() {
        if v == NO_DELETION_TIME {
            -1
        } else {
            v as u32 as i32
        }
    } else if v == NO_DELETION_TIME {
        i32::MAX
    } else {
        v.min(i32::MAX as i64 - 1) as i32
    }
}

/// Murmur3 `Token.size`: fraction of the ring from `first` to `last` (1.0 for a single token).
fn token_space_coverage(first: &[u8], last: &[u8]) -> f64 {
    let v = murmur3_token(last).wrapping_sub(murmur3_token(first));
    let d = v as f64 * 2f64.powi(-64);
    if d > 0.0 {
        d
    } else {
        d + 1.0
    }
}

/// The Statistics.db bytes.
pub fn serialize(input: &StatisticsInput<'_>, c: &MetadataCollector) -> Vec<u8> {
    let v = &input.version;
    let mut validation = Vec::new();
    put_java_utf(&mut validation, MURMUR3_PARTITIONER);
    put_f64(&mut validation, input.bloom_fp_chance);

    let mut compaction = Vec::new();
    put_int_bytes(&mut compaction, &c.cardinality.serialize());

    let mut stats = Vec::new();
    c.partition_sizes.serialize(&mut stats);
    c.cells_per_partition.serialize(&mut stats);
    let no_clp = |out: &mut Vec<u8>| {
        put_i64(out, -1);
        put_i32(out, 0);
    };
    no_clp(&mut stats); // commit log upper bound: NONE
    put_i64(&mut stats, c.min_timestamp.unwrap_or(i64::MIN));
    put_i64(&mut stats, c.max_timestamp.unwrap_or(i64::MAX));
    put_i32(&mut stats, ldt_int(v, c.min_local_deletion_time));
    put_i32(&mut stats, ldt_int(v, c.max_local_deletion_time));
    put_i32(&mut stats, c.min_ttl.unwrap_or(0));
    put_i32(&mut stats, c.max_ttl.unwrap_or(0));
    put_f64(&mut stats, input.compression_ratio);
    c.tombstones.serialize(&mut stats);
    put_i32(&mut stats, 0); // sstable level
    put_i64(&mut stats, 0); // repaired at: unrepaired
    let ctypes = clustering_types(input.schema);
    let improved_min_max = |out: &mut Vec<u8>| {
        put_unsigned_vint(out, ctypes.len() as u64);
        for t in &ctypes {
            put_type(out, t);
        }
        // Slice.ALL: BOTTOM (inclusive start, no values) and TOP (inclusive end, no values)
        out.push(1);
        put_u16(out, 0);
        out.push(6);
        put_u16(out, 0);
    };
    if v.has_legacy_min_max() {
        put_i32(&mut stats, 0);
        put_i32(&mut stats, 0);
    } else if v.has_improved_min_max() {
        improved_min_max(&mut stats);
    }
    put_bool(&mut stats, false); // legacy counter shards
    put_i64(&mut stats, c.total_columns_set);
    put_i64(&mut stats, c.total_rows);
    if v.has_commit_log_lower_bound() {
        no_clp(&mut stats);
    }
    if v.has_commit_log_intervals() {
        put_i32(&mut stats, 0);
    }
    if v.has_pending_repair() {
        stats.push(0);
    }
    if v.has_is_transient() {
        put_bool(&mut stats, false);
    }
    if v.has_originating_host_id() {
        stats.push(0);
    }
    if v.has_partition_level_deletions_marker() {
        put_bool(&mut stats, c.has_partition_level_deletions);
    }
    if v.has_improved_min_max() && v.has_legacy_min_max() {
        improved_min_max(&mut stats);
    }
    let first = c.first_key.as_deref().unwrap_or(&[]);
    if v.has_key_range() {
        put_vint_bytes(&mut stats, first);
        put_vint_bytes(&mut stats, &c.last_key);
    }
    if v.has_token_space_coverage() {
        put_f64(&mut stats, token_space_coverage(first, &c.last_key));
    }

    let mut header = Vec::new();
    input.encoding.serialize(&mut header);
    put_type(&mut header, &key_type(input.schema));
    put_unsigned_vint(&mut header, ctypes.len() as u64);
    for t in &ctypes {
        put_type(&mut header, t);
    }
    for cols in [&input.schema.statics, &input.schema.regulars] {
        put_unsigned_vint(&mut header, cols.len() as u64);
        for col in cols {
            put_vint_bytes(&mut header, col.name.as_bytes());
            put_type(&mut header, &col.ty);
        }
    }

    let components = [validation, compaction, stats, header];
    let checksums = v.has_metadata_checksum();
    let crc_len = if checksums { 4 } else { 0 };
    let mut out = Vec::new();
    put_i32(&mut out, components.len() as i32);
    if checksums {
        out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
    }
    let mut offset = 4 + crc_len + 8 * components.len() + crc_len;
    let toc_start = out.len();
    for (kind, comp) in components.iter().enumerate() {
        put_i32(&mut out, kind as i32);
        put_i32(&mut out, offset as i32);
        offset += comp.len() + crc_len;
    }
    if checksums {
        let mut h = crc32fast::Hasher::new();
        h.update(&out[..4]);
        h.update(&out[toc_start..]);
        out.extend_from_slice(&h.finalize().to_be_bytes());
    }
    for comp in &components {
        out.extend_from_slice(comp);
        if checksums {
            out.extend_from_slice(&crc32fast::hash(comp).to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_offsets_match_cassandra() {
        let h = EstimatedHistogram::new(150);
        assert_eq!(&h.offsets[..12], &[1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 17]);
        assert_eq!(h.buckets.len(), 151);
        let mut h = EstimatedHistogram::new(5);
        for v in [0, 1, 2, 3, 100] {
            h.add(v);
        }
        assert_eq!(h.buckets, vec![2, 1, 1, 0, 0, 1]);
    }

    #[test]
    fn tombstone_histogram_rounds_and_merges() {
        let mut t = TombstoneHistogram::default();
        t.update(61);
        t.update(120);
        assert_eq!(t.bins.get(&120), Some(&2));
        for i in 0..500 {
            t.update(i * 3600);
        }
        assert_eq!(t.bins.len(), 100);
        assert_eq!(t.bins.values().sum::<i64>(), 502);
    }
}
