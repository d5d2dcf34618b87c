//! Daily counts: hits per tracker, events per name, conversions per tracker (on the event's day), as
//! additive per-batch increments keyed like the `daily_counts` fact table.

use std::collections::BTreeMap;

use crate::attribution::Conversion;
use crate::message::{day_of, Message};

pub const METRIC_HITS: &str = "hits";
pub const METRIC_EVENTS: &str = "events";
pub const METRIC_CONVERSIONS: &str = "conversions";
pub const DIM_TRACKER: &str = "tracker";
pub const DIM_NAME: &str = "name";

/// One `daily_counts` key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountKey {
    pub app_id: String,
    /// Days since 1970-01-01 UTC.
    pub day: i32,
    pub metric: &'static str,
    pub dimension: &'static str,
    pub value: String,
}

/// Count increments (a batch's partial aggregate, or a reference total).
pub type Counts = BTreeMap<CountKey, i64>;

/// Adds one valid message to `counts`.
pub fn count_message(counts: &mut Counts, msg: &Message) {
    let key = match msg {
        Message::Hit(h) => CountKey {
            app_id: h.app_id.clone(),
            day: day_of(h.ts_ms),
            metric: METRIC_HITS,
            dimension: DIM_TRACKER,
            value: h.tracker.clone(),
        },
        Message::Event(e) => CountKey {
            app_id: e.app_id.clone(),
            day: day_of(e.ts_ms),
            metric: METRIC_EVENTS,
            dimension: DIM_NAME,
            value: e.name.clone(),
        },
    };
    *counts.entry(key).or_default() += 1;
}

/// Adds one conversion to `counts` (per tracker, on the converting event's day).
pub fn count_conversion(counts: &mut Counts, c: &Conversion) {
    let key = CountKey {
        app_id: c.app_id.clone(),
        day: day_of(c.event_ts_ms),
        metric: METRIC_CONVERSIONS,
        dimension: DIM_TRACKER,
        value: c.tracker.clone(),
    };
    *counts.entry(key).or_default() += 1;
}
