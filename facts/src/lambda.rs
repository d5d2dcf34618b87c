//! The lambda merge, shared by every backend: which days each layer answers, and how rows become days.
//!
//! Rule: with watermark `w`, days `< w` come from the published batch run and days `>= w` from the speed
//! partials summed; with no watermark every day is a speed day. Speed rows below `w` are ignored (and
//! garbage-collected by `publish`). Backends fetch each layer only over its own range ([`split`]) and hand
//! the rows to [`merge_funnel`] / [`merge_counts`], which filter again, so a backend bug cannot leak rows
//! of the wrong layer into an answer. [`crate::read`] drives both for every backend.

use std::collections::{BTreeMap, BTreeSet};

use crate::day::Day;
use crate::error::FactsError;
use crate::model::{DailyCountFact, FunnelStepFact, FunnelTotalFact, Layer};
use crate::query::{CountValue, CountsDay, CountsQuery, FunnelDay, FunnelQuery, StepValue};

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

/// The days an answer lists: `[from, to]`, an open end taken from the data (its first or last day with a
/// row, of either layer). Days past the data's last day are listed only when `to` asks for them: a
/// batch-complete day without rows is zero, but a watermark far past the data must not pad every answer
/// with empty days.
fn day_span(
    from: Option<Day>,
    to: Option<Day>,
    data: impl Iterator<Item = Day> + Clone,
) -> Result<Option<(Day, Day)>, FactsError> {
    let lo = from.or_else(|| data.clone().min());
    let hi = to.or_else(|| data.max());
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

/// Merge batch rows (of the published run), its all-breakdowns totals and speed partial rows into the days
/// of a funnel answer.
///
/// Batch days: one row per (breakdown, step) is exact, time-to-convert included. Without `breakdown`, a
/// (day, step) with a `funnel_totals` row is answered by that row alone (exact, time-to-convert over all
/// breakdowns); otherwise breakdowns are summed, keeping time-to-convert only where a single breakdown row
/// contributes. With `breakdown`, totals are not used. Speed days: `actors` of all partial rows summed;
/// time-to-convert is `None` (a median of partial aggregates cannot be merged exactly).
pub fn merge_funnel(
    q: &FunnelQuery,
    watermark: Option<Day>,
    batch: impl IntoIterator<Item = FunnelStepFact>,
    totals: impl IntoIterator<Item = FunnelTotalFact>,
    speed: impl IntoIterator<Item = FunnelStepFact>,
) -> Result<Vec<FunnelDay>, FactsError> {
    let mut acc: BTreeMap<(Day, String, u32), StepAcc> = BTreeMap::new();
    let totals: Vec<FunnelStepFact> = if q.breakdown {
        Vec::new()
    } else {
        totals
            .into_iter()
            .filter(|t| layer_of(t.day, watermark) == Layer::Batch)
            .map(|t| FunnelStepFact {
                app_id: t.app_id,
                funnel_id: t.funnel_id,
                funnel_version: t.funnel_version,
                day: t.day,
                breakdown: String::new(),
                step: t.step,
                actors: t.actors,
                ttc_median_s: t.ttc_median_s,
                ttc_p90_s: t.ttc_p90_s,
            })
            .collect()
    };
    // (day, step) answered by a total instead of the sum of its breakdowns.
    let totalled: BTreeSet<(Day, u32)> = totals.iter().map(|t| (t.day, t.step)).collect();
    let batch = batch
        .into_iter()
        .filter(|r| {
            layer_of(r.day, watermark) == Layer::Batch && !totalled.contains(&(r.day, r.step))
        })
        .chain(totals)
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
    let Some((lo, hi)) = day_span(q.from, q.to, acc.keys().map(|k| k.0))? else {
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
    let Some((lo, hi)) = day_span(q.from, q.to, acc.keys().map(|k| k.0))? else {
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
        let days = merge_funnel(&q, Some(Day(3)), batch, [], speed).unwrap();
        assert_eq!(days.len(), 3);
        assert_eq!((days[0].layer, days[0].steps[0].actors), (Layer::Batch, 10));
        assert_eq!((days[1].layer, days[1].steps[0].actors), (Layer::Batch, 7));
        assert_eq!((days[2].layer, days[2].steps[0].actors), (Layer::Speed, 9));
        assert_eq!(days[2].steps[0].ttc_median_s, None);
        assert_eq!(days[0].steps[0].ttc_median_s, Some(0.0));
    }

    fn total(day: i32, step: u32, actors: u64, med: Option<f64>) -> FunnelTotalFact {
        FunnelTotalFact {
            app_id: "a".into(),
            funnel_id: "f".into(),
            funnel_version: "1".into(),
            day: Day(day),
            step,
            actors,
            ttc_median_s: med,
            ttc_p90_s: med.map(|m| m * 2.0),
        }
    }

    #[test]
    fn the_all_breakdowns_total_answers_without_breakdown_and_is_never_listed() {
        let batch = vec![
            step(1, "ios", 2, 3, Some(5.0)),
            step(1, "android", 2, 4, Some(7.0)),
            // Day 2 has no total (an older run): summed, no time-to-convert.
            step(2, "ios", 2, 1, Some(1.0)),
            step(2, "android", 2, 1, Some(2.0)),
        ];
        // A total of a day at the watermark (a speed day) is ignored.
        let totals = vec![total(1, 2, 7, Some(6.0)), total(3, 2, 99, None)];
        let mut q = FunnelQuery::new("a", "f");
        let days = merge_funnel(&q, Some(Day(3)), batch.clone(), totals.clone(), []).unwrap();
        assert_eq!(days.len(), 2);
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
        let days = merge_funnel(&q, Some(Day(3)), batch, totals, []).unwrap();
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
        let days = merge_funnel(&q, Some(Day(2)), batch.clone(), [], []).unwrap();
        let s = &days[0].steps;
        assert_eq!((s[0].step, s[0].actors, s[0].ttc_median_s), (2, 7, None));
        assert_eq!(
            (s[1].step, s[1].actors, s[1].ttc_median_s),
            (3, 1, Some(50.0))
        );
        q.breakdown = true;
        let days = merge_funnel(&q, Some(Day(2)), batch, [], []).unwrap();
        let s = &days[0].steps;
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].breakdown.as_str(), s[0].actors), ("android", 4));
    }

    #[test]
    fn empty_days_are_listed_with_their_layer() {
        let mut q = FunnelQuery::new("a", "f");
        q.from = Some(Day(0));
        q.to = Some(Day(4));
        let days = merge_funnel(&q, Some(Day(2)), vec![step(1, "", 1, 1, None)], [], []).unwrap();
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
        assert!(merge_funnel(&FunnelQuery::new("a", "f"), None, [], [], [])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn an_open_range_ends_at_the_last_day_with_data() {
        // The watermark is far past the data (a run with `--now` weeks after the last event): the answer
        // still stops at the data's last day, of either layer, unless `to` asks for more.
        let batch = vec![step(1, "", 1, 1, None), step(3, "", 1, 2, None)];
        let q = FunnelQuery::new("a", "f");
        let days = merge_funnel(&q, Some(Day(40)), batch.clone(), [], []).unwrap();
        assert_eq!((days[0].day, days.last().unwrap().day), (Day(1), Day(3)));
        let speed = vec![step(45, "", 1, 5, None)];
        let days = merge_funnel(&q, Some(Day(40)), batch.clone(), [], speed).unwrap();
        assert_eq!(
            days.last().map(|d| (d.day, d.layer)),
            Some((Day(45), Layer::Speed))
        );
        let mut q = FunnelQuery::new("a", "f");
        q.to = Some(Day(6));
        let days = merge_funnel(&q, Some(Day(40)), batch, [], []).unwrap();
        assert_eq!(days.len(), 6);
        assert!(days[3..]
            .iter()
            .all(|d| d.steps.is_empty() && d.layer == Layer::Batch));
        let counts = vec![count(2, "tracker", "t", 1)];
        let days = merge_counts(&CountsQuery::new("a", "hits"), Some(Day(40)), counts, []).unwrap();
        assert_eq!(days.iter().map(|d| d.day).collect::<Vec<_>>(), [Day(2)]);
    }

    #[test]
    fn absurd_ranges_are_refused() {
        let mut q = FunnelQuery::new("a", "f");
        q.from = Some(Day::FIRST);
        q.to = Some(Day::LAST);
        assert!(merge_funnel(&q, None, [], [], []).is_err());
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
