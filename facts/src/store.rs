//! `FactStore`: the one trait every backend implements (SQLite, Cassandra/Scylla).

use crate::error::FactsError;
use crate::model::{
    DailyCountFact, FunnelStepFact, RunId, RunMeta, RunRecord, SpeedBatch, Watermark,
};
use crate::query::{CountsAnswer, CountsQuery, FunnelAnswer, FunnelQuery};

/// The fact tables shared by the batch funnelizer, the stream and the readers.
///
/// Batch side: `begin_run` → `write_*` (any number of calls; rows are staged under the run and invisible) →
/// `publish` (atomic: readers see the whole run or nothing) or `fail_run`. Stream side: `apply_speed_batch`
/// per consumed batch (facts + state + offset in one atomic, idempotent step) and `committed_offsets` to know
/// where to resume. Readers: `read_funnel` / `read_counts` (lambda merge), `watermarks`, `runs`.
///
/// Every method is blocking. The Cassandra backend runs its own tokio runtime: call it from plain threads or
/// `tokio::task::spawn_blocking`, not directly from async code.
pub trait FactStore: Send + Sync {
    /// Create the tables (and, for CQL, the keyspace) if missing. Idempotent.
    fn init(&self) -> Result<(), FactsError>;

    /// Start a batch run. Also garbage-collects rows of runs whose process died (SQLite).
    fn begin_run(&self, meta: &RunMeta) -> Result<RunId, FactsError>;

    /// Stage funnel step rows under a running run (invisible to readers until `publish`). Rows with the same
    /// key as earlier rows of the same run replace them.
    fn write_funnel_steps(&self, run: RunId, rows: &[FunnelStepFact]) -> Result<(), FactsError>;

    /// Stage daily count rows under a running run.
    fn write_daily_counts(&self, run: RunId, rows: &[DailyCountFact]) -> Result<(), FactsError>;

    /// Publish a run: for every watermark given, the current-run pointer of that key flips to this run and
    /// `batch_until` moves, all at once. Keys not named by a watermark stay as they were (their staged rows
    /// are discarded). Days earlier than the run's first staged day for a key are carried forward from the
    /// previously published run (history whose events expired from the snapshots is kept). Then speed rows
    /// below the new watermarks and rows of superseded runs are garbage-collected.
    fn publish(&self, run: RunId, watermarks: &[Watermark]) -> Result<(), FactsError>;

    /// Mark a run failed with an error message; its staged rows are dropped.
    fn fail_run(&self, run: RunId, error: &str) -> Result<(), FactsError>;

    /// Apply one consumed Kafka batch atomically: facts, state puts/deletes and the group's committed offset.
    /// Returns `false` (and changes nothing) when this `(group, topic, partition, first_offset)` was applied
    /// before; another consumer group's batch with the same `(topic, partition, first_offset)` is a different
    /// batch.
    fn apply_speed_batch(&self, batch: &SpeedBatch) -> Result<bool, FactsError>;

    /// `(partition, next offset)` committed by `apply_speed_batch` for a consumer group and topic.
    fn committed_offsets(&self, group: &str, topic: &str) -> Result<Vec<(i32, i64)>, FactsError>;

    /// A state value, unless missing or expired at `now_ms`.
    fn get_state(
        &self,
        namespace: &str,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<u8>>, FactsError>;

    /// All unexpired state entries whose key starts with `key_prefix`, sorted by key.
    fn scan_state(
        &self,
        namespace: &str,
        key_prefix: &str,
        now_ms: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, FactsError>;

    /// Funnel steps for a day range: days before the watermark from the published batch run, later days
    /// from the speed partials summed. Every day says which layer answered.
    fn read_funnel(&self, q: &FunnelQuery) -> Result<FunnelAnswer, FactsError>;

    /// Daily counts for a day range, merged the same way (per-metric counts watermark).
    fn read_counts(&self, q: &CountsQuery) -> Result<CountsAnswer, FactsError>;

    /// Every watermark of an app (funnels and counts), sorted by (funnel_id, funnel_version).
    fn watermarks(&self, app_id: &str) -> Result<Vec<Watermark>, FactsError>;

    /// The latest `limit` batch runs, newest first.
    fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, FactsError>;
}
