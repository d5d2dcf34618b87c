//! SSTable writer for the `big` format, versions `nb` (Cassandra 4.x/5.0 default) and `oa` (Cassandra 5.0):
//! Data.db, Index.db, Summary.db, Statistics.db, Filter.db, CompressionInfo.db or CRC.db, Digest.crc32 and
//! TOC.txt — plus the snapshot layout operators copy off a cluster and the realistic event generator behind
//! `funnel gen`.
//!
//! The writer exists so that tests and benchmarks have Cassandra files of any size and shape. Every format
//! detail follows the apache/cassandra source (cited per module); the files are checked by an independent
//! reader (`cqlite`) in the end-to-end tests.

pub mod compression;
pub mod data;
pub mod encode;
pub mod filter;
pub mod gen;
pub mod hll;
pub mod index;
pub mod model;
pub mod snapshot;
pub mod sstable;
pub mod statistics;
pub mod summary;
pub mod table;
pub mod token;

pub use compression::{Compression, CompressionParams};
pub use data::EncodingStats;
pub use model::{
    Cell, CellState, ColumnContent, ColumnData, Expiry, Liveness, Marker, MarkerDeletion,
    Partition, Row, Unfiltered,
};
pub use sstable::{writer_version, SSTableWriter, WriterOptions, WrittenSSTable};
pub use table::{schema_from_cql, schema_from_cql_text};

use std::path::{Path, PathBuf};

/// Errors while writing SSTables.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    RawIo(#[from] std::io::Error),
    #[error("invalid writer option: {0}")]
    InvalidOption(String),
    #[error("compression failed: {0}")]
    Compression(String),
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
