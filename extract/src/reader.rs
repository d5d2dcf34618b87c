//! Reads an extract back: [`Extract`] is the [`PartitionFeed`] a merged scan reads instead of the
//! SSTable's Data.db. A cursor decodes only the record batches that overlap its span of Data.db and only
//! the columns its projection needs, and hands each partition's entries to the merge's stage.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, UInt16Type, UInt64Type, UInt8Type};
use arrow_array::{
    Array, BinaryArray, FixedSizeBinaryArray, Int32Array, Int64Array, MapArray, PrimitiveArray,
    RecordBatch, UInt16Array, UInt64Array, UInt8Array,
};
use arrow_ipc::reader::FileDecoder;
use arrow_schema::{DataType, SchemaRef};
use memmap2::Mmap;
use sstable_reader::{
    BoundKind, DeletionTime, FeedCell, FeedCursor, FeedStage, LivenessInfo, PartitionFeed,
    PartitionHeader, Projection, SSTable, TableSchema, NO_DELETION_TIME,
};

use crate::container;
use crate::error::{Error, Result};
use crate::ipc::IpcFile;
use crate::layout::{self, KIND_MARKER, KIND_PARTITION, KIND_ROW, KIND_STATIC, META_BYTES};
use crate::summary::{Identity, Summary};

/// An opened, verified extract of one SSTable.
pub struct Extract {
    path: PathBuf,
    file: IpcFile,
    summary: Summary,
    schema: TableSchema,
    arrow: SchemaRef,
    /// The static and regular columns it holds ([`Summary::columns`]).
    held: Projection,
    /// On-disk Data.db bytes per uncompressed byte of the SSTable (progress is counted in the
    /// SSTable's on-disk bytes, as for a scan of it).
    scale: f64,
}

impl std::fmt::Debug for Extract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extract")
            .field("path", &self.path)
            .field("summary", &self.summary)
            .finish()
    }
}

/// Whether the file's column has the type the layout gives it (text may be stored plain).
fn compatible(expected: &DataType, actual: &DataType) -> bool {
    expected == actual
        || (matches!(
            expected,
            DataType::Dictionary(..) | DataType::FixedSizeBinary(_)
        ) && actual == &DataType::Binary)
}

impl Extract {
    /// Opens the extract at `path` of the SSTable `sst`: the trailer and checksum are verified, and its
    /// footer must name `identity` (when given) and this format version, and its columns must be `sst`'s.
    pub fn open(path: &Path, sst: &SSTable, identity: Option<&Identity>) -> Result<Extract> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: extracts are written once to a temporary name and renamed into place, never modified
        // in place; a replaced entry keeps its old inode alive while mapped.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let len = container::payload(path, &map)?.len();
        let file = IpcFile::open(Arc::new(map), len).map_err(|e| Error::damaged(path, e))?;
        let summary: Summary = file
            .metadata()
            .get(layout::METADATA_KEY)
            .ok_or_else(|| {
                Error::damaged(path, format!("no {} in the footer", layout::METADATA_KEY))
            })
            .and_then(|j| {
                serde_json::from_str(j).map_err(|e| Error::damaged(path, e.to_string()))
            })?;
        if summary.format != layout::FORMAT_VERSION {
            return Err(Error::damaged(
                path,
                format!(
                    "format version {}, this build reads {}",
                    summary.format,
                    layout::FORMAT_VERSION
                ),
            ));
        }
        if let Some(id) = identity {
            if &summary.identity != id {
                return Err(Error::damaged(
                    path,
                    format!(
                        "made of another SSTable ({:?}, expected {:?})",
                        summary.identity, id
                    ),
                ));
            }
        }
        if file.batches() != summary.batches.len() {
            return Err(Error::damaged(
                path,
                format!(
                    "{} record batches, its footer lists {}",
                    file.batches(),
                    summary.batches.len()
                ),
            ));
        }
        let arrow = file.schema().clone();
        let held = layout::held_projection(&sst.schema, &summary.columns);
        if layout::held_names(&sst.schema, &held) != summary.columns {
            return Err(Error::damaged(
                path,
                format!(
                    "its footer lists columns {:?}, not all of the SSTable's",
                    summary.columns
                ),
            ));
        }
        let expected = layout::arrow_schema(&sst.schema, &[], &held);
        let fits = expected.fields().len() == arrow.fields().len()
            && expected
                .fields()
                .iter()
                .zip(arrow.fields())
                .all(|(e, a)| e.name() == a.name() && compatible(e.data_type(), a.data_type()));
        if !fits {
            return Err(Error::damaged(
                path,
                "its columns are not those of the SSTable",
            ));
        }
        let data = &sst.data;
        Ok(Extract {
            path: path.to_path_buf(),
            file,
            summary,
            schema: sst.schema.clone(),
            arrow,
            held,
            scale: if data.is_empty() {
                1.0
            } else {
                data.file_len() as f64 / data.len() as f64
            },
        })
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The static and regular columns the extract holds.
    pub fn held(&self) -> &Projection {
        &self.held
    }

    /// Whether the extract holds every static and regular column of `wanted`.
    pub fn covers(&self, wanted: &Projection) -> bool {
        layout::covers(&self.schema, &self.held, wanted)
    }

    /// Indexes of the file's columns a scan with `projection` reads.
    fn projected(&self, projection: &Projection) -> Vec<usize> {
        let mut names: Vec<String> = layout::FIXED.iter().map(|s| s.to_string()).collect();
        names.extend(self.schema.clustering.iter().map(layout::clustering_name));
        for (j, c) in self.schema.statics.iter().enumerate() {
            if projection.includes_static(j) {
                names.push(layout::column_name(c, true));
            }
        }
        for (j, c) in self.schema.regulars.iter().enumerate() {
            if projection.includes_regular(j) {
                names.push(layout::column_name(c, false));
            }
        }
        self.arrow
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                let base = f.name().split('@').next().unwrap_or_default();
                names.iter().any(|n| n == base)
            })
            .map(|(i, _)| i)
            .collect()
    }
}

impl PartitionFeed for Extract {
    fn cursor(
        &self,
        start: u64,
        end: u64,
        projection: &Projection,
    ) -> sstable_reader::Result<Box<dyn FeedCursor + '_>> {
        let decoder = self
            .file
            .decoder(self.projected(projection))
            .map_err(|e| sstable_reader::Error::external(Error::damaged(&self.path, e)))?;
        Ok(Box::new(ExtractCursor {
            ext: self,
            decoder,
            next_batch: 0,
            batch: None,
            row: 0,
            start,
            end,
            key: Vec::new(),
            token: 0,
            done: false,
            position: start,
        }))
    }

    fn origin(&self) -> &Path {
        &self.path
    }

    fn holds(&self, projection: &Projection) -> bool {
        self.covers(projection)
    }
}

// One per projected column of a batch: not worth boxing.
#[allow(clippy::large_enum_variant)]
enum Values {
    Plain(BinaryArray),
    Fixed(FixedSizeBinaryArray),
    Dict {
        keys: Int32Array,
        values: BinaryArray,
    },
    Map {
        map: MapArray,
        keys: BinaryArray,
        values: BinaryArray,
    },
}

struct Col {
    values: Values,
    meta: BinaryArray,
    del: Option<BinaryArray>,
}

/// One decoded record batch, its columns downcast once.
struct Batch {
    len: usize,
    kind: UInt8Array,
    bound: UInt8Array,
    key: BinaryArray,
    position: UInt64Array,
    token: FixedSizeBinaryArray,
    del: (Int64Array, Int64Array),
    shadow: (Int64Array, Int64Array),
    lv_ts: Int64Array,
    lv_ttl: Int32Array,
    lv_exp: Int64Array,
    clen: UInt16Array,
    clustering: Vec<Clustering>,
    statics: Vec<Option<Col>>,
    regulars: Vec<Option<Col>>,
}

fn wrong(name: &str) -> String {
    format!("column {name} missing or of another type")
}

fn prim<T: arrow_array::ArrowPrimitiveType>(
    b: &RecordBatch,
    name: &str,
) -> std::result::Result<PrimitiveArray<T>, String> {
    b.column_by_name(name)
        .and_then(|a| a.as_primitive_opt::<T>())
        .cloned()
        .ok_or_else(|| wrong(name))
}

fn binary(b: &RecordBatch, name: &str) -> std::result::Result<BinaryArray, String> {
    b.column_by_name(name)
        .and_then(|a| a.as_binary_opt::<i32>())
        .cloned()
        .ok_or_else(|| wrong(name))
}

/// A clustering column's values.
enum Clustering {
    Var(BinaryArray),
    Fixed(FixedSizeBinaryArray),
}

fn clustering(b: &RecordBatch, name: &str) -> std::result::Result<Clustering, String> {
    let a = b.column_by_name(name).ok_or_else(|| wrong(name))?;
    if let Some(f) = a.as_fixed_size_binary_opt() {
        return Ok(Clustering::Fixed(f.clone()));
    }
    a.as_binary_opt::<i32>()
        .cloned()
        .map(Clustering::Var)
        .ok_or_else(|| wrong(name))
}

fn column(b: &RecordBatch, name: &str) -> std::result::Result<Option<Col>, String> {
    let Some(a) = b.column_by_name(name) else {
        return Ok(None);
    };
    let values = if let Some(d) = a.as_dictionary_opt::<Int32Type>() {
        Values::Dict {
            keys: d.keys().clone(),
            values: d
                .values()
                .as_binary_opt::<i32>()
                .cloned()
                .ok_or_else(|| wrong(name))?,
        }
    } else if let Some(m) = a.as_map_opt() {
        Values::Map {
            map: m.clone(),
            keys: m
                .keys()
                .as_binary_opt::<i32>()
                .cloned()
                .ok_or_else(|| wrong(name))?,
            values: m
                .values()
                .as_binary_opt::<i32>()
                .cloned()
                .ok_or_else(|| wrong(name))?,
        }
    } else if let Some(f) = a.as_fixed_size_binary_opt() {
        Values::Fixed(f.clone())
    } else {
        Values::Plain(
            a.as_binary_opt::<i32>()
                .cloned()
                .ok_or_else(|| wrong(name))?,
        )
    };
    let meta = binary(b, &format!("{name}@meta"))?;
    let del = match values {
        Values::Map { .. } => Some(binary(b, &format!("{name}@del"))?),
        _ => None,
    };
    Ok(Some(Col { values, meta, del }))
}

impl Batch {
    fn new(b: &RecordBatch, schema: &TableSchema) -> std::result::Result<Batch, String> {
        let i64s = |n: &str| prim::<Int64Type>(b, n);
        Ok(Batch {
            len: b.num_rows(),
            kind: prim::<UInt8Type>(b, "kind")?,
            bound: prim::<UInt8Type>(b, "bound")?,
            key: binary(b, "key")?,
            position: prim::<UInt64Type>(b, "position")?,
            token: b
                .column_by_name("token")
                .and_then(|a| a.as_fixed_size_binary_opt())
                .cloned()
                .ok_or_else(|| wrong("token"))?,
            del: (i64s("del_at")?, i64s("del_ldt")?),
            shadow: (i64s("shadow_at")?, i64s("shadow_ldt")?),
            lv_ts: i64s("lv_ts")?,
            lv_ttl: prim::<Int32Type>(b, "lv_ttl")?,
            lv_exp: i64s("lv_exp")?,
            clen: prim::<UInt16Type>(b, "clen")?,
            clustering: schema
                .clustering
                .iter()
                .map(|c| clustering(b, &layout::clustering_name(c)))
                .collect::<std::result::Result<_, _>>()?,
            statics: schema
                .statics
                .iter()
                .map(|c| column(b, &layout::column_name(c, true)))
                .collect::<std::result::Result<_, _>>()?,
            regulars: schema
                .regulars
                .iter()
                .map(|c| column(b, &layout::column_name(c, false)))
                .collect::<std::result::Result<_, _>>()?,
        })
    }

    fn deletion(pair: &(Int64Array, Int64Array), i: usize) -> Option<DeletionTime> {
        (pair.0.is_valid(i) && pair.1.is_valid(i)).then(|| DeletionTime {
            marked_for_delete_at: pair.0.value(i),
            local_deletion_time: pair.1.value(i),
        })
    }

    fn liveness(&self, i: usize) -> LivenessInfo {
        if self.lv_ts.is_null(i) {
            return LivenessInfo::EMPTY;
        }
        LivenessInfo {
            timestamp: self.lv_ts.value(i),
            ttl: if self.lv_ttl.is_valid(i) {
                self.lv_ttl.value(i)
            } else {
                0
            },
            local_expiration_time: if self.lv_exp.is_valid(i) {
                self.lv_exp.value(i)
            } else if self.lv_ttl.is_valid(i) && self.lv_ttl.value(i) != 0 {
                // Not stored: the write's second plus the TTL (see the layout).
                let lv = LivenessInfo {
                    timestamp: self.lv_ts.value(i),
                    ttl: self.lv_ttl.value(i),
                    local_expiration_time: NO_DELETION_TIME,
                };
                layout::derived_expiry(&lv).unwrap_or(NO_DELETION_TIME)
            } else {
                NO_DELETION_TIME
            },
        }
    }

    /// The first `clen` clustering values of entry `i`.
    fn clustering(
        &self,
        i: usize,
    ) -> std::result::Result<impl Iterator<Item = Option<&[u8]>> + '_, String> {
        let n = if self.clen.is_valid(i) {
            self.clen.value(i) as usize
        } else {
            0
        };
        if n > self.clustering.len() {
            return Err(format!(
                "{n} clustering values, the table has {}",
                self.clustering.len()
            ));
        }
        Ok(self.clustering[..n].iter().map(move |c| match c {
            Clustering::Var(a) => a.is_valid(i).then(|| a.value(i)),
            Clustering::Fixed(a) => a.is_valid(i).then(|| a.value(i)),
        }))
    }
}

/// Cell `n` of a `@meta` blob, or the row's liveness when the blob is null.
fn cell_meta(
    meta: &BinaryArray,
    i: usize,
    n: usize,
    lv: &LivenessInfo,
) -> std::result::Result<(i64, i32, i64, bool), String> {
    if meta.is_null(i) {
        return Ok((lv.timestamp, lv.ttl, lv.local_expiration_time, false));
    }
    let b = meta
        .value(i)
        .get(n * META_BYTES..(n + 1) * META_BYTES)
        .ok_or_else(|| format!("cell metadata {n} past the end of its blob"))?;
    let i64_at = |o: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[o..o + 8]);
        i64::from_le_bytes(x)
    };
    let mut ttl = [0u8; 4];
    ttl.copy_from_slice(&b[8..12]);
    Ok((i64_at(0), i32::from_le_bytes(ttl), i64_at(12), b[20] != 0))
}

struct ExtractCursor<'e> {
    ext: &'e Extract,
    decoder: Arc<FileDecoder>,
    next_batch: usize,
    batch: Option<Batch>,
    row: usize,
    start: u64,
    end: u64,
    key: Vec<u8>,
    token: u128,
    done: bool,
    /// Data.db position of the current partition (progress).
    position: u64,
}

impl ExtractCursor<'_> {
    fn damaged(&self, what: String) -> sstable_reader::Error {
        sstable_reader::Error::external(Error::damaged(&self.ext.path, what))
    }

    /// Loads the next batch that can hold partitions of the span; false at the end.
    fn load(&mut self) -> sstable_reader::Result<bool> {
        let batches = &self.ext.summary.batches;
        while self.next_batch < batches.len() && batches[self.next_batch].1 < self.start {
            self.next_batch += 1;
        }
        if self.next_batch >= batches.len() || batches[self.next_batch].0 >= self.end {
            return Ok(false);
        }
        let rb = self
            .ext
            .file
            .batch(&self.decoder, self.next_batch)
            .map_err(|e| self.damaged(e))?;
        self.next_batch += 1;
        let batch = Batch::new(&rb, &self.ext.schema).map_err(|e| self.damaged(e))?;
        self.batch = Some(batch);
        self.row = 0;
        Ok(true)
    }

    fn stage_entry(
        &self,
        b: &Batch,
        i: usize,
        stage: &mut FeedStage<'_>,
    ) -> std::result::Result<(), String> {
        let kind = b.kind.value(i);
        let clustering = b.clustering(i)?;
        if kind == KIND_MARKER {
            let bound = BoundKind::from_ordinal(b.bound.value(i))
                .ok_or_else(|| format!("bound kind {}", b.bound.value(i)))?;
            return stage
                .marker(clustering, bound, Batch::deletion(&b.del, i))
                .map_err(|e| e.to_string());
        }
        if kind != KIND_ROW && kind != KIND_STATIC {
            return Err(format!("entry kind {kind}"));
        }
        let is_static = kind == KIND_STATIC;
        let lv = b.liveness(i);
        stage.begin_row(is_static);
        let cols = if is_static { &b.statics } else { &b.regulars };
        for (j, col) in cols.iter().enumerate() {
            let Some(col) = col else { continue };
            let mut cell =
                |n: usize, path: Option<&[u8]>, value: &[u8]| -> std::result::Result<(), String> {
                    let (timestamp, ttl, ldt, tombstone) = cell_meta(&col.meta, i, n, &lv)?;
                    stage
                        .cell(&FeedCell {
                            column: j,
                            timestamp,
                            ttl,
                            local_deletion_time: ldt,
                            tombstone,
                            path,
                            value,
                        })
                        .map_err(|e| e.to_string())
                };
            match &col.values {
                Values::Plain(a) => {
                    if a.is_valid(i) {
                        cell(0, None, a.value(i))?;
                    }
                }
                Values::Fixed(a) => {
                    if a.is_valid(i) {
                        // A tombstone's value is empty (zeros in a fixed-size column).
                        let tombstone = cell_meta(&col.meta, i, 0, &lv)?.3;
                        cell(0, None, if tombstone { &[] } else { a.value(i) })?;
                    }
                }
                Values::Dict { keys, values } => {
                    if keys.is_valid(i) {
                        let k = keys.value(i);
                        let v = usize::try_from(k)
                            .ok()
                            .filter(|&k| k < values.len())
                            .ok_or_else(|| format!("dictionary key {k} of {}", values.len()))?;
                        cell(0, None, values.value(v))?;
                    }
                }
                Values::Map { map, keys, values } => {
                    if map.is_valid(i) {
                        let offsets = map.value_offsets();
                        let (s, e) = (offsets[i] as usize, offsets[i + 1] as usize);
                        for (n, at) in (s..e).enumerate() {
                            cell(n, Some(keys.value(at)), values.value(at))?;
                        }
                    }
                }
            }
            if let Some(del) = &col.del {
                if del.is_valid(i) {
                    let v = del.value(i);
                    let deletion = match v.len() {
                        // What a collection literal writes (see the layout).
                        0 if !lv.is_empty() => DeletionTime {
                            marked_for_delete_at: lv.timestamp.wrapping_sub(1),
                            local_deletion_time: lv.timestamp.div_euclid(1_000_000),
                        },
                        16 => {
                            let mut a = [0u8; 8];
                            let mut l = [0u8; 8];
                            a.copy_from_slice(&v[..8]);
                            l.copy_from_slice(&v[8..]);
                            DeletionTime {
                                marked_for_delete_at: i64::from_le_bytes(a),
                                local_deletion_time: i64::from_le_bytes(l),
                            }
                        }
                        n => return Err(format!("a complex deletion of {n} bytes")),
                    };
                    stage
                        .complex_deletion(j, deletion)
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        stage
            .end_row(
                clustering,
                lv,
                Batch::deletion(&b.del, i).unwrap_or(DeletionTime::LIVE),
                Batch::deletion(&b.shadow, i).unwrap_or(DeletionTime::LIVE),
            )
            .map_err(|e| e.to_string())
    }
}

impl FeedCursor for ExtractCursor<'_> {
    fn next_partition(&mut self) -> sstable_reader::Result<Option<PartitionHeader>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let len = self.batch.as_ref().map_or(0, |b| b.len);
            if self.row >= len {
                if !self.load()? {
                    self.done = true;
                    return Ok(None);
                }
                continue;
            }
            let Some(b) = self.batch.as_ref() else {
                continue;
            };
            let i = self.row;
            self.row += 1;
            if b.kind.value(i) != KIND_PARTITION {
                continue;
            }
            if b.position.is_null(i) || b.key.is_null(i) {
                return Err(self.damaged(format!(
                    "a partition entry without position or key (entry {i})"
                )));
            }
            let position = b.position.value(i);
            if position < self.start {
                continue;
            }
            if position >= self.end {
                self.done = true;
                return Ok(None);
            }
            self.key.clear();
            self.key.extend_from_slice(b.key.value(i));
            self.token = if b.token.is_valid(i) {
                let mut t = [0u8; 16];
                t.copy_from_slice(b.token.value(i));
                u128::from_be_bytes(t)
            } else {
                return Err(self.damaged(format!("a partition entry without token (entry {i})")));
            };
            self.position = position;
            return Ok(Some(PartitionHeader {
                position,
                deletion: Batch::deletion(&b.del, i).unwrap_or(DeletionTime::LIVE),
            }));
        }
    }

    fn key(&self) -> &[u8] {
        &self.key
    }

    fn token(&self) -> Option<u128> {
        Some(self.token)
    }

    fn stage(&mut self, stage: &mut FeedStage<'_>) -> sstable_reader::Result<()> {
        let Some(b) = self.batch.take() else {
            return Ok(());
        };
        let mut result = Ok(());
        while self.row < b.len && b.kind.value(self.row) != KIND_PARTITION {
            if let Err(e) = self.stage_entry(&b, self.row, stage) {
                result = Err(self.damaged(format!("entry {}: {e}", self.row)));
                break;
            }
            self.row += 1;
        }
        self.batch = Some(b);
        result
    }

    fn plain_rows(&self) -> bool {
        let Some(b) = self.batch.as_ref() else {
            return false;
        };
        let mut fixed = Vec::with_capacity(b.clustering.len());
        for c in &b.clustering {
            match c {
                Clustering::Fixed(a) => fixed.push(a),
                Clustering::Var(_) => return false,
            }
        }
        // A partition's entries never leave its batch (batches end at partition boundaries).
        let mut previous: Option<usize> = None;
        for i in self.row..b.len {
            match b.kind.value(i) {
                KIND_PARTITION => break,
                KIND_ROW => {}
                KIND_STATIC if i == self.row => {
                    if b.del.0.is_valid(i) || b.shadow.0.is_valid(i) {
                        return false;
                    }
                    continue;
                }
                _ => return false,
            }
            let full = b.clen.is_valid(i) && usize::from(b.clen.value(i)) == fixed.len();
            if !full
                || b.del.0.is_valid(i)
                || b.shadow.0.is_valid(i)
                || fixed.iter().any(|a| a.is_null(i))
                || previous.is_some_and(|p| fixed.iter().all(|a| a.value(p) == a.value(i)))
            {
                return false;
            }
            previous = Some(i);
        }
        true
    }

    fn bytes_read(&self) -> u64 {
        (self.position.saturating_sub(self.start) as f64 * self.ext.scale) as u64
    }
}
