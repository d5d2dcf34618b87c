//! SSTable writer for the `big` format, versions `nb` (Cassandra 4.x/5.0 default) and `oa` (Cassandra 5.0):
//! Data.db, Index.db, Summary.db, Statistics.db, Filter.db, CompressionInfo.db or CRC.db, Digest.crc32 and
//! TOC.txt — plus the snapshot layout operators copy off a cluster (`manifest.json`, `schema.cql`).
//!
//! Bulk writing is a feature (files to `sstableloader` or to drop into a node), and it gives tests and
//! benchmarks Cassandra files of any size and shape (the `datagen` crate writes realistic tracking events
//! through it). Every format detail follows the apache/cassandra source (cited per module); the files are
//! checked by this crate's reader and by an independent one (`cqlite`) in the end-to-end tests.

mod compression;
mod data;
mod encode;
pub(crate) mod filter;
mod index;
mod model;
mod scylla;
mod snapshot;
mod sstable;
mod statistics;
mod summary;
mod system_schema;
mod table;

pub use compression::{Compression, CompressionParams};
pub use data::EncodingStats;
pub use model::{
    Cell, CellState, ColumnContent, ColumnData, Expiry, Liveness, Marker, MarkerDeletion,
    Partition, Row, Unfiltered,
};
pub use snapshot::{snapshot_dir, table_id, write_snapshot_files};
pub use sstable::{writer_version, SSTableWriter, WriterOptions, WrittenSSTable};
pub use system_schema::write_system_schema;
pub use table::{schema_from_cql, schema_from_cql_text};

use std::path::{Path, PathBuf};

/// Errors while writing SSTables.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriterError {
    /// The operating system refused to create or write a file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An I/O error on a file already named by the context (e.g. a buffered writer's flush).
    #[error(transparent)]
    RawIo(#[from] std::io::Error),
    /// A writer option is out of range or does not fit the format version.
    #[error("invalid writer option: {0}")]
    InvalidOption(String),
    /// The compressor failed on a chunk.
    #[error("compression failed: {0}")]
    Compression(String),
    /// The partitions given do not fit the schema or the format (order, sizes, values).
    #[error("invalid data: {0}")]
    InvalidData(String),
}

impl WriterError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        WriterError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
