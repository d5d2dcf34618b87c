//! Reading back what the stream wrote: daily counts (speed layer plus whatever batch published), conversion
//! records and dead-letter counters. Used by tests, the benchmark and `funnel stream --report`.

use std::collections::BTreeMap;

use facts::{CountsQuery, FactReader, StateReader, StreamPartition, StreamStore};

use crate::attribution::Conversion;
use crate::batch::{parse_counter, NS_CONVERSION, NS_DEADLETTER};
use crate::counts::{METRIC_CONVERSIONS, METRIC_EVENTS, METRIC_HITS};
use crate::StreamError;

/// `(app_id, day, metric, dimension, value)` → count, the shape of [`crate::reference::Expected::counts`].
pub type CountTable = BTreeMap<(String, i32, String, String, String), i64>;

/// Every count of `app_id` for the three stream metrics, as the store's readers see them. Zero rows are
/// left out.
pub fn read_counts(store: &dyn FactReader, app_id: &str) -> Result<CountTable, StreamError> {
    let mut out = CountTable::new();
    for metric in [METRIC_HITS, METRIC_EVENTS, METRIC_CONVERSIONS] {
        let mut q = CountsQuery::new(app_id, metric);
        q.breakdown = true;
        let answer = store.read_counts(&q)?;
        for day in answer.days {
            for v in day.values {
                if v.count == 0 {
                    continue;
                }
                let value = v.value.unwrap_or_default();
                *out.entry((
                    app_id.to_string(),
                    day.day.0,
                    metric.to_string(),
                    v.dimension,
                    value,
                ))
                .or_default() += v.count;
            }
        }
    }
    Ok(out)
}

/// The key prefix of everything of one app in [`NS_PENDING`] / [`NS_CONVERSION`].
fn app_prefix(app_id: &str) -> String {
    let full = serde_json::json!([app_id]).to_string();
    // `["a1"]` → `["a1",`
    format!("{},", &full[..full.len() - 1])
}

/// The conversion records of an app (all of them when `app_id` is `None`), in key order.
pub fn read_conversions(
    store: &dyn StateReader,
    app_id: Option<&str>,
) -> Result<Vec<Conversion>, StreamError> {
    let prefix = app_id.map(app_prefix).unwrap_or_default();
    store
        .scan_state(NS_CONVERSION, &prefix, 0)?
        .into_iter()
        .map(|(key, bytes)| {
            serde_json::from_slice(&bytes).map_err(|e| StreamError::CorruptState {
                namespace: NS_CONVERSION,
                key,
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Dead letters counted (exactly once, with the batches) by a consumer group on a topic, per reason, over
/// all the partitions the group committed (each partition owns its counters).
pub fn read_dead_letter_counts(
    store: &dyn StreamStore,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<String, u64>, StreamError> {
    let mut out = BTreeMap::new();
    for (partition, _) in store.committed_offsets(group, topic)? {
        let owner = StreamPartition::new(group, topic, partition);
        // `["topic",partition]` → `["topic",partition,`: this partition's keys only.
        let full = serde_json::json!([topic, partition]).to_string();
        let prefix = format!("{},", &full[..full.len() - 1]);
        for (key, bytes) in store.scan_owned_state(&owner, NS_DEADLETTER, &prefix, 0)? {
            let reason = serde_json::from_str::<(String, i32, String)>(&key)
                .map(|k| k.2)
                .unwrap_or(key.clone());
            let n = parse_counter(&bytes).ok_or_else(|| StreamError::CorruptState {
                namespace: NS_DEADLETTER,
                key,
                reason: "not a decimal counter".into(),
            })?;
            *out.entry(reason).or_default() += n;
        }
    }
    Ok(out)
}
