//! `facts`: the fact tables shared by the batch funnelizer, the stream and the readers (dashboards,
//! `funnel query`, `funnel report`, `funnel status`), with two backends: [`SqliteStore`] (embedded,
//! `sqlite:PATH`) and, with the `cql` feature (on by default), [`CqlStore`] for Cassandra 4.x/5.x and
//! ScyllaDB (`cql://host:port[,host…]/keyspace?user=..&password=..&tls=true&ca=PATH&rf=N&dc=NAME`). [`open_store`]
//! opens either from its URL as a [`Store`].
//!
//! # Roles
//! A store plays four roles, one trait each; code asks for the narrowest it needs:
//! - [`BatchPublisher`] — a batch run stages its rows (`funnel_steps`, `funnel_totals`, `daily_counts`),
//!   invisible to readers, then [`publish`](BatchPublisher::publish)es them with one [`Watermark`] per key:
//!   readers switch to the whole run at once.
//! - [`StreamSink`] — the stream applies each consumed Kafka batch ([`SpeedBatch`]: speed partials, state
//!   changes, offset) idempotently, and learns where to resume ([`StreamSink::committed_offsets`]).
//! - [`StateReader`] — the stream's own key/value state (pending hits and events), written with the batches.
//! - [`FactReader`] — the lambda merge: days before a key's watermark from its published batch run, later
//!   days from the speed partials summed, each day saying which [`Layer`] answered ([`FunnelAnswer`],
//!   [`CountsAnswer`]), plus watermarks and the run log.
//!
//! [`StreamStore`] is the stream's pair (sink and state). The contracts — atomicity, idempotency, what
//! readers see — are on each trait. Both backends share one read path: they only fetch rows; the
//! merge, the totals and the freshness are computed once for both.
//!
//! # Tables
//! `docs/FACTS.md` in the repository describes every table as readers see it (columns, keys, layers,
//! watermarks, totals, runs, speed partials, state), with plain SQL for the SQLite file. In short:
//! `funnel_steps` holds one row per (app, funnel, version, entry day, breakdown value, step) — summing it
//! over breakdowns counts every actor once — and `funnel_totals` the exact all-breakdowns total of funnels
//! with a breakdown ([`FunnelTotalFact`]); `daily_counts` the hits, events and conversions per day;
//! `watermarks` where each key's batch results are complete and which run they come from.
//!
//! # Example: publish a batch run, read it back
//! ```
//! use facts::{
//!     open_store, BatchPublisher, Day, FactReader, FunnelQuery, FunnelStepFact, FunnelTotalFact, Layer,
//!     RunMeta, Watermark,
//! };
//!
//! # fn main() -> Result<(), facts::FactsError> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("facts.db");
//! let store = open_store(&format!("sqlite:{}", path.display()))?;
//!
//! // The batch side: one run, staged rows, one watermark per funnel key.
//! let publisher: &dyn BatchPublisher = &store;
//! let run = publisher.begin_run(&RunMeta {
//!     started_at_ms: 1_714_521_600_000,
//!     inputs: serde_json::json!({ "sstables": ["nb-1-big-Data.db"] }),
//!     funnels: vec![("signup".into(), "1".into())],
//! })?;
//! let day: Day = "2024-05-01".parse()?;
//! let row = |breakdown: &str, step: u32, actors: u64| FunnelStepFact {
//!     app_id: "shop".into(),
//!     funnel_id: "signup".into(),
//!     funnel_version: "1".into(),
//!     day,
//!     breakdown: breakdown.into(),
//!     step,
//!     actors,
//!     ttc_median_s: Some(60.0 * (step - 1) as f64),
//!     ttc_p90_s: None,
//! };
//! publisher.write_funnel_steps(run, &[row("ios", 1, 40), row("ios", 2, 10), row("web", 1, 60)])?;
//! publisher.write_funnel_totals(run, &[FunnelTotalFact {
//!     app_id: "shop".into(),
//!     funnel_id: "signup".into(),
//!     funnel_version: "1".into(),
//!     day,
//!     step: 1,
//!     actors: 100,
//!     ttc_median_s: Some(0.0),
//!     ttc_p90_s: Some(0.0),
//! }])?;
//! publisher.publish(run, &[Watermark::funnel("shop", "signup", "1", day.plus(1))])?;
//!
//! // A reader: breakdowns summed, step 1 answered by the exact total.
//! let reader: &dyn FactReader = &store;
//! let answer = reader.read_funnel(&FunnelQuery::new("shop", "signup"))?;
//! assert_eq!(answer.freshness.watermark, Some(day.plus(1)));
//! let first = &answer.days[0];
//! assert_eq!((first.day, first.layer), (day, Layer::Batch));
//! let actors: Vec<(u32, u64)> = first.steps.iter().map(|s| (s.step, s.actors)).collect();
//! assert_eq!(actors, [(1, 100), (2, 10)]);
//! # Ok(())
//! # }
//! ```
//!
//! # Cargo features
//! - `cql` (default): the Cassandra/ScyllaDB store. Its statements are unit-tested without a server
//!   ([`cql_statements`]); every request it sends goes through one session seam ([`cql_session`]) where
//!   tests record it and check it against Cassandra's own limits ([`cql_contract`]); the conformance suite
//!   that SQLite runs, and fault tests at the seam, also run against a cluster when
//!   `FUNNEL_CQL_NODES=host:port[,…]` is set at build and test time (`docs/CASSANDRA.md`).
//! - `cql-tls`: TLS for the CQL store (rustls; builds aws-lc, so it is off by default — `tls=true` without
//!   it is refused, never downgraded).
//! - `fault-injection`: crash hooks for the end-to-end tests (`FUNNEL_FAULT=publish|stage|speed` aborts
//!   the process there). Only the tests turn it on; without it no environment variable is read.

#[cfg(feature = "cql")]
mod cql;
#[cfg(feature = "cql")]
pub mod cql_connect;
#[cfg(feature = "cql")]
pub mod cql_contract;
#[cfg(all(feature = "cql", any(test, feature = "test_common")))]
pub mod cql_memory;
#[cfg(feature = "cql")]
pub mod cql_session;
pub mod cql_statements;
mod day;
mod error;
mod fault;
mod lambda;
mod model;
mod query;
mod read;
mod seen;
mod shards;
mod sqlite;
mod store;
pub mod url;

#[cfg(test)]
mod conformance;

#[cfg(feature = "cql")]
pub use cql::CqlStore;
pub use day::Day;
#[cfg(feature = "cql")]
pub use error::CqlError;
pub use error::FactsError;
pub use model::{
    DailyCountFact, FunnelStepFact, FunnelTotalFact, Layer, RunId, RunMeta, RunRecord, RunStatus,
    SpeedBatch, StateEntry, StreamPartition, Watermark, COUNTS_WATERMARK_ID,
};
pub use query::{
    CountValue, CountsAnswer, CountsDay, CountsQuery, Freshness, FunnelAnswer, FunnelDay,
    FunnelQuery, StepValue,
};
pub use seen::{seen_bucket, IdKind, SeenBy, SeenEntry, SeenId, SEEN_BUCKETS};
pub use shards::{Finalized, PartialHead, ShardPartial, ShardStore};
pub use sqlite::SqliteStore;
pub use store::{BatchPublisher, FactReader, StateReader, StreamSink, StreamStore};
pub use url::{CqlUrl, StoreUrl};

/// A fact store opened from its URL: one of the backends, playing every role ([`BatchPublisher`],
/// [`StreamSink`], [`StateReader`], [`FactReader`]). Pass `&store` where a role is expected, or
/// `Arc::new(store)` as an `Arc<dyn StreamStore>`.
pub enum Store {
    /// `sqlite:PATH`.
    Sqlite(SqliteStore),
    /// `cql://…`.
    #[cfg(feature = "cql")]
    Cql(CqlStore),
}

/// Open a fact store from its URL: `sqlite:PATH` (the file and its tables are created if missing, and a
/// file written by an older version is migrated in place) or
/// `cql://host:port[,host…]/keyspace?user=..&password=..&tls=true&rf=N` (tables are not touched: run
/// [`Store::init`] once per keyspace, as `funnel facts init` does).
pub fn open_store(url: &str) -> Result<Store, FactsError> {
    match url.parse::<StoreUrl>()? {
        StoreUrl::Sqlite(path) => Ok(Store::Sqlite(SqliteStore::open(path)?)),
        #[cfg(feature = "cql")]
        StoreUrl::Cql(cql) => Ok(Store::Cql(CqlStore::connect(&cql)?)),
        #[cfg(not(feature = "cql"))]
        StoreUrl::Cql(_) => Err(FactsError::BackendDisabled("cql")),
    }
}

/// Calls the same method on whichever backend a [`Store`] holds.
macro_rules! on_backend {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            #[cfg(feature = "cql")]
            Store::Cql($s) => $e,
        }
    };
}

impl Store {
    /// Create the tables (for CQL also the keyspace) if missing, migrating older layouts. Idempotent.
    pub fn init(&self) -> Result<(), FactsError> {
        on_backend!(self, s => s.init())
    }
}

impl BatchPublisher for Store {
    fn begin_run(&self, meta: &RunMeta) -> Result<RunId, FactsError> {
        on_backend!(self, s => s.begin_run(meta))
    }
    fn write_funnel_steps(&self, run: RunId, rows: &[FunnelStepFact]) -> Result<(), FactsError> {
        on_backend!(self, s => s.write_funnel_steps(run, rows))
    }
    fn write_funnel_totals(&self, run: RunId, rows: &[FunnelTotalFact]) -> Result<(), FactsError> {
        on_backend!(self, s => s.write_funnel_totals(run, rows))
    }
    fn write_daily_counts(&self, run: RunId, rows: &[DailyCountFact]) -> Result<(), FactsError> {
        on_backend!(self, s => s.write_daily_counts(run, rows))
    }
    fn publish(&self, run: RunId, watermarks: &[Watermark]) -> Result<(), FactsError> {
        on_backend!(self, s => s.publish(run, watermarks))
    }
    fn fail_run(&self, run: RunId, error: &str) -> Result<(), FactsError> {
        on_backend!(self, s => s.fail_run(run, error))
    }
    fn shard_store(&self) -> Option<&dyn ShardStore> {
        on_backend!(self, s => s.shard_store())
    }
}

impl StreamSink for Store {
    fn apply_speed_batch(&self, batch: &SpeedBatch) -> Result<bool, FactsError> {
        on_backend!(self, s => s.apply_speed_batch(batch))
    }
    fn committed_offsets(&self, group: &str, topic: &str) -> Result<Vec<(i32, i64)>, FactsError> {
        on_backend!(self, s => s.committed_offsets(group, topic))
    }
}

impl StateReader for Store {
    fn get_state(
        &self,
        namespace: &str,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<u8>>, FactsError> {
        on_backend!(self, s => s.get_state(namespace, key, now_ms))
    }
    fn scan_state(
        &self,
        namespace: &str,
        key_prefix: &str,
        now_ms: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, FactsError> {
        on_backend!(self, s => s.scan_state(namespace, key_prefix, now_ms))
    }
    fn count_state(&self, namespace: &str, now_ms: i64) -> Result<u64, FactsError> {
        on_backend!(self, s => s.count_state(namespace, now_ms))
    }
    fn get_states(
        &self,
        namespace: &str,
        keys: &[String],
        now_ms: i64,
    ) -> Result<Vec<Option<Vec<u8>>>, FactsError> {
        on_backend!(self, s => s.get_states(namespace, keys, now_ms))
    }
    fn get_owned_states(
        &self,
        owner: &StreamPartition,
        namespace: &str,
        keys: &[String],
        now_ms: i64,
    ) -> Result<Vec<Option<Vec<u8>>>, FactsError> {
        on_backend!(self, s => s.get_owned_states(owner, namespace, keys, now_ms))
    }
    fn scan_owned_state(
        &self,
        owner: &StreamPartition,
        namespace: &str,
        key_prefix: &str,
        now_ms: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, FactsError> {
        on_backend!(self, s => s.scan_owned_state(owner, namespace, key_prefix, now_ms))
    }
    fn seen_by(&self, ids: &[SeenId], now_ms: i64) -> Result<Vec<Option<SeenBy>>, FactsError> {
        on_backend!(self, s => s.seen_by(ids, now_ms))
    }
    fn count_seen(&self, now_ms: i64) -> Result<Option<u64>, FactsError> {
        on_backend!(self, s => s.count_seen(now_ms))
    }
}

impl FactReader for Store {
    fn read_funnel(&self, q: &FunnelQuery) -> Result<FunnelAnswer, FactsError> {
        on_backend!(self, s => s.read_funnel(q))
    }
    fn read_counts(&self, q: &CountsQuery) -> Result<CountsAnswer, FactsError> {
        on_backend!(self, s => s.read_counts(q))
    }
    fn watermarks(&self, app_id: &str) -> Result<Vec<Watermark>, FactsError> {
        on_backend!(self, s => s.watermarks(app_id))
    }
    fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, FactsError> {
        on_backend!(self, s => s.runs(limit))
    }
    fn speed_apps(&self) -> Result<Vec<String>, FactsError> {
        on_backend!(self, s => s.speed_apps())
    }
    fn data_version(&self) -> Result<Option<u64>, FactsError> {
        on_backend!(self, s => s.data_version())
    }
}
