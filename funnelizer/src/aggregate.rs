//! Aggregation of per-actor outcomes into `funnel_steps` facts: per (app, funnel, entry day,
//! breakdown, step) the actors who reached the step and the exact median / p90 of their time to
//! convert. Partial aggregates of rayon workers merge exactly: times are kept as exact histograms
//! (millisecond value → count), which also compress the many equal values (step 1 is always 0).
//!
//! For funnels with a breakdown, [`Aggregator::breakdown_totals`] also gives one `funnel_totals` row per
//! (app, funnel, entry day, step) over all breakdowns ([`facts::FunnelTotalFact`]), with the exact median /
//! p90 of all those actors' times (the histograms are merged, not the medians).
//!
//! Quantiles are exact with linear interpolation between order statistics (numpy's default,
//! ClickHouse `quantileExactInclusive`): for `n` sorted values `x[0..n]` and `q` in [0, 1], with
//! `h = q·(n−1)`: `x[⌊h⌋] + (h−⌊h⌋)·(x[⌈h⌉] − x[⌊h⌋])`. The median is `q = 0.5`, p90 `q = 0.9`.

use facts::{Day, FunnelStepFact, FunnelTotalFact};

mod partial;

use crate::definition::FunnelSet;
use crate::kernel::Outcome;

// Per-worker maps keyed by our own data (ids, times, event names): the Fx hash (a multiply per word)
// instead of SipHash, which these maps do not need.
use rustc_hash::FxHashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CellKey {
    app: u32,
    funnel: u32,
    day: i32,
    breakdown: u32,
}

/// One step of one cell: its actors and their exact times to convert (the zeros — every actor's time
/// at step 1 — only counted; the others pushed as they come and sorted once, for the facts).
#[derive(Debug, Clone, Default)]
struct StepAgg {
    actors: u64,
    zeros: u64,
    ttc_ms: Vec<i64>,
}

impl StepAgg {
    #[inline]
    fn add(&mut self, ttc_ms: i64) {
        self.actors += 1;
        if ttc_ms == 0 {
            self.zeros += 1;
        } else {
            self.ttc_ms.push(ttc_ms);
        }
    }

    fn merge(&mut self, other: &StepAgg) {
        self.actors += other.actors;
        self.zeros += other.zeros;
        self.ttc_ms.extend_from_slice(&other.ttc_ms);
    }

    /// The times as a sorted `(value, count)` histogram.
    fn histogram(&self) -> Vec<(i64, u64)> {
        let mut sorted = self.ttc_ms.clone();
        sorted.sort_unstable();
        let mut hist: Vec<(i64, u64)> = Vec::new();
        let zeros_at = sorted.partition_point(|&v| v < 0);
        let mut push = |v: i64, c: u64| match hist.last_mut() {
            Some((last, n)) if *last == v => *n += c,
            _ => hist.push((v, c)),
        };
        for &v in &sorted[..zeros_at] {
            push(v, 1);
        }
        if self.zeros > 0 {
            push(0, self.zeros);
        }
        for &v in &sorted[zeros_at..] {
            push(v, 1);
        }
        hist
    }
}

/// Interned strings (apps, breakdown values): lookups by `&str` never allocate, and a repeat of
/// the previous lookup (the same app for a run of actors; the empty breakdown) is one compare.
#[derive(Debug, Clone, Default)]
struct Interner {
    ids: FxHashMap<String, u32>,
    names: Vec<String>,
    last: u32,
    /// The id of "" once seen.
    empty: Option<u32>,
}

impl Interner {
    #[inline]
    fn id(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            // The breakdown of every funnel without one: no compare at all.
            if let Some(id) = self.empty {
                return id;
            }
        }
        if self.names.get(self.last as usize).is_some_and(|n| n == s) {
            return self.last;
        }
        let id = match self.ids.get(s) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                self.ids.insert(s.to_string(), id);
                self.names.push(s.to_string());
                id
            }
        };
        self.last = id;
        if s.is_empty() {
            self.empty = Some(id);
        }
        id
    }
}

/// An app interned in one [`Aggregator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppId(u32);

/// A mergeable partial aggregate.
#[derive(Debug, Clone, Default)]
pub struct Aggregator {
    apps: Interner,
    breakdowns: Interner,
    cells: FxHashMap<CellKey, Vec<StepAgg>>,
}

impl Aggregator {
    /// An empty aggregate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an app (so it gets watermarks even when no actor of it entered a funnel).
    pub fn see_app(&mut self, app_id: &str) {
        self.app(app_id);
    }

    /// Registers an app and returns its id in this aggregate, for [`Aggregator::add_for`].
    #[inline]
    pub fn app(&mut self, app_id: &str) -> AppId {
        AppId(self.apps.id(app_id))
    }

    /// Adds one actor's outcome (level >= 1) for funnel index `funnel`.
    pub fn add(&mut self, app_id: &str, funnel: usize, outcome: &Outcome, breakdown: &str) {
        let app = self.app(app_id);
        self.add_for(app, funnel, outcome, breakdown);
    }

    /// [`Aggregator::add`] for an app id from [`Aggregator::app`] (one string lookup per actor, not
    /// per outcome).
    pub fn add_for(&mut self, app: AppId, funnel: usize, outcome: &Outcome, breakdown: &str) {
        if outcome.level == 0 {
            return;
        }
        let key = CellKey {
            app: app.0,
            funnel: funnel as u32,
            day: Day::from_unix_ms(outcome.entry_ts_ms).0,
            breakdown: self.breakdowns.id(breakdown),
        };
        let steps = self.cells.entry(key).or_default();
        if steps.len() < outcome.level {
            steps.resize_with(outcome.level, StepAgg::default);
        }
        for (s, &ts) in steps
            .iter_mut()
            .zip(&outcome.step_ts_ms)
            .take(outcome.level)
        {
            s.add(ts - outcome.entry_ts_ms);
        }
    }

    /// Merges another partial aggregate into this one.
    pub fn merge(&mut self, other: Aggregator) {
        for app in &other.apps.names {
            self.apps.id(app);
        }
        for (key, steps) in other.cells {
            let key = CellKey {
                app: self.apps.id(&other.apps.names[key.app as usize]),
                breakdown: self
                    .breakdowns
                    .id(&other.breakdowns.names[key.breakdown as usize]),
                ..key
            };
            let mine = self.cells.entry(key).or_default();
            if mine.len() < steps.len() {
                mine.resize_with(steps.len(), StepAgg::default);
            }
            for (m, s) in mine.iter_mut().zip(&steps) {
                m.merge(s);
            }
        }
    }

    /// Apps seen, sorted.
    pub fn apps(&self) -> Vec<String> {
        let mut a = self.apps.names.clone();
        a.sort();
        a
    }

    /// The facts per breakdown value, sorted by (app, funnel, day, breakdown, step).
    pub fn facts(&self, set: &FunnelSet) -> Vec<FunnelStepFact> {
        let mut out = Vec::new();
        for (key, steps) in &self.cells {
            let Some(funnel) = set.funnels.get(key.funnel as usize) else {
                continue;
            };
            let breakdown = &self.breakdowns.names[key.breakdown as usize];
            self.push_facts(&mut out, key, funnel, breakdown, steps);
        }
        sort_facts(&mut out);
        out
    }

    /// For each funnel with a breakdown: the all-breakdowns total per (app, day, step), with the exact
    /// time-to-convert quantiles of all its actors. Sorted by (app, funnel, day, step).
    pub fn breakdown_totals(&self, set: &FunnelSet) -> Vec<FunnelTotalFact> {
        let mut merged: FxHashMap<CellKey, Vec<StepAgg>> = FxHashMap::default();
        for (key, steps) in &self.cells {
            let with_breakdown = set
                .funnels
                .get(key.funnel as usize)
                .is_some_and(|f| f.breakdown.is_some());
            if !with_breakdown {
                continue;
            }
            let total = merged
                .entry(CellKey {
                    breakdown: u32::MAX,
                    ..*key
                })
                .or_default();
            if total.len() < steps.len() {
                total.resize_with(steps.len(), StepAgg::default);
            }
            for (t, s) in total.iter_mut().zip(steps) {
                t.merge(s);
            }
        }
        let mut out = Vec::new();
        for (key, steps) in &merged {
            let funnel = &set.funnels[key.funnel as usize];
            self.push_facts(&mut out, key, funnel, "", steps);
        }
        sort_facts(&mut out);
        out.into_iter()
            .map(|f| FunnelTotalFact {
                app_id: f.app_id,
                funnel_id: f.funnel_id,
                funnel_version: f.funnel_version,
                day: f.day,
                step: f.step,
                actors: f.actors,
                ttc_median_s: f.ttc_median_s,
                ttc_p90_s: f.ttc_p90_s,
            })
            .collect()
    }

    fn push_facts(
        &self,
        out: &mut Vec<FunnelStepFact>,
        key: &CellKey,
        funnel: &crate::definition::Funnel,
        breakdown: &str,
        steps: &[StepAgg],
    ) {
        for (k, s) in steps.iter().enumerate() {
            let hist = s.histogram();
            out.push(FunnelStepFact {
                app_id: self.apps.names[key.app as usize].clone(),
                funnel_id: funnel.id.clone(),
                funnel_version: funnel.version.clone(),
                day: Day(key.day),
                breakdown: breakdown.to_string(),
                step: k as u32 + 1,
                actors: s.actors,
                ttc_median_s: quantile(&hist, 0.5).map(|ms| ms / 1000.0),
                ttc_p90_s: quantile(&hist, 0.9).map(|ms| ms / 1000.0),
            });
        }
    }
}

fn sort_facts(out: &mut [FunnelStepFact]) {
    out.sort_by(|a, b| {
        (&a.app_id, &a.funnel_id, a.day.0, &a.breakdown, a.step).cmp(&(
            &b.app_id,
            &b.funnel_id,
            b.day.0,
            &b.breakdown,
            b.step,
        ))
    });
}

/// Exact quantile of a sorted `(value, count)` histogram, linear interpolation (see module doc).
pub fn quantile(hist: &[(i64, u64)], q: f64) -> Option<f64> {
    let n: u64 = hist.iter().map(|&(_, c)| c).sum();
    if n == 0 {
        return None;
    }
    let h = q.clamp(0.0, 1.0) * (n - 1) as f64;
    let lo = h.floor() as u64;
    let hi = h.ceil() as u64;
    let at = |rank: u64| {
        let mut seen = 0;
        for &(v, c) in hist {
            seen += c;
            if rank < seen {
                return v as f64;
            }
        }
        hist.last().map_or(0.0, |&(v, _)| v as f64)
    };
    let (x_lo, x_hi) = (at(lo), at(hi));
    Some(x_lo + (h - lo as f64) * (x_hi - x_lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[i64]) -> Vec<(i64, u64)> {
        let mut m: std::collections::HashMap<i64, u64> = std::collections::HashMap::new();
        for &v in values {
            *m.entry(v).or_default() += 1;
        }
        let mut h: Vec<_> = m.into_iter().collect();
        h.sort();
        h
    }

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        assert_eq!(quantile(&hist(&[]), 0.5), None);
        assert_eq!(quantile(&hist(&[7]), 0.9), Some(7.0));
        assert_eq!(quantile(&hist(&[1, 2, 3, 4]), 0.5), Some(2.5));
        assert_eq!(quantile(&hist(&[10, 0, 5]), 0.5), Some(5.0));
        // 1..=10: h = 0.9 * 9 = 8.1 → 9 + 0.1 * (10 - 9)
        let p90 = quantile(&hist(&(1..=10).collect::<Vec<_>>()), 0.9).unwrap();
        assert!((p90 - 9.1).abs() < 1e-9, "{p90}");
        assert_eq!(quantile(&hist(&[3, 3, 3, 100]), 0.5), Some(3.0));
    }

    fn outcome(entry: i64, steps: &[i64]) -> Outcome {
        Outcome {
            level: steps.len(),
            entry_ts_ms: entry,
            step_ts_ms: steps.to_vec(),
            breakdown_row: 0,
        }
    }

    #[test]
    fn merged_partials_equal_one_aggregate() {
        let set = FunnelSet::parse(
            "[[funnel]]\nid = \"f\"\nwindow = \"1d\"\nsteps = [ { event = \"a\" }, { event = \"b\" } ]\n",
            "t",
        )
        .unwrap();
        let day = 86_400_000;
        let inputs = [
            ("app1", outcome(0, &[0, 4000]), "de"),
            ("app1", outcome(1000, &[1000]), "de"),
            ("app1", outcome(day + 5, &[day + 5, day + 1005]), "fr"),
            ("app2", outcome(0, &[0, 2000]), "de"),
            ("app1", outcome(0, &[0, 1000]), "de"),
        ];
        let mut one = Aggregator::new();
        let mut a = Aggregator::new();
        let mut b = Aggregator::new();
        for (i, (app, o, br)) in inputs.iter().enumerate() {
            one.add(app, 0, o, br);
            if i % 2 == 0 {
                a.add(app, 0, o, br)
            } else {
                b.add(app, 0, o, br)
            }
        }
        a.merge(b);
        assert_eq!(a.facts(&set), one.facts(&set));
        let facts = one.facts(&set);
        let app1_day0: Vec<_> = facts
            .iter()
            .filter(|f| f.app_id == "app1" && f.day == Day(0))
            .collect();
        assert_eq!(app1_day0.len(), 2);
        assert_eq!(
            (
                app1_day0[0].step,
                app1_day0[0].actors,
                app1_day0[0].ttc_median_s
            ),
            (1, 3, Some(0.0))
        );
        assert_eq!(
            (
                app1_day0[1].step,
                app1_day0[1].actors,
                app1_day0[1].ttc_median_s
            ),
            (2, 2, Some(2.5))
        );
        assert_eq!(facts.iter().filter(|f| f.day == Day(1)).count(), 2);
        assert_eq!(one.apps(), vec!["app1".to_string(), "app2".to_string()]);
        // No breakdown in the definition: no totals.
        assert!(one.breakdown_totals(&set).is_empty());
    }

    #[test]
    fn breakdown_totals_have_exact_quantiles_over_all_breakdowns() {
        let set = FunnelSet::parse(
            "[[funnel]]\nid = \"f\"\nwindow = \"1d\"\nbreakdown = \"props.os\"\nsteps = [ { event = \"a\" }, { event = \"b\" } ]\n",
            "t",
        )
        .unwrap();
        let mut a = Aggregator::new();
        let mut b = Aggregator::new();
        // Step 2 times: ios 1s, 2s, 30s (median 2s); android 4s, 5s (median 4.5s).
        // All five: 1, 2, 4, 5, 30 → median 4s (not a mean or sum of the two medians); p90 = 5 + 0.6·25.
        for (o, br) in [
            (outcome(0, &[0, 1000]), "ios"),
            (outcome(0, &[0, 2000]), "ios"),
            (outcome(0, &[0, 30_000]), "ios"),
            (outcome(0, &[0, 4000]), "android"),
            (outcome(0, &[0, 5000]), "android"),
            (outcome(0, &[0]), "android"),
        ] {
            a.add("app1", 0, &o, br);
        }
        b.add("app1", 0, &outcome(86_400_000, &[86_400_000]), "ios");
        a.merge(b);
        let per_breakdown = a.facts(&set);
        let medians: Vec<_> = per_breakdown
            .iter()
            .filter(|f| f.day == Day(0) && f.step == 2)
            .map(|f| (f.breakdown.as_str(), f.actors, f.ttc_median_s))
            .collect();
        assert_eq!(medians, [("android", 2, Some(4.5)), ("ios", 3, Some(2.0))]);
        let totals = a.breakdown_totals(&set);
        let got: Vec<_> = totals
            .iter()
            .map(|f| (f.day, f.step, f.actors, f.ttc_median_s))
            .collect();
        assert_eq!(
            got,
            [
                (Day(0), 1, 6, Some(0.0)),
                (Day(0), 2, 5, Some(4.0)),
                (Day(1), 1, 1, Some(0.0)),
            ]
        );
        let p90 = totals[1].ttc_p90_s.unwrap();
        assert!((p90 - 20.0).abs() < 1e-9, "{p90}");
    }
}
