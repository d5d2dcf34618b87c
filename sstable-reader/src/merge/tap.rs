//! Taps: what one SSTable's scan reads, seen before the merge. A [`ScanTap`] attached to a merged scan
//! ([`super::MergedScan::tap`]) receives each partition of that SSTable whole and unfiltered — its
//! header, every row (static, deleted, expired or not), every range tombstone marker, in Data.db order —
//! exactly what [`crate::Scanner::next_unfiltered`] gives, while the merge goes on as without it. The
//! extract cache builds an SSTable's extract during a run's own scan so: the chunks are decompressed and
//! checksummed once, for both.
//!
//! The partition is decoded for the tap first (plain rows by the lean decoder,
//! [`Scanner::next_plain_rows`], anything else by the general one), then the scanner is rewound to its
//! first unfiltered for the merge (its bytes are still in the window).

use crate::error::Result;
use crate::row::{
    DeletionTime, LivenessInfo, RawCell, RawComplexDeletion, RowRef, Slot, Unfiltered,
};
use crate::scanner::{CellSink, PartitionHeader, RowSink, Scanner, TooWide};

/// Sees one SSTable's partitions as a merged scan reads them (see the module doc).
pub trait ScanTap {
    /// A partition starts: its serialized key, token and header.
    fn partition(&mut self, key: &[u8], token: u128, header: PartitionHeader);
    /// The partition's next row or marker.
    fn unfiltered(&mut self, u: &Unfiltered<'_>);
}

/// Plain rows decoded by the lean decoder, kept until it stops (their offsets are window offsets).
#[derive(Default)]
pub(super) struct TapBuffers {
    cells: Vec<RawCell>,
    /// Per row: the end of its cells in `cells`, its clustering's window offset and liveness.
    rows: Vec<(usize, u32, LivenessInfo)>,
    /// Where the row being decoded starts in `cells`.
    row_start: usize,
    /// The fixed clustering lengths of plain rows (the same for every row).
    lens: Vec<u32>,
    clustering: Vec<Slot>,
}

impl CellSink for TapBuffers {
    #[inline(always)]
    fn begin(&mut self, _: bool) {
        self.row_start = self.cells.len();
    }

    #[inline(always)]
    fn cell(&mut self, cell: RawCell) {
        self.cells.push(cell);
    }

    fn complex_deletion(&mut self, _: RawComplexDeletion) {
        // Plain rows have no complex column up to the last projected one.
    }
}

impl RowSink for TapBuffers {
    // Every row as written, also one repeating the previous one's clustering.
    const DISTINCT: bool = false;

    #[inline(always)]
    fn row(
        &mut self,
        at: u32,
        lens: &[u32],
        liveness: LivenessInfo,
    ) -> std::result::Result<(), TooWide> {
        if self.lens.as_slice() != lens {
            self.lens.clear();
            self.lens.extend_from_slice(lens);
        }
        self.rows.push((self.cells.len(), at, liveness));
        Ok(())
    }

    fn abandon(&mut self) {
        self.cells.truncate(self.row_start);
    }
}

/// Gives the scanner's current partition (just begun: `header`, `token`) to `tap`, then rewinds the
/// scanner to the partition's first unfiltered.
pub(super) fn read(
    scan: &mut Scanner<'_>,
    token: u128,
    header: PartitionHeader,
    tap: &mut dyn ScanTap,
    bufs: &mut TapBuffers,
) -> Result<()> {
    tap.partition(scan.key(), token, header);
    loop {
        bufs.cells.clear();
        bufs.rows.clear();
        // Too wide for 32-bit offsets: the general decoder takes the row (and reports it).
        let _ = scan.next_plain_rows(bufs);
        if !bufs.rows.is_empty() {
            let window = scan.partition_bytes();
            let mut start = 0;
            for &(end, at, liveness) in &bufs.rows {
                let mut p = at;
                bufs.clustering.clear();
                bufs.clustering.extend(bufs.lens.iter().map(|&k| {
                    let s = p;
                    p = p.wrapping_add(k);
                    Some((s, p))
                }));
                tap.unfiltered(&Unfiltered::Row(RowRef {
                    window,
                    is_static: false,
                    liveness,
                    deletion: DeletionTime::LIVE,
                    shadowable: DeletionTime::LIVE,
                    clustering: &bufs.clustering,
                    cells: &bufs.cells[start..end],
                    complex_deletions: &[],
                    position: header.position,
                }));
                start = end;
            }
        }
        match scan.next_unfiltered_kept()? {
            Some(u) => tap.unfiltered(&u),
            None => break,
        }
    }
    scan.rewind_partition();
    Ok(())
}
