//! What `dump --with-meta` prints about a row besides its values (`_meta`): the write time, TTL and
//! expiry of its primary-key liveness and of each cell, and every deletion in it — the row deletion
//! (also next to newer live cells, which it does not delete), the shadowable deletion and whether a
//! newer liveness shadows it, complex (collection and UDT) deletions and cell tombstones. Each column
//! is one key: a simple column's cell is an object, a multi-cell column's cells are an array of
//! objects, each naming its element (`path`: list timeuuid, set element, map key or UDT field).

use std::fmt::Write;

use crate::json::{format_seconds, format_timestamp_us, write_str, write_value};
use crate::reconcile::{OwnedCell, OwnedRow};
use crate::row::{row_deletion, DeletionTime};
use crate::schema::Column;
use crate::types::CqlType;
use crate::value::{Value, ValueError};

/// A value of the metadata that does not decode: the column, and why.
pub(crate) type MetaError = (String, ValueError);

pub(crate) fn write_time_us(s: &mut String, us: i64) {
    match format_timestamp_us(us) {
        Some(t) => write_str(s, &t),
        None => {
            let _ = write!(s, "{us}");
        }
    }
}

pub(crate) fn write_time_s(s: &mut String, secs: i64) {
    match format_seconds(secs) {
        Some(t) => write_str(s, &t),
        None => {
            let _ = write!(s, "{secs}");
        }
    }
}

pub(crate) fn write_deletion_fields(s: &mut String, d: &DeletionTime) {
    s.push_str("\"marked_for_delete_at\":");
    write_time_us(s, d.marked_for_delete_at);
    s.push_str(",\"local_deletion_time\":");
    write_time_s(s, d.local_deletion_time);
}

/// Whether a row holds a deletion of any kind (what a tombstone line is printed for).
pub(crate) fn has_deletions(row: &OwnedRow) -> bool {
    !row.deletion.is_live()
        || !row.shadowable.is_live()
        || !row.complex_deletions.is_empty()
        || row.cells.iter().any(|c| c.tombstone)
}

/// Writes `"_meta":{…}` for `row` (its columns `columns`) and the partition's static row `statics`
/// (its columns `static_columns`), either of them absent.
pub(crate) fn write_meta(
    s: &mut String,
    row: Option<(&OwnedRow, &[Column])>,
    statics: Option<(&OwnedRow, &[Column])>,
) -> Result<(), MetaError> {
    s.push_str("\"_meta\":{");
    let mut first = true;
    let mut key = |s: &mut String, name: &str| {
        if !first {
            s.push(',');
        }
        first = false;
        write_str(s, name);
        s.push(':');
    };
    if let Some((r, _)) = row {
        if !r.liveness.is_empty() {
            key(s, "writetime");
            write_time_us(s, r.liveness.timestamp);
            if r.liveness.is_expiring() {
                let _ = write!(s, ",\"ttl\":{},\"expires\":", r.liveness.ttl);
                write_time_s(s, r.liveness.local_expiration_time);
            }
        }
        if !r.deletion.is_live() {
            key(s, "deletion");
            s.push('{');
            write_deletion_fields(s, &r.deletion);
            s.push('}');
        }
        if !r.shadowable.is_live() {
            key(s, "shadowable_deletion");
            s.push('{');
            write_deletion_fields(s, &r.shadowable);
            let shadowed = row_deletion(DeletionTime::LIVE, r.shadowable, &r.liveness).is_live();
            let _ = write!(s, ",\"shadowed\":{shadowed}}}");
        }
    }
    let sources = [statics, row];
    if sources
        .iter()
        .flatten()
        .any(|(r, _)| !r.complex_deletions.is_empty())
    {
        key(s, "complex_deletions");
        s.push('{');
        let mut firstc = true;
        for (r, cols) in sources.iter().flatten() {
            for (col, d) in &r.complex_deletions {
                let Some(col) = cols.get(*col) else { continue };
                if !firstc {
                    s.push(',');
                }
                firstc = false;
                write_str(s, &col.name);
                s.push_str(":{");
                write_deletion_fields(s, d);
                s.push('}');
            }
        }
        s.push('}');
    }
    key(s, "cells");
    s.push('{');
    let mut firstc = true;
    for (r, cols) in sources.iter().flatten() {
        let mut cells = r.cells.iter().peekable();
        while let Some(c) = cells.next() {
            let Some(col) = cols.get(c.column) else {
                continue;
            };
            if !firstc {
                s.push(',');
            }
            firstc = false;
            write_str(s, &col.name);
            s.push(':');
            if !col.ty.is_multi_cell() {
                write_cell(s, c, None)?;
                continue;
            }
            // A collection's or UDT's cells follow one another (cells are in column, path order).
            s.push('[');
            write_cell(s, c, Some(col))?;
            while let Some(next) = cells.next_if(|n| n.column == c.column) {
                s.push(',');
                write_cell(s, next, Some(col))?;
            }
            s.push(']');
        }
    }
    s.push_str("}}");
    Ok(())
}

/// One cell's metadata; `element`: the multi-cell column whose element it is (its path is printed).
fn write_cell(s: &mut String, c: &OwnedCell, element: Option<&Column>) -> Result<(), MetaError> {
    s.push('{');
    if let Some(col) = element {
        s.push_str("\"path\":");
        write_path(s, col, c.path.as_deref().unwrap_or_default())?;
        s.push(',');
    }
    s.push_str("\"writetime\":");
    write_time_us(s, c.timestamp);
    if c.tombstone {
        s.push_str(",\"deleted_at\":");
        write_time_s(s, c.local_deletion_time);
    } else if c.ttl != 0 {
        let _ = write!(s, ",\"ttl\":{},\"expires\":", c.ttl);
        write_time_s(s, c.local_deletion_time);
    }
    s.push('}');
    Ok(())
}

/// A multi-cell column's cell path, as CQL shows the element: a list's timeuuid, a set's element, a
/// map's key, a UDT's field name.
fn write_path(s: &mut String, col: &Column, path: &[u8]) -> Result<(), MetaError> {
    let ty = match col.ty.base() {
        CqlType::List(_) => CqlType::TimeUuid,
        CqlType::Set(e) => (**e).clone(),
        CqlType::Map(k, _) => (**k).clone(),
        CqlType::Udt(u) => {
            let field = <[u8; 2]>::try_from(path)
                .ok()
                .and_then(|i| u.fields.get(u16::from_be_bytes(i) as usize));
            match field {
                Some((name, _)) => write_str(s, name),
                None => write_value(s, &Value::Blob(path), &CqlType::Blob),
            }
            return Ok(());
        }
        _ => CqlType::Blob,
    };
    let v = Value::decode(&ty, path).map_err(|e| (col.name.clone(), e))?;
    write_value(s, &v, &ty);
    Ok(())
}
