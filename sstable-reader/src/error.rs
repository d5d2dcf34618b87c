//! The reader's error type. Every error about a file names the file; every error about bad bytes also
//! names the offset (in the component file, or in the uncompressed Data.db stream) and what was expected.
//! Callers tell kinds apart by variant or by [`Error::path`], [`Error::offset`] and
//! [`Error::is_corruption`], never by message text.

use std::path::{Path, PathBuf};

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while reading an SSTable, finding SSTables or reading a schema.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused to open, map or read a file or directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes at `offset` are not what the format says they must be.
    #[error("{path}: corrupt at offset {offset}: expected {expected}")]
    Corrupt {
        /// The component file (Data.db offsets are in its uncompressed stream).
        path: PathBuf,
        offset: u64,
        /// What the format requires there.
        expected: String,
    },
    /// A chunk's checksum does not match its bytes.
    #[error("{path}: checksum mismatch for chunk at offset {offset} (length {length}): stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The Data.db file.
        path: PathBuf,
        /// The chunk's offset in the (compressed) file.
        offset: u64,
        length: usize,
        stored: u32,
        computed: u32,
    },
    /// An uncompressed Data.db without per-chunk checksums (CRC.db) does not match its whole-file
    /// checksum (Digest.crc32): its bytes changed since it was written. No row of it is returned.
    #[error("{path}: checksum mismatch for the whole file: {digest} says {stored:#010x}, the file's CRC32 is {computed:#010x} (the file is damaged; no row of it was read)")]
    Digest {
        /// The Data.db file.
        path: PathBuf,
        /// The Digest.crc32 file.
        digest: PathBuf,
        stored: u32,
        computed: u32,
    },
    /// The file is an SSTable, but of a version or kind this reader does not decode (or too big for it).
    #[error("{path}: unsupported: {what}")]
    Unsupported {
        path: PathBuf,
        /// What is not supported.
        what: String,
    },
    /// The schema (schema.cql or --schema) could not be parsed or does not fit the files.
    #[error("{origin}: schema error at line {line}, column {column}: {message}")]
    Schema {
        /// The schema file, or the SSTables (files) that disagree.
        origin: String,
        /// 1-based position in the schema text (0: not about a place in a file).
        line: usize,
        column: usize,
        message: String,
    },
    /// A path given by the user holds no SSTables of what was asked for (or several copies to choose
    /// from).
    #[error("{path}: {message}")]
    NotFound {
        path: PathBuf,
        /// What is missing, and how to choose.
        message: String,
    },
    /// An error of the caller's, raised inside a reader callback (e.g. a [`crate::for_each_ordered`]
    /// worker); [`std::error::Error::source`] keeps it.
    #[error(transparent)]
    External(Box<dyn std::error::Error + Send + Sync>),
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

    /// Wraps an error of the caller's ([`Error::External`]).
    pub fn external(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::External(e.into())
    }

    /// The file (or directory) the error is about, when it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. }
            | Error::Corrupt { path, .. }
            | Error::Checksum { path, .. }
            | Error::Digest { path, .. }
            | Error::Unsupported { path, .. }
            | Error::NotFound { path, .. } => Some(path),
            Error::Schema { .. } | Error::External(_) => None,
        }
    }

    /// Where in [`Error::path`] the bad bytes are (corruption and checksum errors).
    pub fn offset(&self) -> Option<u64> {
        match self {
            Error::Corrupt { offset, .. } | Error::Checksum { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// Damaged data: bytes that are not what the format requires, or a chunk whose checksum fails.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corrupt { .. } | Error::Checksum { .. } | Error::Digest { .. }
        )
    }
}
