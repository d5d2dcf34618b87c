//! `stream`: the speed layer. Consumes hits and SDK events (JSON, one per Kafka message — see
//! `docs/STREAM.md`) and keeps, within seconds, `daily_counts` (hits per tracker, events per name,
//! conversions per tracker) and hit→event conversions in the shared fact store, exactly once.
//!
//! # How it fits together
//! - [`message`]: strict parsing; anything else is a [`message::Poison`] with a reason.
//! - [`fingerprint`]: normalised (IP, user agent) and the partition key producers must use.
//! - [`attribution`]: the matching rule on one key's pending hits/events ([`attribution::Bucket`]);
//!   [`reference`] is the same rule by brute force, the specification tests compare against.
//! - [`batch`]: one partition's batch folded into a [`facts::SpeedBatch`] (counts, conversions, pending
//!   state, dead-letter counters, next offset), applied by the store in one transaction.
//! - [`consumer`]: the Kafka side (rdkafka + tokio): consumer group, one task per assigned partition,
//!   resume from the store's offsets on assignment, rewind on conflicts, graceful shutdown.
//! - [`raw`] (feature `cql`, on by default): each valid hit/event as a row of `tracking.hits` /
//!   `tracking.events` in Cassandra/Scylla (`--raw URL`), written before the batch is applied.
//! - [`readback`]: what the stream wrote, read back (counts, conversions, dead-letter counters).
//! - [`check`]: the invariant records = counted conversions (`funnel status` reports a mismatch).
//! - [`synth`]: deterministic synthetic traffic (tests, benchmark).
//! - [`deadletter`], [`metrics`], [`config`].
//!
//! # Exactly once
//! A batch's facts, state changes and next offset are one `apply_speed_batch` transaction keyed by
//! `(group, topic, partition, first_offset)`; Kafka offsets are committed only afterwards (for lag tools — the
//! store is the source of truth). With raw rows on, a batch's raw rows (idempotent upserts) are written
//! before that transaction; if they cannot be written the batch is not applied and is retried. On assignment each partition starts at the store's offset. A batch the
//! store refuses (applied before, or overlapping what another consumer applied) makes the partition rewind
//! to the store's offset and drop what it had built.
//!
//! # Copies
//! Kafka delivers at least once and producers retry, so a hit or event may arrive more than once. A valid
//! message whose (app, hit id) / (app, event id) was applied within the dedupe window is dropped before it
//! touches counts, conversions or raw rows (`funnel_stream_duplicates_total`); the ids are state written
//! with the batch ([`facts::SpeedBatch::seen_ids`]). See `docs/STREAM.md` for the exact window.
//!
//! # State and its expiry
//! Pending hits/events live in the store's stream state (namespace `pending`, one entry per
//! (app, fingerprint)), written with the batch. What a key forgets is decided by the rule in
//! [`attribution`] (event time only), so results do not depend on wall-clock time; the store's expiry
//! (`expires_at_ms`) is garbage collection only and is set to at least one hit horizon (window + late
//! arrival, 8 days by default) of wall-clock time after the last write. Consequence: replaying a backlog
//! after the stream was down longer than that horizon can miss matches the reference would find.
//!
//! # Ordering this relies on
//! Conversions are decided per (app, fingerprint) key in that key's arrival order. Producers must key
//! every hit and event with [`fingerprint::partition_key`], so a key lives on one partition, in one order,
//! and the answer does not depend on batching, concurrency, restarts or rebalances.

pub mod attribution;
pub mod batch;
pub mod check;
pub mod config;
pub mod consumer;
pub mod counts;
mod cutter;
pub mod deadletter;
pub mod fingerprint;
pub mod message;
pub mod metrics;
#[cfg(feature = "cql")]
pub mod raw;
pub mod readback;
pub mod reference;
pub mod synth;
mod watermark;

pub use attribution::{Bucket, Conversion, MatchKind};
pub use batch::{BatchBuilder, BatchSummary};
pub use check::{check_conversions, ConversionCheck};
pub use config::{AppAttribution, AttributionConfig, Policy};
pub use consumer::{run, AppliedBatch, StartFrom, StreamOptions};
pub use deadletter::{DeadLetter, DeadLetterSink};
pub use fingerprint::{fingerprint, partition_key};
pub use message::{Event, Hit, Message, Poison, PoisonReason};
pub use metrics::Metrics;
pub use readback::{read_conversions, read_counts, read_dead_letter_counts, CountTable};

/// Errors of the stream. Poison messages are not errors (they are counted and dead-lettered).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    #[error("fact store: {0}")]
    Store(#[from] facts::FactsError),
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("config: {0}")]
    Config(String),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("dead-letter sink: {0}")]
    DeadLetter(String),
    #[error("encoding state: {0}")]
    Encode(serde_json::Error),
    #[error("stored state {namespace}/{key} is unreadable: {reason}")]
    CorruptState {
        namespace: &'static str,
        key: String,
        reason: String,
    },
    #[error("partition {partition}: offset {offset} arrived after {expected} was expected")]
    OffsetOrder {
        partition: i32,
        offset: i64,
        expected: i64,
    },
    #[error("task failed: {0}")]
    Task(String),
    /// Raw rows could not be written; the batch was not applied (it is retried).
    #[cfg(feature = "cql")]
    #[error("{0}; the batch was not applied")]
    Raw(#[from] raw::RawError),
}
