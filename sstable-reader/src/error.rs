//! The reader's error type. Every error about a file names the file; every error about bad bytes also
//! names the offset (in the component file, or in the uncompressed Data.db stream) and what was expected.

use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while reading (or writing) an SSTable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused to open, map or read a file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes at `offset` are not what the format says they must be.
    #[error("{path}: corrupt at offset {offset}: expected {expected}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        expected: String,
    },
    /// A chunk's checksum does not match its bytes.
    #[error("{path}: checksum mismatch for chunk at offset {offset} (length {length}): stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        path: PathBuf,
        offset: u64,
        length: usize,
        stored: u32,
        computed: u32,
    },
    /// The file is an SSTable, but of a version or kind this reader does not decode.
    #[error("{path}: unsupported: {what}")]
    Unsupported { path: PathBuf, what: String },
    /// The schema (schema.cql or --schema) could not be parsed or does not fit the files.
    #[error("{origin}: schema error at line {line}, column {column}: {message}")]
    Schema {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A path given by the user is not an SSTable, a table directory or a snapshot directory.
    #[error("{path}: {message}")]
    NotFound { path: PathBuf, message: String },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, offset: u64, expected: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.to_path_buf(),
            offset,
            expected: expected.into(),
        }
    }

    pub(crate) fn unsupported(path: &Path, what: impl Into<String>) -> Self {
        Error::Unsupported {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
}
