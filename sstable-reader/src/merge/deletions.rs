//! The deletions a merged partition still holds, for `dump --with-meta`: per clustering, the merged row
//! deletion, shadowable deletion, complex (collection and UDT) deletions and the cell tombstones that
//! win reconciliation — without those a newer partition, row or complex deletion purges, as
//! Cassandra's merged read keeps them (`Rows.merge` against the active deletion). A shadowable
//! deletion that a newer liveness shadows is shown as shadowed. Range tombstones are applied to the
//! rows but not listed.

use std::cmp::Ordering;

use super::order::compare_prefixes;
use super::stage::{Arena, Item};
use super::{cell_view, MergedPartition};
use crate::reconcile::{OwnedCell, OwnedRow};
use crate::row::{row_deletion, BoundKind, DeletionTime, LivenessInfo};
use crate::schema::TableSchema;
use crate::types::CqlType;

impl MergedPartition {
    /// The partition's rows in clustering order, the static row first, as owned rows: each live merged
    /// row with the deletions that still apply to it, and a row of deletions only where a clustering
    /// has nothing live left but deletions. `schema`: the merged table's
    /// ([`crate::MergeTable::schema`]). Complete only for a scan made with
    /// [`crate::MergedScan::keeping_deletions`] (otherwise a partition held by one SSTable shows its
    /// live rows only).
    pub fn rows_with_deletions(&self, schema: &TableSchema) -> Vec<OwnedRow> {
        let a = &self.arena;
        let types: Vec<CqlType> = schema.clustering.iter().map(|c| c.ty.clone()).collect();
        let mut out = Vec::new();
        let statics = merged_versions(a, &types, &a.statics, true);
        let live_static = self.static_row().map(|r| r.to_owned_row());
        match statics.into_iter().next() {
            Some(versions) => out.extend(with_deletions(live_static, versions, self.deletion)),
            None => out.extend(live_static),
        }
        let mut live = self.rows().map(|r| r.to_owned_row()).peekable();
        for versions in merged_versions(a, &types, &a.items, false) {
            let at = |r: &OwnedRow| clustering_cmp(&types, r, &versions);
            // (every live row comes from staged versions; one that does not is kept as it is)
            while let Some(r) = live.next_if(|r| at(r) == Ordering::Less) {
                out.push(r);
            }
            let mine = live.next_if(|r| at(r) == Ordering::Equal);
            out.extend(with_deletions(mine, versions, self.deletion));
        }
        out.extend(live);
        out
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
