//! The schema a node keeps about itself: the `system_schema` keyspace under its data directory
//! (`db/schema/SchemaKeyspace.java`), read with this reader. A live table directory has no
//! `schema.cql`; its key column names, clustering order and UDTs come from `system_schema.columns`
//! and `system_schema.types` instead, and `system_schema.dropped_columns` says which columns were
//! dropped. The result is rendered as `CREATE TYPE` / `CREATE TABLE` statements and parsed back with
//! the schema parser, so a node's schema and a `schema.cql` take the same path.
//!
//! Only the key columns of the `system_schema` tables are assumed (they are fixed in every Cassandra
//! version since 3.0); their other columns come from each SSTable's header, so the column sets of 3.x,
//! 4.x and 5.0 all read.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::merge::{Columns, MergeTable, MergedPartition, MergedRow};
use crate::schema::{ColumnKind, CqlSchema, TableSchema};
use crate::sstable::{ReadOptions, SSTable};
use crate::value::Value;

/// The keys of the `system_schema` tables read here.
const SYSTEM_SCHEMA_CQL: &str = "
CREATE TABLE system_schema.keyspaces (keyspace_name text, PRIMARY KEY ((keyspace_name)));
CREATE TABLE system_schema.tables (keyspace_name text, table_name text,
    PRIMARY KEY ((keyspace_name), table_name));
CREATE TABLE system_schema.columns (keyspace_name text, table_name text, column_name text,
    PRIMARY KEY ((keyspace_name), table_name, column_name));
CREATE TABLE system_schema.dropped_columns (keyspace_name text, table_name text, column_name text,
    PRIMARY KEY ((keyspace_name), table_name, column_name));
CREATE TABLE system_schema.types (keyspace_name text, type_name text,
    PRIMARY KEY ((keyspace_name), type_name));
";

/// Keyspaces Cassandra (and ScyllaDB) keep for themselves: not printed unless asked for.
const SYSTEM_KEYSPACES: &[&str] = &[
    "system",
    "system_schema",
    "system_auth",
    "system_distributed",
    "system_distributed_everywhere",
    "system_traces",
    "system_views",
    "system_virtual_schema",
    "system_replicated_keys",
];

/// The key columns of the `system_schema` tables themselves (they are not in `system_schema`).
pub fn system_schema_keys() -> CqlSchema {
    // The text above is fixed and parses (a unit test checks it).
    CqlSchema::parse(SYSTEM_SCHEMA_CQL, "system_schema").unwrap_or_default()
}

/// The data directory (the one holding keyspace directories) that `path` lies in or is, or the data
/// directory of the node directory `path` (`<node>/data/`): the nearest one with a `system_schema`.
pub fn find_data_dir(path: &Path) -> Option<PathBuf> {
    // A Data.db lies at most five levels below its data directory (`<ks>/<table>/snapshots/<tag>/`).
    path.ancestors().take(6).find_map(|p| {
        [p.to_path_buf(), p.join("data")]
            .into_iter()
            .find(|d| d.join("system_schema").is_dir())
    })
}

/// One column as `system_schema.columns` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ColumnRow {
    name: String,
    kind: String,
    position: i32,
    /// CQL type text (`frozen<map<text, int>>`, a UDT's name).
    ty: String,
    clustering_order: String,
}

/// A column dropped from a table: cells written at or before `dropped_at` (µs) are not part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedColumn {
    pub keyspace: String,
    pub table: String,
    pub column: String,
    pub dropped_at: i64,
}

/// A node's schema, from its `system_schema`.
#[derive(Debug, Clone)]
pub struct NodeSchema {
    /// The data directory whose `system_schema` was read.
    pub data_dir: PathBuf,
    /// `(keyspace, table)` → its columns.
    tables: BTreeMap<(String, String), Vec<ColumnRow>>,
    /// `(keyspace, type)` → its fields (name, CQL type text).
    types: BTreeMap<(String, String), Vec<(String, String)>>,
    pub dropped: Vec<DroppedColumn>,
}

impl NodeSchema {
    /// Reads `system_schema` under `data_dir` (its live SSTables). Tables are what
    /// `system_schema.columns` lists; a damaged or missing table is an error naming its files.
    pub fn read(data_dir: &Path) -> Result<NodeSchema> {
        let dir = data_dir.join("system_schema");
        let keys = system_schema_keys();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut node = NodeSchema {
            data_dir: data_dir.to_path_buf(),
            tables: BTreeMap::new(),
            types: BTreeMap::new(),
            dropped: Vec::new(),
        };
        let Some(columns) = open_table(&dir, "columns", &keys)? else {
            return Err(Error::NotFound {
                path: dir,
                message: "no system_schema.columns SSTables: not a node's data directory".into(),
            });
        };
        for_each_row(&columns, now, |p, r, s| {
            let (ks, table) = (key_text(p)?, clustering_text(s, r, 0)?);
            let row = ColumnRow {
                name: clustering_text(s, r, 1)?,
                kind: cell_text(s, r, "kind")?.unwrap_or_default(),
                position: cell_int(s, r, "position")?.unwrap_or(-1),
                ty: cell_text(s, r, "type")?.unwrap_or_default(),
                clustering_order: cell_text(s, r, "clustering_order")?
                    .unwrap_or_else(|| "none".into()),
            };
            node.tables.entry((ks, table)).or_default().push(row);
            Ok(())
        })?;
        if let Some(types) = open_table(&dir, "types", &keys)? {
            for_each_row(&types, now, |p, r, s| {
                let (ks, name) = (key_text(p)?, clustering_text(s, r, 0)?);
                let names = cell_text_list(s, r, "field_names")?;
                let types = cell_text_list(s, r, "field_types")?;
                if names.len() != types.len() {
                    return Err(schema_error(
                        &dir,
                        format!(
                            "type {ks}.{name} has {} field names and {} field types",
                            names.len(),
                            types.len()
                        ),
                    ));
                }
                node.types
                    .insert((ks, name), names.into_iter().zip(types).collect());
                Ok(())
            })?;
        }
        if let Some(dropped) = open_table(&dir, "dropped_columns", &keys)? {
            for_each_row(&dropped, now, |p, r, s| {
                let d = DroppedColumn {
                    keyspace: key_text(p)?,
                    table: clustering_text(s, r, 0)?,
                    column: clustering_text(s, r, 1)?,
                    dropped_at: cell_timestamp_us(s, r, "dropped_time")?.unwrap_or(i64::MAX),
                };
                node.dropped.push(d);
                Ok(())
            })?;
        }
        Ok(node)
    }

    /// The tables, as (keyspace, table).
    pub fn tables(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tables.keys().map(|(k, t)| (k.as_str(), t.as_str()))
    }

    /// `CREATE TYPE` and `CREATE TABLE` statements of the keyspace `keyspace` (all but the system
    /// keyspaces when `None`), only of table `table` (and the types) when given.
    pub fn statements(&self, keyspace: Option<&str>, table: Option<&str>) -> String {
        let wanted = |ks: &str| match keyspace {
            Some(k) => k == ks,
            None => !SYSTEM_KEYSPACES.contains(&ks),
        };
        let mut out = String::new();
        let keyspaces: Vec<&String> = {
            let mut v: Vec<&String> = self
                .tables
                .keys()
                .map(|(k, _)| k)
                .chain(self.types.keys().map(|(k, _)| k))
                .filter(|k| wanted(k))
                .collect();
            v.dedup();
            v.sort();
            v.dedup();
            v
        };
        for ks in keyspaces {
            self.write_types(&mut out, ks);
            for ((k, t), cols) in &self.tables {
                if k == ks && table.is_none_or(|w| w == t) {
                    write_table(&mut out, k, t, cols);
                }
            }
        }
        out
    }

    /// The schema of table `keyspace.table` (and its keyspace's types), parsed from its statements;
    /// `None` when the node does not know the table.
    pub fn table_schema(&self, keyspace: &str, table: &str) -> Result<Option<CqlSchema>> {
        if keyspace == "system_schema" {
            return Ok(Some(system_schema_keys()));
        }
        let Some(cols) = self.tables.get(&(keyspace.to_string(), table.to_string())) else {
            return Ok(None);
        };
        let mut text = String::new();
        self.write_types(&mut text, keyspace);
        write_table(&mut text, keyspace, table, cols);
        let origin = format!("system_schema of {}", self.data_dir.display());
        CqlSchema::parse(&text, &origin).map(Some)
    }

    /// The columns of `keyspace.table` dropped (and not added again since).
    pub fn dropped_columns(&self, keyspace: &str, table: &str) -> Vec<&DroppedColumn> {
        let current = self.tables.get(&(keyspace.to_string(), table.to_string()));
        self.dropped
            .iter()
            .filter(|d| d.keyspace == keyspace && d.table == table)
            .filter(|d| !current.is_some_and(|cols| cols.iter().any(|c| c.name == d.column)))
            .collect()
    }

    /// The columns of `keyspace.table` dropped and added again since: the table has a column of that
    /// name, whose cells written at or before `dropped_at` belong to the dropped one.
    pub fn readded_columns(&self, keyspace: &str, table: &str) -> Vec<&DroppedColumn> {
        let Some(current) = self.tables.get(&(keyspace.to_string(), table.to_string())) else {
            return Vec::new();
        };
        self.dropped
            .iter()
            .filter(|d| d.keyspace == keyspace && d.table == table)
            .filter(|d| current.iter().any(|c| c.name == d.column))
            .collect()
    }

    /// The keyspace's types, each after the types its fields use.
    fn write_types(&self, out: &mut String, keyspace: &str) {
        let mut pending: Vec<(&String, &Vec<(String, String)>)> = self
            .types
            .iter()
            .filter(|((k, _), _)| k == keyspace)
            .map(|((_, n), f)| (n, f))
            .collect();
        let mut written: Vec<&String> = Vec::new();
        while !pending.is_empty() {
            let before = pending.len();
            let mut i = 0;
            while i < pending.len() {
                let (name, fields) = pending[i];
                let uses_pending = fields.iter().any(|(_, ty)| {
                    pending
                        .iter()
                        .any(|(other, _)| *other != name && mentions(ty, other))
                });
                if uses_pending {
                    i += 1;
                    continue;
                }
                let _ = write!(out, "CREATE TYPE {}.{} (", ident(keyspace), ident(name));
                for (j, (f, ty)) in fields.iter().enumerate() {
                    let _ = write!(out, "{}{} {ty}", if j > 0 { ", " } else { "" }, ident(f));
                }
                out.push_str(");\n");
                written.push(name);
                pending.remove(i);
            }
            if pending.len() == before {
                // A cycle cannot be declared in CQL: write the rest as they are (the parser reports).
                for (name, fields) in pending.drain(..) {
                    let _ = write!(out, "CREATE TYPE {}.{} (", ident(keyspace), ident(name));
                    for (j, (f, ty)) in fields.iter().enumerate() {
                        let _ = write!(out, "{}{} {ty}", if j > 0 { ", " } else { "" }, ident(f));
                    }
                    out.push_str(");\n");
                }
            }
        }
    }
}

/// Whether the CQL type text `ty` names the type `name` (as a whole word).
fn mentions(ty: &str, name: &str) -> bool {
    ty.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '"'))
        .any(|w| w.trim_matches('"') == name)
}

/// A CQL identifier, double-quoted unless it is a plain lower-case one.
fn ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `CREATE TABLE` for one table: key columns by position, then the others by name; the primary key;
/// the clustering order.
fn write_table(out: &mut String, keyspace: &str, table: &str, cols: &[ColumnRow]) {
    let by_kind = |kind: &str| {
        let mut v: Vec<&ColumnRow> = cols.iter().filter(|c| c.kind == kind).collect();
        v.sort_by_key(|c| c.position);
        v
    };
    let (pk, ck) = (by_kind("partition_key"), by_kind("clustering"));
    let mut rest: Vec<&ColumnRow> = cols
        .iter()
        .filter(|c| c.kind == "regular" || c.kind == "static")
        .collect();
    rest.sort_by(|a, b| a.name.cmp(&b.name));
    let _ = writeln!(out, "CREATE TABLE {}.{} (", ident(keyspace), ident(table));
    for c in pk.iter().chain(&ck).chain(&rest) {
        let st = if c.kind == "static" { " static" } else { "" };
        let _ = writeln!(out, "    {} {}{st},", ident(&c.name), c.ty);
    }
    let names = |v: &[&ColumnRow]| {
        v.iter()
            .map(|c| ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let key = if pk.len() == 1 {
        names(&pk)
    } else {
        format!("({})", names(&pk))
    };
    if ck.is_empty() {
        let _ = writeln!(out, "    PRIMARY KEY ({key})");
        out.push_str(");\n");
    } else {
        let _ = writeln!(out, "    PRIMARY KEY ({key}, {})", names(&ck));
        let order: Vec<String> = ck
            .iter()
            .map(|c| {
                let dir = if c.clustering_order.eq_ignore_ascii_case("desc") {
                    "DESC"
                } else {
                    "ASC"
                };
                format!("{} {dir}", ident(&c.name))
            })
            .collect();
        let _ = writeln!(out, ") WITH CLUSTERING ORDER BY ({});", order.join(", "));
    }
}

fn schema_error(dir: &Path, message: String) -> Error {
    Error::Schema {
        origin: dir.display().to_string(),
        line: 0,
        column: 0,
        message,
    }
}

/// Opens the live SSTables of `system_schema.<name>` (its directory `<name>-<id>` or `<name>`).
fn open_table(dir: &Path, name: &str, keys: &CqlSchema) -> Result<Option<MergeTable>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    for e in entries {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let file_name = e.file_name();
        let dir_name = file_name.to_string_lossy();
        let table = match dir_name.rsplit_once('-') {
            Some((t, id)) if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) => t,
            _ => &dir_name,
        };
        if table != name || !e.path().is_dir() {
            continue;
        }
        let rd = std::fs::read_dir(e.path()).map_err(|err| Error::io(&e.path(), err))?;
        for f in rd {
            let f = f.map_err(|err| Error::io(&e.path(), err))?;
            if f.file_name().to_string_lossy().ends_with("-Data.db") {
                files.push(f.path());
            }
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    files.sort();
    let ssts = files
        .iter()
        .map(|f| SSTable::open(f, Some(keys), ReadOptions::default()))
        .collect::<Result<Vec<_>>>()?;
    MergeTable::new(ssts).map(Some)
}

/// Calls `f` with each live row of the table (its partition, row and schema).
fn for_each_row(
    table: &MergeTable,
    now: i64,
    mut f: impl FnMut(&MergedPartition, &MergedRow<'_>, &TableSchema) -> Result<()>,
) -> Result<()> {
    let mut scan = table.scan(&Columns::All, now)?;
    let schema = table.schema().clone();
    while let Some(p) = scan.next_partition()? {
        for r in p.rows() {
            f(p, &r, &schema)?;
        }
    }
    Ok(())
}

fn bad_value(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Schema {
        origin: "system_schema".into(),
        line: 0,
        column: 0,
        message: format!("{what}: {e}"),
    }
}

fn utf8(what: &str, b: &[u8]) -> Result<String> {
    std::str::from_utf8(b)
        .map(str::to_string)
        .map_err(|e| bad_value(what, e))
}

fn key_text(p: &MergedPartition) -> Result<String> {
    utf8("keyspace_name", p.key())
}

fn clustering_text(s: &TableSchema, r: &MergedRow<'_>, i: usize) -> Result<String> {
    let name = s.clustering.get(i).map_or("?", |c| c.name.as_str());
    utf8(name, r.clustering(i).unwrap_or_default())
}

/// The value of the regular column `name`, decoded with its type (`None`: absent or null).
fn cell<'r, T>(
    s: &TableSchema,
    r: &MergedRow<'r>,
    name: &str,
    f: impl FnOnce(Value<'r>) -> Option<T>,
) -> Result<Option<T>> {
    let Some(col) = s.column(name).filter(|c| c.kind == ColumnKind::Regular) else {
        return Ok(None);
    };
    let Some(b) = r.value(col.index) else {
        return Ok(None);
    };
    let v = Value::decode(&col.ty, b).map_err(|e| bad_value(name, e))?;
    match v {
        Value::Null | Value::Empty => Ok(None),
        v => f(v)
            .map(Some)
            .ok_or_else(|| bad_value(name, format!("unexpected type {}", col.ty))),
    }
}

fn cell_text(s: &TableSchema, r: &MergedRow<'_>, name: &str) -> Result<Option<String>> {
    cell(s, r, name, |v| v.as_str().map(str::to_string))
}

fn cell_int(s: &TableSchema, r: &MergedRow<'_>, name: &str) -> Result<Option<i32>> {
    cell(s, r, name, |v| match v {
        Value::Int(i) => Some(i),
        _ => None,
    })
}

fn cell_timestamp_us(s: &TableSchema, r: &MergedRow<'_>, name: &str) -> Result<Option<i64>> {
    cell(s, r, name, |v| match v {
        Value::Timestamp(ms) => Some(ms.saturating_mul(1000)),
        _ => None,
    })
}

fn cell_text_list(s: &TableSchema, r: &MergedRow<'_>, name: &str) -> Result<Vec<String>> {
    Ok(cell(s, r, name, |v| match v {
        Value::List(items) => items
            .into_iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>(),
        _ => None,
    })?
    .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_schema_keys_parse() {
        let s = CqlSchema::parse(SYSTEM_SCHEMA_CQL, "system_schema").unwrap();
        assert_eq!(s.tables.len(), 5);
        let columns = s.table(Some("columns")).unwrap();
        assert_eq!(columns.partition_key, ["keyspace_name"]);
        assert_eq!(columns.clustering.len(), 2);
    }

    #[test]
    fn identifiers_are_quoted_when_needed() {
        assert_eq!(ident("user_id"), "user_id");
        assert_eq!(ident("UserId"), "\"UserId\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert!(mentions("frozen<list<frozen<address>>>", "address"));
        assert!(!mentions("frozen<addresses>", "address"));
    }

    #[test]
    fn a_type_is_written_after_the_types_it_uses() {
        let mut node = NodeSchema {
            data_dir: PathBuf::new(),
            tables: BTreeMap::new(),
            types: BTreeMap::new(),
            dropped: Vec::new(),
        };
        node.types.insert(
            ("ks".into(), "a".into()),
            vec![("inner".into(), "frozen<b>".into())],
        );
        node.types
            .insert(("ks".into(), "b".into()), vec![("x".into(), "int".into())]);
        let text = node.statements(Some("ks"), None);
        assert_eq!(
            text,
            "CREATE TYPE ks.b (x int);\nCREATE TYPE ks.a (inner frozen<b>);\n"
        );
    }
}
