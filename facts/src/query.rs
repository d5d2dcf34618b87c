//! What a reader asks (`FunnelQuery`, `CountsQuery`) and what the lambda merge answers.

use serde::{Deserialize, Serialize};

use crate::day::Day;
use crate::model::{Layer, RunId};

/// A funnel over a day range. Days are entry days; `from`/`to` are both included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelQuery {
    pub app_id: String,
    pub funnel_id: String,
    /// `None`: the version of the funnel's most recently published watermark; with no watermark, the only
    /// version the speed layer has (several → [`crate::FactsError::AmbiguousVersion`]).
    pub funnel_version: Option<String>,
    /// First day; `None` = the first day with data.
    pub from: Option<Day>,
    /// Last day (included); `None` = the last day with data (of either layer: a watermark past the data
    /// does not add empty days).
    pub to: Option<Day>,
    /// `true`: one value per breakdown; `false`: breakdowns summed into one value per step (`breakdown` = "").
    pub breakdown: bool,
}

impl FunnelQuery {
    /// All days, breakdowns summed, the current version.
    pub fn new(app_id: &str, funnel_id: &str) -> FunnelQuery {
        FunnelQuery {
            app_id: app_id.to_string(),
            funnel_id: funnel_id.to_string(),
            funnel_version: None,
            from: None,
            to: None,
            breakdown: false,
        }
    }
}

/// Freshness of both layers, as an answer reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// Batch results are complete for days before this; `None` = no batch run published yet.
    pub watermark: Option<Day>,
    /// The published run the batch days come from.
    pub batch_run: Option<RunId>,
    /// When that run was published (Unix ms).
    pub batch_published_at_ms: Option<i64>,
    /// When the stream last applied a batch to this store (Unix ms); `None` = never.
    pub speed_applied_at_ms: Option<i64>,
}

/// One step value of one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepValue {
    /// `""` when breakdowns are summed or the funnel has none.
    pub breakdown: String,
    pub step: u32,
    pub actors: u64,
    /// Exact for batch days with one row per value (and, breakdowns summed, where the run published the
    /// all-breakdowns total, [`crate::FunnelTotalFact`]); `None` for speed days (medians of partial
    /// aggregates cannot be merged exactly) and when several breakdowns are summed without a total.
    pub ttc_median_s: Option<f64>,
    pub ttc_p90_s: Option<f64>,
}

/// One day of a funnel answer and the layer that answered it. `steps` is empty when that layer has no row
/// for the day (no actor entered, or the speed side has not covered it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelDay {
    pub day: Day,
    pub layer: Layer,
    /// Sorted by (breakdown, step).
    pub steps: Vec<StepValue>,
}

/// The merged funnel: every day of the range, each from the layer the watermark assigns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelAnswer {
    pub app_id: String,
    pub funnel_id: String,
    pub funnel_version: String,
    pub freshness: Freshness,
    /// Consecutive days, ascending.
    pub days: Vec<FunnelDay>,
}

/// Daily counts of one metric over a day range (`from`/`to` included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountsQuery {
    pub app_id: String,
    /// `"hits"`, `"events"`, `"conversions"` (any metric the writers used).
    pub metric: String,
    /// Only this dimension (`"tracker"`, `"name"`); `None` = all.
    pub dimension: Option<String>,
    pub from: Option<Day>,
    pub to: Option<Day>,
    /// `true`: one count per value; `false`: one total per dimension (`value` = `None`).
    pub breakdown: bool,
}

impl CountsQuery {
    /// All days, totals per dimension.
    pub fn new(app_id: &str, metric: &str) -> CountsQuery {
        CountsQuery {
            app_id: app_id.to_string(),
            metric: metric.to_string(),
            dimension: None,
            from: None,
            to: None,
            breakdown: false,
        }
    }
}

/// One count of one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountValue {
    pub dimension: String,
    /// `None` when values are summed into a total.
    pub value: Option<String>,
    pub count: i64,
}

/// One day of a counts answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountsDay {
    pub day: Day,
    pub layer: Layer,
    /// Sorted by (dimension, value).
    pub values: Vec<CountValue>,
}

/// The merged counts of one metric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountsAnswer {
    pub app_id: String,
    pub metric: String,
    pub freshness: Freshness,
    pub days: Vec<CountsDay>,
}
