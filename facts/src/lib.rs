//! `facts`: the fact tables shared by the batch funnelizer, the stream and the readers (dashboard,
//! `funnel query`), behind one trait, [`FactStore`], with two backends: [`SqliteStore`] (embedded default,
//! `sqlite:PATH`) and, with the `cql` feature (on by default), a Cassandra/ScyllaDB store
//! (`cql://host:port[,host…]/keyspace?user=..&password=..&tls=true&ca=PATH&rf=N`). Open either with
//! [`open_store`]. Cargo features: `cql` (default) compiles the Cassandra/Scylla store; `cql-tls` adds TLS
//! (rustls; builds aws-lc, so it is off by default — `tls=true` without it is refused, never downgraded).
//!
//! The CQL store has unit tests of every statement it sends ([`cql_statements`]) and runs the same
//! conformance suite as SQLite when `FUNNEL_CQL_NODES=host:port[,…]` is set at build and test time
//! (`FUNNEL_CQL_NODES=127.0.0.1:9042 cargo test -p facts`); no CQL v4 server can run on the CI machines.
//!
//! # Tables (DESIGN.md)
//! - `funnel_steps(app_id, funnel_id, funnel_version, day, breakdown, step, actors, ttc_median_s, ttc_p90_s, layer)`
//! - `daily_counts(app_id, day, metric, dimension, value, count, layer)`
//! - `watermarks(app_id, funnel_id, funnel_version, batch_until)`: batch complete for days `< batch_until`
//! - plus the stream's consumed offsets, applied speed batch keys and key/value state, and the batch `runs`.
//!
//! # How to use it
//! Batch: [`FactStore::begin_run`] → [`FactStore::write_funnel_steps`] / [`FactStore::write_daily_counts`]
//! (staged, invisible) → [`FactStore::publish`] with one [`Watermark`] per funnel (and per counts metric) →
//! readers switch to the whole run at once; or [`FactStore::fail_run`]. Stream: one
//! [`FactStore::apply_speed_batch`] per consumed Kafka batch (facts, state and offset in one atomic,
//! idempotent step), [`FactStore::committed_offsets`] on (re)assignment. Readers: [`FactStore::read_funnel`],
//! [`FactStore::read_counts`].
//!
//! # Decisions and deviations from the agreed contract (read these)
//! - **Counts watermark**: one per app and metric, stored as a watermark row with `funnel_id = "__counts__"`
//!   ([`COUNTS_WATERMARK_ID`]) and `funnel_version = metric`; build it with [`Watermark::counts`]. A batch
//!   run that writes `daily_counts` must publish such a watermark for each metric it wrote, else its count
//!   rows are discarded (the same holds for funnels: staged rows of keys without a watermark are dropped).
//! - **Speed time-to-convert**: speed partials are summed for `actors`; `ttc_median_s`/`ttc_p90_s` of
//!   speed days are always `None` (medians of partial aggregates cannot be merged exactly, and we do not
//!   pretend). Batch days keep exact values. Summing breakdowns (query without `breakdown`) keeps
//!   time-to-convert only where a single breakdown row contributes — unless the run published a total.
//! - **All-breakdowns total**: for a funnel with a breakdown, a batch run also writes one row per
//!   (app, funnel, version, day, step) under the reserved breakdown value [`ALL_BREAKDOWNS`], with the
//!   actors of all breakdowns and their exact median/p90 time-to-convert (computed from the actors' times,
//!   not from the per-breakdown medians). A query without `breakdown` answers a batch (day, step) with that
//!   row when present instead of summing; with `breakdown` it is never listed. The speed layer never writes
//!   it (unchanged: summed partials, no time-to-convert). No real breakdown value can be it: it starts with
//!   the control character U+0001.
//! - **Carry-forward on publish**: days before the first day a run staged for a key are copied from the
//!   previously published run, so history whose raw events expired (60-day TTL) is not lost. A run that
//!   stages nothing for a key it publishes publishes an empty result for that key.
//! - **Stale publish refused**: publishing run N for a key already pointing at run M > N fails with
//!   [`FactsError::StaleRun`] (an older snapshot must not replace a newer one).
//! - **Speed batch key** is `(group, topic, partition, first_offset)` (since SQLite schema 2; a schema-1
//!   file is migrated in place on open, a CQL keyspace gets the new `speed_batches_by_group` table from
//!   `init` — see [`cql_statements`]), so consumer groups sharing a topic and a store do not refuse each
//!   other's batches.
//! - **Speed batch replays and overlaps**: a batch already applied, or lying wholly below the group's
//!   committed offset, returns `Ok(false)`; one that starts below the committed offset and ends above it
//!   fails with [`FactsError::OffsetOverlap`] (nothing written); offset gaps are allowed.
//! - **State expiry** is wall-clock Unix ms: entries past `expires_at_ms` may be purged by any later
//!   `apply_speed_batch`, whatever `now_ms` readers pass.
//! - **Funnel version**: [`FunnelQuery::funnel_version`] `None` picks the version of the most recently
//!   published watermark, else the only version the speed layer has.
//! - [`SqliteStore::open`] (and `open_store("sqlite:…")`) creates the tables itself; CQL needs `init`.
//! - **Crash hook**: `FUNNEL_FAULT=publish|stage|speed` aborts the process at that point ([`fault`]), for
//!   crash tests (`tests/tests/facts_crash.rs`).
//! - Extra public items: [`Day::FIRST`]/[`Day::LAST`], [`RunStatus`], [`Freshness`], [`lambda`] (the pure
//!   merge, usable on any rows), [`fault`] (the `FUNNEL_FAULT` crash hook), [`StoreUrl`].
//!
//! # Query answers
//! [`FunnelAnswer`] / [`CountsAnswer`] list every day of the range (open ends: from the first day with
//! data to the last day with data or the last batch-complete day), each with the [`Layer`] that answered and
//! its values (empty = that layer has no row: zero, or speed not caught up), plus [`Freshness`]: watermark,
//! published run and time, last time the stream applied a batch.

#[cfg(feature = "cql")]
pub mod cql;
pub mod cql_statements;
pub mod day;
pub mod error;
pub mod fault;
pub mod lambda;
pub mod model;
pub mod query;
pub mod sqlite;
pub mod store;
pub mod url;

#[cfg(test)]
mod conformance;

#[cfg(feature = "cql")]
pub use cql::CqlStore;
pub use day::Day;
pub use error::FactsError;
pub use model::{
    DailyCountFact, FunnelStepFact, Layer, RunId, RunMeta, RunRecord, RunStatus, SpeedBatch,
    StateEntry, Watermark, COUNTS_WATERMARK_ID,
};
pub use query::{
    CountValue, CountsAnswer, CountsDay, CountsQuery, Freshness, FunnelAnswer, FunnelDay,
    FunnelQuery, StepValue,
};
pub use sqlite::SqliteStore;
pub use store::FactStore;
pub use url::{CqlUrl, StoreUrl};

/// The reserved `breakdown` of a batch row that totals all breakdowns of a (app, funnel, version, day,
/// step) with exact time-to-convert (see "All-breakdowns total" above). Readers without `breakdown`
/// prefer it to summing; readers with `breakdown` skip it.
pub const ALL_BREAKDOWNS: &str = "\u{1}all";

/// Open a fact store from its URL: `sqlite:PATH` or
/// `cql://host:port[,host…]/keyspace?user=..&password=..&tls=true&rf=N`.
pub fn open_store(url: &str) -> Result<Box<dyn FactStore>, FactsError> {
    match url.parse::<StoreUrl>()? {
        StoreUrl::Sqlite(path) => Ok(Box::new(SqliteStore::open(path)?)),
        #[cfg(feature = "cql")]
        StoreUrl::Cql(cql) => Ok(Box::new(cql::CqlStore::connect(&cql)?)),
        #[cfg(not(feature = "cql"))]
        StoreUrl::Cql(_) => Err(FactsError::BackendDisabled("cql")),
    }
}
