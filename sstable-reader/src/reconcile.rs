//! Cassandra's reconciliation of two versions of the same cell (`db/rows/Cells.java`, `resolveRegular`):
//! the higher timestamp wins; on a tie a tombstone beats an expiring cell, which beats a live one; then
//! the later local deletion time; then the greater value. Also owned copies of rows, so versions of one
//! row (duplicates inside an SSTable, or the same row from several SSTables) can be merged.

use std::cmp::Ordering;

use crate::row::{row_deletion, BoundKind, Cell, DeletionTime, LivenessInfo, MarkerRef, RowRef};
use crate::statistics::NO_DELETION_TIME;

/// An owned cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedCell {
    pub column: usize,
    pub timestamp: i64,
    pub ttl: i32,
    pub local_deletion_time: i64,
    pub tombstone: bool,
    pub path: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

impl OwnedCell {
    pub fn from_cell(c: &Cell<'_>) -> OwnedCell {
        OwnedCell {
            column: c.column,
            timestamp: c.timestamp,
            ttl: c.ttl,
            local_deletion_time: c.local_deletion_time,
            tombstone: c.tombstone,
            path: c.path.map(<[u8]>::to_vec),
            value: c.value.to_vec(),
        }
    }

    pub fn as_cell(&self) -> Cell<'_> {
        Cell {
            column: self.column,
            timestamp: self.timestamp,
            ttl: self.ttl,
            local_deletion_time: self.local_deletion_time,
            tombstone: self.tombstone,
            path: self.path.as_deref(),
            value: &self.value,
        }
    }
}

/// Which of two versions of a cell Cassandra keeps: `Greater` means `a` wins.
pub fn resolve(a: &Cell<'_>, b: &Cell<'_>) -> Ordering {
    a.timestamp
        .cmp(&b.timestamp)
        .then_with(|| {
            let rank = |c: &Cell<'_>| {
                if c.tombstone {
                    2
                } else if c.local_deletion_time != NO_DELETION_TIME {
                    1
                } else {
                    0
                }
            };
            rank(a).cmp(&rank(b))
        })
        .then_with(|| {
            // Both tombstones or both expiring: the later deletion/expiry wins.
            a.local_deletion_time.cmp(&b.local_deletion_time)
        })
        .then_with(|| a.value.cmp(b.value))
}

/// An owned range tombstone marker: its bound (or boundary), the clustering prefix, and the deletions
/// it closes and opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMarker {
    pub kind: BoundKind,
    pub clustering: Vec<Option<Vec<u8>>>,
    /// The deletion that ends here (end bounds and boundaries).
    pub end_deletion: Option<DeletionTime>,
    /// The deletion that starts here (start bounds and boundaries).
    pub start_deletion: Option<DeletionTime>,
}

impl OwnedMarker {
    pub fn from_marker(m: &MarkerRef<'_>) -> OwnedMarker {
        OwnedMarker {
            kind: m.kind,
            clustering: (0..m.clustering_len())
                .map(|i| m.clustering(i).map(<[u8]>::to_vec))
                .collect(),
            end_deletion: m.end_deletion,
            start_deletion: m.start_deletion,
        }
    }
}

/// An owned row: clustering values, liveness, deletion, cells in (column, path) order and complex deletions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRow {
    pub is_static: bool,
    pub clustering: Vec<Option<Vec<u8>>>,
    pub liveness: LivenessInfo,
    pub deletion: DeletionTime,
    /// The shadowable row deletion (LIVE when none; see [`crate::row_deletion`]).
    pub shadowable: DeletionTime,
    pub cells: Vec<OwnedCell>,
    pub complex_deletions: Vec<(usize, DeletionTime)>,
}

impl OwnedRow {
    pub fn from_row(r: &RowRef<'_>) -> OwnedRow {
        OwnedRow {
            is_static: r.is_static(),
            clustering: (0..r.clustering_len())
                .map(|i| r.clustering(i).map(<[u8]>::to_vec))
                .collect(),
            liveness: r.liveness(),
            deletion: r.deletion(),
            shadowable: r.shadowable_deletion(),
            cells: r.cells().map(|c| OwnedCell::from_cell(&c)).collect(),
            complex_deletions: r.complex_deletions().collect(),
        }
    }

    /// The row deletion that applies: the regular one, and the shadowable one unless the row's
    /// liveness is newer ([`crate::row_deletion`]).
    pub fn effective_deletion(&self) -> DeletionTime {
        row_deletion(self.deletion, self.shadowable, &self.liveness)
    }

    /// Merges another version of the same row into this one, as Cassandra merges versions on read.
    pub fn merge(&mut self, other: OwnedRow) {
        // Liveness: the one with the higher timestamp (on a tie, the expiring/later-expiring one).
        let l = other.liveness;
        if !l.is_empty()
            && (self.liveness.is_empty()
                || l.timestamp > self.liveness.timestamp
                || (l.timestamp == self.liveness.timestamp
                    && l.local_expiration_time > self.liveness.local_expiration_time))
        {
            self.liveness = l;
        }
        self.deletion = self.deletion.max(other.deletion);
        self.shadowable = self.shadowable.max(other.shadowable);
        for (col, d) in other.complex_deletions {
            match self.complex_deletions.iter_mut().find(|(c, _)| *c == col) {
                Some((_, mine)) => *mine = mine.max(d),
                None => self.complex_deletions.push((col, d)),
            }
        }
        self.complex_deletions.sort_by_key(|(c, _)| *c);
        let mut merged = Vec::with_capacity(self.cells.len() + other.cells.len());
        let mut a = std::mem::take(&mut self.cells).into_iter().peekable();
        let mut b = other.cells.into_iter().peekable();
        loop {
            let ord = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => (x.column, &x.path).cmp(&(y.column, &y.path)),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            match ord {
                Ordering::Less => merged.extend(a.next()),
                Ordering::Greater => merged.extend(b.next()),
                Ordering::Equal => {
                    let (x, y) = (a.next(), b.next());
                    if let (Some(x), Some(y)) = (x, y) {
                        merged.push(if resolve(&x.as_cell(), &y.as_cell()) == Ordering::Less {
                            y
                        } else {
                            x
                        });
                    }
                }
            }
        }
        self.cells = merged;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(ts: i64, ttl: i32, ldt: i64, tombstone: bool, value: &[u8]) -> Cell<'_> {
        Cell {
            column: 0,
            timestamp: ts,
            ttl,
            local_deletion_time: ldt,
            tombstone,
            path: None,
            value,
        }
    }

    #[test]
    fn resolution_order() {
        let live = cell(10, 0, NO_DELETION_TIME, false, b"b");
        let expiring = cell(10, 5, 100, false, b"a");
        let tomb = cell(10, 0, 50, true, b"");
        assert_eq!(
            resolve(&cell(11, 0, NO_DELETION_TIME, false, b"a"), &tomb),
            Ordering::Greater
        );
        assert_eq!(resolve(&tomb, &expiring), Ordering::Greater);
        assert_eq!(resolve(&expiring, &live), Ordering::Greater);
        assert_eq!(
            resolve(&cell(10, 5, 200, false, b"a"), &expiring),
            Ordering::Greater
        );
        assert_eq!(
            resolve(&live, &cell(10, 0, NO_DELETION_TIME, false, b"a")),
            Ordering::Greater
        );
    }
}
