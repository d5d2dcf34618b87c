//! The merge's fast path: a partition held by one SSTable, without a partition deletion, whose rows are
//! all plain ([`Scanner::next_plain_rows`]) has nothing to reconcile but each row's own liveness and TTLs
//! — the usual partition of an events table. Its rows go straight to the merged partition's output, with
//! no staged items and no merge pass.
//!
//! Anything else in the partition (a static row, a marker, a deleted row, a repeated clustering, a row
//! the lean decoder leaves to the general one) sends it back to the start, to be staged and merged as
//! usual: the output is always the general merge's.

use super::stage::{merged_column, r32, TooWide};
use super::{single_row, MergedPartition, Version};
use crate::row::{DeletionTime, LivenessInfo, RawCell, RawComplexDeletion};
use crate::scanner::{CellSink, RowSink, Scanner};

/// Puts one SSTable's plain rows straight into a merged partition's output rows (a [`RowSink`]).
pub(super) struct Direct<'a> {
    part: &'a mut MergedPartition,
    /// The SSTable's regular column indexes → the merged table's.
    regulars: &'a [u32],
    now: i64,
    cells_start: usize,
    complex_start: usize,
}

impl<'a> Direct<'a> {
    /// `part` must be empty: window offsets are arena offsets (the partition's bytes are copied at 0).
    fn new(part: &'a mut MergedPartition, regulars: &'a [u32], now: i64) -> Self {
        debug_assert!(part.arena.bytes.is_empty() && part.rows.is_empty());
        Direct {
            part,
            regulars,
            now,
            cells_start: 0,
            complex_start: 0,
        }
    }
}

impl CellSink for Direct<'_> {
    #[inline(always)]
    fn begin(&mut self, _is_static: bool) {
        self.cells_start = self.part.arena.cells.len();
        self.complex_start = self.part.arena.complex.len();
    }

    #[inline(always)]
    fn cell(&mut self, c: RawCell) {
        let column = merged_column(self.regulars, c.column);
        self.part.arena.push_cell(c, column, 0);
    }

    fn complex_deletion(&mut self, d: RawComplexDeletion) {
        let column = merged_column(self.regulars, d.column);
        self.part.arena.complex.push((column, d.deletion));
    }
}

impl RowSink for Direct<'_> {
    const DISTINCT: bool = true;

    #[inline(always)]
    fn row(&mut self, at: u32, lens: &[u32], liveness: LivenessInfo) -> Result<(), TooWide> {
        let a = &mut self.part.arena;
        let version = Version {
            clust: a.push_fixed_clustering(at, lens, 0)?,
            liveness,
            cells: r32(self.cells_start, a.cells.len())?,
            complex: r32(self.complex_start, a.complex.len())?,
        };
        if let Some(row) = single_row(self.part, &version, DeletionTime::LIVE, self.now, false) {
            self.part.rows.push(row);
        }
        Ok(())
    }

    fn abandon(&mut self) {
        self.part.arena.cells.truncate(self.cells_start);
        self.part.arena.complex.truncate(self.complex_start);
    }
}

/// Takes an unfiltered's cells and drops them (what [`read`] decodes only to see that one is there).
struct Discard;

impl CellSink for Discard {
    fn begin(&mut self, _: bool) {}
    fn cell(&mut self, _: RawCell) {}
    fn complex_deletion(&mut self, _: RawComplexDeletion) {}
}

/// Reads the scanner's current partition (one SSTable's, its deletion LIVE) into the empty `part` when
/// all its rows are plain; returns the rows read. `None`: it is not such a partition (or too wide for
/// the arena), `part` is empty again and the scanner is back at the partition's first unfiltered.
pub(super) fn read(
    scan: &mut Scanner<'_>,
    part: &mut MergedPartition,
    regulars: &[u32],
    now: i64,
) -> crate::error::Result<Option<u64>> {
    if let Ok(rows) = scan.next_plain_rows(&mut Direct::new(part, regulars, now)) {
        if scan.next_into(&mut Discard)?.is_none() {
            part.arena.bytes.extend_from_slice(scan.partition_bytes());
            return Ok(Some(rows));
        }
    }
    scan.rewind_partition();
    part.arena.clear();
    part.rows.clear();
    part.out_cells.clear();
    Ok(None)
}
