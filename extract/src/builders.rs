//! The Arrow builders of an extract's record batches (one column builder per column of
//! `layout`), the batch and dictionary limits, and [`WriteOptions`].

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BinaryDictionaryBuilder, FixedSizeBinaryBuilder, Int32Builder, Int64Builder,
    MapBuilder, MapFieldNames, UInt16Builder, UInt64Builder, UInt8Builder,
};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_ipc::CompressionType;
use arrow_schema::SchemaRef;
use sstable_reader::{
    Cell, DeletionTime, LivenessInfo, MarkerRef, Projection, RowRef, TableSchema,
};

use crate::error::Result;
use crate::layout::{self, Storage, KIND_MARKER, KIND_PARTITION, KIND_ROW, KIND_STATIC};

/// Entries per record batch (a batch ends at the first partition boundary past it).
pub const BATCH_ENTRIES: usize = 1 << 16;

/// Distinct values a dictionary column may hold before it is written plain instead.
pub const DICTIONARY_LIMIT: usize = 1 << 16;

enum Values {
    Plain(BinaryBuilder),
    Fixed(FixedSizeBinaryBuilder, usize),
    Dict(BinaryDictionaryBuilder<Int32Type>),
    Map(MapBuilder<BinaryBuilder, BinaryBuilder>),
}

struct ColumnBuilder {
    name: String,
    values: Values,
    meta: BinaryBuilder,
    del: Option<BinaryBuilder>,
}

impl ColumnBuilder {
    fn null(&mut self) -> Result<(), arrow_schema::ArrowError> {
        match &mut self.values {
            Values::Plain(b) => b.append_null(),
            Values::Fixed(b, _) => b.append_null(),
            Values::Dict(b) => b.append_null(),
            Values::Map(b) => b.append(false)?,
        }
        self.meta.append_null();
        if let Some(d) = &mut self.del {
            d.append_null();
        }
        Ok(())
    }
}

/// Builds the record batches of one SSTable's extract.
pub(crate) struct Builders {
    kind: UInt8Builder,
    bound: UInt8Builder,
    key: BinaryBuilder,
    position: UInt64Builder,
    token: FixedSizeBinaryBuilder,
    del: (Int64Builder, Int64Builder),
    end: (Int64Builder, Int64Builder),
    shadow: (Int64Builder, Int64Builder),
    lv_ts: Int64Builder,
    lv_ttl: Int32Builder,
    lv_exp: Int64Builder,
    clen: UInt16Builder,
    clustering: Vec<Clustering>,
    /// Per static / regular column of the SSTable: its builder, `None` when the extract does not hold it.
    statics: Vec<Option<ColumnBuilder>>,
    regulars: Vec<Option<ColumnBuilder>>,
    pub(crate) entries: usize,
    /// Rows since the last flush whose `bound`, `key`, `position`, `token`, `del`, `end` and `shadow`
    /// are all null (rows without a deletion: nearly all), appended to those columns at once
    /// ([`Builders::flush_nulls`]) rather than ten nulls per row.
    row_nulls: usize,
    /// A column that does not fit its storage, and why (the extract is written again with it plain).
    pub(crate) replan: Option<(String, String)>,
}

/// A clustering column's values: variable-length, or of its type's width.
enum Clustering {
    Var(BinaryBuilder),
    Fixed(FixedSizeBinaryBuilder, usize, String),
}

fn column_builders(
    cols: &[sstable_reader::Column],
    plain: &[String],
    held: impl Fn(usize) -> bool,
) -> Vec<Option<ColumnBuilder>> {
    cols.iter()
        .enumerate()
        .map(|(j, c)| {
            let storage = layout::storage(c, plain);
            held(j).then(|| ColumnBuilder {
                name: c.name.clone(),
                values: match storage {
                    Storage::Plain => Values::Plain(BinaryBuilder::new()),
                    Storage::Fixed(n) => Values::Fixed(FixedSizeBinaryBuilder::new(n), n as usize),
                    Storage::Dictionary => Values::Dict(BinaryDictionaryBuilder::new()),
                    Storage::Map => Values::Map(MapBuilder::new(
                        Some(MapFieldNames {
                            entry: "entries".into(),
                            key: "keys".into(),
                            value: "values".into(),
                        }),
                        BinaryBuilder::new(),
                        BinaryBuilder::new(),
                    )),
                },
                meta: BinaryBuilder::new(),
                del: (storage == Storage::Map).then(BinaryBuilder::new),
            })
        })
        .collect()
}

fn deletion(b: &mut (Int64Builder, Int64Builder), d: Option<DeletionTime>) {
    match d.filter(|d| !d.is_live()) {
        Some(d) => {
            b.0.append_value(d.marked_for_delete_at);
            b.1.append_value(d.local_deletion_time);
        }
        None => {
            b.0.append_null();
            b.1.append_null();
        }
    }
}

fn push_meta(out: &mut Vec<u8>, c: &Cell<'_>) {
    out.extend_from_slice(&c.timestamp.to_le_bytes());
    out.extend_from_slice(&c.ttl.to_le_bytes());
    out.extend_from_slice(&c.local_deletion_time.to_le_bytes());
    out.push(u8::from(c.tombstone));
}

/// Whether a cell carries exactly the row's liveness (so its metadata need not be stored).
fn inherits(c: &Cell<'_>, lv: &LivenessInfo) -> bool {
    !c.tombstone
        && c.timestamp == lv.timestamp
        && c.ttl == lv.ttl
        && c.local_deletion_time == lv.local_expiration_time
}

impl Builders {
    pub(crate) fn new(schema: &TableSchema, plain: &[String], held: &Projection) -> Builders {
        Builders {
            kind: UInt8Builder::new(),
            bound: UInt8Builder::new(),
            key: BinaryBuilder::new(),
            position: UInt64Builder::new(),
            token: FixedSizeBinaryBuilder::new(16),
            del: (Int64Builder::new(), Int64Builder::new()),
            end: (Int64Builder::new(), Int64Builder::new()),
            shadow: (Int64Builder::new(), Int64Builder::new()),
            lv_ts: Int64Builder::new(),
            lv_ttl: Int32Builder::new(),
            lv_exp: Int64Builder::new(),
            clen: UInt16Builder::new(),
            clustering: schema
                .clustering
                .iter()
                .map(|c| match layout::clustering_width(c, plain) {
                    Some(n) => Clustering::Fixed(
                        FixedSizeBinaryBuilder::new(n),
                        n as usize,
                        c.name.clone(),
                    ),
                    None => Clustering::Var(BinaryBuilder::new()),
                })
                .collect(),
            statics: column_builders(&schema.statics, plain, |j| held.includes_static(j)),
            regulars: column_builders(&schema.regulars, plain, |j| held.includes_regular(j)),
            entries: 0,
            row_nulls: 0,
            replan: None,
        }
    }

    /// Appends the nulls of the rows counted in `row_nulls` (before any other entry's values).
    fn flush_nulls(&mut self) {
        let n = std::mem::take(&mut self.row_nulls);
        if n == 0 {
            return;
        }
        self.bound.append_nulls(n);
        self.key.append_nulls(n);
        self.position.append_nulls(n);
        self.token.append_nulls(n);
        for b in [&mut self.del, &mut self.end, &mut self.shadow] {
            b.0.append_nulls(n);
            b.1.append_nulls(n);
        }
    }

    fn columns_null(&mut self) -> Result<(), arrow_schema::ArrowError> {
        for c in self
            .statics
            .iter_mut()
            .chain(self.regulars.iter_mut())
            .flatten()
        {
            c.null()?;
        }
        Ok(())
    }

    pub(crate) fn partition(
        &mut self,
        key: &[u8],
        token: u128,
        position: u64,
        d: DeletionTime,
    ) -> Result<(), arrow_schema::ArrowError> {
        self.flush_nulls();
        self.kind.append_value(KIND_PARTITION);
        self.bound.append_null();
        self.key.append_value(key);
        self.position.append_value(position);
        self.token.append_value(token.to_be_bytes())?;
        deletion(&mut self.del, Some(d));
        deletion(&mut self.end, None);
        deletion(&mut self.shadow, None);
        self.lv_ts.append_null();
        self.lv_ttl.append_null();
        self.lv_exp.append_null();
        self.clen.append_null();
        for c in &mut self.clustering {
            match c {
                Clustering::Var(b) => b.append_null(),
                Clustering::Fixed(b, ..) => b.append_null(),
            }
        }
        self.columns_null()?;
        self.entries += 1;
        Ok(())
    }

    /// The fields every row and marker sets alike (not the columns').
    fn clustering_of<'a>(
        &mut self,
        values: impl ExactSizeIterator<Item = Option<&'a [u8]>>,
    ) -> Result<(), String> {
        let n = values.len();
        if n > self.clustering.len() {
            return Err(format!(
                "{n} clustering values where the table has {}",
                self.clustering.len()
            ));
        }
        self.clen.append_value(n as u16);
        let mut values = values;
        for b in &mut self.clustering {
            match (b, values.next().flatten()) {
                (Clustering::Var(b), Some(v)) => b.append_value(v),
                (Clustering::Var(b), None) => b.append_null(),
                (Clustering::Fixed(b, n, name), Some(v)) => {
                    if v.len() == *n {
                        b.append_value(v).map_err(|e| e.to_string())?;
                    } else {
                        b.append_null();
                        self.replan.get_or_insert_with(|| {
                            (
                                name.clone(),
                                format!("a value of {} bytes, not {n}", v.len()),
                            )
                        });
                    }
                }
                (Clustering::Fixed(b, ..), None) => b.append_null(),
            }
        }
        Ok(())
    }

    pub(crate) fn row(&mut self, r: &RowRef<'_>, scratch: &mut Vec<u8>) -> Result<(), String> {
        let lv = r.liveness();
        self.kind
            .append_value(if r.is_static() { KIND_STATIC } else { KIND_ROW });
        if r.deletion().is_live() && r.shadowable_deletion().is_live() {
            self.row_nulls += 1;
        } else {
            self.flush_nulls();
            self.bound.append_null();
            self.key.append_null();
            self.position.append_null();
            self.token.append_null();
            deletion(&mut self.del, Some(r.deletion()));
            deletion(&mut self.end, None);
            deletion(&mut self.shadow, Some(r.shadowable_deletion()));
        }
        if lv.is_empty() {
            self.lv_ts.append_null();
            self.lv_ttl.append_null();
            self.lv_exp.append_null();
        } else {
            self.lv_ts.append_value(lv.timestamp);
            self.lv_ttl.append_value(lv.ttl);
            if lv.ttl != 0 && Some(lv.local_expiration_time) == layout::derived_expiry(&lv) {
                // What a write with a TTL sets: its second plus the TTL (derived when read).
                self.lv_exp.append_null();
            } else {
                self.lv_exp.append_value(lv.local_expiration_time);
            }
        }
        self.clustering_of((0..r.clustering_len()).map(|i| r.clustering(i)))?;
        let complex: Vec<(usize, DeletionTime)> = r.complex_deletions().collect();
        let replan = &mut self.replan;
        let (mine, other) = if r.is_static() {
            (&mut self.statics, &mut self.regulars)
        } else {
            (&mut self.regulars, &mut self.statics)
        };
        for c in other.iter_mut().flatten() {
            c.null().map_err(|e| e.to_string())?;
        }
        let mut cells = r.cells().peekable();
        for (j, col) in mine.iter_mut().enumerate() {
            let Some(col) = col else {
                // Not held (the scanner's projection leaves its cells out; any left are skipped).
                while cells.next_if(|c| c.column == j).is_some() {}
                continue;
            };
            scratch.clear();
            let mut all_inherit = true;
            match &mut col.values {
                Values::Plain(_) | Values::Fixed(..) | Values::Dict(_) => {
                    match cells.next_if(|c| c.column == j) {
                        Some(c) => {
                            match &mut col.values {
                                Values::Plain(b) => b.append_value(c.value),
                                Values::Fixed(b, n) if c.value.len() == *n => {
                                    b.append_value(c.value).map_err(|e| e.to_string())?;
                                }
                                // A tombstone's (empty) value: zeros, read back as empty (its meta
                                // says it is a tombstone).
                                Values::Fixed(b, n) if c.tombstone && c.value.is_empty() => {
                                    b.append_value(vec![0u8; *n]).map_err(|e| e.to_string())?;
                                }
                                Values::Fixed(b, n) => {
                                    b.append_null();
                                    replan.get_or_insert_with(|| {
                                        (
                                            col.name.clone(),
                                            format!("a value of {} bytes, not {n}", c.value.len()),
                                        )
                                    });
                                }
                                Values::Dict(b) => {
                                    b.append(c.value).map_err(|e| e.to_string())?;
                                }
                                Values::Map(_) => unreachable!("matched above"),
                            }
                            all_inherit = inherits(&c, &lv);
                            push_meta(scratch, &c);
                        }
                        None => {
                            col.null().map_err(|e| e.to_string())?;
                            continue;
                        }
                    }
                }
                Values::Map(b) => {
                    let mut any = false;
                    while let Some(c) = cells.next_if(|c| c.column == j) {
                        let Some(path) = c.path else {
                            return Err(format!(
                                "a cell of multi-cell column {} without a path",
                                col.name
                            ));
                        };
                        b.keys().append_value(path);
                        b.values().append_value(c.value);
                        all_inherit &= inherits(&c, &lv);
                        push_meta(scratch, &c);
                        any = true;
                    }
                    b.append(any).map_err(|e| e.to_string())?;
                    let del = complex.iter().find(|(k, _)| *k == j).map(|(_, d)| *d);
                    if let Some(db) = &mut col.del {
                        match del.filter(|d| !d.is_live()) {
                            // What a collection literal writes: stored as an empty value.
                            Some(d)
                                if !lv.is_empty()
                                    && d.marked_for_delete_at == lv.timestamp.wrapping_sub(1)
                                    && d.local_deletion_time
                                        == lv.timestamp.div_euclid(1_000_000) =>
                            {
                                db.append_value([]);
                            }
                            Some(d) => {
                                let mut v = d.marked_for_delete_at.to_le_bytes().to_vec();
                                v.extend_from_slice(&d.local_deletion_time.to_le_bytes());
                                db.append_value(v);
                            }
                            None => db.append_null(),
                        }
                    }
                    if !any {
                        col.meta.append_null();
                        continue;
                    }
                }
            }
            if all_inherit {
                col.meta.append_null();
            } else {
                col.meta.append_value(&scratch[..]);
            }
        }
        if let Some(c) = cells.next() {
            return Err(format!(
                "a cell of column index {} past the table's columns",
                c.column
            ));
        }
        self.entries += 1;
        Ok(())
    }

    pub(crate) fn marker(&mut self, m: &MarkerRef<'_>) -> Result<(), String> {
        self.flush_nulls();
        self.kind.append_value(KIND_MARKER);
        self.bound.append_value(m.kind.ordinal());
        self.key.append_null();
        self.position.append_null();
        self.token.append_null();
        deletion(&mut self.del, m.start_deletion);
        deletion(&mut self.end, m.end_deletion);
        deletion(&mut self.shadow, None);
        self.lv_ts.append_null();
        self.lv_ttl.append_null();
        self.lv_exp.append_null();
        self.clustering_of((0..m.clustering_len()).map(|i| m.clustering(i)))?;
        self.columns_null().map_err(|e| e.to_string())?;
        self.entries += 1;
        Ok(())
    }

    pub(crate) fn finish(
        &mut self,
        schema: &SchemaRef,
    ) -> Result<RecordBatch, arrow_schema::ArrowError> {
        self.flush_nulls();
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.kind.finish()),
            Arc::new(self.bound.finish()),
            Arc::new(self.key.finish()),
            Arc::new(self.position.finish()),
            Arc::new(self.token.finish()),
            Arc::new(self.del.0.finish()),
            Arc::new(self.del.1.finish()),
            Arc::new(self.end.0.finish()),
            Arc::new(self.end.1.finish()),
            Arc::new(self.shadow.0.finish()),
            Arc::new(self.shadow.1.finish()),
            Arc::new(self.lv_ts.finish()),
            Arc::new(self.lv_ttl.finish()),
            Arc::new(self.lv_exp.finish()),
            Arc::new(self.clen.finish()),
        ];
        for c in &mut self.clustering {
            cols.push(match c {
                Clustering::Var(b) => Arc::new(b.finish()),
                Clustering::Fixed(b, ..) => Arc::new(b.finish()),
            });
        }
        for c in self
            .statics
            .iter_mut()
            .chain(self.regulars.iter_mut())
            .flatten()
        {
            cols.push(match &mut c.values {
                Values::Plain(b) => Arc::new(b.finish()),
                Values::Fixed(b, _) => Arc::new(b.finish()),
                // The dictionary grows across batches: each batch's is a prefix of the next's (written
                // as deltas), as the IPC file format requires.
                Values::Dict(b) => {
                    let a = b.finish_preserve_values();
                    if a.values().len() > DICTIONARY_LIMIT {
                        self.replan.get_or_insert_with(|| {
                            (
                                c.name.clone(),
                                format!("more than {DICTIONARY_LIMIT} distinct values"),
                            )
                        });
                    }
                    Arc::new(a)
                }
                Values::Map(b) => Arc::new(b.finish()),
            });
            cols.push(Arc::new(c.meta.finish()));
            if let Some(d) = &mut c.del {
                cols.push(Arc::new(d.finish()));
            }
        }
        self.entries = 0;
        RecordBatch::try_new(schema.clone(), cols)
    }
}

/// How to write an extract.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// IPC buffer compression (`None`: uncompressed).
    pub compression: Option<CompressionType>,
    /// Columns written plain: no dictionary, no fixed width.
    pub plain: Vec<String>,
    /// The static and regular columns the extract holds, by name (`None`: all of them). Key,
    /// clustering, liveness and deletions are always held: a merge needs them whatever it projects.
    pub columns: Option<Vec<String>>,
}

impl WriteOptions {
    /// LZ4-compressed buffers, every text column a dictionary.
    pub fn lz4() -> WriteOptions {
        WriteOptions {
            compression: Some(CompressionType::LZ4_FRAME),
            plain: Vec::new(),
            columns: None,
        }
    }

    /// Holding only the static and regular columns `names` (see [`WriteOptions::columns`]).
    pub fn holding(mut self, names: Option<Vec<String>>) -> WriteOptions {
        self.columns = names;
        self
    }

    /// The projection of the columns held, for an SSTable with `schema`.
    pub fn held(&self, schema: &TableSchema) -> Projection {
        match &self.columns {
            None => Projection::all(schema),
            Some(names) => layout::held_projection(schema, names),
        }
    }

    /// ZSTD-compressed buffers (what the cache writes: see docs/CACHE.md for the numbers).
    pub fn zstd() -> WriteOptions {
        WriteOptions {
            compression: Some(CompressionType::ZSTD),
            plain: Vec::new(),
            columns: None,
        }
    }
}
