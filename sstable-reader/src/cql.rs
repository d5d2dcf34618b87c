//! From unfiltereds to what `SELECT *` returns: live CQL rows. Applies the partition deletion, open range
//! tombstones, row and complex deletions and TTL expiry (judged at one fixed `now`), merges duplicate
//! versions of a row, assembles multi-cell collections, and renders rows as JSON objects (column name →
//! value, in `SELECT *` order). With metadata, write times, TTLs and tombstones are rendered too.

use std::fmt::Write;

use crate::json::{write_str, write_value};
use crate::meta::{has_deletions, write_deletion_fields, write_meta, MetaError};
use crate::reconcile::{OwnedMarker, OwnedRow};
use crate::row::{DeletionTime, MarkerRef};
use crate::schema::{Column, ColumnKind, TableSchema};
use crate::statistics::NO_DELETION_TIME;
use crate::types::CqlType;
use crate::value::{Value, ValueError};

/// What a rendered value refers to, for errors.
#[derive(Debug, thiserror::Error)]
#[error("column {column}: {source}")]
pub struct RenderError {
    pub column: String,
    #[source]
    pub source: ValueError,
}

/// Turns one partition's unfiltereds into JSON lines of live rows.
pub struct RowRenderer<'s> {
    schema: &'s TableSchema,
    order: Vec<&'s Column>,
    /// Only these output columns (all when empty).
    only: Vec<bool>,
    now: i64,
    with_meta: bool,
    key: Vec<u8>,
    partition_deletion: DeletionTime,
    open_range: Option<DeletionTime>,
    statics: Option<OwnedRow>,
    pending: Option<OwnedRow>,
    emitted_in_partition: usize,
    /// Duplicate versions of one row merged within the current scan.
    pub duplicates_merged: u64,
    /// Rows not printed because a TTL had expired at `now` (their liveness or a cell expired, and
    /// nothing of them was left live), as [`crate::merge::MergeStats::rows_expired`] counts them.
    pub rows_expired: u64,
}

impl<'s> RowRenderer<'s> {
    /// `now` is in seconds since the epoch; `columns` restricts the output (all when empty).
    pub fn new(
        schema: &'s TableSchema,
        columns: &[String],
        now: i64,
        with_meta: bool,
    ) -> RowRenderer<'s> {
        let order = schema.select_order();
        let only = order
            .iter()
            .map(|c| columns.is_empty() || columns.contains(&c.name))
            .collect();
        RowRenderer {
            schema,
            order,
            only,
            now,
            with_meta,
            key: Vec::new(),
            partition_deletion: DeletionTime::LIVE,
            open_range: None,
            statics: None,
            pending: None,
            emitted_in_partition: 0,
            duplicates_merged: 0,
            rows_expired: 0,
        }
    }

    /// Starts a partition. With metadata, a partition deletion is rendered as a tombstone line.
    pub fn start_partition(
        &mut self,
        key: &[u8],
        deletion: DeletionTime,
        out: &mut Vec<String>,
    ) -> Result<(), RenderError> {
        self.key.clear();
        self.key.extend_from_slice(key);
        self.partition_deletion = deletion;
        self.open_range = None;
        self.statics = None;
        self.pending = None;
        self.emitted_in_partition = 0;
        if self.with_meta && !deletion.is_live() {
            let mut s = String::from("{");
            self.write_key_columns(&mut s, None)?;
            s.push_str(",\"_tombstone\":\"partition\"");
            write_deletion(&mut s, &deletion);
            s.push('}');
            out.push(s);
        }
        Ok(())
    }

    /// A range tombstone marker opens or closes a deleted clustering range.
    pub fn marker(&mut self, m: &MarkerRef<'_>, out: &mut Vec<String>) -> Result<(), RenderError> {
        self.owned_marker(&OwnedMarker::from_marker(m), out)
    }

    /// [`RowRenderer::marker`] for an owned marker (as [`crate::MetaItem::Marker`] holds).
    pub fn owned_marker(
        &mut self,
        m: &OwnedMarker,
        out: &mut Vec<String>,
    ) -> Result<(), RenderError> {
        self.flush_pending(out)?;
        self.open_range = m.start_deletion;
        if self.with_meta {
            let mut s = String::from("{");
            self.write_key_columns(&mut s, None)?;
            let _ = write!(
                s,
                ",\"_tombstone\":\"range_{}\",\"bound\":[",
                if m.kind.is_boundary() {
                    "boundary"
                } else if m.kind.is_start() {
                    "start"
                } else {
                    "end"
                }
            );
            for (i, v) in m.clustering.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                match (v, self.schema.clustering.get(i)) {
                    (Some(b), Some(col)) => render_value(&mut s, &col.ty, b, &col.name)?,
                    _ => s.push_str("null"),
                }
            }
            let _ = write!(s, "],\"kind\":\"{:?}\"", m.kind);
            if let Some(d) = m.end_deletion {
                s.push_str(",\"closes\":{");
                write_deletion_fields(&mut s, &d);
                s.push('}');
            }
            if let Some(d) = m.start_deletion {
                s.push_str(",\"opens\":{");
                write_deletion_fields(&mut s, &d);
                s.push('}');
            }
            s.push('}');
            out.push(s);
        }
        Ok(())
    }

    /// A row (static or regular) of the current partition.
    pub fn row(&mut self, row: OwnedRow, out: &mut Vec<String>) -> Result<(), RenderError> {
        if row.is_static {
            match &mut self.statics {
                Some(s) => s.merge(row),
                None => self.statics = Some(row),
            }
            return Ok(());
        }
        match &mut self.pending {
            Some(p) if p.clustering == row.clustering => {
                self.duplicates_merged += 1;
                p.merge(row);
            }
            _ => {
                self.flush_pending(out)?;
                self.pending = Some(row);
            }
        }
        Ok(())
    }

    /// Ends the partition: renders the last row, and the static row alone when no regular row is live.
    pub fn end_partition(&mut self, out: &mut Vec<String>) -> Result<(), RenderError> {
        self.flush_pending(out)?;
        if self.emitted_in_partition == 0 {
            if let Some(st) = &self.statics {
                let deletion = self.partition_deletion.max(st.effective_deletion());
                if has_live_cell(st, &deletion, self.now) {
                    let line = self.render(None, &deletion)?;
                    out.push(line);
                } else if self.with_meta && has_deletions(st) {
                    let mut s = String::from("{");
                    self.write_key_columns(&mut s, None)?;
                    s.push_str(",\"_tombstone\":\"static\",");
                    write_meta(&mut s, None, Some((st, self.schema.statics.as_slice())))
                        .map_err(meta_error)?;
                    s.push('}');
                    out.push(s);
                }
            }
        }
        Ok(())
    }

    fn flush_pending(&mut self, out: &mut Vec<String>) -> Result<(), RenderError> {
        let Some(row) = self.pending.take() else {
            return Ok(());
        };
        let mut deletion = self.partition_deletion.max(row.effective_deletion());
        if let Some(rt) = self.open_range {
            deletion = deletion.max(rt);
        }
        let live = (row.liveness.is_live(self.now) && !deletion.deletes(row.liveness.timestamp))
            || has_live_cell(&row, &deletion, self.now);
        if live {
            let line = self.render(Some(&row), &deletion)?;
            out.push(line);
            self.emitted_in_partition += 1;
        } else if expired(&row, &deletion, self.now) {
            self.rows_expired += 1;
        }
        if !live && self.with_meta && has_deletions(&row) {
            // Nothing of the row is live, but it holds deletions: one line shows them all.
            let mut s = String::from("{");
            self.write_key_columns(&mut s, Some(&row))?;
            let kind = if !row.deletion.is_live() {
                "row"
            } else if !row.shadowable.is_live() {
                "shadowable_row"
            } else {
                "cells"
            };
            let _ = write!(s, ",\"_tombstone\":\"{kind}\"");
            if !row.deletion.is_live() {
                write_deletion(&mut s, &row.deletion);
            }
            s.push(',');
            write_meta(&mut s, Some((&row, self.schema.regulars.as_slice())), None)
                .map_err(meta_error)?;
            s.push('}');
            out.push(s);
        }
        Ok(())
    }

    fn write_key_columns(&self, s: &mut String, row: Option<&OwnedRow>) -> Result<(), RenderError> {
        let mut first = true;
        for col in self
            .schema
            .partition_key
            .iter()
            .chain(&self.schema.clustering)
        {
            if !first {
                s.push(',');
            }
            first = false;
            write_str(s, &col.name);
            s.push(':');
            self.write_key_value(s, col, row)?;
        }
        Ok(())
    }

    fn write_key_value(
        &self,
        s: &mut String,
        col: &Column,
        row: Option<&OwnedRow>,
    ) -> Result<(), RenderError> {
        match col.kind {
            ColumnKind::PartitionKey => {
                if self.schema.partition_key.len() == 1 {
                    render_value(s, &col.ty, &self.key, &col.name)
                } else {
                    match split_composite(&self.key, col.index) {
                        Some(b) => render_value(s, &col.ty, b, &col.name),
                        None => Err(RenderError {
                            column: col.name.clone(),
                            source: ValueError {
                                ty: "composite partition key".into(),
                                len: self.key.len(),
                                message: format!("no component {}", col.index),
                            },
                        }),
                    }
                }
            }
            _ => match row
                .and_then(|r| r.clustering.get(col.index))
                .and_then(|v| v.as_deref())
            {
                Some(b) => render_value(s, &col.ty, b, &col.name),
                None => {
                    s.push_str("null");
                    Ok(())
                }
            },
        }
    }

    fn render(
        &self,
        row: Option<&OwnedRow>,
        deletion: &DeletionTime,
    ) -> Result<String, RenderError> {
        let mut s = String::with_capacity(256);
        s.push('{');
        let mut first = true;
        let statics = self.statics.as_ref();
        let static_deletion = self
            .partition_deletion
            .max(statics.map_or(DeletionTime::LIVE, OwnedRow::effective_deletion));
        for (i, col) in self.order.iter().enumerate() {
            if !self.only[i] {
                continue;
            }
            if !first {
                s.push(',');
            }
            first = false;
            write_str(&mut s, &col.name);
            s.push(':');
            match col.kind {
                ColumnKind::PartitionKey | ColumnKind::Clustering => {
                    self.write_key_value(&mut s, col, row)?
                }
                ColumnKind::Static => {
                    write_column(&mut s, col, statics, &static_deletion, self.now)?
                }
                ColumnKind::Regular => write_column(&mut s, col, row, deletion, self.now)?,
            }
        }
        if self.with_meta {
            s.push(',');
            write_meta(
                &mut s,
                row.map(|r| (r, self.schema.regulars.as_slice())),
                statics.map(|r| (r, self.schema.statics.as_slice())),
            )
            .map_err(meta_error)?;
        }
        s.push('}');
        Ok(s)
    }
}

fn write_deletion(s: &mut String, d: &DeletionTime) {
    s.push(',');
    write_deletion_fields(s, d);
}

/// A composite partition key (`CompositeType`: per component a u16 length, the bytes, an end-of-component
/// byte) from its components; [`split_composite`] takes it apart.
pub fn composite(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u16).to_be_bytes());
        out.extend_from_slice(p);
        out.push(0);
    }
    out
}

/// Byte range of component `i` of a composite partition key (u16 length, bytes, end-of-component).
pub fn split_composite(key: &[u8], i: usize) -> Option<&[u8]> {
    let mut pos = 0usize;
    for j in 0..=i {
        let len = u16::from_be_bytes([*key.get(pos)?, *key.get(pos + 1)?]) as usize;
        let item = key.get(pos + 2..pos + 2 + len)?;
        if j == i {
            return Some(item);
        }
        pos += 2 + len + 1;
    }
    None
}

fn meta_error((column, source): MetaError) -> RenderError {
    RenderError { column, source }
}

fn render_value(
    s: &mut String,
    ty: &CqlType,
    bytes: &[u8],
    column: &str,
) -> Result<(), RenderError> {
    let v = Value::decode(ty, bytes).map_err(|source| RenderError {
        column: column.to_string(),
        source,
    })?;
    write_value(s, &v, ty);
    Ok(())
}

fn cell_is_visible(
    c: &crate::reconcile::OwnedCell,
    deletion: &DeletionTime,
    complex: Option<&DeletionTime>,
    now: i64,
) -> bool {
    c.as_cell().is_live(now)
        && !deletion.deletes(c.timestamp)
        && !complex.is_some_and(|d| d.deletes(c.timestamp))
}

/// Whether a row with nothing live was dropped by a TTL: its liveness or a cell expired at `now`,
/// not shadowed by `deletion`.
fn expired(row: &OwnedRow, deletion: &DeletionTime, now: i64) -> bool {
    let over = |ttl: i32, ldt: i64, timestamp: i64| {
        ttl != 0 && ldt != NO_DELETION_TIME && now >= ldt && !deletion.deletes(timestamp)
    };
    over(
        row.liveness.ttl,
        row.liveness.local_expiration_time,
        row.liveness.timestamp,
    ) || row
        .cells
        .iter()
        .any(|c| !c.tombstone && over(c.ttl, c.local_deletion_time, c.timestamp))
}

fn has_live_cell(row: &OwnedRow, deletion: &DeletionTime, now: i64) -> bool {
    row.cells.iter().any(|c| {
        let complex = row
            .complex_deletions
            .iter()
            .find(|(col, _)| *col == c.column)
            .map(|(_, d)| d);
        cell_is_visible(c, deletion, complex, now)
    })
}

/// Writes the value of `col` from `row` (null when absent or not live).
fn write_column(
    s: &mut String,
    col: &Column,
    row: Option<&OwnedRow>,
    deletion: &DeletionTime,
    now: i64,
) -> Result<(), RenderError> {
    let Some(row) = row else {
        s.push_str("null");
        return Ok(());
    };
    let complex = row
        .complex_deletions
        .iter()
        .find(|(c, _)| *c == col.index)
        .map(|(_, d)| d);
    let mut cells = row
        .cells
        .iter()
        .filter(|c| c.column == col.index && cell_is_visible(c, deletion, complex, now))
        .peekable();
    if cells.peek().is_none() {
        s.push_str("null");
        return Ok(());
    }
    let err = |source| RenderError {
        column: col.name.clone(),
        source,
    };
    let path = |c: &crate::reconcile::OwnedCell| c.path.as_deref().unwrap_or(&[]).to_vec();
    let value = match &col.ty {
        CqlType::List(e) => {
            let vals: Vec<&[u8]> = cells.map(|c| c.value.as_slice()).collect();
            let items = vals
                .iter()
                .map(|b| Value::decode(e, b))
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            let v = Value::List(items);
            write_value(s, &v, &col.ty);
            return Ok(());
        }
        CqlType::Set(e) => {
            let paths: Vec<Vec<u8>> = cells.map(path).collect();
            let items = paths
                .iter()
                .map(|b| Value::decode(e, b))
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            write_value(s, &Value::Set(items), &col.ty);
            return Ok(());
        }
        CqlType::Map(k, v) => {
            let pairs: Vec<(Vec<u8>, &[u8])> =
                cells.map(|c| (path(c), c.value.as_slice())).collect();
            let mut items = Vec::with_capacity(pairs.len());
            for (kb, vb) in &pairs {
                items.push((
                    Value::decode(k, kb).map_err(err)?,
                    Value::decode(v, vb).map_err(err)?,
                ));
            }
            write_value(s, &Value::Map(items), &col.ty);
            return Ok(());
        }
        CqlType::Udt(u) => {
            let fields: Vec<(Vec<u8>, &[u8])> =
                cells.map(|c| (path(c), c.value.as_slice())).collect();
            let mut items = vec![Value::Null; u.fields.len()];
            for (p, vb) in &fields {
                let idx = if p.len() == 2 {
                    u16::from_be_bytes([p[0], p[1]]) as usize
                } else {
                    usize::MAX
                };
                if let Some((_, t)) = u.fields.get(idx) {
                    items[idx] = Value::decode(t, vb).map_err(err)?;
                }
            }
            write_value(s, &Value::Tuple(items), &col.ty);
            return Ok(());
        }
        ty => {
            let c = cells.next().map(|c| c.value.as_slice()).unwrap_or(&[]);
            Value::decode(ty, c).map_err(err)?
        }
    };
    write_value(s, &value, &col.ty);
    Ok(())
}
