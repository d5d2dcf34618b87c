//! The scheduler's error type: every variant maps to the [`Outcome`] an attempt failing with it has
//! ([`Error::outcome`]), and so to an exit code.

use std::path::{Path, PathBuf};

use crate::outcome::Outcome;

/// What stopped an attempt (or a config) before anything was published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The schedule config file is missing or wrong.
    #[error("{path}: {message}")]
    Config {
        /// The config file.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The funnels file does not parse.
    #[error(transparent)]
    Definition(#[from] funnelizer::DefinitionError),
    /// Listing or fingerprinting the SSTables failed (the reader's error names the file).
    #[error(transparent)]
    Input(#[from] sstable_reader::Error),
    /// An SSTable's files could not be stat'ed or read while fingerprinting.
    #[error("fingerprinting {path}")]
    InputIo {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `snapshot = "newest"` found no tag to read (the reader's error lists each directory's tags).
    #[error("snapshot = \"newest\"")]
    Newest(#[source] sstable_reader::Error),
    /// SSTables kept vanishing while they were listed (compaction).
    #[error("SSTables kept vanishing while listing (last: {}); compaction too busy? try a snapshot", last.display())]
    Vanishing {
        /// The last file that vanished.
        last: PathBuf,
    },
    /// The lock or state file could not be used.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The fact store could not be opened or read.
    #[error("fact store {url}")]
    Store {
        /// The store's URL, without its password.
        url: String,
        /// The cause.
        #[source]
        source: facts::FactsError,
    },
    /// The `funnel run` child could not be started.
    #[error("starting `funnel run`")]
    Spawn(#[source] std::io::Error),
    /// The `funnel run` child failed: how it ended (its exit code, a signal, a limit) decides the outcome;
    /// the message says how, with the child's error line.
    #[error("{message}")]
    Run {
        /// The outcome its end means.
        outcome: Outcome,
        /// How it ended and its error line.
        message: String,
    },
}

impl Error {
    /// The outcome an attempt failing with this error has.
    pub fn outcome(&self) -> Outcome {
        match self {
            Error::Config { .. } | Error::Definition(_) => Outcome::ConfigError,
            Error::Input(_)
            | Error::InputIo { .. }
            | Error::Newest(_)
            | Error::Vanishing { .. } => Outcome::InputError,
            Error::Io { .. } | Error::Store { .. } => Outcome::StoreError,
            Error::Spawn(_) => Outcome::Failed,
            Error::Run { outcome, .. } => *outcome,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn store(url: &str) -> impl FnOnce(facts::FactsError) -> Error + '_ {
        move |source| Error::Store {
            url: facts::url::redact(url),
            source,
        }
    }
}
