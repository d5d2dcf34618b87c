//! Partitions of an SSTable read from somewhere other than its Data.db — a columnar extract kept in a
//! cache — and merged exactly as the SSTable's own would be.
//!
//! A [`PartitionFeed`] attached to one SSTable of a [`super::MergeTable`]
//! ([`super::MergeTable::attach_feed`]) replaces the decoding of that SSTable's Data.db: a merged scan
//! asks the feed for a [`FeedCursor`] over the same span of Data.db a [`crate::Scanner`] would read
//! (partitions are identified by their Data.db position, so [`crate::plan_ranges`] works unchanged), and
//! the cursor hands each partition's unfiltered stream — rows with their liveness, deletions and every
//! cell's timestamp, TTL and local deletion time, range tombstone markers, complex deletions — to a
//! [`FeedStage`]. From there the merge is the one every SSTable goes through: reconciliation and TTL
//! expiry are decided by the merge at the scan's `now`, never by the feed.
//!
//! The merge's fast path applies to feeds too: a partition held by one SSTable only, without a
//! partition deletion, whose entries the cursor vouches are plain rows ([`FeedCursor::plain_rows`]:
//! no marker, no row deletion, distinct fixed-length clusterings) has nothing to
//! reconcile but each row's own liveness and TTLs at `now`; its rows become output rows as they are
//! staged, with no merge pass (as `direct.rs` does for Data.db).

use crate::error::{Error, Result};
use crate::row::{
    BoundKind, DeletionTime, LivenessInfo, RawCell, RawComplexDeletion, CELL_IS_DELETED,
};
use crate::scanner::{CellSink, PartitionHeader, Projection};

use super::stage::{Slot, Stager};
use super::{single_row, OutRow, Version};

/// The partitions of one SSTable, held outside its Data.db (e.g. a columnar extract).
pub trait PartitionFeed: Send + Sync + std::fmt::Debug {
    /// A cursor over the partitions whose Data.db position is in `[start, end)`, in Data.db order.
    /// `projection` names the static and regular columns the scan needs (the feed may hand over
    /// others too: the stage drops them).
    fn cursor(
        &self,
        start: u64,
        end: u64,
        projection: &Projection,
    ) -> Result<Box<dyn FeedCursor + '_>>;

    /// Where the feed's data lives (named by errors and progress).
    fn origin(&self) -> &std::path::Path;

    /// Whether the feed holds every static and regular column `projection` needs; a scan that needs
    /// one it lacks reads the SSTable's Data.db instead (so results never depend on the feed).
    fn holds(&self, _projection: &Projection) -> bool {
        true
    }
}

/// One pass over a span of a feed's partitions.
pub trait FeedCursor {
    /// Moves to the next partition (skipping what is left of the current one): its Data.db position and
    /// partition deletion, or `None` at the end of the span.
    fn next_partition(&mut self) -> Result<Option<PartitionHeader>>;

    /// The current partition's serialized key.
    fn key(&self) -> &[u8];

    /// The current partition's token, when the feed stores it (the merge computes it otherwise).
    fn token(&self) -> Option<u128> {
        None
    }

    /// Hands the current partition's static row, rows and markers (in clustering order) to `stage`.
    fn stage(&mut self, stage: &mut FeedStage<'_>) -> Result<()>;

    /// Bytes of the feed read so far (for progress).
    fn bytes_read(&self) -> u64 {
        0
    }

    /// Whether the current partition's entries (what [`FeedCursor::stage`] would hand over) are, past
    /// an optional static row first, all regular rows — none with a row or shadowable deletion — with
    /// all their clustering values present, of fixed length and distinct from the previous row's: then
    /// a partition of this feed alone is staged straight into output rows, with no merge pass. `false`
    /// when unsure.
    fn plain_rows(&self) -> bool {
        false
    }
}

/// Where a plain partition's rows go when they skip the merge pass (fields of the merged partition).
pub(super) struct DirectOut<'a> {
    pub rows: &'a mut Vec<OutRow>,
    pub static_row: &'a mut Option<OutRow>,
    pub out_cells: &'a mut Vec<u32>,
    pub expired: &'a mut u64,
    pub now: i64,
}

/// One cell as a feed hands it over: `column` indexes the SSTable's own static or regular columns.
#[derive(Debug, Clone, Copy)]
pub struct FeedCell<'a> {
    pub column: usize,
    pub timestamp: i64,
    /// 0 when not expiring.
    pub ttl: i32,
    /// Expiry (expiring cells) or deletion (tombstones) time in seconds; `NO_DELETION_TIME` otherwise.
    pub local_deletion_time: i64,
    pub tombstone: bool,
    /// The cell path of a multi-cell column's cell (map key, set element, list timeuuid, UDT field).
    pub path: Option<&'a [u8]>,
    pub value: &'a [u8],
}

/// Receives one partition of a feed and stages it for the merge, as the scanner stages a Data.db
/// partition. Per row: [`FeedStage::begin_row`], its cells and complex deletions, then
/// [`FeedStage::end_row`]; markers go to [`FeedStage::marker`].
pub struct FeedStage<'a> {
    /// The partition's bytes (clustering values, paths, values) go straight into its arena: a feed has
    /// no window of Data.db to copy at the end.
    stager: Stager<'a>,
    clustering: &'a mut Vec<Slot>,
    projection: &'a Projection,
    is_static: bool,
    rows: u64,
    /// The partition's rows are plain: each becomes an output row at once.
    direct: Option<DirectOut<'a>>,
}

impl<'a> FeedStage<'a> {
    pub(super) fn new(
        stager: Stager<'a>,
        clustering: &'a mut Vec<Slot>,
        projection: &'a Projection,
        direct: Option<DirectOut<'a>>,
    ) -> FeedStage<'a> {
        FeedStage {
            stager,
            clustering,
            projection,
            is_static: false,
            rows: 0,
            direct,
        }
    }

    #[inline]
    fn push(&mut self, b: &[u8]) -> Result<(u32, u32)> {
        self.stager.push_bytes(b).map_err(|_| too_wide())
    }

    fn wanted(&self, column: usize) -> bool {
        if self.is_static {
            self.projection.includes_static(column)
        } else {
            self.projection.includes_regular(column)
        }
    }

    /// Starts a row (the static row when `is_static`).
    pub fn begin_row(&mut self, is_static: bool) {
        self.is_static = is_static;
        self.stager.begin(is_static);
    }

    /// A cell of the row begun last (cells in the SSTable's column order, a column's cells in path order).
    pub fn cell(&mut self, c: &FeedCell<'_>) -> Result<()> {
        if !self.wanted(c.column) {
            return Ok(());
        }
        let path = match c.path {
            Some(p) => Some(self.push(p)?),
            None => None,
        };
        let value = self.push(c.value)?;
        self.stager.cell(RawCell {
            column: u32::try_from(c.column).map_err(|_| too_wide())?,
            flags: if c.tombstone { CELL_IS_DELETED } else { 0 },
            timestamp: c.timestamp,
            ttl: c.ttl,
            ldt: c.local_deletion_time,
            path,
            value,
        });
        Ok(())
    }

    /// The deletion of a complex (multi-cell) column of the row begun last.
    pub fn complex_deletion(&mut self, column: usize, deletion: DeletionTime) -> Result<()> {
        if !self.wanted(column) || deletion.is_live() {
            return Ok(());
        }
        self.stager.complex_deletion(RawComplexDeletion {
            column: u32::try_from(column).map_err(|_| too_wide())?,
            deletion,
        });
        Ok(())
    }

    fn clustering<'c>(&mut self, values: impl Iterator<Item = Option<&'c [u8]>>) -> Result<()> {
        let mut slots = std::mem::take(self.clustering);
        slots.clear();
        for v in values {
            slots.push(match v {
                Some(b) => Some(self.push(b)?),
                None => None,
            });
        }
        *self.clustering = slots;
        Ok(())
    }

    /// Ends the row begun last: its clustering (empty for the static row), primary-key liveness, row
    /// deletion and shadowable deletion (LIVE when none).
    pub fn end_row<'c>(
        &mut self,
        clustering: impl Iterator<Item = Option<&'c [u8]>>,
        liveness: LivenessInfo,
        deletion: DeletionTime,
        shadowable: DeletionTime,
    ) -> Result<()> {
        self.clustering(clustering)?;
        self.rows += 1;
        if let Some(d) = &mut self.direct {
            if !deletion.is_live() || !shadowable.is_live() {
                return Err(not_plain());
            }
            let version = Version {
                clust: self
                    .stager
                    .push_clustering(self.clustering)
                    .map_err(|_| too_wide())?,
                liveness,
                cells: self.stager.staged().map_err(|_| too_wide())?.0,
                complex: self.stager.staged().map_err(|_| too_wide())?.1,
            };
            // As the general merge of a lone version under no deletion (see `merge_single`).
            let row = single_row(
                self.stager.arena(),
                d.out_cells,
                d.expired,
                &version,
                DeletionTime::LIVE,
                d.now,
                self.is_static,
            );
            match (row, self.is_static) {
                (row, true) => *d.static_row = row,
                (Some(row), false) => d.rows.push(row),
                (None, false) => {}
            }
            return Ok(());
        }
        self.stager
            .finish_row(
                self.clustering,
                liveness,
                (deletion, shadowable),
                self.is_static,
            )
            .map_err(|_| too_wide())
    }

    /// A range tombstone bound or boundary: its clustering prefix, kind and the deletion it opens
    /// (`None`: an end bound).
    pub fn marker<'c>(
        &mut self,
        clustering: impl Iterator<Item = Option<&'c [u8]>>,
        kind: BoundKind,
        opens: Option<DeletionTime>,
    ) -> Result<()> {
        if self.direct.is_some() {
            return Err(not_plain());
        }
        self.clustering(clustering)?;
        self.stager
            .marker(self.clustering, kind, opens)
            .map_err(|_| too_wide())
    }

    /// Rows staged (static row included).
    pub(super) fn rows(&self) -> u64 {
        self.rows
    }

    /// Ends the partition (its bytes are in the arena already).
    pub(super) fn finish(self) -> Result<()> {
        self.stager.finish(&[]).map_err(|_| too_wide())
    }
}

/// A feed vouched a partition's rows plain ([`FeedCursor::plain_rows`]) and then handed over more.
fn not_plain() -> Error {
    Error::unsupported(
        std::path::Path::new("(feed)"),
        "a partition said to hold plain rows only holds a static row, a deletion or a marker",
    )
}

fn too_wide() -> Error {
    Error::unsupported(
        std::path::Path::new("(feed)"),
        "a partition wider than 4 GiB of projected data",
    )
}
