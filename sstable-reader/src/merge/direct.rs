//! The merge's fast path: a partition held by one SSTable, without a partition deletion, whose rows are
//! all plain ([`Scanner::next_plain_rows`]) has nothing to reconcile but each row's own liveness and TTLs
//! — the usual partition of an events table. Its rows are staged as usual but go straight to the merged
//! partition's output, with no staged items and no merge pass.
//!
//! Anything else in the partition (a static row, a marker, a deleted row, a repeated clustering, a row
//! the lean decoder leaves to the general one) sends it back to the start, to be staged and merged as
//! usual: the output is always the general merge's.

use super::stage::Stager;
use super::{single_row, MergedPartition, OutRow, Version};
use crate::row::{DeletionTime, LivenessInfo, RawCell, RawComplexDeletion};
use crate::scanner::{CellSink, RowSink, Scanner, TooWide};

/// Stages one SSTable's plain rows and turns each into an output row at once (a [`RowSink`]).
struct Direct<'a> {
    stage: Stager<'a>,
    rows: &'a mut Vec<OutRow>,
    out_cells: &'a mut Vec<u32>,
    expired: &'a mut u64,
    now: i64,
}

impl CellSink for Direct<'_> {
    #[inline(always)]
    fn begin(&mut self, is_static: bool) {
        self.stage.begin(is_static);
    }

    #[inline(always)]
    fn cell(&mut self, c: RawCell) {
        self.stage.cell(c);
    }

    fn complex_deletion(&mut self, d: RawComplexDeletion) {
        self.stage.complex_deletion(d);
    }
}

impl RowSink for Direct<'_> {
    const DISTINCT: bool = true;

    #[inline(always)]
    fn row(&mut self, at: u32, lens: &[u32], liveness: LivenessInfo) -> Result<(), TooWide> {
        let clust = self.stage.fixed_clustering(at, lens)?;
        let (cells, complex) = self.stage.staged()?;
        let version = Version {
            clust,
            liveness,
            cells,
            complex,
        };
        let out = single_row(
            self.stage.arena(),
            self.out_cells,
            self.expired,
            &version,
            DeletionTime::LIVE,
            self.now,
            false,
        );
        if let Some(row) = out {
            self.rows.push(row);
        }
        Ok(())
    }

    fn abandon(&mut self) {
        self.stage.abandon();
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
/// all its rows are plain; returns the rows read. `maps`: the SSTable's static and regular column
/// indexes → the merged table's, `dropped` the drop times of its columns. `None`: it is not such a partition (or too wide for the arena),
/// `part` is empty again and the scanner is back at the partition's first unfiltered.
pub(super) fn read(
    scan: &mut Scanner<'_>,
    part: &mut MergedPartition,
    maps: &(Vec<u32>, Vec<u32>),
    dropped: &(Vec<i64>, Vec<i64>),
    now: i64,
) -> crate::error::Result<Option<u64>> {
    debug_assert!(part.arena.bytes.is_empty() && part.rows.is_empty());
    let MergedPartition {
        arena,
        rows,
        out_cells,
        expired,
        ..
    } = &mut *part;
    if let Ok(stage) = Stager::new(arena, &maps.0, &maps.1, dropped) {
        let mut sink = Direct {
            stage,
            rows,
            out_cells,
            expired,
            now,
        };
        if let Ok(n) = scan.next_plain_rows(&mut sink) {
            if scan.next_into(&mut Discard)?.is_none()
                && sink.stage.finish(scan.partition_bytes()).is_ok()
            {
                return Ok(Some(n));
            }
        }
    }
    scan.rewind_partition();
    part.arena.clear();
    part.rows.clear();
    part.out_cells.clear();
    part.expired = 0;
    Ok(None)
}
