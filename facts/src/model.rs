//! The fact model: rows of `funnel_steps` and `daily_counts`, watermarks, batch runs and speed batches.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::day::Day;
use crate::error::FactsError;
use crate::seen::SeenEntry;

/// `funnel_id` of the watermark rows that cover `daily_counts` (one per app and metric; the metric is stored
/// in `funnel_version`). See [`Watermark::counts`].
pub const COUNTS_WATERMARK_ID: &str = "__counts__";

/// Which side of the lambda architecture wrote a row: the authoritative batch run, or the real-time stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Batch,
    Speed,
}

impl Layer {
    /// `"batch"` or `"speed"`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Batch => "batch",
            Layer::Speed => "speed",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Layer {
    type Err = FactsError;
    fn from_str(s: &str) -> Result<Layer, FactsError> {
        match s {
            "batch" => Ok(Layer::Batch),
            "speed" => Ok(Layer::Speed),
            _ => Err(FactsError::Invalid {
                what: "layer",
                value: s.to_string(),
            }),
        }
    }
}

/// One row of `funnel_steps`: actors of a funnel who entered on `day` (with `breakdown`) and reached `step`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelStepFact {
    pub app_id: String,
    pub funnel_id: String,
    pub funnel_version: String,
    /// Entry day: the day of the chain's first step.
    pub day: Day,
    /// Breakdown value at first touch; `""` when the funnel has no breakdown.
    pub breakdown: String,
    /// 1-based step number.
    pub step: u32,
    pub actors: u64,
    /// Median time (seconds) from step 1 to this step over the chains that reached it.
    pub ttc_median_s: Option<f64>,
    /// 90th percentile of the same.
    pub ttc_p90_s: Option<f64>,
}

/// One row of `funnel_totals`: actors of a funnel with a breakdown who entered on `day` — whatever their
/// breakdown value — and reached `step`, with the exact time-to-convert over all of them (computed from the
/// actors' times, not from the per-breakdown medians). Written by batch runs only; `funnel_steps` never holds
/// a total, so summing its rows over breakdowns counts each actor once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelTotalFact {
    pub app_id: String,
    pub funnel_id: String,
    pub funnel_version: String,
    /// Entry day: the day of the chain's first step.
    pub day: Day,
    /// 1-based step number.
    pub step: u32,
    pub actors: u64,
    /// Median time (seconds) from step 1 to this step over all chains that reached it.
    pub ttc_median_s: Option<f64>,
    /// 90th percentile of the same.
    pub ttc_p90_s: Option<f64>,
}

/// One row of `daily_counts`: e.g. hits per tracker, events per name, conversions per tracker on `day`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyCountFact {
    pub app_id: String,
    pub day: Day,
    /// `"hits"`, `"events"` or `"conversions"`.
    pub metric: String,
    /// `"tracker"` or `"name"`.
    pub dimension: String,
    pub value: String,
    pub count: i64,
}

/// Batch results for `(app_id, funnel_id, funnel_version)` are complete for days `< batch_until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub app_id: String,
    pub funnel_id: String,
    pub funnel_version: String,
    pub batch_until: Day,
}

impl Watermark {
    /// A funnel's watermark.
    pub fn funnel(
        app_id: &str,
        funnel_id: &str,
        funnel_version: &str,
        batch_until: Day,
    ) -> Watermark {
        Watermark {
            app_id: app_id.to_string(),
            funnel_id: funnel_id.to_string(),
            funnel_version: funnel_version.to_string(),
            batch_until,
        }
    }

    /// The watermark of one `daily_counts` metric of an app: `funnel_id` is [`COUNTS_WATERMARK_ID`] and
    /// `funnel_version` is the metric (`"hits"`, `"events"`, `"conversions"`).
    pub fn counts(app_id: &str, metric: &str, batch_until: Day) -> Watermark {
        Watermark::funnel(app_id, COUNTS_WATERMARK_ID, metric, batch_until)
    }

    /// The metric when this is a counts watermark.
    pub fn counts_metric(&self) -> Option<&str> {
        (self.funnel_id == COUNTS_WATERMARK_ID).then_some(self.funnel_version.as_str())
    }
}

/// What a batch run records when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub started_at_ms: i64,
    /// The SSTables read (any JSON the funnelizer likes: paths, sizes, generations).
    pub inputs: serde_json::Value,
    /// `(funnel_id, funnel_version)` computed by the run.
    pub funnels: Vec<(String, String)>,
}

/// A batch run's id. Ids only grow: a later `begin_run` always gets a larger id, even after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a batch run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Staging rows (or crashed and not yet noticed).
    Running,
    /// Its publish began (CQL): some of its watermarks may have moved, so its rows are kept until no
    /// watermark names them. A publish that failed midway leaves the run here.
    Publishing,
    /// Published: its watermarks moved. Its rows stay while some watermark still points at it.
    Published,
    /// `fail_run` was called; its rows are gone.
    Failed,
    /// Its process died without publishing or failing; its rows are gone.
    Abandoned,
}

impl RunStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Publishing => "publishing",
            RunStatus::Published => "published",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = FactsError;
    fn from_str(s: &str) -> Result<RunStatus, FactsError> {
        match s {
            "running" => Ok(RunStatus::Running),
            "publishing" => Ok(RunStatus::Publishing),
            "published" => Ok(RunStatus::Published),
            "failed" => Ok(RunStatus::Failed),
            "abandoned" => Ok(RunStatus::Abandoned),
            _ => Err(FactsError::Invalid {
                what: "run status",
                value: s.to_string(),
            }),
        }
    }
}

/// One batch run as `runs()` reports it (for `funnel status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: RunId,
    pub started_at_ms: i64,
    /// When it was published, failed or found abandoned.
    pub finished_at_ms: Option<i64>,
    pub status: RunStatus,
    pub inputs: serde_json::Value,
    pub funnels: Vec<(String, String)>,
    /// Fact rows staged by the run (funnel steps, totals and daily counts).
    pub rows: u64,
    pub error: Option<String>,
}

/// A key/value entry of the stream's own state (e.g. its pending hits/events index), written atomically with
/// a speed batch. Entries past `expires_at_ms` (wall-clock Unix ms) read as absent and may be purged by any
/// later `apply_speed_batch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    pub namespace: String,
    pub key: String,
    pub value: Vec<u8>,
    pub expires_at_ms: i64,
}

/// One consumed Kafka batch of one partition: its speed-layer facts, state changes and the offset to resume
/// from, applied atomically and idempotently (keyed by `(group, topic, partition, first_offset)`: two
/// consumer groups reading the same topic into one store apply their batches independently).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SpeedBatch {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// Offset of the batch's first message.
    pub first_offset: i64,
    /// Offset to consume next (last message's offset + 1).
    pub next_offset: i64,
    /// Partial counts; summed with other batches' at read time.
    pub daily_counts: Vec<DailyCountFact>,
    /// Partial funnel steps; `actors` are summed with other batches', time-to-convert is not kept.
    pub funnel_steps: Vec<FunnelStepFact>,
    pub state_puts: Vec<StateEntry>,
    /// `(namespace, key)` to delete.
    pub state_deletes: Vec<(String, String)>,
    /// Ids the batch applies, remembered (with their message's offset as their [`crate::SeenBy`]) until
    /// they expire.
    pub seen_ids: Vec<SeenEntry>,
    /// Namespaces of `state_puts` / `state_deletes` the batch's Kafka partition owns: only this partition's
    /// consumer reads or writes them (the stream's pending buckets and dead-letter counters), through
    /// [`crate::StateReader::get_owned_states`]. A backend may keep them with the partition's offset (CQL:
    /// inside the partition's conditional commit); other namespaces are shared by all partitions.
    pub owned_namespaces: Vec<String>,
}

/// A Kafka partition as a consumer group reads it: what owns the state of
/// [`SpeedBatch::owned_namespaces`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct StreamPartition {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

impl StreamPartition {
    pub fn new(group: &str, topic: &str, partition: i32) -> StreamPartition {
        StreamPartition {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
        }
    }
}

impl SpeedBatch {
    /// The Kafka partition (of its consumer group) the batch belongs to.
    pub fn owner(&self) -> StreamPartition {
        StreamPartition::new(&self.group, &self.topic, self.partition)
    }

    /// Whether a state namespace is owned by the batch's partition.
    pub fn owns(&self, namespace: &str) -> bool {
        self.owned_namespaces.iter().any(|n| n == namespace)
    }

    /// Refuses a batch whose offsets run backwards.
    pub(crate) fn check_offsets(&self) -> Result<(), FactsError> {
        if self.next_offset < self.first_offset {
            return Err(FactsError::Invalid {
                what: "speed batch offsets (next_offset < first_offset)",
                value: format!("{}..{}", self.first_offset, self.next_offset),
            });
        }
        Ok(())
    }

    /// Whether to apply this batch, given whether its marker exists and the group's committed offset of its
    /// partition: not when applied before, nor when it lies wholly below the committed offset (consumed
    /// before; its marker was pruned or expired); an error when it starts below the committed offset and
    /// ends above it. Offset gaps are allowed.
    pub(crate) fn should_apply(
        &self,
        seen: bool,
        committed: Option<i64>,
    ) -> Result<bool, FactsError> {
        if seen
            || committed
                .is_some_and(|c| self.next_offset <= c && self.next_offset > self.first_offset)
        {
            return Ok(false);
        }
        if let Some(c) = committed.filter(|c| *c > self.first_offset) {
            return Err(FactsError::OffsetOverlap {
                group: self.group.clone(),
                topic: self.topic.clone(),
                partition: self.partition,
                first_offset: self.first_offset,
                committed: c,
            });
        }
        Ok(true)
    }
}
