//! The stream state's invariant, checked: one conversion record (state namespace `conversion`) per
//! conversion counted in `daily_counts` (`conversions` per tracker, on the converting event's day). Both are
//! written by the same batch transaction, so any difference means records were lost or overwritten.
//! `funnel status` runs it and reports a mismatch.

use std::collections::{BTreeMap, BTreeSet};

use facts::{CountsQuery, Day, FactReader, Layer, StateReader};
use serde::Serialize;

use crate::counts::METRIC_CONVERSIONS;
use crate::message::day_of;
use crate::readback::read_conversions;
use crate::StreamError;

/// One (app, day, tracker) whose records and counted conversions differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    pub app_id: String,
    pub day: Day,
    pub tracker: String,
    pub records: i64,
    pub counted: i64,
}

/// The outcome of [`check_conversions`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConversionCheck {
    /// Apps checked: every app with a record, plus those asked for.
    pub apps: Vec<String>,
    /// Conversion records on the days checked.
    pub records: i64,
    /// Conversions counted on the days checked.
    pub counted: i64,
    pub mismatches: Vec<Mismatch>,
}

impl ConversionCheck {
    pub fn is_consistent(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Compares the conversion records with the counted conversions per (app, day, tracker), on the days the
/// speed layer answers (a day published by a batch run is its run's, not the stream's).
pub fn check_conversions<S: FactReader + StateReader>(
    store: &S,
    apps: &[String],
) -> Result<ConversionCheck, StreamError> {
    let mut records: BTreeMap<(String, i32, String), i64> = BTreeMap::new();
    for c in read_conversions(store, None)? {
        *records
            .entry((c.app_id, day_of(c.event_ts_ms), c.tracker))
            .or_default() += 1;
    }
    let all_apps: BTreeSet<String> = records
        .keys()
        .map(|k| k.0.clone())
        .chain(apps.iter().cloned())
        .collect();
    let mut counted: BTreeMap<(String, i32, String), i64> = BTreeMap::new();
    let mut batch_days: BTreeSet<(String, i32)> = BTreeSet::new();
    for app in &all_apps {
        let mut q = CountsQuery::new(app, METRIC_CONVERSIONS);
        q.breakdown = true;
        for day in store.read_counts(&q)?.days {
            if day.layer == Layer::Batch {
                batch_days.insert((app.clone(), day.day.0));
                continue;
            }
            for v in day.values {
                *counted
                    .entry((app.clone(), day.day.0, v.value.unwrap_or_default()))
                    .or_default() += v.count;
            }
        }
    }
    let mut out = ConversionCheck {
        apps: all_apps.into_iter().collect(),
        ..Default::default()
    };
    let keys: BTreeSet<_> = records.keys().chain(counted.keys()).cloned().collect();
    for key in keys {
        if batch_days.contains(&(key.0.clone(), key.1)) {
            continue;
        }
        let r = records.get(&key).copied().unwrap_or(0);
        let c = counted.get(&key).copied().unwrap_or(0);
        out.records += r;
        out.counted += c;
        if r != c {
            out.mismatches.push(Mismatch {
                app_id: key.0,
                day: Day(key.1),
                tracker: key.2,
                records: r,
                counted: c,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::tests::apply_batch;
    use crate::batch::NS_CONVERSION;
    use crate::synth::{generate, with_copies, TrafficSpec};
    use crate::AttributionConfig;
    use facts::{SpeedBatch, StreamSink};

    /// After random traffic with copies, records = counts; a lost record and an extra count are both
    /// reported, on their day and tracker.
    #[test]
    fn records_equal_counts_and_a_difference_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            facts::open_store(&format!("sqlite:{}", dir.path().join("f.db").display())).unwrap();
        let cfg = AttributionConfig::default();
        let traffic = with_copies(&generate(&TrafficSpec::new(7, 150)), 7, 2, 20);
        let mut offset = 0i64;
        for chunk in traffic.chunks(25) {
            apply_batch(&store, &cfg, chunk, &mut offset);
        }
        let check = check_conversions(&store, &[]).unwrap();
        assert!(check.records > 20, "the traffic must convert: {check:?}");
        assert_eq!(check.records, check.counted);
        assert!(check.is_consistent(), "{check:?}");
        assert_eq!(check.apps, ["a1", "a2"]);

        // Lose one record (as the old key, without the event id, could overwrite one).
        let (key, _) = store.scan_state(NS_CONVERSION, "", 0).unwrap().remove(0);
        let lost = read_conversions(&store, None).unwrap().remove(0);
        let batch = SpeedBatch {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            first_offset: offset,
            next_offset: offset + 1,
            state_deletes: vec![(NS_CONVERSION.into(), key)],
            ..Default::default()
        };
        assert!(store.apply_speed_batch(&batch).unwrap());
        let check = check_conversions(&store, &[]).unwrap();
        assert_eq!(check.counted - check.records, 1);
        assert_eq!(
            check.mismatches,
            [Mismatch {
                app_id: lost.app_id.clone(),
                day: Day(day_of(lost.event_ts_ms)),
                tracker: lost.tracker.clone(),
                records: check.mismatches[0].records,
                counted: check.mismatches[0].records + 1,
            }]
        );
    }
}
