//! The file of one extract as it is written: the Arrow IPC file writer over the checksumming container,
//! the record batches of its chunks in Data.db order, and what its footer says.
//!
//! Chunks are built apart (each by the scan of one range of the ring), each with its own dictionaries;
//! an IPC file has one dictionary per column that may only grow (delta dictionaries). So each chunk's
//! dictionary keys are mapped to the entry's dictionary as its batches are written: the entry's grows
//! by the values it has not seen, and every batch's dictionary is a prefix of the next one's.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, BinaryArray, DictionaryArray, RecordBatch};
use arrow_ipc::writer::{DictionaryHandling, FileWriter, IpcWriteOptions};
use arrow_schema::{DataType, SchemaRef};
use sstable_reader::{Projection, TableSchema};

use crate::builders::{WriteOptions, DICTIONARY_LIMIT};
use crate::chunk::Chunk;
use crate::container;
use crate::error::{Error, Result};
use crate::layout;
use crate::summary::{Identity, Summary};

/// The entry's dictionary of one column: its values in order, and their indexes.
#[derive(Default)]
struct Dictionary {
    index: HashMap<Vec<u8>, i32>,
    values: Vec<Vec<u8>>,
    /// The values as the array every batch refers to (rebuilt when they grew).
    array: Option<ArrayRef>,
}

impl Dictionary {
    fn intern(&mut self, v: &[u8]) -> i32 {
        if let Some(&i) = self.index.get(v) {
            return i;
        }
        let i = self.values.len() as i32;
        self.index.insert(v.to_vec(), i);
        self.values.push(v.to_vec());
        self.array = None;
        i
    }

    fn array(&mut self) -> ArrayRef {
        let values = &self.values;
        Arc::clone(
            self.array
                .get_or_insert_with(|| Arc::new(BinaryArray::from_iter_values(values.iter()))),
        )
    }
}

/// An extract being written: batches go in as they come, the footer and trailer at [`EntryFile::finish`].
pub(crate) struct EntryFile<W: Write> {
    writer: FileWriter<container::Checksummed<W>>,
    schema: SchemaRef,
    /// Per column of the schema: its entry dictionary's index in `dicts` (dictionary columns).
    dict_of: Vec<Option<usize>>,
    dicts: Vec<Dictionary>,
    batches: Vec<(u64, u64)>,
    partitions: u64,
    rows: u64,
    path: PathBuf,
    /// The names of the static and regular columns held (the footer's list).
    columns: Vec<String>,
}

impl<W: Write> EntryFile<W> {
    /// Starts the extract of an SSTable with `schema` (Arrow schema `arrow`) on `out`.
    pub(crate) fn new(
        out: W,
        path: &Path,
        schema: &TableSchema,
        arrow: &SchemaRef,
        options: &WriteOptions,
    ) -> Result<Self> {
        let held: Projection = options.held(schema);
        let ipc = IpcWriteOptions::default()
            .try_with_compression(options.compression)
            .map(|o| o.with_dictionary_handling(DictionaryHandling::Delta))
            .map_err(|e| Error::arrow(path, e))?;
        let writer = FileWriter::try_new_with_options(container::Checksummed::new(out), arrow, ipc)
            .map_err(|e| Error::arrow(path, e))?;
        let mut n = 0;
        let dict_of = arrow
            .fields()
            .iter()
            .map(|f| {
                matches!(f.data_type(), DataType::Dictionary(..)).then(|| {
                    n += 1;
                    n - 1
                })
            })
            .collect();
        Ok(EntryFile {
            writer,
            schema: Arc::clone(arrow),
            dict_of,
            dicts: (0..n).map(|_| Dictionary::default()).collect(),
            batches: Vec::new(),
            partitions: 0,
            rows: 0,
            path: path.to_path_buf(),
            columns: layout::held_names(schema, &held),
        })
    }

    /// Writes the batches `chunk` has finished, its dictionary keys mapped to the entry's.
    pub(crate) fn write(&mut self, chunk: &mut Chunk) -> Result<()> {
        chunk.remap.resize_with(self.dicts.len(), Vec::new);
        for (batch, positions) in chunk.take_batches() {
            let batch = self.unify(batch, &mut chunk.remap)?;
            self.writer
                .write(&batch)
                .map_err(|e| Error::arrow(&self.path, e))?;
            self.batches.push(positions);
        }
        Ok(())
    }

    /// Adds a written chunk's partitions and rows to the footer's counts.
    pub(crate) fn count(&mut self, chunk: &Chunk) {
        self.partitions += chunk.partitions;
        self.rows += chunk.rows;
    }

    /// `batch` with each dictionary column's keys mapped through `remap` (its chunk's, grown by the
    /// values the chunk added since) to the entry's dictionary.
    fn unify(&mut self, batch: RecordBatch, remap: &mut [Vec<i32>]) -> Result<RecordBatch> {
        if self.dicts.is_empty() {
            return Ok(batch);
        }
        let mut columns = batch.columns().to_vec();
        for (c, column) in columns.iter_mut().enumerate() {
            let Some(d) = self.dict_of.get(c).copied().flatten() else {
                continue;
            };
            let (dict, map) = (&mut self.dicts[d], &mut remap[d]);
            let a: &DictionaryArray<Int32Type> = column.as_dictionary();
            let values: &BinaryArray = a.values().as_binary();
            for i in map.len()..values.len() {
                map.push(dict.intern(values.value(i)));
            }
            if dict.values.len() > DICTIONARY_LIMIT {
                let name = self.schema.field(c).name().clone();
                return Err(Error::Replan {
                    path: self.path.clone(),
                    column: name,
                    why: format!("more than {DICTIONARY_LIMIT} distinct values"),
                });
            }
            // Null slots' keys are arbitrary: any index of the map does.
            let keys = a
                .keys()
                .unary::<_, Int32Type>(|k| map.get(k as usize).copied().unwrap_or(0));
            let unified = DictionaryArray::try_new(keys, dict.array())
                .map_err(|e| Error::arrow(&self.path, e))?;
            *column = Arc::new(unified);
        }
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|e| Error::arrow(&self.path, e))
    }

    /// Ends the extract: the footer with its [`Summary`] and the checksummed trailer.
    pub(crate) fn finish(mut self, identity: Identity) -> Result<(W, Summary)> {
        let summary = Summary {
            format: layout::FORMAT_VERSION,
            identity,
            partitions: self.partitions,
            rows: self.rows,
            batches: std::mem::take(&mut self.batches),
            columns: std::mem::take(&mut self.columns),
        };
        let json = serde_json::to_string(&summary)
            .map_err(|e| Error::damaged(&self.path, e.to_string()))?;
        self.writer.write_metadata(layout::METADATA_KEY, json);
        self.writer
            .finish()
            .map_err(|e| Error::arrow(&self.path, e))?;
        let inner = self
            .writer
            .into_inner()
            .map_err(|e| Error::arrow(&self.path, e))?;
        let out = inner.finish().map_err(|e| Error::io(&self.path, e))?;
        Ok((out, summary))
    }
}
