//! The extract crate's error type: every error names the file it is about.

use std::path::PathBuf;

/// What went wrong while writing, reading or caching an extract.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the SSTable the extract is made of failed.
    #[error(transparent)]
    Reader(#[from] sstable_reader::Error),
    /// The operating system refused a file operation.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Arrow could not encode or decode the extract.
    #[error("{path}: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// The extract file is truncated, damaged, of another format version or of another SSTable.
    #[error("{path}: not a valid extract: {what}")]
    Damaged { path: PathBuf, what: String },
    /// A column does not fit the storage the layout chose for it — more distinct values than a
    /// dictionary takes, a value of another length than its type's — and must be stored plain
    /// ([`crate::write_extract_file`] then writes the extract again so).
    #[error("{path}: column {column} must be stored plain: {why}")]
    Replan {
        path: PathBuf,
        column: String,
        why: String,
    },
    /// The SSTable holds something the extract cannot represent.
    #[error("{path}: cannot extract: {what}")]
    Unsupported { path: PathBuf, what: String },
    /// The cache directory was refused.
    #[error("{path}: {what}")]
    Cache { path: PathBuf, what: String },
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

    pub(crate) fn arrow(path: &std::path::Path, source: arrow_schema::ArrowError) -> Error {
        Error::Arrow {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn damaged(path: &std::path::Path, what: impl Into<String>) -> Error {
        Error::Damaged {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
}
