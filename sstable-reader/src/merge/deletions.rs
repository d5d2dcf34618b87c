//! The deletions a merged partition still holds, for `dump --with-meta`: per clustering, the merged row
//! deletion, shadowable deletion, complex (collection and UDT) deletions and the cell tombstones that
//! win reconciliation — without those a newer partition, row or complex deletion purges, as
//! Cassandra's merged read keeps them (`Rows.merge` against the active deletion). A shadowable
//! deletion that a newer liveness shadows is shown as shadowed. The range tombstones of every SSTable
//! merge into the markers a merged read returns: at each point of the clustering order the newest
//! deletion covering it, where that is newer than the partition deletion (Cassandra's
//! `RangeTombstoneMarker.Merger`); a row or cell deletion such a range supersedes is not shown.

use std::cmp::Ordering;

use super::order::compare_prefixes;
use super::stage::{Arena, Item};
use super::{cell_view, MergedPartition};
use crate::reconcile::{OwnedCell, OwnedMarker, OwnedRow};
use crate::row::{row_deletion, BoundKind, DeletionTime, LivenessInfo};
use crate::schema::TableSchema;
use crate::types::CqlType;

/// One line of the merged view with its deletions: a row, or a range tombstone marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaItem {
    Row(OwnedRow),
    Marker(OwnedMarker),
}

impl MergedPartition {
    /// The partition in clustering order, the static row first: each live merged row with the
    /// deletions that still apply to it, a row of deletions only where a clustering has nothing live
    /// left but deletions, and the merged range tombstone markers. `schema`: the merged table's
    /// ([`crate::MergeTable::schema`]). Complete only for a scan made with
    /// [`crate::MergedScan::keeping_deletions`] (otherwise a partition held by one SSTable shows its
    /// live rows only).
    pub fn rows_with_deletions(&self, schema: &TableSchema) -> Vec<MetaItem> {
        let a = &self.arena;
        let types: Vec<CqlType> = schema.clustering.iter().map(|c| c.ty.clone()).collect();
        let ranges = merged_ranges(a, &types, self.deletion);
        let mut out = Vec::new();
        let statics = merged_versions(a, &types, &a.statics, true);
        let live_static = self.static_row().map(|r| r.to_owned_row());
        match statics.into_iter().next() {
            Some(versions) => out.extend(with_deletions(live_static, versions, self.deletion)),
            None => out.extend(live_static),
        }
        let mut rows = Vec::new();
        let mut live = self.rows().map(|r| r.to_owned_row()).peekable();
        for versions in merged_versions(a, &types, &a.items, false) {
            let at = |r: &OwnedRow| clustering_cmp(&types, r, &versions);
            // (every live row comes from staged versions; one that does not is kept as it is)
            while let Some(r) = live.next_if(|r| at(r) == Ordering::Less) {
                rows.push(r);
            }
            let mine = live.next_if(|r| at(r) == Ordering::Equal);
            let over = self.deletion.max(ranges.covering(&types, &versions));
            rows.extend(with_deletions(mine, versions, over));
        }
        rows.extend(live);
        let mut out: Vec<MetaItem> = out.into_iter().map(MetaItem::Row).collect();
        let mut markers = ranges.markers().peekable();
        for row in rows {
            while let Some(m) = markers.next_if(|m| before_row(&types, m, &row)) {
                out.push(MetaItem::Marker(m));
            }
            out.push(MetaItem::Row(row));
        }
        out.extend(markers.map(MetaItem::Marker));
        out
    }
}

/// A point of the clustering order between clusterings: just before or just after a prefix.
#[derive(Debug, Clone)]
struct Point {
    clustering: Vec<Option<Vec<u8>>>,
    after: bool,
}

impl Point {
    fn of(a: &Arena, it: &Item) -> Point {
        Point {
            clustering: a.clustering(it).map(|v| v.map(<[u8]>::to_vec)).collect(),
            after: is_after(it.kind),
        }
    }

    fn cmp(&self, types: &[CqlType], other: &Point) -> Ordering {
        compare_prefixes(
            types,
            point_kind(self.after),
            self.clustering.iter().map(|v| v.as_deref()),
            point_kind(other.after),
            other.clustering.iter().map(|v| v.as_deref()),
        )
    }
}

/// Whether a bound of kind `kind` stands just after its prefix (else just before it).
fn is_after(kind: BoundKind) -> bool {
    matches!(
        kind,
        BoundKind::InclEndBound | BoundKind::ExclStartBound | BoundKind::InclEndExclStartBoundary
    )
}

/// The bound kind that stands for a point in comparisons.
fn point_kind(after: bool) -> BoundKind {
    if after {
        BoundKind::InclEndBound
    } else {
        BoundKind::InclStartBound
    }
}

/// Where a row's clustering lies relative to the point of `clustering` (`after` it or before it).
fn point_vs_row(
    types: &[CqlType],
    clustering: &[Option<Vec<u8>>],
    after: bool,
    row: &OwnedRow,
) -> Ordering {
    compare_prefixes(
        types,
        point_kind(after),
        clustering.iter().map(|v| v.as_deref()),
        BoundKind::Clustering,
        row.clustering.iter().map(|v| v.as_deref()),
    )
}

/// Whether the marker `m` comes before `row`.
fn before_row(types: &[CqlType], m: &OwnedMarker, row: &OwnedRow) -> bool {
    point_vs_row(types, &m.clustering, is_after(m.kind), row) == Ordering::Less
}

/// The merged range deletions of a partition: from each point on, the deletion in force until the
/// next point (LIVE: none). Points are in clustering order.
struct MergedRanges {
    segments: Vec<(Point, DeletionTime)>,
}

/// The merged range tombstones of all sources staged in `a`, where newer than `partition`.
fn merged_ranges(a: &Arena, types: &[CqlType], partition: DeletionTime) -> MergedRanges {
    // Each source's markers come one after the other and alternate opening and closing, so pairing
    // each opened deletion with the next marker gives that source's ranges.
    let mut ranges: Vec<(Point, Point, DeletionTime)> = Vec::new();
    let mut open: Option<(Point, DeletionTime)> = None;
    let markers = a
        .items
        .iter()
        .filter(|it| it.kind != BoundKind::Clustering && it.kind != BoundKind::StaticClustering);
    for it in markers {
        let p = Point::of(a, it);
        if let Some((start, d)) = open.take() {
            ranges.push((start, p.clone(), d));
        }
        open = it.opens().map(|d| (p, d));
    }
    let mut points: Vec<Point> = ranges
        .iter()
        .flat_map(|(s, e, _)| [s.clone(), e.clone()])
        .collect();
    points.sort_by(|x, y| x.cmp(types, y));
    points.dedup_by(|x, y| x.cmp(types, y) == Ordering::Equal);
    let segments = points
        .into_iter()
        .map(|p| {
            let d = ranges
                .iter()
                .filter(|(s, e, _)| {
                    s.cmp(types, &p) != Ordering::Greater && p.cmp(types, e) == Ordering::Less
                })
                .fold(DeletionTime::LIVE, |acc, (_, _, d)| acc.max(*d));
            let d = if d.supersedes(&partition) {
                d
            } else {
                DeletionTime::LIVE
            };
            (p, d)
        })
        .collect();
    MergedRanges { segments }
}

impl MergedRanges {
    /// The range deletion covering the clustering of `row` (LIVE: none).
    fn covering(&self, types: &[CqlType], row: &OwnedRow) -> DeletionTime {
        self.segments
            .iter()
            .take_while(|(p, _)| point_vs_row(types, &p.clustering, p.after, row) == Ordering::Less)
            .last()
            .map_or(DeletionTime::LIVE, |(_, d)| *d)
    }

    /// The markers where the deletion in force changes, in clustering order.
    fn markers(&self) -> impl Iterator<Item = OwnedMarker> + '_ {
        let mut before = DeletionTime::LIVE;
        self.segments.iter().filter_map(move |(p, d)| {
            let (closes, opens) = (before, *d);
            before = opens;
            if closes == opens {
                return None;
            }
            let kind = match (closes.is_live(), opens.is_live(), p.after) {
                (true, _, false) => BoundKind::InclStartBound,
                (true, _, true) => BoundKind::ExclStartBound,
                (_, true, false) => BoundKind::ExclEndBound,
                (_, true, true) => BoundKind::InclEndBound,
                (_, _, false) => BoundKind::ExclEndInclStartBoundary,
                (_, _, true) => BoundKind::InclEndExclStartBoundary,
            };
            Some(OwnedMarker {
                kind,
                clustering: p.clustering.clone(),
                end_deletion: (!closes.is_live()).then_some(closes),
                start_deletion: (!opens.is_live()).then_some(opens),
            })
        })
    }
}

fn clustering_cmp(types: &[CqlType], a: &OwnedRow, b: &OwnedRow) -> Ordering {
    compare_prefixes(
        types,
        BoundKind::Clustering,
        a.clustering.iter().map(|v| v.as_deref()),
        BoundKind::Clustering,
        b.clustering.iter().map(|v| v.as_deref()),
    )
}

/// The rows among `items` (of `a.items`, or `a.statics` when `is_static`), each clustering's versions
/// merged into one, in clustering order.
fn merged_versions(a: &Arena, types: &[CqlType], items: &[Item], is_static: bool) -> Vec<OwnedRow> {
    let mut rows: Vec<OwnedRow> = items
        .iter()
        .enumerate()
        .filter(|(_, it)| is_static || it.kind == BoundKind::Clustering)
        .map(|(i, it)| owned(a, it, i, is_static))
        .collect();
    rows.sort_by(|x, y| clustering_cmp(types, x, y));
    let mut out: Vec<OwnedRow> = Vec::with_capacity(rows.len());
    for r in rows {
        match out.last_mut() {
            Some(last) if clustering_cmp(types, last, &r) == Ordering::Equal => last.merge(r),
            _ => out.push(r),
        }
    }
    out
}

/// One staged version of a row (item `index` of its kind), its cells in (column, path) order; cells
/// and complex deletions of no merged column (dropped ones) left out.
fn owned(a: &Arena, it: &Item, index: usize, is_static: bool) -> OwnedRow {
    let mut cells: Vec<OwnedCell> = a.cells[it.cells.0 as usize..it.cells.1 as usize]
        .iter()
        .filter(|c| c.column != u32::MAX)
        .map(|c| OwnedCell::from_cell(&cell_view(a, c)))
        .collect();
    cells.sort_by(|x, y| (x.column, &x.path).cmp(&(y.column, &y.path)));
    OwnedRow {
        is_static,
        clustering: a.clustering(it).map(|v| v.map(<[u8]>::to_vec)).collect(),
        liveness: it.liveness,
        deletion: it.deletion,
        shadowable: a.shadowable(index, is_static),
        cells,
        complex_deletions: a.complex[it.complex.0 as usize..it.complex.1 as usize]
            .iter()
            .filter(|(c, _)| *c != u32::MAX)
            .map(|&(c, d)| (c as usize, d))
            .collect(),
    }
}

/// The live merged row `live` (if any) of the clustering whose versions merged into `versions`, with
/// the deletions that survive the partition deletion `partition`; `None` when there is neither.
fn with_deletions(
    live: Option<OwnedRow>,
    versions: OwnedRow,
    partition: DeletionTime,
) -> Option<OwnedRow> {
    let kept = |d: DeletionTime, over: DeletionTime| {
        if d.supersedes(&over) {
            d
        } else {
            DeletionTime::LIVE
        }
    };
    let mut row = live.unwrap_or_else(|| OwnedRow {
        is_static: versions.is_static,
        clustering: versions.clustering.clone(),
        liveness: LivenessInfo::EMPTY,
        deletion: DeletionTime::LIVE,
        shadowable: DeletionTime::LIVE,
        cells: Vec::new(),
        complex_deletions: Vec::new(),
    });
    let deletion = kept(versions.deletion, partition);
    let mut shadowable = kept(versions.shadowable, partition.max(deletion));
    let shadowed =
        |liveness: &LivenessInfo| row_deletion(DeletionTime::LIVE, shadowable, liveness).is_live();
    // A shadowable deletion that the merged liveness shadows is shown as shadowed when the row is
    // live by that liveness; otherwise (the liveness expired or was deleted) it is not shown: it
    // deletes nothing, and the row would not say why.
    if shadowed(&versions.liveness) && !shadowed(&row.liveness) {
        shadowable = DeletionTime::LIVE;
    }
    let active = row_deletion(partition.max(deletion), shadowable, &versions.liveness);
    let complex: Vec<(usize, DeletionTime)> = versions
        .complex_deletions
        .iter()
        .filter(|(_, d)| d.supersedes(&active))
        .copied()
        .collect();
    let tombstones = versions.cells.into_iter().filter(|c| {
        c.tombstone
            && !active.deletes(c.timestamp)
            && !complex
                .iter()
                .any(|(col, d)| *col == c.column && d.deletes(c.timestamp))
    });
    let had_cells = row.cells.len();
    row.cells.extend(tombstones);
    if row.cells.len() != had_cells {
        row.cells
            .sort_by(|x, y| (x.column, &x.path).cmp(&(y.column, &y.path)));
    }
    row.deletion = deletion;
    row.shadowable = shadowable;
    row.complex_deletions = complex;
    let empty = row.liveness.is_empty()
        && row.cells.is_empty()
        && row.deletion.is_live()
        && row.shadowable.is_live()
        && row.complex_deletions.is_empty();
    (!empty).then_some(row)
}
