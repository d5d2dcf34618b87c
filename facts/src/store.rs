//! The roles a fact store plays, one trait each: [`BatchPublisher`] (batch runs), [`StreamSink`] (consumed
//! Kafka batches), [`StateReader`] (the stream's key/value state) and [`FactReader`] (dashboards, `funnel
//! query`, `funnel status`). Every backend implements all four; a caller asks for the narrowest one.
//!
//! Every method is blocking. The Cassandra backend runs its own tokio runtime: call it from plain threads or
//! `tokio::task::spawn_blocking`, not directly from async code.

use crate::error::FactsError;
use crate::model::{
    DailyCountFact, FunnelStepFact, FunnelTotalFact, RunId, RunMeta, RunRecord, SpeedBatch,
    StreamPartition, Watermark,
};
use crate::query::{CountsAnswer, CountsQuery, FunnelAnswer, FunnelQuery};
use crate::seen::{SeenBy, SeenId};
use crate::shards::ShardStore;

/// Publishes batch runs: `begin_run` → `write_*` (any number of calls, rows staged under the run) →
/// `publish` or `fail_run`.
///
/// Contract:
/// - **Invisible until published.** Staged rows are never seen by a [`FactReader`]; `publish` is atomic per
///   key (SQLite: for all keys at once): a reader sees the key's previous run or this one, never a mix.
/// - **Per key.** A key is `(app_id, funnel_id, funnel_version)`, or `(app_id, metric)` for `daily_counts`
///   (its watermark is [`Watermark::counts`]). `publish` moves exactly the keys it is given a watermark for;
///   rows staged for other keys are discarded.
/// - **History is kept.** Days before the first day a run staged for a key are carried forward from the
///   key's previous run (history whose events expired from the snapshots stays); a run that staged nothing
///   for a key it publishes publishes "no rows" for it.
/// - **Never backwards.** Publishing run N over a key already pointing at run M > N fails with
///   [`FactsError::StaleRun`]; run ids only grow.
/// - **Crash-safe.** A process that dies before `publish` leaves a `running` run nobody points at; a later
///   `begin_run` marks it `abandoned` and collects its rows. Writes to a run that is not `running` fail with
///   [`FactsError::RunNotRunning`]. A staged row with the same key as an earlier row of the same run
///   replaces it, so re-staging a chunk after an error is harmless.
pub trait BatchPublisher: Send + Sync {
    /// Start a batch run (and collect rows of runs whose process died).
    fn begin_run(&self, meta: &RunMeta) -> Result<RunId, FactsError>;

    /// Stage `funnel_steps` rows (one per breakdown value) under a running run.
    fn write_funnel_steps(&self, run: RunId, rows: &[FunnelStepFact]) -> Result<(), FactsError>;

    /// Stage `funnel_totals` rows (one per day and step over all breakdowns, for funnels with a breakdown)
    /// under a running run. They are published and carried forward with the funnel's key.
    fn write_funnel_totals(&self, run: RunId, rows: &[FunnelTotalFact]) -> Result<(), FactsError>;

    /// Stage `daily_counts` rows under a running run.
    fn write_daily_counts(&self, run: RunId, rows: &[DailyCountFact]) -> Result<(), FactsError>;

    /// Publish a run: for every watermark given, the key's pointer flips to this run and `batch_until`
    /// moves. Then speed rows below the new watermarks and rows of superseded runs are collected.
    fn publish(&self, run: RunId, watermarks: &[Watermark]) -> Result<(), FactsError>;

    /// Mark a running run failed with an error message; its staged rows are dropped.
    fn fail_run(&self, run: RunId, error: &str) -> Result<(), FactsError>;

    /// Where this store keeps the partial facts of sharded runs (`None`: it cannot).
    fn shard_store(&self) -> Option<&dyn ShardStore> {
        None
    }
}

/// Takes consumed Kafka batches from the stream.
///
/// Contract: [`StreamSink::apply_speed_batch`] is **idempotent** per `(group, topic, partition,
/// first_offset)` — re-applying a batch changes nothing — and **atomic**: on SQLite the batch's speed facts,
/// state puts/deletes, seen ids and its consumer group's committed offset are applied in one transaction. On
/// CQL the commit point, the partition's cumulative counts and its owned state
/// ([`SpeedBatch::owned_namespaces`]) are one conditional single-partition batch on the expected offset, so
/// a consumer whose partition was taken over is refused ([`FactsError::PartitionTakenOver`] or
/// [`FactsError::OffsetOverlap`], nothing applied); seen ids and shared state are idempotent upserts written
/// before it (a retry rewrites them; see [`crate::SeenBy`]). Readers see a batch's counts summed with the
/// other batches' on the days at or past the watermark.
pub trait StreamSink: Send + Sync {
    /// Apply one consumed batch. `Ok(false)` (nothing changed) when it was applied before or lies wholly
    /// below the group's committed offset; [`FactsError::OffsetOverlap`] (nothing written) when it starts
    /// below the committed offset and ends above it. Offset gaps are allowed. Another consumer group's batch
    /// with the same `(topic, partition, first_offset)` is a different batch.
    fn apply_speed_batch(&self, batch: &SpeedBatch) -> Result<bool, FactsError>;

    /// `(partition, next offset)` committed by `apply_speed_batch` for a consumer group and topic, by
    /// partition: where to resume after a (re)assignment.
    fn committed_offsets(&self, group: &str, topic: &str) -> Result<Vec<(i32, i64)>, FactsError>;
}

/// Reads the stream's own key/value state (written only by [`StreamSink::apply_speed_batch`], so a read
/// sees whole batches).
///
/// Entries expire at their `expires_at_ms` (wall-clock Unix ms): a read at `now_ms` past it finds nothing,
/// and any later `apply_speed_batch` may purge them, whatever `now_ms` readers pass.
pub trait StateReader: Send + Sync {
    /// A state value, unless missing or expired at `now_ms`.
    fn get_state(
        &self,
        namespace: &str,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<u8>>, FactsError>;

    /// [`StateReader::get_state`] of many keys at once, in their order (the stream reads the pending
    /// buckets of a whole batch with one call). The default reads them one by one.
    fn get_states(
        &self,
        namespace: &str,
        keys: &[String],
        now_ms: i64,
    ) -> Result<Vec<Option<Vec<u8>>>, FactsError> {
        keys.iter()
            .map(|k| self.get_state(namespace, k, now_ms))
            .collect()
    }

    /// [`StateReader::get_states`] of state a Kafka partition owns ([`SpeedBatch::owned_namespaces`]). The
    /// default reads the shared state (a backend keeping all state in one place); CQL keeps owned state with
    /// the partition's commit point.
    fn get_owned_states(
        &self,
        owner: &StreamPartition,
        namespace: &str,
        keys: &[String],
        now_ms: i64,
    ) -> Result<Vec<Option<Vec<u8>>>, FactsError> {
        let _ = owner;
        self.get_states(namespace, keys, now_ms)
    }

    /// [`StateReader::scan_state`] of state a Kafka partition owns. The default scans the shared state:
    /// give a `key_prefix` that only the owner's keys have.
    fn scan_owned_state(
        &self,
        owner: &StreamPartition,
        namespace: &str,
        key_prefix: &str,
        now_ms: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, FactsError> {
        let _ = owner;
        self.scan_state(namespace, key_prefix, now_ms)
    }

    /// All unexpired entries of a namespace whose key starts with `key_prefix`, sorted by key.
    fn scan_state(
        &self,
        namespace: &str,
        key_prefix: &str,
        now_ms: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, FactsError>;

    /// How many unexpired entries a namespace holds at `now_ms`. The default scans the namespace; a
    /// backend may count without reading values.
    fn count_state(&self, namespace: &str, now_ms: i64) -> Result<u64, FactsError> {
        Ok(self.scan_state(namespace, "", now_ms)?.len() as u64)
    }

    /// For each id, in order, the batch that applied it ([`SpeedBatch::seen_ids`]), unless unknown or
    /// expired at `now_ms`. The stream looks up the ids of a whole batch with one call.
    fn seen_by(&self, ids: &[SeenId], now_ms: i64) -> Result<Vec<Option<SeenBy>>, FactsError>;

    /// How many ids are remembered at `now_ms` (the stream reports it as `funnel_stream_dedupe_ids`), or
    /// `None` where only a scan of the whole table could tell (CQL).
    fn count_seen(&self, now_ms: i64) -> Result<Option<u64>, FactsError>;
}

/// What the stream needs of a store: its sink and its state.
pub trait StreamStore: StreamSink + StateReader {}

impl<T: StreamSink + StateReader + ?Sized> StreamStore for T {}

/// Answers readers: the lambda merge of both layers, watermarks and the batch run log.
///
/// Contract: an answer follows one pointer per key — the batch days all come from the run the key's
/// watermark names, so a reader never sees half a run or two runs mixed. SQLite reads the pointer and the rows
/// in one read transaction. CQL reads the pointer, then that run's partitions; a publish keeps the superseded
/// run for a grace period after flipping the pointer, so a read that fetched the old pointer just before
/// still finds its rows. Days before the watermark come
/// from the published batch run, later days from the speed partials summed; every day says which layer
/// answered. Answers list the days from the first to the last day with data, or `from`/`to` when given.
pub trait FactReader: Send + Sync {
    /// Funnel steps of a day range (see [`FunnelQuery`]).
    fn read_funnel(&self, q: &FunnelQuery) -> Result<FunnelAnswer, FactsError>;

    /// Daily counts of one metric over a day range, merged the same way (per-metric counts watermark).
    fn read_counts(&self, q: &CountsQuery) -> Result<CountsAnswer, FactsError>;

    /// Every watermark of an app (funnels and counts), sorted by (funnel_id, funnel_version).
    fn watermarks(&self, app_id: &str) -> Result<Vec<Watermark>, FactsError>;

    /// The latest `limit` batch runs, newest first (runs whose process died show as `abandoned`).
    fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, FactsError>;

    /// Every app with real-time (speed) facts — daily counts or funnel steps a stream batch wrote —
    /// sorted. With the apps the batch runs saw ([`FactReader::runs`]) these are all apps of the store;
    /// an app the stream counts but no batch run has computed yet is only here.
    fn speed_apps(&self) -> Result<Vec<String>, FactsError>;

    /// A number that changes whenever something a reader sees may have changed (a commit by anyone, in
    /// any process): a cache of answers keyed by it is never stale. `None` (the default): the backend
    /// cannot tell, so answers must not be cached.
    fn data_version(&self) -> Result<Option<u64>, FactsError> {
        Ok(None)
    }
}
