//! `FactsError`: everything a fact store can fail with.

/// Errors of the fact stores. Backend errors keep their source; the rest say which input was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FactsError {
    /// The store URL could not be understood.
    #[error("bad fact store URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// A value (day, layer, metric, …) was not valid.
    #[error("invalid {what}: {value:?}")]
    Invalid { what: &'static str, value: String },
    /// The SQLite backend failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The Cassandra/Scylla backend failed (the driver's message).
    #[error("cql: {0}")]
    Cql(String),
    /// JSON (run inputs, funnel lists) could not be encoded or decoded.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// I/O around the store (creating its directory, …).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
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
