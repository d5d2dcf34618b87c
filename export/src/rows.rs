//! Merged partitions → Arrow record batches: which exported column comes from where (partition key
//! component, clustering value, static or regular cell), and a batch under construction. A partition
//! gives one row per live regular row, each with the partition's static values; a partition with no live
//! regular row but live static cells gives one row of its keys and statics (as `SELECT *` does).

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use sstable_reader::{
    split_composite, Column, ColumnKind, Columns, CqlType, MergedPartition, MergedRow, TableSchema,
    Value,
};

use crate::builder::Builder;
use crate::error::{Error, Result};
use crate::mapping::{arrow_field, Uuids};

/// Where the values of an exported column come from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The whole partition key (`None`) or component `i` of a composite one.
    PartitionKey(Option<usize>),
    Clustering(usize),
    Static(usize),
    Regular(usize),
}

#[derive(Debug)]
struct OutColumn {
    name: String,
    ty: CqlType,
    source: Source,
}

/// The exported columns of a table (in `SELECT *` order) and the Arrow schema of its files.
#[derive(Debug)]
pub struct Plan {
    table: String,
    columns: Vec<OutColumn>,
    schema: SchemaRef,
    named: Vec<String>,
}

impl Plan {
    /// The columns of `schema` named in `only` (all when empty), each mapped to Arrow (uuids as `uuids`
    /// says); `table` names the table in errors.
    pub fn new(schema: &TableSchema, table: &str, only: &[String], uuids: Uuids) -> Result<Plan> {
        if let Some(bad) = only.iter().find(|n| schema.column(n).is_none()) {
            let known: Vec<&str> = schema
                .select_order()
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return Err(Error::UnknownColumn {
                table: table.into(),
                column: bad.clone(),
                known: known.join(", "),
            });
        }
        let mut columns = Vec::new();
        let mut fields = Vec::new();
        for c in schema.select_order() {
            if !only.is_empty() && !only.contains(&c.name) {
                continue;
            }
            let key = matches!(c.kind, ColumnKind::PartitionKey);
            fields.push(arrow_field(&c.name, &c.ty, !key, uuids).map_err(|why| {
                Error::UnsupportedType {
                    table: table.into(),
                    column: c.name.clone(),
                    ty: c.ty.to_string(),
                    why,
                }
            })?);
            columns.push(OutColumn {
                name: c.name.clone(),
                ty: c.ty.clone(),
                source: source(schema, c),
            });
        }
        Ok(Plan {
            table: table.into(),
            columns,
            schema: Arc::new(Schema::new(fields)),
            named: only.to_vec(),
        })
    }

    /// The Arrow schema of the exported files.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// What the merged scan must decode.
    pub fn scan_columns(&self) -> Columns {
        if self.named.is_empty() {
            Columns::All
        } else {
            Columns::Named(self.named.clone())
        }
    }

    /// An empty batch of this plan's columns.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            builders: self
                .columns
                .iter()
                .zip(self.schema.fields())
                .map(|(c, f)| Builder::new(&c.ty, f.data_type()))
                .collect(),
            plan: self,
            rows: 0,
            bytes: 0,
            empties: 0,
        }
    }
}

fn source(schema: &TableSchema, c: &Column) -> Source {
    match c.kind {
        ColumnKind::PartitionKey if schema.partition_key.len() == 1 => Source::PartitionKey(None),
        ColumnKind::PartitionKey => Source::PartitionKey(Some(c.index)),
        ColumnKind::Clustering => Source::Clustering(c.index),
        ColumnKind::Static => Source::Static(c.index),
        ColumnKind::Regular => Source::Regular(c.index),
    }
}

/// Rows being gathered into one record batch.
pub struct Batch<'p> {
    plan: &'p Plan,
    builders: Vec<Builder>,
    rows: usize,
    /// Value bytes appended (to bound a batch's memory and keep Arrow's 32-bit offsets safe).
    bytes: usize,
    /// Zero-length values of non-text types exported as null.
    pub empties: u64,
}

impl Batch<'_> {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends the rows of one merged partition; returns how many.
    pub fn add_partition(&mut self, p: &MergedPartition) -> Result<usize> {
        let statics = p.static_row();
        if p.row_count() == 0 {
            return match statics {
                Some(s) if s.cells().next().is_some() => {
                    self.add_row(p, None, Some(s))?;
                    Ok(1)
                }
                _ => Ok(0),
            };
        }
        for row in p.rows() {
            self.add_row(p, Some(row), statics)?;
        }
        Ok(p.row_count())
    }

    fn add_row(
        &mut self,
        p: &MergedPartition,
        row: Option<MergedRow<'_>>,
        statics: Option<MergedRow<'_>>,
    ) -> Result<()> {
        let plan = self.plan;
        for (c, b) in plan.columns.iter().zip(&mut self.builders) {
            let fail = |what: String| Error::Value {
                table: plan.table.clone(),
                key: hex(p.key()),
                column: c.name.clone(),
                what,
            };
            let bytes = match c.source {
                Source::PartitionKey(None) => Some(p.key()),
                Source::PartitionKey(Some(i)) => {
                    Some(split_composite(p.key(), i).ok_or_else(|| {
                        fail(format!("the composite partition key has no component {i}"))
                    })?)
                }
                Source::Clustering(i) => row.and_then(|r| r.clustering(i)),
                Source::Static(i) | Source::Regular(i) => {
                    let from = if matches!(c.source, Source::Static(_)) {
                        statics
                    } else {
                        row
                    };
                    let Some(from) = from else {
                        b.append_null();
                        continue;
                    };
                    if c.ty.is_multi_cell() {
                        self.bytes += from
                            .cells()
                            .filter(|cell| cell.column == i)
                            .map(|cell| cell.value.len() + cell.path.map_or(0, <[u8]>::len))
                            .sum::<usize>();
                        let v = multi_cell(&c.ty, from, i).map_err(|e| fail(e.to_string()))?;
                        b.append(&v, &mut self.empties).map_err(|e| fail(e.0))?;
                        continue;
                    }
                    from.value(i)
                }
            };
            match bytes {
                None => b.append_null(),
                Some(bytes) => {
                    self.bytes += bytes.len();
                    let v = Value::decode(&c.ty, bytes).map_err(|e| fail(e.to_string()))?;
                    b.append(&v, &mut self.empties).map_err(|e| fail(e.0))?;
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The gathered rows as a record batch (the batch is left empty).
    pub fn finish(&mut self) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
        let arrays = self
            .builders
            .iter_mut()
            .map(Builder::finish)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.plan.schema.clone(), arrays)
    }
}

/// The value of a multi-cell (not frozen) collection or UDT column from its live cells: list elements
/// are cell values, set elements cell paths, map entries (path, value), UDT fields (field index, value).
fn multi_cell<'a>(
    ty: &CqlType,
    row: MergedRow<'a>,
    column: usize,
) -> std::result::Result<Value<'a>, sstable_reader::ValueError> {
    let cells = || row.cells().filter(move |c| c.column == column);
    if cells().next().is_none() {
        return Ok(Value::Null);
    }
    let path = |c: &sstable_reader::Cell<'a>| c.path.unwrap_or(&[]);
    Ok(match ty {
        CqlType::List(e) => Value::List(
            cells()
                .map(|c| Value::decode(e, c.value))
                .collect::<std::result::Result<_, _>>()?,
        ),
        CqlType::Set(e) => Value::Set(
            cells()
                .map(|c| Value::decode(e, path(&c)))
                .collect::<std::result::Result<_, _>>()?,
        ),
        CqlType::Map(k, v) => Value::Map(
            cells()
                .map(|c| Ok((Value::decode(k, path(&c))?, Value::decode(v, c.value)?)))
                .collect::<std::result::Result<_, _>>()?,
        ),
        CqlType::Udt(u) => {
            let mut items = vec![Value::Null; u.fields.len()];
            for c in cells() {
                let p = path(&c);
                let Ok(idx) = <[u8; 2]>::try_from(p).map(|b| u16::from_be_bytes(b) as usize) else {
                    continue;
                };
                if let Some((_, t)) = u.fields.get(idx) {
                    items[idx] = Value::decode(t, c.value)?;
                }
            }
            Value::Tuple(items)
        }
        other => Value::decode(other, cells().next().map_or(&[][..], |c| c.value))?,
    })
}

fn hex(b: &[u8]) -> String {
    let mut s = String::from("0x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}
