//! Errors of this crate: [`Error`] (with its [`ErrorKind`]), and [`DefinitionError`], which carries the
//! line and column in the TOML file.

use std::ops::Range;
use std::path::PathBuf;

/// A bad funnel definition file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct DefinitionError {
    /// File name (or `<input>`).
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl DefinitionError {
    /// An error at byte offset `span.start` of `text`.
    pub fn at(text: &str, origin: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let (line, column) = line_col(text, span.start);
        DefinitionError {
            origin: origin.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of byte offset `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut line = 1;
    let mut line_start = 0;
    for (i, b) in text.as_bytes()[..offset].iter().enumerate() {
        if *b == b'\n' {
            line += 1;
            line_start = i + 1;
        }
    }
    let column = text
        .get(line_start..offset)
        .map(|s| s.chars().count())
        .unwrap_or(offset - line_start)
        + 1;
    (line, column)
}

/// What went wrong in this crate: a definition, an argument, the SSTables, the shuffle or the store.
/// [`Error::kind`] sorts every variant into the kind of failure an operator acts on (and `funnel run`
/// exits with).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A funnel definition file is wrong (`file:line:column: message`).
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// A time (`--now`, `now = …`) that is neither RFC 3339, a date nor seconds since the epoch.
    #[error("{value:?} is not a time: use RFC 3339 (2026-11-20T00:00:00Z), a date (2026-11-20) or seconds since the epoch")]
    Time {
        /// What was given.
        value: String,
    },
    /// A size (`--memory-budget`, `memory_budget = …`) that is not bytes or a number with a unit.
    #[error("invalid size {value:?}: use bytes (more than 0) or a number with a unit, e.g. 512MiB, 2GiB or 500MB")]
    Size {
        /// What was given.
        value: String,
    },
    /// The schema file given for the tables (`--schema`) cannot be read or parsed.
    #[error(transparent)]
    Schema(sstable_reader::Error),
    /// A table the funnels read has no SSTables under the data paths.
    #[error("no SSTables of {table} under {data} (found: {found})")]
    NoTable {
        /// The table, as the `[source]` names it.
        table: String,
        /// The data paths, comma-separated.
        data: String,
        /// The tables that were found, comma-separated.
        found: String,
    },
    /// The names of a table's key columns are unknown: no `schema.cql` lies next to its SSTables (a live
    /// table directory has none) and no schema file was given.
    #[error("{table}: the names of its key columns are unknown (there is no schema.cql next to its SSTables, as in a live table directory), so the [source] column {column:?} cannot be found: give the table's CREATE TABLE statement with --schema FILE (`schema` in a schedule config), or point --data at a snapshot directory, which holds schema.cql")]
    KeyNamesUnknown {
        /// `keyspace.table`.
        table: String,
        /// The `[source]` column that is not a regular column.
        column: String,
    },
    /// A table does not fit the `[source]` mapping (a missing column, a time that is no timestamp).
    #[error("{table}: {message}")]
    Mapping {
        /// The table, as the `[source]` names it.
        table: String,
        /// What does not fit.
        message: String,
    },
    /// Listing, opening or reading the SSTables failed; the reader's error names the file and, for bad
    /// bytes, the offset.
    #[error(transparent)]
    Read(#[from] sstable_reader::Error),
    /// The shuffle's spill directory or one of its files could not be created, written or read.
    #[error("spill file {path}")]
    Spill {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A shuffle bucket's bytes do not decode (a truncated or foreign spill file).
    #[error("bucket {bucket}: corrupt shuffle record at byte {offset}")]
    CorruptBucket {
        /// The bucket.
        bucket: usize,
        /// Where in the bucket's bytes.
        offset: usize,
    },
    /// The worker threads could not be started.
    #[error("starting the worker threads")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
    /// The extract cache failed: its directory was refused, or the cache could not be used at all
    /// (entries that cannot be written or read only make the run read those SSTables' Data.db).
    #[error(transparent)]
    Cache(extract::Error),
    /// A shard argument is wrong (`--shard I/N`, a run name), or the run cannot be sharded as asked.
    #[error("{message}")]
    Shard {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A token-range file (`--token-ranges`) is wrong at a line.
    #[error("{path}:{line}: {message}")]
    TokenRanges {
        /// The file.
        path: PathBuf,
        /// 1-based line (0: the file as a whole).
        line: usize,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The stored partial facts of a sharded run cannot be merged: a body that does not decode, shards
    /// whose token ranges overlap or leave a gap, a funnel set that differs from the partials'.
    #[error("partial facts of run {run_name:?}: {message}")]
    Partial {
        /// The sharded run.
        run_name: String,
        /// What is wrong.
        message: String,
    },
    /// The fact store failed (the run is then marked failed; readers keep the previous results).
    #[error("fact store")]
    Store(#[from] facts::FactsError),
}

/// The kind of a failure, as an operator acts on it (and as `funnel run` exits with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The funnel definitions, an argument or the schema file is wrong: fix the configuration.
    Config,
    /// The SSTables are missing, unreadable, corrupt or do not fit the `[source]` mapping.
    Input,
    /// The fact store failed.
    Store,
    /// Anything else (the spill directory, the worker threads).
    Other,
}

impl Error {
    /// Which kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Definition(_)
            | Error::Time { .. }
            | Error::Size { .. }
            | Error::Schema(_)
            | Error::Shard { .. }
            | Error::TokenRanges { .. } => ErrorKind::Config,
            Error::Partial { .. } => ErrorKind::Store,
            Error::NoTable { .. }
            | Error::KeyNamesUnknown { .. }
            | Error::Mapping { .. }
            | Error::Read(_) => ErrorKind::Input,
            Error::Store(_) => ErrorKind::Store,
            Error::Cache(extract::Error::Cache { .. }) => ErrorKind::Config,
            Error::Cache(_) => ErrorKind::Other,
            Error::Spill { .. } | Error::CorruptBucket { .. } | Error::ThreadPool(_) => {
                ErrorKind::Other
            }
        }
    }
}

/// An error and its sources as one line, `outer: inner: cause`, each cause once (an error whose message
/// already ends with its source's message, as some libraries' do, does not repeat it).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

impl From<extract::Error> for Error {
    /// An SSTable's own error stays a read error (the same exit code as without the cache).
    fn from(e: extract::Error) -> Error {
        match e {
            extract::Error::Reader(e) => Error::Read(e),
            e => Error::Cache(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_names_every_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let read = sstable_reader::Error::Io {
            path: "/d/nb-1-big-Data.db".into(),
            source: io(),
        };
        // The reader's message already ends with its source's.
        assert_eq!(chain(&read), "/d/nb-1-big-Data.db: gone");
        let spill = Error::Spill {
            path: "/tmp/s".into(),
            source: io(),
        };
        assert_eq!(chain(&spill), "spill file /tmp/s: gone");
    }

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "ab\ncé d\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        let d = text.find('d').unwrap();
        assert_eq!(line_col(text, d), (2, 4));
    }
}
