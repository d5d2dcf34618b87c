//! A node's `system_schema` for given tables (`db/schema/SchemaKeyspace.java`): the `tables`, `columns`
//! and `types` tables that describe them, written as live SSTables under a data directory — what a node
//! directory holds besides the tables' own SSTables, so that it reads without a `schema.cql`. Only the
//! columns that describe the tables' structure are filled in (the other columns of `tables` are left
//! unset), in the layout of Cassandra 4.x / 5.0 (`nb`).

use std::path::Path;

use crate::partitioner::murmur3_token;
use crate::schema::CqlSchema;
use crate::types::CqlType;
use crate::value::Value;

use super::model::{Cell, ColumnContent, ColumnData, Liveness, Partition, Row, Unfiltered};
use super::sstable::{writer_version, SSTableWriter, WriterOptions};
use super::table::schema_from_cql_text;
use super::{Compression, WriterError};

const TABLES: &str = "CREATE TABLE system_schema.tables (keyspace_name text, table_name text, \
    additional_write_policy text, bloom_filter_fp_chance double, comment text, \
    default_time_to_live int, flags frozen<set<text>>, gc_grace_seconds int, id uuid, \
    read_repair text, PRIMARY KEY ((keyspace_name), table_name));";
const COLUMNS: &str = "CREATE TABLE system_schema.columns (keyspace_name text, table_name text, \
    column_name text, clustering_order text, column_name_bytes blob, kind text, position int, \
    type text, PRIMARY KEY ((keyspace_name), table_name, column_name));";
const TYPES: &str = "CREATE TABLE system_schema.types (keyspace_name text, type_name text, \
    field_names frozen<list<text>>, field_types frozen<list<text>>, \
    PRIMARY KEY ((keyspace_name), type_name));";

/// One row to write: its partition (keyspace), clustering and named cells.
struct SchemaRow {
    keyspace: String,
    clustering: Vec<String>,
    cells: Vec<(&'static str, Vec<u8>)>,
}

/// Writes `system_schema.tables`, `.columns` and `.types` describing `schema`'s tables (each with a
/// keyspace) and types under `data_dir`, at write time `timestamp` (µs).
pub fn write_system_schema(
    data_dir: &Path,
    schema: &CqlSchema,
    timestamp: i64,
) -> Result<(), WriterError> {
    let text = |s: &str| s.as_bytes().to_vec();
    let list = CqlType::Frozen(Box::new(CqlType::List(Box::new(CqlType::Text))));
    let text_list = |items: Vec<String>| -> Result<Vec<u8>, WriterError> {
        let mut out = Vec::new();
        Value::List(items.iter().map(|s| Value::Text(s)).collect())
            .encode(&list, &mut out)
            .map_err(|e| WriterError::InvalidData(e.to_string()))?;
        Ok(out)
    };
    let (mut tables, mut columns, mut types) = (Vec::new(), Vec::new(), Vec::new());
    for t in &schema.tables {
        let ks = t
            .keyspace
            .clone()
            .ok_or_else(|| WriterError::InvalidData(format!("table {} has no keyspace", t.name)))?;
        tables.push(SchemaRow {
            keyspace: ks.clone(),
            clustering: vec![t.name.clone()],
            cells: vec![("id", table_id(&ks, &t.name).to_vec())],
        });
        for (name, ty, is_static) in &t.columns {
            let pk = t.partition_key.iter().position(|k| k == name);
            let ck = t.clustering.iter().position(|(k, _)| k == name);
            let (kind, position, order) = match (pk, ck) {
                (Some(i), _) => ("partition_key", i as i32, "none"),
                (_, Some(i)) => (
                    "clustering",
                    i as i32,
                    if t.clustering[i].1 { "desc" } else { "asc" },
                ),
                _ if *is_static => ("static", -1, "none"),
                _ => ("regular", -1, "none"),
            };
            columns.push(SchemaRow {
                keyspace: ks.clone(),
                clustering: vec![t.name.clone(), name.clone()],
                cells: vec![
                    ("clustering_order", text(order)),
                    ("column_name_bytes", text(name)),
                    ("kind", text(kind)),
                    ("position", position.to_be_bytes().to_vec()),
                    ("type", text(&ty.to_string())),
                ],
            });
        }
    }
    for u in &schema.types {
        types.push(SchemaRow {
            keyspace: u.keyspace.clone(),
            clustering: vec![u.name.clone()],
            cells: vec![
                (
                    "field_names",
                    text_list(u.fields.iter().map(|(n, _)| n.clone()).collect())?,
                ),
                (
                    "field_types",
                    text_list(u.fields.iter().map(|(_, t)| t.to_string()).collect())?,
                ),
            ],
        });
    }
    for (name, cql, rows) in [
        ("tables", TABLES, tables),
        ("columns", COLUMNS, columns),
        ("types", TYPES, types),
    ] {
        write_table(data_dir, name, cql, rows, timestamp)?;
    }
    Ok(())
}

/// A stable table id (the directory suffix and `tables.id`) derived from the names.
fn table_id(keyspace: &str, table: &str) -> [u8; 16] {
    let t = murmur3_token(format!("{keyspace}.{table}").as_bytes()).to_be_bytes();
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&t);
    id[8..].copy_from_slice(&t);
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

fn write_table(
    data_dir: &Path,
    name: &str,
    cql: &str,
    mut rows: Vec<SchemaRow>,
    timestamp: i64,
) -> Result<(), WriterError> {
    let schema = schema_from_cql_text(cql, name)?;
    let id: String = table_id("system_schema", name)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = data_dir.join(format!("system_schema/{name}-{id}"));
    let options = WriterOptions::new(writer_version("nb")?, Compression::Lz4);
    let mut w = SSTableWriter::create(&dir, 1, &schema, options)?;
    // Partitions in ring order, rows in clustering (UTF-8 byte) order.
    rows.sort_by(|a, b| {
        let key = |r: &SchemaRow| (murmur3_token(r.keyspace.as_bytes()), r.keyspace.clone());
        key(a)
            .cmp(&key(b))
            .then_with(|| a.clustering.cmp(&b.clustering))
    });
    let mut partitions: Vec<Partition> = Vec::new();
    for r in rows {
        if partitions
            .last()
            .is_none_or(|p| p.key != r.keyspace.as_bytes())
        {
            partitions.push(Partition::new(r.keyspace.as_bytes().to_vec()));
        }
        let mut row = Row::new(
            r.clustering
                .iter()
                .map(|c| Some(c.as_bytes().to_vec()))
                .collect(),
        );
        row.liveness = Some(Liveness {
            timestamp,
            expiry: None,
        });
        let mut columns = Vec::new();
        for (col, value) in r.cells {
            let column = schema
                .regulars
                .iter()
                .position(|c| c.name == col)
                .ok_or_else(|| WriterError::InvalidData(format!("no column {col} in {name}")))?;
            columns.push(ColumnData {
                column,
                content: ColumnContent::Simple(Cell::live(timestamp, value)),
            });
        }
        columns.sort_by_key(|c| c.column);
        row.columns = columns;
        if let Some(p) = partitions.last_mut() {
            p.unfiltereds.push(Unfiltered::Row(row));
        }
    }
    for p in &partitions {
        w.append(p)?;
    }
    w.finish()?;
    Ok(())
}
