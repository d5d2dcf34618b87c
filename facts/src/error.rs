//! `FactsError`: everything a fact store can fail with.
//!
//! Errors of the backends (SQLite, the Cassandra driver, JSON, I/O) are kept as the error's
//! [`source`](std::error::Error::source), not flattened into strings, so a caller can inspect them by type
//! (e.g. `rusqlite::Error::SqliteFailure` with `DatabaseBusy`), and anything holding a `FactsError` in its
//! chain can be told apart as a fact store failure (`downcast_ref::<FactsError>()` on each link). The
//! message also names the backend's error, as the other crates of the workspace do, so a log line of the
//! error alone says what happened.

/// Errors of the fact stores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FactsError {
    /// The store URL could not be understood.
    #[error("bad fact store URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// A value given to the store (a day, a layer, a count, a run status read back) was not valid.
    #[error("invalid {what}: {value:?}")]
    Invalid { what: &'static str, value: String },
    /// The SQLite backend failed (the file, a lock, a statement).
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The SQLite file was written by a newer version of this program (its schema version is higher than
    /// this build knows).
    #[error("the SQLite fact store {path} has schema version {found}; this build knows versions up to {supported} (upgrade funnel)")]
    SchemaTooNew {
        path: std::path::PathBuf,
        found: i64,
        supported: i64,
    },
    /// The Cassandra/Scylla backend failed (boxed: the driver's errors are large, and every result of the
    /// store carries this enum).
    #[cfg(feature = "cql")]
    #[error("CQL: {0}")]
    Cql(#[source] Box<CqlError>),
    /// JSON (run inputs, funnel lists) could not be encoded or decoded.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// I/O around the store (creating its directory, …).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A shard's partial facts disagree with another shard's of the same sharded run (different funnels,
    /// `--now`, inputs or shard count): mixing them would publish facts of no single run.
    #[error("shard {shard} of run {run_name:?} differs from its shard {other} in {field}: refusing to mix them (use another --run-name, or rerun the shards alike)")]
    ShardMismatch {
        run_name: String,
        shard: u32,
        other: u32,
        field: String,
    },
    /// The run id is unknown to this store.
    #[error("unknown run {0}")]
    UnknownRun(i64),
    /// The run is not in the `running` state any more (already published, failed or abandoned).
    #[error("run {run} is {status}, not running")]
    RunNotRunning { run: i64, status: String },
    /// Publishing would replace results of a newer run with those of an older one.
    #[error("run {run} is older than run {current}, already published for {app_id}/{funnel_id}@{funnel_version}")]
    StaleRun {
        run: i64,
        current: i64,
        app_id: String,
        funnel_id: String,
        funnel_version: String,
    },
    /// A speed batch overlaps offsets already consumed (it starts below the committed offset).
    #[error("speed batch {topic}/{partition} at offset {first_offset} overlaps offsets already committed up to {committed} for group {group}")]
    OffsetOverlap {
        group: String,
        topic: String,
        partition: i32,
        first_offset: i64,
        committed: i64,
    },
    /// A Kafka partition's commit point was not where a speed batch expected it: another consumer took the
    /// partition over (a rebalance; this one is a zombie) or moved it on. Nothing of the batch was applied;
    /// re-read the committed offset.
    #[error("speed batch {topic}/{partition} at offset {first_offset} of group {group} refused: the partition's commit point moved from {expected:?} to {found:?} (another consumer took the partition over)")]
    PartitionTakenOver {
        group: String,
        topic: String,
        partition: i32,
        first_offset: i64,
        expected: Option<i64>,
        found: Option<i64>,
    },
    /// A query without a funnel version matched several versions.
    #[error("funnel {funnel_id} of app {app_id} has several versions ({versions:?}); name one")]
    AmbiguousVersion {
        app_id: String,
        funnel_id: String,
        versions: Vec<String>,
    },
    /// The backend is not compiled into this build.
    #[error("fact store backend {0:?} is not compiled in (enable the cargo feature)")]
    BackendDisabled(&'static str),
}

/// What the Cassandra/Scylla driver (or the store around it) failed with; the driver's error is the source.
#[cfg(feature = "cql")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CqlError {
    /// No session could be opened (no contact point reachable, authentication refused, …).
    #[error("connecting to the cluster: {0}")]
    Connect(#[from] scylla::errors::NewSessionError),
    /// A statement could not be prepared: usually its table is missing.
    #[error("preparing {statement} (were the tables created with `funnel facts init`?): {source}")]
    Prepare {
        statement: &'static str,
        #[source]
        source: scylla::errors::PrepareError,
    },
    /// A request failed (timeout, unavailable replicas, a rejected statement, …).
    #[error("{0}")]
    Execute(#[from] scylla::errors::ExecutionError),
    /// A paged read could not start.
    #[error("starting a paged read: {0}")]
    Pager(#[from] scylla::errors::PagerExecutionError),
    /// A page of a read could not be fetched or decoded.
    #[error("reading rows: {0}")]
    NextRow(#[from] scylla::errors::NextRowError),
    /// The rows of a read do not have the columns the store expects (a table of another layout).
    #[error("rows of an unexpected type: {0}")]
    TypeCheck(#[from] scylla::errors::TypeCheckError),
    /// The nodes did not agree on the schema after `init`'s DDL.
    #[error("waiting for schema agreement: {0}")]
    SchemaAgreement(#[from] scylla::errors::SchemaAgreementError),
    /// TLS could not be configured (the CA file, its certificates).
    #[error("TLS: {reason}{}", .source.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Tls {
        reason: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The store's own runtime dropped a request without answering (it is shutting down).
    #[error("the CQL task ended without an answer")]
    TaskLost,
    /// The rows of a result could not be taken from the response.
    #[error("reading a result: {0}")]
    IntoRows(#[from] scylla::errors::IntoRowsResultError),
    /// The rows of a result did not have the expected columns.
    #[error("rows of an unexpected type: {0}")]
    Rows(#[from] scylla::errors::RowsError),
    /// A row of a result could not be decoded.
    #[error("decoding a row: {0}")]
    Deserialize(#[from] scylla::errors::DeserializationError),
    /// A column read back does not have the type the store expects (a table of another layout).
    #[error("decoding a row: {reason}")]
    Decode { reason: String },
    /// A request ended without telling whether it was applied (a timeout, a lost connection): a write may
    /// still have been applied, or be applied later.
    #[error("{request}: outcome unknown ({reason})")]
    OutcomeUnknown { request: String, reason: String },
    /// Another publisher holds the publish lease (a scheduler on another host is publishing).
    #[error("another publisher (run {holder}) holds the publish lease until it finishes or its lease expires")]
    LeaseHeld { holder: i64 },
}

#[cfg(feature = "cql")]
impl CqlError {
    /// Whether the request may have been applied although it failed: a write timeout (the coordinator
    /// heard from too few replicas, but some may have written), a client timeout or a broken connection.
    /// After such an error the store re-reads what it wrote and never deletes what the write may name.
    pub fn is_ambiguous(&self) -> bool {
        use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
        match self {
            CqlError::OutcomeUnknown { .. } => true,
            CqlError::Execute(ExecutionError::RequestTimeout(_)) => true,
            CqlError::Execute(ExecutionError::LastAttemptError(e)) => matches!(
                e,
                RequestAttemptError::BrokenConnectionError(_)
                    | RequestAttemptError::DbError(
                        DbError::WriteTimeout { .. } | DbError::WriteFailure { .. },
                        _
                    )
            ),
            _ => false,
        }
    }
}

#[cfg(feature = "cql")]
impl FactsError {
    /// Whether this is a CQL error after which a write may or may not have been applied
    /// ([`CqlError::is_ambiguous`]).
    pub fn is_ambiguous_write(&self) -> bool {
        matches!(self, FactsError::Cql(e) if e.is_ambiguous())
    }
}

#[cfg(feature = "cql")]
impl From<CqlError> for FactsError {
    fn from(e: CqlError) -> FactsError {
        FactsError::Cql(Box::new(e))
    }
}

/// Driver errors convert straight into [`FactsError::Cql`], so store code can use `?` on them.
#[cfg(feature = "cql")]
macro_rules! from_driver_error {
    ($($t:ty),*) => {
        $(
            impl From<$t> for FactsError {
                fn from(e: $t) -> FactsError {
                    FactsError::from(CqlError::from(e))
                }
            }
        )*
    };
}
#[cfg(feature = "cql")]
from_driver_error!(
    scylla::errors::NewSessionError,
    scylla::errors::ExecutionError,
    scylla::errors::PagerExecutionError,
    scylla::errors::NextRowError,
    scylla::errors::TypeCheckError,
    scylla::errors::SchemaAgreementError
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[cfg(feature = "cql")]
    #[test]
    fn write_timeouts_are_ambiguous_and_definite_errors_are_not() {
        use scylla::errors::{DbError, ExecutionError, RequestAttemptError, WriteType};
        use scylla::statement::Consistency;
        let db = |e: DbError| {
            FactsError::from(ExecutionError::LastAttemptError(
                RequestAttemptError::DbError(e, "injected".into()),
            ))
        };
        let timeout = db(DbError::WriteTimeout {
            consistency: Consistency::LocalQuorum,
            received: 1,
            required: 2,
            write_type: WriteType::Simple,
        });
        assert!(timeout.is_ambiguous_write(), "{timeout}");
        let client = FactsError::from(ExecutionError::RequestTimeout(
            std::time::Duration::from_secs(5),
        ));
        assert!(client.is_ambiguous_write());
        // Refused before anything was written: a definite failure.
        let unavailable = db(DbError::Unavailable {
            consistency: Consistency::LocalQuorum,
            required: 2,
            alive: 1,
        });
        assert!(!unavailable.is_ambiguous_write());
        assert!(!db(DbError::Invalid).is_ambiguous_write());
        assert!(!FactsError::UnknownRun(1).is_ambiguous_write());
    }

    #[test]
    fn backend_errors_keep_their_source() {
        let e = FactsError::from(rusqlite::Error::InvalidQuery);
        let source = e.source().expect("the rusqlite error is the source");
        assert!(source.downcast_ref::<rusqlite::Error>().is_some());
        assert!(e.to_string().contains(&source.to_string()), "{e}");
        let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let e = FactsError::from(json);
        assert!(e.source().unwrap().is::<serde_json::Error>());
    }
}
