//! Writes an extract: the unfiltered stream of one SSTable, as Arrow record batches of about
//! [`BATCH_ENTRIES`](crate::BATCH_ENTRIES) entries that end at partition boundaries, in an Arrow IPC
//! file (compressed buffers: [`WriteOptions`]) followed by the checksummed trailer of
//! [`crate::container`].

use std::io::Write;
use std::path::Path;

use sstable_reader::{DeletionTime, SSTable, TableSchema, Unfiltered};

use crate::builders::WriteOptions;
use crate::chunk::Chunk;
use crate::entry::EntryFile;
use crate::error::{Error, Result};
use crate::summary::{Identity, Summary};

/// Extracts one SSTable as it goes: give it the scanner's partitions and unfiltereds in order.
pub struct ExtractWriter<W: Write> {
    chunk: Chunk,
    file: EntryFile<W>,
}

impl<W: Write> ExtractWriter<W> {
    /// Starts the extract of an SSTable with `schema` on `out` (`path` names it in errors).
    pub fn new(out: W, path: &Path, schema: &TableSchema, options: &WriteOptions) -> Result<Self> {
        let arrow = Chunk::arrow_schema(schema, options);
        Ok(ExtractWriter {
            chunk: Chunk::new(path, schema, &arrow, options),
            file: EntryFile::new(out, path, schema, &arrow, options)?,
        })
    }

    /// Starts a partition (writing the current batch first when it is full).
    pub fn partition(
        &mut self,
        key: &[u8],
        token: u128,
        position: u64,
        deletion: DeletionTime,
    ) -> Result<()> {
        self.chunk.partition(key, token, position, deletion)?;
        self.file.write(&mut self.chunk)
    }

    /// The next row or marker of the current partition.
    pub fn unfiltered(&mut self, u: &Unfiltered<'_>) -> Result<()> {
        self.chunk.unfiltered(u)
    }

    /// Ends the extract: the last batch, the footer with its [`Summary`] and the checksummed trailer.
    pub fn finish(mut self, identity: Identity) -> Result<(W, Summary)> {
        self.chunk.close()?;
        self.file.write(&mut self.chunk)?;
        self.file.count(&self.chunk);
        self.file.finish(identity)
    }
}

/// Writes the extract of the whole of `sst` to `out` in one pass over its Data.db.
pub fn write_extract<W: Write>(
    sst: &SSTable,
    out: W,
    path: &Path,
    identity: Identity,
    options: &WriteOptions,
) -> Result<(W, Summary)> {
    let partitioner = sstable_reader::Partitioner::from_class(
        sst.partitioner()
            .unwrap_or("org.apache.cassandra.dht.Murmur3Partitioner"),
    )
    .ok_or_else(|| Error::Unsupported {
        path: sst.data_path().to_path_buf(),
        what: "an SSTable of this partitioner".into(),
    })?;
    let mut w = ExtractWriter::new(out, path, &sst.schema, options)?;
    // Only the held columns are decoded (the others' cells are skipped by the scanner).
    let mut scan = sst.scanner(options.held(&sst.schema));
    while let Some(h) = scan.next_partition()? {
        let token = partitioner.token(scan.key());
        w.partition(scan.key(), token, h.position, h.deletion)?;
        while let Some(u) = scan.next_unfiltered()? {
            w.unfiltered(&u)?;
        }
    }
    w.finish(identity)
}
