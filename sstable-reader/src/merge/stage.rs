//! The per-partition arena: the unfiltereds every contributing SSTable holds for the current partition,
//! copied out of the scanners' chunk buffers (which the next partition reuses) into flat, reused vectors.
//! Cells carry column indexes of the merged table, so SSTables written before a column was added line up.
//! Memory is that of the widest partition; nothing is allocated per row once the vectors have grown.

use crate::row::{
    push_slots, BoundKind, DeletionTime, LivenessInfo, RawCell, RawComplexDeletion, CELL_IS_DELETED,
};
use crate::scanner::{CellSink, RowSink, TooWide};

/// A range of the arena's bytes, slots, cells or complex deletions.
pub type Span = (u32, u32);

/// A byte range in the arena (`None`: a null clustering component).
pub type Slot = Option<Span>;

/// A staged cell.
#[derive(Debug, Clone, Copy)]
pub struct CellRec {
    /// Column index in the merged table's statics or regulars.
    pub column: u32,
    pub timestamp: i64,
    pub ttl: i32,
    pub ldt: i64,
    pub tombstone: bool,
    pub path: Slot,
    pub value: (u32, u32),
}

/// A staged row (kind `Clustering` or `StaticClustering`) or range tombstone marker.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    pub kind: BoundKind,
    /// Range in [`Arena::slots`].
    pub clust: (u32, u32),
    pub liveness: LivenessInfo,
    /// Rows: the row deletion. Markers: the deletion open after the marker (LIVE: none).
    pub deletion: DeletionTime,
    /// Range in [`Arena::cells`].
    pub cells: (u32, u32),
    /// Range in [`Arena::complex`].
    pub complex: (u32, u32),
}

impl Item {
    /// A marker's deletion that is open after it (`None`: it opens none).
    #[inline]
    pub fn opens(&self) -> Option<DeletionTime> {
        (!self.deletion.is_live()).then_some(self.deletion)
    }
}

/// Reused storage for one partition.
#[derive(Debug, Default)]
pub struct Arena {
    pub bytes: Vec<u8>,
    pub slots: Vec<Slot>,
    pub cells: Vec<CellRec>,
    pub complex: Vec<(u32, DeletionTime)>,
    pub items: Vec<Item>,
    pub statics: Vec<Item>,
    /// Range tombstone markers among `items`.
    pub markers: u32,
    /// The shadowable row deletions (rare: materialized views), by item index (`| STATIC` for
    /// `statics`); kept aside so that every other row's item stays small.
    pub shadowable: Vec<(u32, DeletionTime)>,
}

/// Marks an index into [`Arena::statics`] in [`Arena::shadowable`].
const STATIC: u32 = 1 << 31;

fn r32(a: usize, b: usize) -> Result<(u32, u32), TooWide> {
    Ok((
        u32::try_from(a).map_err(|_| TooWide)?,
        u32::try_from(b).map_err(|_| TooWide)?,
    ))
}

impl Arena {
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.slots.clear();
        self.cells.clear();
        self.complex.clear();
        self.items.clear();
        self.statics.clear();
        self.markers = 0;
        self.shadowable.clear();
    }

    /// The shadowable row deletion of the row at `index` of `items` (or `statics`), LIVE when none.
    #[inline(always)]
    pub fn shadowable(&self, index: usize, is_static: bool) -> DeletionTime {
        if self.shadowable.is_empty() {
            return DeletionTime::LIVE;
        }
        let key = index as u32 | if is_static { STATIC } else { 0 };
        self.shadowable
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(DeletionTime::LIVE, |(_, d)| *d)
    }

    #[inline]
    pub fn push_bytes(&mut self, b: &[u8]) -> Result<(u32, u32), TooWide> {
        let s = self.bytes.len();
        self.bytes.extend_from_slice(b);
        r32(s, self.bytes.len())
    }

    #[inline]
    pub fn get(&self, r: (u32, u32)) -> &[u8] {
        &self.bytes[r.0 as usize..r.1 as usize]
    }

    #[inline]
    pub fn slot(&self, s: Slot) -> Option<&[u8]> {
        s.map(|r| self.get(r))
    }

    /// Clustering values of an item.
    pub fn clustering(&self, it: &Item) -> impl ExactSizeIterator<Item = Option<&[u8]>> + '_ {
        self.slots[it.clust.0 as usize..it.clust.1 as usize]
            .iter()
            .map(|s| self.slot(*s))
    }
}

/// A window range shifted to where the window's bytes land in the arena (wrapping: a partition too
/// wide for 32-bit offsets fails in [`Stager::finish`]).
#[inline(always)]
fn shifted((s, e): (u32, u32), base: u32) -> (u32, u32) {
    (s.wrapping_add(base), e.wrapping_add(base))
}

/// Marks a column in a source's column map ([`Stager::new`]) whose cells written at or before the
/// merged column's drop time are not its cells: a column dropped and added again, in an SSTable that may
/// hold cells from before the drop.
pub const DROPPED_BEFORE: u32 = 1 << 31;

/// Stages one source's unfiltereds while the scanner decodes them (a [`CellSink`]). The scanner keeps
/// the whole partition in its window while it is staged, so cells and clusterings are recorded with
/// window offsets shifted by where the window's bytes will land in the arena, and [`Stager::finish`]
/// copies the partition's bytes once, in one piece.
pub(crate) struct Stager<'a> {
    arena: &'a mut Arena,
    statics: &'a [u32],
    regulars: &'a [u32],
    map: &'a [u32],
    /// Drop times (µs) of the merged static and regular columns (`i64::MIN`: not dropped), and those of
    /// the kind of the current row.
    dropped: &'a (Vec<i64>, Vec<i64>),
    drop_times: &'a [i64],
    /// Arena offset of window offset 0.
    base: u32,
    cells_start: usize,
    complex_start: usize,
}

impl<'a> Stager<'a> {
    /// A stager for one source of the partition; the maps translate the SSTable's static and regular
    /// column indexes to the merged table's (an index with [`DROPPED_BEFORE`] set: its cells up to the
    /// merged column's time in `dropped` are dropped).
    pub fn new(
        arena: &'a mut Arena,
        statics: &'a [u32],
        regulars: &'a [u32],
        dropped: &'a (Vec<i64>, Vec<i64>),
    ) -> Result<Self, TooWide> {
        let base = u32::try_from(arena.bytes.len()).map_err(|_| TooWide)?;
        Ok(Stager {
            arena,
            statics,
            regulars,
            map: regulars,
            dropped,
            drop_times: &dropped.1,
            base,
            cells_start: 0,
            complex_start: 0,
        })
    }

    /// The merged column of the SSTable's column `c` for a cell or complex deletion written at
    /// `timestamp` (`u32::MAX`: none).
    #[inline(always)]
    fn column(&self, c: u32, timestamp: i64) -> u32 {
        let column = self.map.get(c as usize).copied().unwrap_or(u32::MAX);
        if column & DROPPED_BEFORE != 0 && column != u32::MAX {
            return self.unless_dropped(column & !DROPPED_BEFORE, timestamp);
        }
        column
    }

    /// `column`, unless written at or before its drop (Cassandra's `SerializationHelper.isDropped`:
    /// such a cell belongs to the column that was dropped, not to the one added again).
    #[cold]
    fn unless_dropped(&self, column: u32, timestamp: i64) -> u32 {
        match self.drop_times.get(column as usize) {
            Some(&at) if timestamp <= at => u32::MAX,
            _ => column,
        }
    }

    /// The partition's arena, as staged so far.
    pub fn arena(&self) -> &Arena {
        self.arena
    }

    /// Appends a plain row's clustering (fixed-length values `lens` following one another from
    /// window offset `at`, as [`RowSink::row`] gives it) to the arena's slots; returns their range.
    #[inline(always)]
    pub fn fixed_clustering(&mut self, at: u32, lens: &[u32]) -> Result<(u32, u32), TooWide> {
        let start = self.arena.slots.len();
        let mut p = at.wrapping_add(self.base);
        push_slots(
            &mut self.arena.slots,
            lens.iter().map(|&k| {
                let s = p;
                p = p.wrapping_add(k);
                Some((s, p))
            }),
        );
        r32(start, self.arena.slots.len())
    }

    /// The arena ranges of the cells and the complex deletions staged since [`CellSink::begin`].
    #[inline(always)]
    pub fn staged(&self) -> Result<(Span, Span), TooWide> {
        Ok((
            r32(self.cells_start, self.arena.cells.len())?,
            r32(self.complex_start, self.arena.complex.len())?,
        ))
    }

    /// Appends a clustering (window offsets) to the arena's slots; returns their range.
    #[inline(always)]
    pub fn push_clustering(&mut self, clustering: &[Slot]) -> Result<(u32, u32), TooWide> {
        let start = self.arena.slots.len();
        let base = self.base;
        push_slots(
            &mut self.arena.slots,
            clustering.iter().map(|s| s.map(|r| shifted(r, base))),
        );
        r32(start, self.arena.slots.len())
    }

    /// Records the row whose cells were just staged, with its clustering (window offsets).
    #[inline(always)]
    pub fn finish_row(
        &mut self,
        clustering: &[Slot],
        liveness: LivenessInfo,
        (deletion, shadowable): (DeletionTime, DeletionTime),
        is_static: bool,
    ) -> Result<(), TooWide> {
        let cs = self.push_clustering(clustering)?;
        self.push_row(cs, liveness, (deletion, shadowable), is_static)
    }

    /// Records the row whose cells were just staged, its clustering at `cs` in the arena's slots.
    #[inline(always)]
    fn push_row(
        &mut self,
        cs: (u32, u32),
        liveness: LivenessInfo,
        (deletion, shadowable): (DeletionTime, DeletionTime),
        is_static: bool,
    ) -> Result<(), TooWide> {
        let (cells, complex) = self.staged()?;
        if !shadowable.is_live() {
            let index = if is_static {
                self.arena.statics.len()
            } else {
                self.arena.items.len()
            };
            let key =
                u32::try_from(index).map_err(|_| TooWide)? | if is_static { STATIC } else { 0 };
            self.arena.shadowable.push((key, shadowable));
        }
        let item = Item {
            kind: if is_static {
                BoundKind::StaticClustering
            } else {
                BoundKind::Clustering
            },
            clust: cs,
            liveness,
            deletion,
            cells,
            complex,
        };
        if is_static {
            self.arena.statics.push(item);
        } else {
            self.arena.items.push(item);
        }
        Ok(())
    }

    /// Records a range tombstone marker.
    pub fn marker(
        &mut self,
        clustering: &[Slot],
        kind: BoundKind,
        start_deletion: Option<DeletionTime>,
    ) -> Result<(), TooWide> {
        let cs = self.push_clustering(clustering)?;
        let a = &mut *self.arena;
        let n = a.cells.len();
        let x = a.complex.len();
        a.markers += 1;
        a.items.push(Item {
            kind,
            clust: cs,
            liveness: LivenessInfo::EMPTY,
            deletion: start_deletion.unwrap_or(DeletionTime::LIVE),
            cells: r32(n, n)?,
            complex: r32(x, x)?,
        });
        Ok(())
    }

    /// Appends bytes of the source's partition to the arena as they come (a feed's partition, which
    /// has no window to copy at the end); returns their window offsets.
    #[inline]
    pub fn push_bytes(&mut self, b: &[u8]) -> Result<(u32, u32), TooWide> {
        let base = self.base as usize;
        let start = self.arena.bytes.len() - base;
        self.arena.bytes.extend_from_slice(b);
        r32(start, self.arena.bytes.len() - base)
    }

    /// Copies the source's partition (`window`: the scanner's window up to the partition's end) into
    /// the arena, where the recorded offsets point.
    pub fn finish(self, window: &[u8]) -> Result<(), TooWide> {
        let end = self.arena.bytes.len() + window.len();
        u32::try_from(end).map_err(|_| TooWide)?;
        self.arena.bytes.extend_from_slice(window);
        Ok(())
    }
}

impl RowSink for Stager<'_> {
    const DISTINCT: bool = false;

    #[inline(always)]
    fn row(&mut self, at: u32, lens: &[u32], liveness: LivenessInfo) -> Result<(), TooWide> {
        let cs = self.fixed_clustering(at, lens)?;
        self.push_row(
            cs,
            liveness,
            (DeletionTime::LIVE, DeletionTime::LIVE),
            false,
        )
    }

    fn abandon(&mut self) {
        self.arena.cells.truncate(self.cells_start);
        self.arena.complex.truncate(self.complex_start);
    }
}

impl CellSink for Stager<'_> {
    #[inline(always)]
    fn begin(&mut self, is_static: bool) {
        (self.map, self.drop_times) = if is_static {
            (self.statics, &self.dropped.0)
        } else {
            (self.regulars, &self.dropped.1)
        };
        self.cells_start = self.arena.cells.len();
        self.complex_start = self.arena.complex.len();
    }

    #[inline(always)]
    fn cell(&mut self, c: RawCell) {
        let path = c.path.map(|p| shifted(p, self.base));
        let value = shifted(c.value, self.base);
        let column = self.column(c.column, c.timestamp);
        self.arena.cells.push(CellRec {
            column,
            timestamp: c.timestamp,
            ttl: c.ttl,
            ldt: c.ldt,
            tombstone: c.flags & CELL_IS_DELETED != 0,
            path,
            value,
        });
    }

    #[inline(always)]
    fn complex_deletion(&mut self, d: RawComplexDeletion) {
        let column = self.column(d.column, d.deletion.marked_for_delete_at);
        self.arena.complex.push((column, d.deletion));
    }
}
