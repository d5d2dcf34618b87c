//! The export crate's error type: every error names the table, column or file it is about.

use std::path::PathBuf;

/// What went wrong while exporting a table.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the SSTables failed.
    #[error(transparent)]
    Reader(#[from] sstable_reader::Error),
    /// A requested column is not in the table.
    #[error("{table}: no column {column:?}; columns are: {known}")]
    UnknownColumn {
        table: String,
        column: String,
        known: String,
    },
    /// A column's CQL type has no Arrow mapping.
    #[error("{table}: column {column} of type {ty} cannot be exported: {why}")]
    UnsupportedType {
        table: String,
        column: String,
        ty: String,
        why: String,
    },
    /// A stored value could not be decoded or does not fit its column.
    #[error("{table}: partition {key}: column {column}: {what}")]
    Value {
        table: String,
        key: String,
        column: String,
        what: String,
    },
    /// The output directory was refused (inside a data directory, holding export files already, …).
    #[error("{path}: {what}")]
    OutDir { path: PathBuf, what: String },
    /// The operating system refused a file operation.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Arrow could not build a batch or write the IPC file.
    #[error("{path}: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// The Parquet writer failed.
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// The worker pool could not be started.
    #[error("starting {threads} export threads: {what}")]
    Threads { threads: usize, what: String },
}

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
