//! The per-partition arena: the unfiltereds every contributing SSTable holds for the current partition,
//! copied out of the scanners' chunk buffers (which the next partition reuses) into flat, reused vectors.
//! Cells carry column indexes of the merged table, so SSTables written before a column was added line up.
//! Memory is that of the widest partition; nothing is allocated per row once the vectors have grown.

use crate::row::{BoundKind, DeletionTime, LivenessInfo, MarkerRef, RowRef, CELL_IS_DELETED};

/// A byte range in the arena (`None`: a null clustering component).
pub type Slot = Option<(u32, u32)>;

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
    /// Index of the contributing source (its order in this partition).
    pub src: u32,
    pub kind: BoundKind,
    /// Range in [`Arena::slots`].
    pub clust: (u32, u32),
    pub liveness: LivenessInfo,
    pub deletion: DeletionTime,
    /// Range in [`Arena::cells`].
    pub cells: (u32, u32),
    /// Range in [`Arena::complex`].
    pub complex: (u32, u32),
    pub end_deletion: Option<DeletionTime>,
    pub start_deletion: Option<DeletionTime>,
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
}

/// The arena outgrew 32-bit offsets (a partition of more than 4 GiB of projected data).
#[derive(Debug)]
pub struct TooWide;

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

    /// Copies a row; `map` translates the SSTable's column indexes to the merged table's.
    ///
    /// The row's clustering values, paths and values usually lie close together in the scanner's window:
    /// they are then copied as one span (one `memcpy`, offsets shifted), not value by value.
    pub fn stage_row(&mut self, src: u32, r: &RowRef<'_>, map: &[u32]) -> Result<(), TooWide> {
        let (mut lo, mut hi, mut used) = (u32::MAX, 0u32, 0usize);
        let mut widen = |(s, e): (u32, u32)| {
            lo = lo.min(s);
            hi = hi.max(e);
            used += (e - s) as usize;
        };
        for s in r.clustering.iter().flatten() {
            widen(*s);
        }
        for c in r.cells {
            if let Some(p) = c.path {
                widen(p);
            }
            widen(c.value);
        }
        if lo > hi {
            (lo, hi) = (0, 0); // no value at all (empty values give lo == hi: nothing to copy)
        }
        let span = (hi - lo) as usize;
        if span > 2 * used + 256 {
            // Projected values far apart (wide unprojected columns between them): copy them one by one.
            return self.stage_row_by_value(src, r, map);
        }
        let base = self.bytes.len();
        self.bytes
            .extend_from_slice(&r.window[lo as usize..hi as usize]);
        r32(base, self.bytes.len())?;
        // Fits in u32 (checked above), and every offset is >= lo.
        let shift = |(s, e): (u32, u32)| (s - lo + base as u32, e - lo + base as u32);
        let cs = self.slots.len();
        self.slots.extend(r.clustering.iter().map(|s| s.map(shift)));
        let cells_start = self.cells.len();
        self.cells.extend(r.cells.iter().map(|c| CellRec {
            column: map.get(c.column as usize).copied().unwrap_or(u32::MAX),
            timestamp: c.timestamp,
            ttl: c.ttl,
            ldt: c.ldt,
            tombstone: c.flags & CELL_IS_DELETED != 0,
            path: c.path.map(shift),
            value: shift(c.value),
        }));
        self.finish_row(src, r, map, cs, cells_start)
    }

    fn stage_row_by_value(&mut self, src: u32, r: &RowRef<'_>, map: &[u32]) -> Result<(), TooWide> {
        let cs = self.slots.len();
        for i in 0..r.clustering_len() {
            let s = match r.clustering(i) {
                Some(b) => Some(self.push_bytes(b)?),
                None => None,
            };
            self.slots.push(s);
        }
        let cells_start = self.cells.len();
        for c in r.cells() {
            let path = match c.path {
                Some(p) => Some(self.push_bytes(p)?),
                None => None,
            };
            let value = self.push_bytes(c.value)?;
            self.cells.push(CellRec {
                column: map.get(c.column).copied().unwrap_or(u32::MAX),
                timestamp: c.timestamp,
                ttl: c.ttl,
                ldt: c.local_deletion_time,
                tombstone: c.tombstone,
                path,
                value,
            });
        }
        self.finish_row(src, r, map, cs, cells_start)
    }

    fn finish_row(
        &mut self,
        src: u32,
        r: &RowRef<'_>,
        map: &[u32],
        cs: usize,
        cells_start: usize,
    ) -> Result<(), TooWide> {
        let cx = self.complex.len();
        for (col, d) in r.complex_deletions() {
            self.complex
                .push((map.get(col).copied().unwrap_or(u32::MAX), d));
        }
        let item = Item {
            src,
            kind: if r.is_static() {
                BoundKind::StaticClustering
            } else {
                BoundKind::Clustering
            },
            clust: r32(cs, self.slots.len())?,
            liveness: r.liveness(),
            deletion: r.deletion(),
            cells: r32(cells_start, self.cells.len())?,
            complex: r32(cx, self.complex.len())?,
            end_deletion: None,
            start_deletion: None,
        };
        if r.is_static() {
            self.statics.push(item);
        } else {
            self.items.push(item);
        }
        Ok(())
    }

    /// Copies a range tombstone marker.
    pub fn stage_marker(&mut self, src: u32, m: &MarkerRef<'_>) -> Result<(), TooWide> {
        let cs = self.slots.len();
        for i in 0..m.clustering_len() {
            let s = match m.clustering(i) {
                Some(b) => Some(self.push_bytes(b)?),
                None => None,
            };
            self.slots.push(s);
        }
        let n = self.cells.len();
        let x = self.complex.len();
        self.items.push(Item {
            src,
            kind: m.kind,
            clust: r32(cs, self.slots.len())?,
            liveness: LivenessInfo::EMPTY,
            deletion: DeletionTime::LIVE,
            cells: r32(n, n)?,
            complex: r32(x, x)?,
            end_deletion: m.end_deletion,
            start_deletion: m.start_deletion,
        });
        Ok(())
    }
}
