//! Partial facts of sharded batch runs: each shard of a run (`funnel run --shard I/N --run-name R`)
//! stores its partial aggregate here, atomically, replacing its own earlier attempt; once all `N`
//! partials of `R` are present they are merged and published as one ordinary batch run
//! ([`crate::BatchPublisher`]), and the store records which attempts that run was made of.
//!
//! The store keeps a partial's body as bytes it does not interpret (the funnelizer's lossless encoding of
//! per-cell actors and exact time-to-convert histograms); it checks only that every shard of a run has
//! the same shard count and the same *identity* (funnel set, `--now`, partitioner, …), and refuses a
//! partial that would mix two different runs under one name.

use serde_json::Value;

use crate::error::FactsError;
use crate::model::RunId;

/// One shard's partial facts, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardPartial {
    /// What the shard's head holds.
    pub head: PartialHead,
    /// The encoded partial aggregate.
    pub body: Vec<u8>,
}

/// A partial without its body: who wrote it and what it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialHead {
    /// The sharded run's name (`--run-name`).
    pub run_name: String,
    /// 1-based shard number.
    pub shard: u32,
    /// Shards of the run.
    pub shards: u32,
    /// What every shard of the run must share (a JSON object); a partial whose identity differs from
    /// another shard's is refused ([`FactsError::ShardMismatch`]).
    pub identity: Value,
    /// Unique per attempt of the shard: a retry writes a new attempt that replaces the old one.
    pub attempt: String,
    /// The shard's own inputs: token spans, SSTables, apps, counters (JSON).
    pub inputs: Value,
    /// Bytes of the body.
    pub body_bytes: u64,
    /// When it was written (Unix ms).
    pub written_at_ms: i64,
}

/// The published run a complete set of partials was merged into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finalized {
    /// The batch run.
    pub run: RunId,
    /// The attempts merged, one per shard in shard order, joined by `,`.
    pub attempts: String,
    /// When (Unix ms).
    pub at_ms: i64,
}

/// Stores the partials of sharded runs.
///
/// Contract: [`ShardStore::put_partial`] is atomic (a reader sees the shard's previous attempt or the
/// new one whole) and refuses a partial whose shard count or identity differs from a partial of another
/// shard of the same run name; a partial of the same shard replaces it whatever it held.
pub trait ShardStore: Send + Sync {
    /// Store (or replace) one shard's partial.
    fn put_partial(&self, partial: &ShardPartial) -> Result<(), FactsError>;

    /// The heads of every partial of `run_name`, in shard order.
    fn partial_heads(&self, run_name: &str) -> Result<Vec<PartialHead>, FactsError>;

    /// The body of one attempt of a shard (`None`: replaced or never written).
    fn partial_body(
        &self,
        run_name: &str,
        shard: u32,
        attempt: &str,
    ) -> Result<Option<Vec<u8>>, FactsError>;

    /// The last finalization of `run_name`, if any.
    fn finalized(&self, run_name: &str) -> Result<Option<Finalized>, FactsError>;

    /// Records that `run_name`'s partials `f.attempts` were published as `f.run`.
    fn record_finalized(&self, run_name: &str, f: &Finalized) -> Result<(), FactsError>;
}

/// Why `theirs` (shard `other`) cannot share a run with `mine`, or `None` when they agree.
pub(crate) fn conflict(mine: &PartialHead, theirs: &PartialHead) -> Option<FactsError> {
    let differ = |field: String| FactsError::ShardMismatch {
        run_name: mine.run_name.clone(),
        shard: mine.shard,
        other: theirs.shard,
        field,
    };
    if mine.shards != theirs.shards {
        return Some(differ(format!(
            "shard count ({} here, {} there)",
            mine.shards, theirs.shards
        )));
    }
    if mine.identity == theirs.identity {
        return None;
    }
    let empty = serde_json::Map::new();
    let (a, b) = (
        mine.identity.as_object().unwrap_or(&empty),
        theirs.identity.as_object().unwrap_or(&empty),
    );
    let field = a
        .iter()
        .find(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .or_else(|| b.keys().find(|k| !a.contains_key(*k)).cloned())
        .unwrap_or_else(|| "identity".into());
    let show = |v: Option<&Value>| v.map_or("(none)".to_string(), Value::to_string);
    Some(differ(format!(
        "{field} ({} here, {} there)",
        show(a.get(&field)),
        show(b.get(&field))
    )))
}
