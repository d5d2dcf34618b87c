//! The lambda merge, shared by every backend: which days each layer answers, and how rows become days.
//!
//! Rule: with watermark `w`, days `< w` come from the published batch run and days `>= w` from the speed
//! partials summed; with no watermark every day is a speed day. Speed rows below `w` are ignored (and
//! garbage-collected by `publish`). Backends fetch each layer only over its own range ([`split`]) and hand
//! the rows to [`merge_funnel`] / [`merge_counts`], which filter again, so a backend bug cannot leak rows
//! of the wrong layer into an answer.

use std::collections::{BTreeMap, BTreeSet};

use crate::day::Day;
use crate::error::FactsError;
use crate::model::{DailyCountFact, FunnelStepFact, Layer};
use crate::query::{CountValue, CountsDay, CountsQuery, FunnelDay, FunnelQuery, StepValue};
use crate::ALL_BREAKDOWNS;

/// Longest range one answer spans (100 years), so a typo in a bound cannot make a billion empty days.
pub const MAX_DAYS: i32 = 36_600;

/// Inclusive day ranges each layer answers for a query range and a watermark (`None` = that layer answers
/// no day of the range). Open bounds become [`Day::FIRST`] / [`Day::LAST`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub batch: Option<(Day, Day)>,
    pub speed: Option<(Day, Day)>,
}

/// Split `[from, to]` at the watermark.
pub fn split(from: Option<Day>, to: Option<Day>, watermark: Option<Day>) -> Split {
    let lo = from.unwrap_or(Day::FIRST).max(Day::FIRST);
    let hi = to.unwrap_or(Day::LAST).min(Day::LAST);
    let nonempty = |a: Day, b: Day| (a <= b).then_some((a, b));
    match watermark {
        None => Split {
            batch: None,
            speed: nonempty(lo, hi),
        },
        Some(w) => Split {
            batch: nonempty(lo, hi.min(w.plus(-1))),
            speed: nonempty(lo.max(w), hi),
        },
    }
}

fn layer_of(day: Day, watermark: Option<Day>) -> Layer {
    match watermark {
        Some(w) if day < w => Layer::Batch,
        _ => Layer::Speed,
    }
}

fn in_range(day: Day, from: Option<Day>, to: Option<Day>) -> bool {
    from.is_none_or(|f| day >= f) && to.is_none_or(|t| day <= t)
}

/// The days an answer lists: `[from, to]`, open ends taken from the data (and, for `to`, at least up to the
/// last batch-complete day, whose absence of rows is itself an answer: zero).
fn day_span(
    from: Option<Day>,
    to: Option<Day>,
    watermark: Option<Day>,
    data: impl Iterator<Item = Day> + Clone,
) -> Result<Option<(Day, Day)>, FactsError> {
    let lo = from.or_else(|| data.clone().min());
    let hi = to.or_else(|| {
        let last_complete = watermark.map(|w| w.plus(-1));
        data.max().max(last_complete)
    });
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Ok(None);
    };
    if hi < lo {
        return Ok(None);
    }
    if (hi.0 as i64 - lo.0 as i64) >= MAX_DAYS as i64 {
        return Err(FactsError::Invalid {
            what: "day range (longer than 36600 days)",
            value: format!("{lo}..{hi}"),
        });
    }
    Ok(Some((lo, hi)))
}

#[derive(Default)]
struct StepAcc {
    actors: u64,
    rows: u32,
    ttc_median_s: Option<f64>,
    ttc_p90_s: Option<f64>,
}

/// Merge batch rows (of the published run) and speed partial rows into the days of a funnel answer.
///
/// Batch days: one row per (breakdown, step) is exact, time-to-convert included. Without `breakdown`, a
/// (day, step) with an all-breakdowns total row ([`crate::ALL_BREAKDOWNS`]) is answered by that row alone
/// (exact); otherwise breakdowns are summed, keeping time-to-convert only where a single breakdown row
/// contributes. With `breakdown`, total rows are not listed. Speed days: `actors` of all partial rows
/// summed; time-to-convert is `None` (a median of partial aggregates cannot be merged exactly).
pub fn merge_funnel(
    q: &FunnelQuery,
    watermark: Option<Day>,
    batch: impl IntoIterator<Item = FunnelStepFact>,
    speed: impl IntoIterator<Item = FunnelStepFact>,
) -> Result<Vec<FunnelDay>, FactsError> {
    let mut acc: BTreeMap<(Day, String, u32), StepAcc> = BTreeMap::new();
    let batch: Vec<FunnelStepFact> = batch
        .into_iter()
        .filter(|r| layer_of(r.day, watermark) == Layer::Batch)
        .collect();
    // (day, step) of the batch that have an all-breakdowns total (used only without `breakdown`).
    let totals: BTreeSet<(Day, u32)> = if q.breakdown {
        BTreeSet::new()
    } else {
        batch
            .iter()
            .filter(|r| r.breakdown == ALL_BREAKDOWNS)
            .map(|r| (r.day, r.step))
            .collect()
    };
    let batch = batch
        .into_iter()
        .filter(|r| {
            if r.breakdown == ALL_BREAKDOWNS {
                !q.breakdown
            } else {
                !totals.contains(&(r.day, r.step))
            }
        })
        .map(|r| (Layer::Batch, r));
    let speed = speed
        .into_iter()
        .filter(|r| layer_of(r.day, watermark) == Layer::Speed)
        .map(|r| (Layer::Speed, r));
    for (layer, r) in batch.chain(speed) {
        if !in_range(r.day, q.from, q.to) {
            continue;
        }
        let breakdown = if q.breakdown {
            r.breakdown
        } else {
            String::new()
        };
        let a = acc.entry((r.day, breakdown, r.step)).or_default();
        a.actors = a.actors.saturating_add(r.actors);
        a.rows += 1;
        if layer == Layer::Batch && a.rows == 1 {
            a.ttc_median_s = r.ttc_median_s;
            a.ttc_p90_s = r.ttc_p90_s;
        } else {
            a.ttc_median_s = None;
            a.ttc_p90_s = None;
        }
    }
    let Some((lo, hi)) = day_span(q.from, q.to, watermark, acc.keys().map(|k| k.0))? else {
        return Ok(Vec::new());
    };
    let mut days: Vec<FunnelDay> = lo
        .through(hi)
        .map(|day| FunnelDay {
            day,
            layer: layer_of(day, watermark),
            steps: Vec::new(),
        })
        .collect();
    for ((day, breakdown, step), a) in acc {
        let Some(slot) = days.get_mut((day.0 - lo.0) as usize) else {
            continue;
        };
        slot.steps.push(StepValue {
            breakdown,
            step,
            actors: a.actors,
            ttc_median_s: a.ttc_median_s,
            ttc_p90_s: a.ttc_p90_s,
        });
    }
    Ok(days)
}

/// Merge batch rows and speed partial rows into the days of a counts answer: counts of a (day, dimension,
/// value) are summed within the layer that owns the day; without `breakdown`, values are summed per
/// dimension. Rows of other metrics, dimensions or apps are ignored.
pub fn merge_counts(
    q: &CountsQuery,
    watermark: Option<Day>,
    batch: impl IntoIterator<Item = DailyCountFact>,
    speed: impl IntoIterator<Item = DailyCountFact>,
) -> Result<Vec<CountsDay>, FactsError> {
    let mut acc: BTreeMap<(Day, String, Option<String>), i64> = BTreeMap::new();
    let batch = batch
        .into_iter()
        .filter(|r| layer_of(r.day, watermark) == Layer::Batch);
    let speed = speed
        .into_iter()
        .filter(|r| layer_of(r.day, watermark) == Layer::Speed);
    for r in batch.chain(speed) {
        if r.app_id != q.app_id
            || r.metric != q.metric
            || q.dimension.as_ref().is_some_and(|d| *d != r.dimension)
            || !in_range(r.day, q.from, q.to)
        {
            continue;
        }
        let value = q.breakdown.then_some(r.value);
        let c = acc.entry((r.day, r.dimension, value)).or_default();
        *c = c.saturating_add(r.count);
    }
    let Some((lo, hi)) = day_span(q.from, q.to, watermark, acc.keys().map(|k| k.0))? else {
        return Ok(Vec::new());
    };
    let mut days: Vec<CountsDay> = lo
        .through(hi)
        .map(|day| CountsDay {
            day,
            layer: layer_of(day, watermark),
            values: Vec::new(),
        })
        .collect();
    for ((day, dimension, value), count) in acc {
        let Some(slot) = days.get_mut((day.0 - lo.0) as usize) else {
            continue;
        };
        slot.values.push(CountValue {
            dimension,
            value,
            count,
        });
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(day: i32, breakdown: &str, step: u32, actors: u64, med: Option<f64>) -> FunnelStepFact {
        FunnelStepFact {
            app_id: "a".into(),
            funnel_id: "f".into(),
            funnel_version: "1".into(),
            day: Day(day),
            breakdown: breakdown.into(),
            step,
            actors,
            ttc_median_s: med,
            ttc_p90_s: med.map(|m| m * 2.0),
        }
    }

    fn count(day: i32, dim: &str, value: &str, n: i64) -> DailyCountFact {
        DailyCountFact {
            app_id: "a".into(),
            day: Day(day),
            metric: "hits".into(),
            dimension: dim.into(),
            value: value.into(),
            count: n,
        }
    }

    #[test]
    fn split_at_watermark() {
        let s = split(Some(Day(10)), Some(Day(20)), Some(Day(15)));
        assert_eq!(s.batch, Some((Day(10), Day(14))));
        assert_eq!(s.speed, Some((Day(15), Day(20))));
        let s = split(Some(Day(10)), Some(Day(20)), Some(Day(30)));
        assert_eq!(s.batch, Some((Day(10), Day(20))));
        assert_eq!(s.speed, None);
        let s = split(Some(Day(10)), Some(Day(20)), Some(Day(5)));
        assert_eq!(s.batch, None);
        assert_eq!(s.speed, Some((Day(10), Day(20))));
        let s = split(None, None, None);
        assert_eq!(s.batch, None);
        assert_eq!(s.speed, Some((Day::FIRST, Day::LAST)));
    }

    #[test]
    fn funnel_days_take_the_owning_layer_only() {
        let q = FunnelQuery::new("a", "f");
        let batch = vec![step(1, "", 1, 10, Some(0.0)), step(2, "", 1, 7, Some(0.0))];
        // A speed row on day 2 (below the watermark) must be ignored; day 3 sums two partials.
        let speed = vec![
            step(2, "", 1, 100, None),
            step(3, "", 1, 4, Some(9.0)),
            step(3, "", 1, 5, None),
        ];
        let days = merge_funnel(&q, Some(Day(3)), batch, speed).unwrap();
        assert_eq!(days.len(), 3);
        assert_eq!((days[0].layer, days[0].steps[0].actors), (Layer::Batch, 10));
        assert_eq!((days[1].layer, days[1].steps[0].actors), (Layer::Batch, 7));
        assert_eq!((days[2].layer, days[2].steps[0].actors), (Layer::Speed, 9));
        assert_eq!(days[2].steps[0].ttc_median_s, None);
        assert_eq!(days[0].steps[0].ttc_median_s, Some(0.0));
    }

    #[test]
    fn the_all_breakdowns_total_answers_without_breakdown_and_is_never_listed() {
        let batch = vec![
            step(1, "ios", 2, 3, Some(5.0)),
            step(1, "android", 2, 4, Some(7.0)),
            step(1, ALL_BREAKDOWNS, 2, 7, Some(6.0)),
            // Day 2 has no total (an older run): summed, no time-to-convert.
            step(2, "ios", 2, 1, Some(1.0)),
            step(2, "android", 2, 1, Some(2.0)),
        ];
        let mut q = FunnelQuery::new("a", "f");
        let days = merge_funnel(&q, Some(Day(3)), batch.clone(), vec![]).unwrap();
        let s = &days[0].steps;
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].breakdown.as_str(), s[0].actors, s[0].ttc_median_s),
            ("", 7, Some(6.0))
        );
        assert_eq!(s[0].ttc_p90_s, Some(12.0));
        let s = &days[1].steps;
        assert_eq!((s[0].actors, s[0].ttc_median_s), (2, None));
        q.breakdown = true;
        let days = merge_funnel(&q, Some(Day(3)), batch, vec![]).unwrap();
        let listed: Vec<_> = days[0]
            .steps
            .iter()
            .map(|s| (s.breakdown.as_str(), s.actors, s.ttc_median_s))
            .collect();
        assert_eq!(listed, [("android", 4, Some(7.0)), ("ios", 3, Some(5.0))]);
    }

    #[test]
    fn summing_breakdowns_keeps_ttc_only_for_a_single_row() {
        let batch = vec![
            step(1, "ios", 2, 3, Some(5.0)),
            step(1, "android", 2, 4, Some(7.0)),
            step(1, "ios", 3, 1, Some(50.0)),
        ];
        let mut q = FunnelQuery::new("a", "f");
        let days = merge_funnel(&q, Some(Day(2)), batch.clone(), vec![]).unwrap();
        let s = &days[0].steps;
        assert_eq!((s[0].step, s[0].actors, s[0].ttc_median_s), (2, 7, None));
        assert_eq!(
            (s[1].step, s[1].actors, s[1].ttc_median_s),
            (3, 1, Some(50.0))
        );
        q.breakdown = true;
        let days = merge_funnel(&q, Some(Day(2)), batch, vec![]).unwrap();
        let s = &days[0].steps;
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].breakdown.as_str(), s[0].actors), ("android", 4));
    }

    #[test]
    fn empty_days_are_listed_with_their_layer() {
        let mut q = FunnelQuery::new("a", "f");
        q.from = Some(Day(0));
        q.to = Some(Day(4));
        let days = merge_funnel(&q, Some(Day(2)), vec![step(1, "", 1, 1, None)], vec![]).unwrap();
        let layers: Vec<_> = days
            .iter()
            .map(|d| (d.day.0, d.layer, d.steps.len()))
            .collect();
        assert_eq!(
            layers,
            vec![
                (0, Layer::Batch, 0),
                (1, Layer::Batch, 1),
                (2, Layer::Speed, 0),
                (3, Layer::Speed, 0),
                (4, Layer::Speed, 0)
            ]
        );
        // Open range: from the first data day to the last batch-complete day.
        let days = merge_funnel(
            &FunnelQuery::new("a", "f"),
            Some(Day(4)),
            vec![step(1, "", 1, 1, None)],
            vec![],
        )
        .unwrap();
        assert_eq!((days[0].day, days.last().unwrap().day), (Day(1), Day(3)));
        assert!(
            merge_funnel(&FunnelQuery::new("a", "f"), None, vec![], vec![])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn absurd_ranges_are_refused() {
        let mut q = FunnelQuery::new("a", "f");
        q.from = Some(Day::FIRST);
        q.to = Some(Day::LAST);
        assert!(merge_funnel(&q, None, vec![], vec![]).is_err());
    }

    #[test]
    fn counts_totals_and_breakdown() {
        let batch = vec![count(1, "tracker", "t1", 3), count(1, "tracker", "t2", 4)];
        let speed = vec![
            count(1, "tracker", "t1", 1000),
            count(2, "tracker", "t1", 1),
            count(2, "tracker", "t1", 2),
            count(2, "tracker", "t2", 5),
        ];
        let mut q = CountsQuery::new("a", "hits");
        let days = merge_counts(&q, Some(Day(2)), batch.clone(), speed.clone()).unwrap();
        assert_eq!(days[0].values[0].count, 7);
        assert_eq!(days[1].values[0].count, 8);
        assert_eq!(days[1].layer, Layer::Speed);
        q.breakdown = true;
        let days = merge_counts(&q, Some(Day(2)), batch, speed).unwrap();
        let v: Vec<_> = days[1]
            .values
            .iter()
            .map(|v| (v.value.clone().unwrap(), v.count))
            .collect();
        assert_eq!(v, vec![("t1".to_string(), 3), ("t2".to_string(), 5)]);
    }
}
