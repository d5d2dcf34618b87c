//! The unfiltered layout of Data.db (`db/rows/UnfilteredSerializer.java`, `db/rows/Cell.java`,
//! `db/ClusteringPrefix.java`, `db/Columns.java`): partition headers, rows (liveness, deletion, column
//! subsets, simple and complex cells) and range tombstone markers. Decoding fills reusable buffers with
//! positions into the current data window, so a row costs no allocation; [`RowRef`] and [`Cell`] borrow.

use crate::bytes::{Cursor, Short, ShortResult};
use crate::clustering::skip_clustering_fixed;
use crate::statistics::{ldt_from_raw, SerializationHeader, NO_DELETION_TIME};

pub(crate) const END_OF_PARTITION: u8 = 0x01;
pub(crate) const IS_MARKER: u8 = 0x02;
pub(crate) const HAS_TIMESTAMP: u8 = 0x04;
pub(crate) const HAS_TTL: u8 = 0x08;
pub(crate) const HAS_DELETION: u8 = 0x10;
pub(crate) const HAS_ALL_COLUMNS: u8 = 0x20;
pub(crate) const HAS_COMPLEX_DELETION: u8 = 0x40;
pub(crate) const EXTENSION_FLAG: u8 = 0x80;
pub(crate) const IS_STATIC: u8 = 0x01;
/// Cassandra's (deprecated, CASSANDRA-11500) flag: the row deletion is shadowable.
pub(crate) const HAS_SHADOWABLE_DELETION: u8 = 0x02;
/// ScyllaDB's flag: a shadowable deletion follows the row's regular deletion (`sstables/mx`).
pub(crate) const HAS_SCYLLA_SHADOWABLE_DELETION: u8 = 0x80;
/// Every extended flag bit a row may carry.
pub(crate) const KNOWN_EXTENDED_FLAGS: u8 =
    IS_STATIC | HAS_SHADOWABLE_DELETION | HAS_SCYLLA_SHADOWABLE_DELETION;

pub(crate) const CELL_IS_DELETED: u8 = 0x01;
pub(crate) const CELL_IS_EXPIRING: u8 = 0x02;
pub(crate) const CELL_HAS_EMPTY_VALUE: u8 = 0x04;
pub(crate) const CELL_USE_ROW_TIMESTAMP: u8 = 0x08;
pub(crate) const CELL_USE_ROW_TTL: u8 = 0x10;
/// Every cell flag bit Cassandra defines; any other bit means the cell is not what this reader knows.
pub(crate) const KNOWN_CELL_FLAGS: u8 = 0x1f;

/// The [`Short::needed`] of a cell whose flags have unknown bits (a real short read never needs 0
/// bytes); `at` is the flags byte.
pub(crate) const UNKNOWN_CELL_FLAGS: usize = 0;

/// "No timestamp" for liveness info (`LivenessInfo.NO_TIMESTAMP`).
pub const NO_TIMESTAMP: i64 = i64::MIN;

/// A deletion: everything written at or before `marked_for_delete_at` (µs) is deleted;
/// `local_deletion_time` (s) is when the tombstone was written, for purging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct DeletionTime {
    pub marked_for_delete_at: i64,
    pub local_deletion_time: i64,
}

impl DeletionTime {
    pub const LIVE: DeletionTime = DeletionTime {
        marked_for_delete_at: i64::MIN,
        local_deletion_time: NO_DELETION_TIME,
    };

    pub fn is_live(&self) -> bool {
        self.marked_for_delete_at == i64::MIN && self.local_deletion_time == NO_DELETION_TIME
    }

    /// Whether data written at `timestamp` is shadowed by this deletion.
    #[inline]
    pub fn deletes(&self, timestamp: i64) -> bool {
        timestamp <= self.marked_for_delete_at
    }

    /// Cassandra's `supersedes`: the later deletion wins.
    pub fn supersedes(&self, other: &DeletionTime) -> bool {
        self.marked_for_delete_at > other.marked_for_delete_at
            || (self.marked_for_delete_at == other.marked_for_delete_at
                && self.local_deletion_time > other.local_deletion_time)
    }

    /// The later of two deletions.
    pub fn max(self, other: DeletionTime) -> DeletionTime {
        if other.supersedes(&self) {
            other
        } else {
            self
        }
    }
}

/// The deletion that applies to a row with the regular deletion `regular`, the shadowable deletion
/// `shadowable` and the (merged) primary-key liveness `liveness`: a shadowable deletion is shadowed —
/// dropped, so what it deleted is visible again — by a liveness written after it (Cassandra's
/// `Row.Deletion.isShadowedBy`, ScyllaDB's `row_tombstone::maybe_shadow`); otherwise it deletes as a
/// regular one does.
#[inline(always)]
pub fn row_deletion(
    regular: DeletionTime,
    shadowable: DeletionTime,
    liveness: &LivenessInfo,
) -> DeletionTime {
    if shadowable.is_live() || liveness.timestamp > shadowable.marked_for_delete_at {
        regular
    } else {
        regular.max(shadowable)
    }
}

/// A row's primary-key liveness (the `INSERT` marker): timestamp, and TTL/expiry when expiring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct LivenessInfo {
    /// [`NO_TIMESTAMP`] when the row has no liveness of its own (only written through `UPDATE`).
    pub timestamp: i64,
    /// 0 when not expiring.
    pub ttl: i32,
    /// Seconds since epoch when it expires; [`NO_DELETION_TIME`] when not expiring.
    pub local_expiration_time: i64,
}

impl LivenessInfo {
    pub const EMPTY: LivenessInfo = LivenessInfo {
        timestamp: NO_TIMESTAMP,
        ttl: 0,
        local_expiration_time: NO_DELETION_TIME,
    };

    pub fn is_empty(&self) -> bool {
        self.timestamp == NO_TIMESTAMP
    }

    pub fn is_expiring(&self) -> bool {
        self.ttl != 0
    }

    /// Live at `now` (seconds): has a timestamp and has not expired.
    pub fn is_live(&self, now: i64) -> bool {
        !self.is_empty() && (!self.is_expiring() || now < self.local_expiration_time)
    }
}

/// The kind of a clustering bound (`ClusteringPrefix.Kind`, serialized by ordinal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BoundKind {
    ExclEndBound,
    InclStartBound,
    ExclEndInclStartBoundary,
    StaticClustering,
    Clustering,
    InclEndExclStartBoundary,
    InclEndBound,
    ExclStartBound,
}

impl BoundKind {
    pub fn from_ordinal(o: u8) -> Option<BoundKind> {
        use BoundKind::*;
        Some(match o {
            0 => ExclEndBound,
            1 => InclStartBound,
            2 => ExclEndInclStartBoundary,
            3 => StaticClustering,
            4 => Clustering,
            5 => InclEndExclStartBoundary,
            6 => InclEndBound,
            7 => ExclStartBound,
            _ => return None,
        })
    }

    pub fn ordinal(&self) -> u8 {
        *self as u8
    }

    pub fn is_boundary(&self) -> bool {
        matches!(
            self,
            BoundKind::ExclEndInclStartBoundary | BoundKind::InclEndExclStartBoundary
        )
    }

    /// Opens a deleted range (a start bound, or a boundary, which closes one and opens the next).
    pub fn is_start(&self) -> bool {
        matches!(self, BoundKind::InclStartBound | BoundKind::ExclStartBound) || self.is_boundary()
    }

    pub fn is_end(&self) -> bool {
        matches!(self, BoundKind::InclEndBound | BoundKind::ExclEndBound) || self.is_boundary()
    }
}

/// How time fields of the rows are decoded: deltas against the header's minimums
/// (`SerializationHeader.readTimestamp` …), in the signed (before `oa`) or unsigned (`oa`) convention.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deltas {
    pub min_timestamp: i64,
    pub min_ldt_raw: u32,
    pub min_ttl: i32,
    pub uint_ldt: bool,
}

impl Deltas {
    pub fn new(h: &SerializationHeader, uint_ldt: bool) -> Deltas {
        Deltas {
            min_timestamp: h.min_timestamp,
            min_ldt_raw: h.min_local_deletion_time_raw,
            min_ttl: h.min_ttl,
            uint_ldt,
        }
    }

    #[inline(always)]
    pub fn timestamp(&self, c: &mut Cursor<'_>) -> ShortResult<i64> {
        Ok((c.uvint()? as i64).wrapping_add(self.min_timestamp))
    }

    #[inline(always)]
    pub fn ldt(&self, c: &mut Cursor<'_>) -> ShortResult<i64> {
        let raw = (c.uvint()? as u32).wrapping_add(self.min_ldt_raw);
        Ok(self.ldt_from_raw(raw))
    }

    #[inline(always)]
    pub fn ldt_from_raw(&self, raw: u32) -> i64 {
        ldt_from_raw(raw, self.uint_ldt)
    }

    #[inline(always)]
    pub fn ttl(&self, c: &mut Cursor<'_>) -> ShortResult<i32> {
        Ok((c.uvint()? as u32 as i32).wrapping_add(self.min_ttl))
    }

    #[inline(always)]
    pub fn deletion(&self, c: &mut Cursor<'_>) -> ShortResult<DeletionTime> {
        let mfda = self.timestamp(c)?;
        let ldt = self.ldt(c)?;
        Ok(DeletionTime {
            marked_for_delete_at: mfda,
            local_deletion_time: ldt,
        })
    }
}

/// Reads a partition-level deletion time (fixed width: 12 bytes before `oa`; 1 byte when LIVE or 12 from `oa`).
pub(crate) fn read_partition_deletion(
    c: &mut Cursor<'_>,
    uint_ldt: bool,
) -> ShortResult<DeletionTime> {
    if uint_ldt {
        let first = c.u8()?;
        if first & 0x80 != 0 {
            if first != 0x80 {
                // Caller reports the invalid flag byte as corruption.
                return Err(Short {
                    at: c.pos() - 1,
                    needed: usize::MAX,
                });
            }
            return Ok(DeletionTime::LIVE);
        }
        let rest = c.take(7)?;
        let mut b = [0u8; 8];
        b[0] = first;
        b[1..].copy_from_slice(rest);
        let mfda = i64::from_be_bytes(b);
        let ldt = c.u32()?;
        Ok(DeletionTime {
            marked_for_delete_at: mfda,
            local_deletion_time: ldt_from_raw(ldt, true),
        })
    } else {
        let ldt = c.i32()?;
        let mfda = c.i64()?;
        if ldt == i32::MAX && mfda == i64::MIN {
            return Ok(DeletionTime::LIVE);
        }
        Ok(DeletionTime {
            marked_for_delete_at: mfda,
            local_deletion_time: ldt_from_raw(ldt as u32, false),
        })
    }
}

/// A clustering value's place: absent (`None`: null) or a byte range in the window (possibly empty).
pub(crate) type Slot = Option<(u32, u32)>;

/// Appends a row's clustering slots (a few, once per row). A plain loop rather than `Vec::extend`:
/// `extend` is a generic call the optimizer may leave out of line, and did once the decoder it is
/// inlined into grew (issue 20's scan regression was mostly these calls).
#[inline(always)]
pub(crate) fn push_slots(slots: &mut Vec<Slot>, new: impl ExactSizeIterator<Item = Slot>) {
    slots.reserve(new.len());
    for s in new {
        slots.push(s);
    }
}

/// Reads `size` clustering values into `out` as window positions (`base` = window offset of the cursor's
/// buffer), given the clustering types' fixed lengths (`None`: variable length).
#[inline(always)]
pub(crate) fn read_clustering_fixed(
    c: &mut Cursor<'_>,
    fixed: &[Option<usize>],
    size: usize,
    base: u32,
    out: &mut Vec<Slot>,
) -> ShortResult<()> {
    read_values_with(c, |i| fixed.get(i).copied().flatten(), size, base, out)
}

/// Reads a row's full clustering (see [`read_clustering_fixed`]). `all_fixed`: the sum of the types'
/// lengths when every one is fixed and there are at most 32. Then a header saying that every value is
/// present (the single byte 0, nearly every row) is followed by the values back to back, which are
/// read without the per-value loop.
#[inline(always)]
pub(crate) fn read_clustering_row(
    c: &mut Cursor<'_>,
    fixed: &[Option<usize>],
    all_fixed: Option<usize>,
    out: &mut Vec<Slot>,
) -> ShortResult<()> {
    if let Some(total) = all_fixed {
        let mut fast = *c;
        if fast.u8()? == 0 {
            let mut p = fast.pos() as u32;
            fast.skip(total)?;
            out.clear();
            push_slots(
                out,
                fixed.iter().map(|n| {
                    let start = p;
                    p += n.unwrap_or(0) as u32; // (`all_fixed` is set only when every length is known)
                    Some((start, p))
                }),
            );
            *c = fast;
            return Ok(());
        }
    }
    read_clustering_fixed(c, fixed, fixed.len(), 0, out)
}

#[inline(always)]
fn read_values_with(
    c: &mut Cursor<'_>,
    fixed: impl Fn(usize) -> Option<usize>,
    size: usize,
    base: u32,
    out: &mut Vec<Slot>,
) -> ShortResult<()> {
    out.clear();
    let mut i = 0;
    while i < size {
        let header = c.uvint()?;
        let block_end = (i + 32).min(size);
        while i < block_end {
            let bits = (header >> ((i % 32) * 2)) & 3;
            if bits & 2 != 0 {
                out.push(None);
            } else if bits & 1 != 0 {
                let p = base + c.pos() as u32;
                out.push(Some((p, p)));
            } else {
                let n = match fixed(i) {
                    Some(n) => n,
                    None => c.uvint_len()?,
                };
                let p = base + c.pos() as u32;
                c.skip(n)?;
                out.push(Some((p, p + n as u32)));
            }
            i += 1;
        }
    }
    Ok(())
}

/// Total encoded length of the unfiltered starting at the cursor (flags through its body), without
/// decoding cells, given the header's clustering types' fixed lengths (`None`: variable length).
#[inline]
pub(crate) fn unfiltered_extent_fixed(
    c: &mut Cursor<'_>,
    clustering_fixed: &[Option<usize>],
) -> ShortResult<usize> {
    let start = c.pos();
    let flags = c.u8()?;
    if flags & END_OF_PARTITION != 0 {
        return Ok(1);
    }
    let ext = if flags & EXTENSION_FLAG != 0 {
        c.u8()?
    } else {
        0
    };
    if flags & IS_MARKER != 0 {
        c.u8()?; // bound kind
        let size = c.u16()? as usize;
        skip_clustering_fixed(c, clustering_fixed, size)?;
    } else if ext & IS_STATIC == 0 {
        skip_clustering_fixed(c, clustering_fixed, clustering_fixed.len())?;
    }
    let body = c.uvint_len()?;
    let header = c.pos() - start;
    // A size past what any buffer can hold is reported as a read past the end of the data.
    header.checked_add(body).ok_or(Short {
        at: start,
        needed: usize::MAX - 1,
    })
}

/// One cell as decoded into the reusable buffer: positions are window offsets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawCell {
    pub column: u32,
    pub flags: u8,
    pub timestamp: i64,
    pub ttl: i32,
    pub ldt: i64,
    pub path: Slot,
    pub value: (u32, u32),
}

/// A complex column's deletion, recorded when not LIVE.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawComplexDeletion {
    pub column: u32,
    pub deletion: DeletionTime,
}

/// A decoded cell, borrowing its path and value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell<'a> {
    /// Index of the column among the row's kind of columns (static or regular), in Data.db order.
    pub column: usize,
    pub timestamp: i64,
    /// 0 when not expiring.
    pub ttl: i32,
    /// Expiry (expiring cells) or deletion (tombstones) time in seconds; [`NO_DELETION_TIME`] otherwise.
    pub local_deletion_time: i64,
    pub tombstone: bool,
    /// Collection element / UDT field of a multi-cell column: list timeuuid, set element, map key, field index.
    pub path: Option<&'a [u8]>,
    pub value: &'a [u8],
}

impl Cell<'_> {
    pub fn is_expiring(&self) -> bool {
        self.ttl != 0 && !self.tombstone
    }

    /// Live at `now` (seconds): not a tombstone and not expired (`Cell.isLive`).
    #[inline]
    pub fn is_live(&self, now: i64) -> bool {
        !self.tombstone && (self.ttl == 0 || now < self.local_deletion_time)
    }
}

/// One decoded row (regular or static), borrowing the scanner's window and buffers.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    pub(crate) window: &'a [u8],
    pub(crate) is_static: bool,
    pub(crate) liveness: LivenessInfo,
    pub(crate) deletion: DeletionTime,
    pub(crate) shadowable: DeletionTime,
    pub(crate) clustering: &'a [Slot],
    pub(crate) cells: &'a [RawCell],
    pub(crate) complex_deletions: &'a [RawComplexDeletion],
    /// Position of the row's flags byte in the uncompressed data.
    pub(crate) position: u64,
}

impl<'a> RowRef<'a> {
    pub fn is_static(&self) -> bool {
        self.is_static
    }

    pub fn liveness(&self) -> LivenessInfo {
        self.liveness
    }

    /// The row deletion (LIVE when none).
    pub fn deletion(&self) -> DeletionTime {
        self.deletion
    }

    /// The row's shadowable deletion (LIVE when none): Cassandra's (extended flag 0x02, materialized
    /// views) or ScyllaDB's (0x80, after the regular deletion). It deletes like [`RowRef::deletion`]
    /// unless the row's primary-key liveness is newer (see [`row_deletion`]).
    pub fn shadowable_deletion(&self) -> DeletionTime {
        self.shadowable
    }

    /// Where the row starts in the uncompressed Data.db.
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn clustering_len(&self) -> usize {
        self.clustering.len()
    }

    /// The i-th clustering value (`None` when null).
    #[inline]
    pub fn clustering(&self, i: usize) -> Option<&'a [u8]> {
        self.clustering
            .get(i)
            .copied()
            .flatten()
            .map(|(s, e)| &self.window[s as usize..e as usize])
    }

    /// Cells of the projected columns, in Data.db column order (complex columns' cells in path order).
    pub fn cells(&self) -> impl Iterator<Item = Cell<'a>> + 'a {
        let window = self.window;
        self.cells.iter().map(move |c| Cell {
            column: c.column as usize,
            timestamp: c.timestamp,
            ttl: c.ttl,
            local_deletion_time: c.ldt,
            tombstone: c.flags & CELL_IS_DELETED != 0,
            path: c.path.map(|(s, e)| &window[s as usize..e as usize]),
            value: &window[c.value.0 as usize..c.value.1 as usize],
        })
    }

    /// Deletions of complex (multi-cell) columns in this row, as (column index, deletion).
    pub fn complex_deletions(&self) -> impl Iterator<Item = (usize, DeletionTime)> + 'a {
        self.complex_deletions
            .iter()
            .map(|d| (d.column as usize, d.deletion))
    }
}

/// A range tombstone marker: a bound (or boundary) and the deletion(s) it opens or closes.
#[derive(Debug, Clone, Copy)]
pub struct MarkerRef<'a> {
    pub(crate) window: &'a [u8],
    pub kind: BoundKind,
    pub(crate) clustering: &'a [Slot],
    /// Deletion that ends here (end bounds and boundaries).
    pub end_deletion: Option<DeletionTime>,
    /// Deletion that starts here (start bounds and boundaries).
    pub start_deletion: Option<DeletionTime>,
    pub(crate) position: u64,
}

impl<'a> MarkerRef<'a> {
    pub fn clustering_len(&self) -> usize {
        self.clustering.len()
    }

    pub fn clustering(&self, i: usize) -> Option<&'a [u8]> {
        self.clustering
            .get(i)
            .copied()
            .flatten()
            .map(|(s, e)| &self.window[s as usize..e as usize])
    }

    pub fn position(&self) -> u64 {
        self.position
    }
}

/// A row or a range tombstone marker.
#[derive(Debug, Clone, Copy)]
pub enum Unfiltered<'a> {
    Row(RowRef<'a>),
    Marker(MarkerRef<'a>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_all_fixed_clustering_path_reads_what_the_general_one_reads() {
        let fixed = [Some(8), Some(16)];
        let all = Some(24);
        // Header 0 (both present) then 8 + 16 bytes; header 0b1000 (the second null) then 8 bytes;
        // header 0b0100 (the second empty) then 8 bytes; a value cut short.
        let mut present = vec![0u8];
        present.extend(1..=24u8);
        let mut null = vec![0b1000u8];
        null.extend(1..=8u8);
        let mut empty = vec![0b0100u8];
        empty.extend(1..=8u8);
        for bytes in [present.clone(), null, empty, present[..20].to_vec()] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let (mut ca, mut cb) = (Cursor::new(&bytes), Cursor::new(&bytes));
            let ra = read_clustering_row(&mut ca, &fixed, all, &mut a);
            let rb = read_clustering_fixed(&mut cb, &fixed, 2, 0, &mut b);
            assert_eq!(ra.is_ok(), rb.is_ok(), "{bytes:?}");
            if ra.is_ok() {
                assert_eq!((a, ca.pos()), (b, cb.pos()), "{bytes:?}");
            }
        }
    }

    #[test]
    fn a_huge_row_size_is_a_short_read_not_an_overflow() {
        // Row flags, no clustering columns, then row_size = u64::MAX (found by cargo fuzz).
        let bytes = [
            HAS_TIMESTAMP,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
        ];
        let err = unfiltered_extent_fixed(&mut Cursor::new(&bytes), &[]).unwrap_err();
        assert_eq!(err.at, 0);
    }

    #[test]
    fn deletion_times_decode_in_both_conventions() {
        let live_oa = [0x80u8];
        assert!(read_partition_deletion(&mut Cursor::new(&live_oa), true)
            .unwrap()
            .is_live());
        assert!(read_partition_deletion(&mut Cursor::new(&[0x81]), true).is_err());
        let mut legacy = i32::MAX.to_be_bytes().to_vec();
        legacy.extend(i64::MIN.to_be_bytes());
        assert!(read_partition_deletion(&mut Cursor::new(&legacy), false)
            .unwrap()
            .is_live());
        let mut oa = 1_600_000_000_000_000i64.to_be_bytes().to_vec();
        oa.extend(1_600_000_000u32.to_be_bytes());
        let d = read_partition_deletion(&mut Cursor::new(&oa), true).unwrap();
        assert_eq!(
            (d.marked_for_delete_at, d.local_deletion_time),
            (1_600_000_000_000_000, 1_600_000_000)
        );
    }
}
