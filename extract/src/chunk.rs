//! One span of an SSTable's extract: the record batches of the partitions a scan of that span reads, in
//! Data.db order. [`crate::ExtractWriter`] builds one chunk of the whole SSTable; a run's scan builds
//! one per range of the ring through a [`sstable_reader::ScanTap`] ([`crate::ColdBuild`]), and the
//! chunks are written one after the other into the entry ([`crate::entry::EntryFile`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use sstable_reader::{DeletionTime, PartitionHeader, ScanTap, TableSchema, Unfiltered};

use crate::builders::{Builders, WriteOptions, BATCH_ENTRIES};
use crate::error::{Error, Result};
use crate::layout;

/// A finished record batch and the Data.db positions of its first and last partitions.
pub(crate) type Batch = (RecordBatch, (u64, u64));

/// The record batches of one span of an SSTable's extract.
pub struct Chunk {
    builders: Builders,
    schema: SchemaRef,
    /// Finished batches not yet taken ([`Chunk::take_batches`]).
    batches: Vec<Batch>,
    first_position: Option<u64>,
    last_position: u64,
    pub(crate) partitions: u64,
    pub(crate) rows: u64,
    scratch: Vec<u8>,
    /// Per dictionary column (in schema order): this chunk's dictionary index → the entry's.
    pub(crate) remap: Vec<Vec<i32>>,
    path: PathBuf,
    /// The first error (a tap cannot fail the scan: the entry is dropped instead).
    failed: Option<Error>,
}

impl Chunk {
    /// A chunk of the extract of an SSTable with `schema` (`path` names the entry in errors).
    pub(crate) fn new(
        path: &Path,
        schema: &TableSchema,
        arrow: &SchemaRef,
        options: &WriteOptions,
    ) -> Chunk {
        let held = options.held(schema);
        Chunk {
            builders: Builders::new(schema, &options.plain, &held),
            schema: Arc::clone(arrow),
            batches: Vec::new(),
            first_position: None,
            last_position: 0,
            partitions: 0,
            rows: 0,
            scratch: Vec::new(),
            remap: Vec::new(),
            path: path.to_path_buf(),
            failed: None,
        }
    }

    /// The Arrow schema of an extract of an SSTable with `schema` written with `options`.
    pub(crate) fn arrow_schema(schema: &TableSchema, options: &WriteOptions) -> SchemaRef {
        Arc::new(layout::arrow_schema(
            schema,
            &options.plain,
            &options.held(schema),
        ))
    }

    /// Starts a partition (ending the current batch first when it is full).
    pub(crate) fn partition(
        &mut self,
        key: &[u8],
        token: u128,
        position: u64,
        deletion: DeletionTime,
    ) -> Result<()> {
        if self.builders.entries >= BATCH_ENTRIES {
            self.cut()?;
        }
        self.first_position.get_or_insert(position);
        self.last_position = position;
        self.partitions += 1;
        self.builders
            .partition(key, token, position, deletion)
            .map_err(|e| Error::arrow(&self.path, e))
    }

    /// The next row or marker of the current partition.
    pub(crate) fn unfiltered(&mut self, u: &Unfiltered<'_>) -> Result<()> {
        let r = match u {
            Unfiltered::Row(r) => {
                self.rows += 1;
                self.builders.row(r, &mut self.scratch)
            }
            Unfiltered::Marker(m) => self.builders.marker(m),
        };
        r.map_err(|what| Error::Unsupported {
            path: self.path.clone(),
            what,
        })
    }

    /// Ends the current batch (if it has entries).
    pub(crate) fn cut(&mut self) -> Result<()> {
        if self.builders.entries == 0 {
            return Ok(());
        }
        let batch = self
            .builders
            .finish(&self.schema)
            .map_err(|e| Error::arrow(&self.path, e))?;
        if let Some((column, why)) = self.builders.replan.take() {
            return Err(Error::Replan {
                path: self.path.clone(),
                column,
                why,
            });
        }
        let positions = (self.first_position.take().unwrap_or(0), self.last_position);
        self.batches.push((batch, positions));
        Ok(())
    }

    /// The batches finished so far (the current one is not).
    pub(crate) fn take_batches(&mut self) -> Vec<Batch> {
        std::mem::take(&mut self.batches)
    }

    /// Ends the chunk: its last batch, or the first error a tap met.
    pub(crate) fn close(&mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.cut()
    }

    fn note(&mut self, r: Result<()>) {
        if let Err(e) = r {
            self.failed.get_or_insert(e);
        }
    }
}

impl ScanTap for &mut Chunk {
    fn partition(&mut self, key: &[u8], token: u128, header: PartitionHeader) {
        if self.failed.is_none() {
            let r = Chunk::partition(self, key, token, header.position, header.deletion);
            self.note(r);
        }
    }

    fn unfiltered(&mut self, u: &Unfiltered<'_>) {
        if self.failed.is_none() {
            let r = Chunk::unfiltered(self, u);
            self.note(r);
        }
    }
}
