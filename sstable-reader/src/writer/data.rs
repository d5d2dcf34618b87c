//! Data.db serialization (`UnfilteredSerializer`, `Cell.Serializer`, `ClusteringPrefix`,
//! `Columns.serializeSubset`, `DeletionTime.Serializer`, `SerializationHeader.write*`).
//!
//! A partition is: key (u16 length + bytes), partition deletion, the static row when the table has static
//! columns (always, even empty), the rows and markers, and the end-of-partition byte `0x01`. A row is:
//! flags, [extended flags], clustering (blocks of 32 values, each preceded by a vint of 2-bit null/empty
//! markers), `row_size` (body size counted after this vint, including the next vint),
//! previous-unfiltered-size, then the body. Timestamps, local deletion times and TTLs are written as
//! unsigned vint deltas from the serialization header's [`EncodingStats`].

use crate::row::{BoundKind, DeletionTime};
use crate::schema::{Column, TableSchema};
use crate::statistics::{DELETION_TIME_EPOCH, NO_DELETION_TIME, TIMESTAMP_EPOCH};
use crate::types::CqlType;

use super::encode::{
    put_i32, put_i64, put_short_bytes, put_u16, put_unsigned_vint, put_vint_bytes,
    unsigned_vint_size,
};
use super::model::{
    Cell, CellState, ClusteringValue, ColumnContent, Liveness, Marker, MarkerDeletion, Partition,
    Row,
};
use super::WriterError;

const END_OF_PARTITION: u8 = 0x01;
const IS_MARKER: u8 = 0x02;
const HAS_TIMESTAMP: u8 = 0x04;
const HAS_TTL: u8 = 0x08;
const HAS_DELETION: u8 = 0x10;
const HAS_ALL_COLUMNS: u8 = 0x20;
const HAS_COMPLEX_DELETION: u8 = 0x40;
const EXTENSION_FLAG: u8 = 0x80;
const IS_STATIC: u8 = 0x01;
/// Cassandra's shadowable row deletion (`UnfilteredSerializer.HAS_SHADOWABLE_DELETION`).
const HAS_SHADOWABLE_DELETION: u8 = 0x02;
/// ScyllaDB's (`unfiltered_extended_flags_m::HAS_SCYLLA_SHADOWABLE_DELETION`).
const HAS_SCYLLA_SHADOWABLE_DELETION: u8 = 0x80;

const CELL_IS_DELETED: u8 = 0x01;
const CELL_IS_EXPIRING: u8 = 0x02;
const CELL_HAS_EMPTY_VALUE: u8 = 0x04;
const CELL_USE_ROW_TIMESTAMP: u8 = 0x08;
const CELL_USE_ROW_TTL: u8 = 0x10;

/// The minimums every delta in Data.db is relative to (`EncodingStats`). Any values at or below the real
/// minimums are valid; the exact minimums give the shortest encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodingStats {
    pub min_timestamp: i64,
    pub min_local_deletion_time: i64,
    pub min_ttl: i32,
}

impl Default for EncodingStats {
    /// Cassandra's epochs (what an empty collector yields).
    fn default() -> Self {
        EncodingStats {
            min_timestamp: TIMESTAMP_EPOCH,
            min_local_deletion_time: DELETION_TIME_EPOCH,
            min_ttl: 0,
        }
    }
}

impl EncodingStats {
    /// The exact minimums over `partitions` (`EncodingStats.Collector`), epochs where nothing was seen.
    pub fn collect<'a>(partitions: impl IntoIterator<Item = &'a Partition>) -> Self {
        let mut c = StatsCollector::default();
        for p in partitions {
            c.deletion(&p.deletion);
            for row in p.static_row.iter() {
                c.row(row);
            }
            for u in &p.unfiltereds {
                match u {
                    super::model::Unfiltered::Row(r) => c.row(r),
                    super::model::Unfiltered::Marker(m) => match m.deletion {
                        MarkerDeletion::Bound(d) => c.deletion(&d),
                        MarkerDeletion::Boundary { end, start } => {
                            c.deletion(&end);
                            c.deletion(&start);
                        }
                    },
                }
            }
        }
        EncodingStats {
            min_timestamp: c.ts.unwrap_or(TIMESTAMP_EPOCH),
            min_local_deletion_time: c.ldt.unwrap_or(DELETION_TIME_EPOCH),
            min_ttl: c.ttl.unwrap_or(0),
        }
    }

    /// The header bytes (`EncodingStats.Serializer`).
    pub fn serialize(&self, out: &mut Vec<u8>) {
        put_unsigned_vint(out, self.min_timestamp.wrapping_sub(TIMESTAMP_EPOCH) as u64);
        put_unsigned_vint(
            out,
            (self
                .min_local_deletion_time
                .wrapping_sub(DELETION_TIME_EPOCH)) as i32 as u32 as u64,
        );
        put_unsigned_vint(out, self.min_ttl as u32 as u64);
    }
}

#[derive(Default)]
struct StatsCollector {
    ts: Option<i64>,
    ldt: Option<i64>,
    ttl: Option<i32>,
}

impl StatsCollector {
    fn ts(&mut self, t: i64) {
        self.ts = Some(self.ts.map_or(t, |m| m.min(t)));
    }
    fn ldt(&mut self, t: i64) {
        self.ldt = Some(self.ldt.map_or(t, |m| m.min(t)));
    }
    fn ttl(&mut self, t: i32) {
        self.ttl = Some(self.ttl.map_or(t, |m| m.min(t)));
    }
    fn deletion(&mut self, d: &DeletionTime) {
        if !d.is_live() {
            self.ts(d.marked_for_delete_at);
            self.ldt(d.local_deletion_time);
        }
    }
    fn cell(&mut self, c: &Cell) {
        self.ts(c.timestamp);
        match c.state {
            CellState::Live => {}
            CellState::Expiring(e) => {
                self.ttl(e.ttl);
                self.ldt(e.local_expiration_time);
            }
            CellState::Tombstone {
                local_deletion_time,
            } => self.ldt(local_deletion_time),
        }
    }
    fn row(&mut self, r: &Row) {
        if let Some(l) = r.liveness {
            self.ts(l.timestamp);
            if let Some(e) = l.expiry {
                self.ttl(e.ttl);
                self.ldt(e.local_expiration_time);
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
    }
}

/// Writes values of one table's rows into byte buffers.
pub struct RowSerializer<'s> {
    schema: &'s TableSchema,
    stats: EncodingStats,
    uint_deletion_time: bool,
    clustering_types: Vec<CqlType>,
    /// ScyllaDB's layout: a shadowable deletion has its own extended flag (0x80) and field.
    scylla: bool,
}

fn invalid(msg: impl Into<String>) -> WriterError {
    WriterError::InvalidData(msg.into())
}

impl<'s> RowSerializer<'s> {
    /// `uint_deletion_time` is the `oa` convention (unsigned local deletion times, 1-byte LIVE).
    pub fn new(schema: &'s TableSchema, stats: EncodingStats, uint_deletion_time: bool) -> Self {
        let clustering_types = schema.clustering.iter().map(|c| c.ty.clone()).collect();
        RowSerializer {
            schema,
            stats,
            uint_deletion_time,
            clustering_types,
            scylla: false,
        }
    }

    /// Writes shadowable deletions in ScyllaDB's layout (extended flag 0x80) instead of Cassandra's.
    pub fn scylla_layout(mut self, scylla: bool) -> Self {
        self.scylla = scylla;
        self
    }

    pub fn stats(&self) -> EncodingStats {
        self.stats
    }

    /// The 32-bit on-disk form of a local deletion time.
    pub fn ldt_raw(&self, ldt: i64) -> Result<u32, WriterError> {
        if self.uint_deletion_time {
            if ldt == NO_DELETION_TIME {
                return Ok(u32::MAX);
            }
            u32::try_from(ldt)
                .ok()
                .filter(|v| *v < u32::MAX - 1)
                .ok_or_else(|| invalid(format!("local deletion time {ldt} out of the oa range")))
        } else {
            if ldt == NO_DELETION_TIME {
                return Ok(i32::MAX as u32);
            }
            i32::try_from(ldt)
                .ok()
                .filter(|v| *v >= 0 && *v < i32::MAX)
                .map(|v| v as u32)
                .ok_or_else(|| {
                    invalid(format!(
                        "local deletion time {ldt} does not fit a pre-oa (signed 32-bit) file"
                    ))
                })
        }
    }

    fn put_timestamp(&self, out: &mut Vec<u8>, ts: i64) -> Result<(), WriterError> {
        if ts < self.stats.min_timestamp {
            return Err(invalid(format!(
                "timestamp {ts} below the header minimum {}",
                self.stats.min_timestamp
            )));
        }
        put_unsigned_vint(out, ts.wrapping_sub(self.stats.min_timestamp) as u64);
        Ok(())
    }

    fn put_ldt(&self, out: &mut Vec<u8>, ldt: i64) -> Result<(), WriterError> {
        if ldt != NO_DELETION_TIME && ldt < self.stats.min_local_deletion_time {
            return Err(invalid(format!(
                "local deletion time {ldt} below the header minimum {}",
                self.stats.min_local_deletion_time
            )));
        }
        let raw = self.ldt_raw(ldt)?;
        let min = self.ldt_raw(self.stats.min_local_deletion_time)?;
        put_unsigned_vint(out, raw.wrapping_sub(min) as u64);
        Ok(())
    }

    fn put_ttl(&self, out: &mut Vec<u8>, ttl: i32) -> Result<(), WriterError> {
        if ttl < self.stats.min_ttl || ttl <= 0 {
            return Err(invalid(format!(
                "ttl {ttl} must be positive and >= the header minimum {}",
                self.stats.min_ttl
            )));
        }
        put_unsigned_vint(out, ttl.wrapping_sub(self.stats.min_ttl) as u32 as u64);
        Ok(())
    }

    /// `SerializationHeader.writeDeletionTime` (delta-encoded, inside rows and markers). A LIVE deletion
    /// (complex columns of a row with complex deletions) wraps, exactly as Cassandra writes it.
    fn put_delta_deletion(&self, out: &mut Vec<u8>, d: &DeletionTime) -> Result<(), WriterError> {
        if d.is_live() {
            put_unsigned_vint(
                out,
                d.marked_for_delete_at
                    .wrapping_sub(self.stats.min_timestamp) as u64,
            );
            let min = self.ldt_raw(self.stats.min_local_deletion_time)?;
            put_unsigned_vint(
                out,
                self.ldt_raw(NO_DELETION_TIME)?.wrapping_sub(min) as u64,
            );
            return Ok(());
        }
        self.put_timestamp(out, d.marked_for_delete_at)?;
        self.put_ldt(out, d.local_deletion_time)
    }

    /// `DeletionTime.Serializer` (partition headers and Index.db): pre-`oa` `int ldt, long mfda`; `oa`
    /// `0x80` for LIVE, else `long mfda, uint ldt`.
    pub fn put_deletion_time(
        &self,
        out: &mut Vec<u8>,
        d: &DeletionTime,
    ) -> Result<(), WriterError> {
        if self.uint_deletion_time {
            if d.is_live() {
                out.push(0x80);
            } else {
                if d.marked_for_delete_at < 0 {
                    return Err(invalid(format!(
                        "deletion timestamp {} is negative, which oa cannot store",
                        d.marked_for_delete_at
                    )));
                }
                put_i64(out, d.marked_for_delete_at);
                out.extend_from_slice(&self.ldt_raw(d.local_deletion_time)?.to_be_bytes());
            }
        } else {
            put_i32(out, self.ldt_raw(d.local_deletion_time)? as i32);
            put_i64(out, d.marked_for_delete_at);
        }
        Ok(())
    }

    /// `AbstractType.writeValue`: fixed-length types raw, others with a vint length.
    fn put_value(
        out: &mut Vec<u8>,
        ty: &CqlType,
        v: &[u8],
        what: &dyn Fn() -> String,
    ) -> Result<(), WriterError> {
        match ty.fixed_length() {
            Some(n) if v.len() != n => Err(invalid(format!(
                "{}: {ty} value must be {n} bytes, got {}",
                what(),
                v.len()
            ))),
            Some(_) => {
                out.extend_from_slice(v);
                Ok(())
            }
            None => {
                put_vint_bytes(out, v);
                Ok(())
            }
        }
    }

    /// `ClusteringPrefix.serializeValuesWithoutSize`.
    pub fn put_clustering_values(
        &self,
        out: &mut Vec<u8>,
        values: &[ClusteringValue],
    ) -> Result<(), WriterError> {
        if values.len() > self.clustering_types.len() {
            return Err(invalid(format!(
                "{} clustering values for {} clustering columns",
                values.len(),
                self.clustering_types.len()
            )));
        }
        for (block, chunk) in values.chunks(32).enumerate() {
            let mut header: u64 = 0;
            for (i, v) in chunk.iter().enumerate() {
                match v {
                    None => header |= 1 << (i * 2 + 1),
                    Some(b) if b.is_empty() => header |= 1 << (i * 2),
                    Some(_) => {}
                }
            }
            put_unsigned_vint(out, header);
            for (i, v) in chunk.iter().enumerate() {
                if let Some(b) = v.as_deref().filter(|b| !b.is_empty()) {
                    let idx = block * 32 + i;
                    let col = &self.schema.clustering[idx];
                    Self::put_value(out, &self.clustering_types[idx], b, &|| {
                        format!("clustering column {}", col.name)
                    })?;
                }
            }
        }
        Ok(())
    }

    /// `ClusteringPrefix.serializer` for IndexInfo: kind ordinal, then for bounds a u16 size.
    pub fn put_clustering_prefix(
        &self,
        out: &mut Vec<u8>,
        kind: BoundKind,
        values: &[ClusteringValue],
    ) -> Result<(), WriterError> {
        out.push(kind.ordinal());
        if kind != BoundKind::Clustering {
            put_u16(out, values.len() as u16);
        }
        self.put_clustering_values(out, values)
    }

    /// Partition header: key, deletion time.
    pub fn put_partition_header(
        &self,
        out: &mut Vec<u8>,
        p: &Partition,
    ) -> Result<(), WriterError> {
        if p.key.len() > u16::MAX as usize {
            return Err(invalid(format!(
                "partition key of {} bytes exceeds 65535",
                p.key.len()
            )));
        }
        put_short_bytes(out, &p.key);
        self.put_deletion_time(out, &p.deletion)
    }

    pub fn put_end_of_partition(out: &mut Vec<u8>) {
        out.push(END_OF_PARTITION);
    }

    fn columns(&self, is_static: bool) -> &[Column] {
        if is_static {
            &self.schema.statics
        } else {
            &self.schema.regulars
        }
    }

    /// One row (static when `is_static`), with `prev_size` the size of the previous unfiltered.
    pub fn put_row(
        &self,
        out: &mut Vec<u8>,
        row: &Row,
        is_static: bool,
        prev_size: u64,
    ) -> Result<(), WriterError> {
        let header_columns = self.columns(is_static);
        for w in row.columns.windows(2) {
            if w[0].column >= w[1].column {
                return Err(invalid(
                    "row columns must be in strictly ascending column order",
                ));
            }
        }
        if let Some(last) = row.columns.last() {
            if last.column >= header_columns.len() {
                return Err(invalid(format!(
                    "column index {} out of range",
                    last.column
                )));
            }
        }
        let has_complex_deletion = row
            .columns
            .iter()
            .any(|c| matches!(&c.content, ColumnContent::Complex { deletion, .. } if !deletion.is_live()));
        let has_all = row.columns.len() == header_columns.len();
        let mut flags = 0u8;
        if row.liveness.is_some() {
            flags |= HAS_TIMESTAMP;
        }
        if row.liveness.and_then(|l| l.expiry).is_some() {
            flags |= HAS_TTL;
        }
        let shadowable = !row.shadowable.is_live();
        if shadowable && !self.scylla && !row.deletion.is_live() {
            return Err(invalid(
                "Cassandra's layout stores one row deletion, regular or shadowable, not both",
            ));
        }
        let mut ext = if is_static { IS_STATIC } else { 0 };
        if shadowable {
            ext |= if self.scylla {
                HAS_SCYLLA_SHADOWABLE_DELETION
            } else {
                HAS_SHADOWABLE_DELETION
            };
        }
        if !row.deletion.is_live() || (shadowable && !self.scylla) {
            flags |= HAS_DELETION;
        }
        if has_complex_deletion {
            flags |= HAS_COMPLEX_DELETION;
        }
        if has_all {
            flags |= HAS_ALL_COLUMNS;
        }
        if ext != 0 {
            flags |= EXTENSION_FLAG;
        }
        out.push(flags);
        if ext != 0 {
            out.push(ext);
        }
        if !is_static {
            if row.clustering.len() != self.clustering_types.len() {
                return Err(invalid(format!(
                    "row has {} clustering values, the table {}",
                    row.clustering.len(),
                    self.clustering_types.len()
                )));
            }
            self.put_clustering_values(out, &row.clustering)?;
        }
        let mut body = Vec::with_capacity(64);
        if let Some(l) = row.liveness {
            self.put_timestamp(&mut body, l.timestamp)?;
            if let Some(e) = l.expiry {
                self.put_ttl(&mut body, e.ttl)?;
                self.put_ldt(&mut body, e.local_expiration_time)?;
            }
        }
        if !row.deletion.is_live() {
            self.put_delta_deletion(&mut body, &row.deletion)?;
        }
        if shadowable {
            // ScyllaDB's follows the regular deletion; Cassandra's is the row deletion itself.
            self.put_delta_deletion(&mut body, &row.shadowable)?;
        }
        if !has_all {
            put_subset(
                &mut body,
                row.columns.iter().map(|c| c.column),
                row.columns.len(),
                header_columns.len(),
            );
        }
        for cd in &row.columns {
            let col = &header_columns[cd.column];
            match (&cd.content, col.ty.is_multi_cell()) {
                (ColumnContent::Simple(cell), false) => {
                    self.put_cell(&mut body, cell, col, row.liveness.as_ref())?
                }
                (ColumnContent::Complex { deletion, cells }, true) => {
                    if has_complex_deletion {
                        self.put_delta_deletion(&mut body, deletion)?;
                    }
                    put_unsigned_vint(&mut body, cells.len() as u64);
                    for cell in cells {
                        self.put_cell(&mut body, cell, col, row.liveness.as_ref())?;
                    }
                }
                (_, multi) => {
                    return Err(invalid(format!(
                        "column {} is {} but the row gives {} data",
                        col.name,
                        if multi { "multi-cell" } else { "single-cell" },
                        if multi { "simple" } else { "complex" }
                    )))
                }
            }
        }
        put_unsigned_vint(out, (body.len() + unsigned_vint_size(prev_size)) as u64);
        put_unsigned_vint(out, prev_size);
        out.extend_from_slice(&body);
        Ok(())
    }

    fn put_cell(
        &self,
        out: &mut Vec<u8>,
        cell: &Cell,
        col: &Column,
        row: Option<&Liveness>,
    ) -> Result<(), WriterError> {
        let (is_deleted, expiry) = match cell.state {
            CellState::Live => (false, None),
            CellState::Expiring(e) => (false, Some(e)),
            CellState::Tombstone { .. } => (true, None),
        };
        if is_deleted && !cell.value.is_empty() {
            return Err(invalid(format!(
                "tombstone cell of {} has a value",
                col.name
            )));
        }
        let use_row_ts = row.is_some_and(|l| l.timestamp == cell.timestamp);
        let use_row_ttl = match (expiry, row.and_then(|l| l.expiry)) {
            (Some(c), Some(r)) => c == r,
            _ => false,
        };
        let mut flags = 0u8;
        if cell.value.is_empty() {
            flags |= CELL_HAS_EMPTY_VALUE;
        }
        if is_deleted {
            flags |= CELL_IS_DELETED;
        } else if expiry.is_some() {
            flags |= CELL_IS_EXPIRING;
        }
        if use_row_ts {
            flags |= CELL_USE_ROW_TIMESTAMP;
        }
        if use_row_ttl {
            flags |= CELL_USE_ROW_TTL;
        }
        out.push(flags);
        if !use_row_ts {
            self.put_timestamp(out, cell.timestamp)?;
        }
        if !use_row_ttl {
            match cell.state {
                CellState::Live => {}
                CellState::Expiring(e) => {
                    self.put_ldt(out, e.local_expiration_time)?;
                    self.put_ttl(out, e.ttl)?;
                }
                CellState::Tombstone {
                    local_deletion_time,
                } => self.put_ldt(out, local_deletion_time)?,
            }
        }
        let multi = col.ty.is_multi_cell();
        match (&cell.path, multi) {
            (Some(p), true) => put_vint_bytes(out, p),
            (None, false) => {}
            (Some(_), false) => {
                return Err(invalid(format!(
                    "cell of single-cell column {} has a path",
                    col.name
                )))
            }
            (None, true) => {
                return Err(invalid(format!(
                    "cell of multi-cell column {} has no path",
                    col.name
                )))
            }
        }
        if !cell.value.is_empty() {
            // `header.getType(column).writeValue`: for a multi-cell column that is the collection/UDT type,
            // which has no fixed length, so element values always carry a vint length.
            if multi {
                put_vint_bytes(out, &cell.value);
            } else {
                Self::put_value(out, &col.ty, &cell.value, &|| {
                    format!("column {}", col.name)
                })?;
            }
        }
        Ok(())
    }

    /// A range tombstone marker.
    pub fn put_marker(
        &self,
        out: &mut Vec<u8>,
        m: &Marker,
        prev_size: u64,
    ) -> Result<(), WriterError> {
        let boundary = matches!(
            m.kind,
            BoundKind::ExclEndInclStartBoundary | BoundKind::InclEndExclStartBoundary
        );
        match (m.kind, &m.deletion) {
            (BoundKind::Clustering | BoundKind::StaticClustering, _) => {
                return Err(invalid("a marker needs a bound or boundary kind"))
            }
            (_, MarkerDeletion::Boundary { .. }) if !boundary => {
                return Err(invalid(
                    "a bound marker cannot carry a boundary's two deletions",
                ))
            }
            (_, MarkerDeletion::Bound(_)) if boundary => {
                return Err(invalid("a boundary marker needs two deletions"))
            }
            _ => {}
        }
        out.push(IS_MARKER);
        out.push(m.kind.ordinal());
        put_u16(out, m.values.len() as u16);
        self.put_clustering_values(out, &m.values)?;
        let mut body = Vec::with_capacity(24);
        match m.deletion {
            MarkerDeletion::Bound(d) => self.put_delta_deletion(&mut body, &d)?,
            MarkerDeletion::Boundary { end, start } => {
                self.put_delta_deletion(&mut body, &end)?;
                self.put_delta_deletion(&mut body, &start)?;
            }
        }
        put_unsigned_vint(out, (body.len() + unsigned_vint_size(prev_size)) as u64);
        put_unsigned_vint(out, prev_size);
        out.extend_from_slice(&body);
        Ok(())
    }
}

/// `Columns.serializeSubset`: 0 when all present; a bitmap of *missing* columns below 64 columns; else the
/// missing count followed by the present or the missing indexes, whichever list is shorter.
fn put_subset(
    out: &mut Vec<u8>,
    present: impl Iterator<Item = usize> + Clone,
    count: usize,
    superset: usize,
) {
    if count == superset {
        put_unsigned_vint(out, 0);
    } else if superset < 64 {
        let mut missing: u64 = if superset == 64 {
            u64::MAX
        } else {
            (1u64 << superset) - 1
        };
        for i in present {
            missing &= !(1u64 << i);
        }
        put_unsigned_vint(out, missing);
    } else {
        put_unsigned_vint(out, (superset - count) as u64);
        if count < superset / 2 {
            for i in present {
                put_unsigned_vint(out, i as u64);
            }
        } else {
            let mut next = 0;
            for i in present {
                while next < i {
                    put_unsigned_vint(out, next as u64);
                    next += 1;
                }
                next = i + 1;
            }
            while next < superset {
                put_unsigned_vint(out, next as u64);
                next += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_bitmap_marks_missing_columns() {
        let mut out = Vec::new();
        put_subset(&mut out, [0usize, 2].into_iter(), 2, 4);
        assert_eq!(out, vec![0b1010]);
        out.clear();
        put_subset(&mut out, [0usize, 1, 2, 3].into_iter(), 4, 4);
        assert_eq!(out, vec![0]);
    }

    #[test]
    fn large_subset_lists_the_shorter_side() {
        let mut out = Vec::new();
        put_subset(&mut out, [1usize, 70].into_iter(), 2, 80);
        assert_eq!(out, vec![78, 1, 70]);
        out.clear();
        let present: Vec<usize> = (0..80).filter(|i| *i != 5).collect();
        put_subset(&mut out, present.iter().copied(), 79, 80);
        assert_eq!(out, vec![1, 5]);
    }
}
