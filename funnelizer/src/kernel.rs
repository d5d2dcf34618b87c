//! The per-actor evaluation kernel: every funnel of a set evaluated over one actor's timeline in
//! one pass over its rows, with buffers reused across actors (no allocation per actor once warm).
//!
//! # Semantics (the contract the reference evaluator and the ClickHouse oracle check)
//!
//! A funnel's *entries* are built from the actor's rows of the tables the funnel reads: one entry
//! `(ts, k)` per step `k` a row matches (a row matching several steps yields several entries), and
//! for `strict_order` one entry `(ts, 0)` per row that matches no step. Entries are ordered by
//! `(ts, k, row position)` — exactly ClickHouse's `windowFunnel` ordering. Exclusion rows are kept
//! apart with their timestamps.
//!
//! * A **chain** is a sequence of entries `e1 < e2 < … < ek` (in entry order) with `ei` of step `i`
//!   and `ts(ek) <= ts(e1) + W`. It is *voided* when an exclusion covering the pair `(j, j+1)` has a
//!   timestamp strictly between `ts(ej)` and `ts(ej+1)` for some `j < k`.
//! * `ordered`: the actor's level is the longest non-voided chain. Without exclusions this is
//!   ClickHouse `windowFunnel(W)`.
//! * `strict_order`: the entries are cut at the first entry after the first `s1` entry that either
//!   matches no step, or is a step `k >= 2` whose step `k-1` no chain in the entries before it
//!   reached — ClickHouse `windowFunnel(W, 'strict_order')`; then `ordered` applies to what precedes
//!   the cut. (ClickHouse also stops as soon as the last step is reached; that cannot change the
//!   level, and here later entries may still pick an earlier best chain.)
//! * `unordered`: an *anchor* is any step entry at time `t`; the entries counted for it are those
//!   with `t <= ts <= t + W` and no exclusion strictly between `t` and `ts`; its level is the number
//!   of distinct steps among them. The actor's level is the best anchor's.
//!
//! **Best chain / entry**: among the starts (s1 entries; anchors for unordered) that reach the
//! actor's level, the earliest. Its timestamp is the actor's *entry time*; the entry day is its UTC
//! day. **Time to convert** of step `k` is the earliest time any non-voided chain from that start
//! reached step `k` (for unordered: the time the k-th distinct step was first covered), minus the
//! entry time; step 1 is always 0. Without exclusions all these come from one chain: the one that
//! takes the earliest qualifying event for each step.
//!
//! **Breakdown row** (first touch): the actor's first `s1` entry (for unordered: the first step
//! entry), in entry order.

use crate::classify::{Classifier, MatchCache};
use crate::definition::{FunnelSet, Mode};
use crate::row::RowView;

const NONE: i64 = i64::MIN;

/// One entry of a funnel's per-actor timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Time in ms.
    pub ts: i64,
    /// Step number (1-based), or 0 for a row matching no step (strict_order only).
    pub step: u8,
    /// Position of the row in the actor's input rows.
    pub row: u32,
}

/// The result of one funnel for one actor (level 0: the actor never matched step 1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Highest step reached (0..=N).
    pub level: usize,
    /// Time of the best chain's first step, in ms.
    pub entry_ts_ms: i64,
    /// Time each step 1..=level was reached, in ms (`step_ts_ms[0] == entry_ts_ms`).
    pub step_ts_ms: Vec<i64>,
    /// Position (in the input rows) of the first-touch row the breakdown is read from.
    pub breakdown_row: usize,
}

/// The mode-specific parameters of one funnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunnelParams {
    /// Number of steps.
    pub steps: usize,
    /// Window in ms.
    pub window_ms: i64,
    /// Mode.
    pub mode: Mode,
}

/// Reusable per-worker buffers; evaluates every funnel of a set per actor.
#[derive(Debug)]
pub struct Kernel {
    classifier: Classifier,
    params: Vec<FunnelParams>,
    /// Per funnel and table: whether the funnel reads the table.
    uses: Vec<[bool; 2]>,
    bits: Vec<u64>,
    cache: MatchCache,
    eval: EntryEvaluator,
    outcome: Outcome,
}

impl Kernel {
    /// A kernel for all funnels of `set`.
    pub fn new(set: &FunnelSet) -> Self {
        Kernel {
            classifier: Classifier::new(set),
            params: set
                .funnels
                .iter()
                .map(|f| FunnelParams {
                    steps: f.steps.len(),
                    window_ms: f.window_ms(),
                    mode: f.mode,
                })
                .collect(),
            uses: set
                .funnels
                .iter()
                .map(|f| {
                    [
                        f.uses(crate::row::Table::Events),
                        f.uses(crate::row::Table::Conversions),
                    ]
                })
                .collect(),
            bits: Vec::new(),
            cache: MatchCache::new(),
            eval: EntryEvaluator::default(),
            outcome: Outcome::default(),
        }
    }

    /// Evaluates every funnel over one actor's rows (any order), calling `sink(funnel_index,
    /// outcome)` for each funnel the actor entered (level >= 1).
    pub fn evaluate<R: RowView>(&mut self, rows: &[R], sink: impl FnMut(usize, &Outcome)) {
        self.classifier
            .match_rows_cached(rows, &mut self.bits, &mut self.cache);
        self.run(rows, sink);
    }

    /// Starts an actor whose rows are offered one at a time ([`Kernel::offer`], then
    /// [`Kernel::finish`]).
    pub fn begin(&mut self) {
        self.bits.clear();
    }

    /// Classifies the actor's next row. `true`: some funnel can use it, and the caller passes it to
    /// [`Kernel::finish`] (in the order it was offered among the kept rows). `false`: no funnel's
    /// outcome depends on it (see [`Classifier::relevant`]), and it can be dropped — most rows of a
    /// timeline are events no funnel names.
    #[inline]
    pub fn offer<R: RowView>(&mut self, row: &R) -> bool {
        if self.classifier.words() == 1 {
            // (One word, the usual case: the row's bits are only appended when it is kept.)
            let mut out = [0u64];
            self.classifier
                .match_row_cached(row, &mut out, &mut self.cache);
            let keep = self.classifier.relevant(row.table(), &out);
            if keep {
                self.bits.push(out[0]);
            }
            return keep;
        }
        let at = self.bits.len();
        self.bits.resize(at + self.classifier.words(), 0);
        let out = &mut self.bits[at..];
        self.classifier.match_row_cached(row, out, &mut self.cache);
        let keep = self.classifier.relevant(row.table(), out);
        if !keep {
            self.bits.truncate(at);
        }
        keep
    }

    /// Like [`Kernel::evaluate`], over the rows kept by [`Kernel::offer`] since [`Kernel::begin`]
    /// (`rows`: exactly those, in order): the same outcomes as evaluating every offered row.
    pub fn finish<R: RowView>(&mut self, rows: &[R], sink: impl FnMut(usize, &Outcome)) {
        debug_assert_eq!(rows.len() * self.classifier.words(), self.bits.len());
        self.run(rows, sink);
    }

    /// Evaluates every funnel over `rows`, whose matcher bits are in `self.bits`.
    fn run<R: RowView>(&mut self, rows: &[R], mut sink: impl FnMut(usize, &Outcome)) {
        for (f, p) in self.params.iter().enumerate() {
            let ev = &mut self.eval;
            ev.entries.clear();
            ev.exclusions.clear();
            let strict = p.mode == Mode::StrictOrder;
            let uses = self.uses[f];
            // Whether some row matches step 1 (without one, ordered and strict_order reach level 0).
            let mut first_step = false;
            for (i, row) in rows.iter().enumerate() {
                let c = self.classifier.class(&self.bits, i, f);
                if c.steps == 0 && c.exclusion_pairs == 0 && !strict {
                    continue;
                }
                let ts = row.ts_ms();
                first_step |= c.steps & 1 != 0;
                let mut m = c.steps;
                while m != 0 {
                    let j = m.trailing_zeros();
                    m &= m - 1;
                    ev.entries.push(Entry {
                        ts,
                        step: (j + 1) as u8,
                        row: i as u32,
                    });
                }
                if c.steps == 0 && strict && uses[row.table().index()] {
                    ev.entries.push(Entry {
                        ts,
                        step: 0,
                        row: i as u32,
                    });
                }
                if c.exclusion_pairs != 0 {
                    ev.exclusions.push((ts, c.exclusion_pairs));
                }
            }
            if ev.entries.is_empty() || (!first_step && p.mode != Mode::Unordered) {
                continue;
            }
            // Rows usually come in time order, so entries (and exclusions) often already are.
            if !ev.entries.is_sorted() {
                ev.entries.sort_unstable();
            }
            if !ev.exclusions.is_sorted() {
                ev.exclusions.sort_unstable();
            }
            ev.evaluate(p, &mut self.outcome);
            if self.outcome.level > 0 {
                sink(f, &self.outcome);
            }
        }
    }
}

/// Evaluates one funnel over prepared, sorted entries (public so tests and benchmarks can drive
/// it directly).
#[derive(Debug, Default)]
pub struct EntryEvaluator {
    /// Sorted entries.
    pub entries: Vec<Entry>,
    /// Sorted `(ts, pair mask)` exclusion rows.
    pub exclusions: Vec<(i64, u32)>,
    reach_last: Vec<i64>,
    reach_first: Vec<i64>,
    levels: Vec<i64>,
}

impl EntryEvaluator {
    /// Evaluates `entries`/`exclusions` (both sorted) into `out`.
    pub fn evaluate(&mut self, p: &FunnelParams, out: &mut Outcome) {
        out.level = 0;
        out.step_ts_ms.clear();
        out.entry_ts_ms = 0;
        out.breakdown_row = 0;
        let n = p.steps;
        self.reach_last.clear();
        self.reach_last.resize(n, NONE);
        self.reach_first.clear();
        self.reach_first.resize(n, NONE);
        match p.mode {
            Mode::Ordered => {
                let end = self.entries.len();
                self.ordered(n, p.window_ms, end, out);
            }
            Mode::StrictOrder => {
                let end = self.strict_cut(n, p.window_ms);
                self.ordered(n, p.window_ms, end, out);
            }
            Mode::Unordered => self.unordered(n, p.window_ms, out),
        }
    }

    /// Whether an exclusion covering pair bit `pair` lies strictly between `a` and `b`.
    #[inline]
    fn excluded(&self, a: i64, b: i64, pair: usize) -> bool {
        if self.exclusions.is_empty() {
            return false;
        }
        let start = self.exclusions.partition_point(|&(ts, _)| ts <= a);
        self.exclusions[start..]
            .iter()
            .take_while(|&&(ts, _)| ts < b)
            .any(|&(_, m)| m & (1 << pair) != 0)
    }

    /// ClickHouse's strict_order scan: the index of the first entry that stops it.
    fn strict_cut(&mut self, n: usize, window: i64) -> usize {
        self.levels.clear();
        self.levels.resize(n, NONE);
        let mut first_event = false;
        for (i, e) in self.entries.iter().enumerate() {
            if e.step == 0 {
                if first_event {
                    return i;
                }
                continue;
            }
            let k = e.step as usize - 1;
            if k == 0 {
                self.levels[0] = e.ts;
                first_event = true;
            } else if first_event && self.levels[k - 1] == NONE {
                return i;
            } else if self.levels[k - 1] != NONE
                && e.ts <= self.levels[k - 1].saturating_add(window)
            {
                self.levels[k] = self.levels[k - 1];
            }
        }
        self.entries.len()
    }

    fn ordered(&mut self, n: usize, window: i64, end: usize, out: &mut Outcome) {
        let mut prev_start = NONE;
        let mut have_breakdown = false;
        for p in 0..end {
            let e = self.entries[p];
            if e.step != 1 {
                continue;
            }
            if !have_breakdown {
                out.breakdown_row = e.row as usize;
                have_breakdown = true;
            }
            if e.ts == prev_start {
                // Same timestamp as an earlier start: it sees a subset of that start's entries.
                continue;
            }
            prev_start = e.ts;
            self.reach_last.fill(NONE);
            self.reach_first.fill(NONE);
            self.reach_last[0] = e.ts;
            self.reach_first[0] = e.ts;
            let mut level = 1;
            let limit = e.ts.saturating_add(window);
            if level < n {
                for q in p + 1..end {
                    let x = self.entries[q];
                    if x.ts > limit {
                        break;
                    }
                    if x.step < 2 {
                        continue;
                    }
                    let k = x.step as usize - 1;
                    let a = self.reach_last[k - 1];
                    if a == NONE || self.excluded(a, x.ts, k - 1) {
                        continue;
                    }
                    self.reach_last[k] = x.ts;
                    if self.reach_first[k] == NONE {
                        self.reach_first[k] = x.ts;
                        level = level.max(k + 1);
                        if level == n {
                            break;
                        }
                    }
                }
            }
            if level > out.level {
                out.level = level;
                out.entry_ts_ms = e.ts;
                out.step_ts_ms.clear();
                out.step_ts_ms.extend_from_slice(&self.reach_first[..level]);
                if level == n {
                    break;
                }
            }
        }
    }

    fn unordered(&mut self, n: usize, window: i64, out: &mut Outcome) {
        let mut prev = NONE;
        let end = self.entries.len();
        for p in 0..end {
            let e = self.entries[p];
            if e.step == 0 || e.ts == prev {
                continue;
            }
            if prev == NONE {
                out.breakdown_row = e.row as usize;
            }
            prev = e.ts;
            let limit = e.ts.saturating_add(window);
            let cut_at = self.exclusions.partition_point(|&(ts, _)| ts <= e.ts);
            let cut = self.exclusions.get(cut_at).map_or(i64::MAX, |&(ts, _)| ts);
            let mut seen = 0u32;
            let mut count = 0;
            for x in &self.entries[p..end] {
                if x.ts > limit || x.ts > cut {
                    break;
                }
                if x.step == 0 {
                    continue;
                }
                let bit = 1u32 << (x.step - 1);
                if seen & bit == 0 {
                    seen |= bit;
                    self.reach_first[count] = x.ts;
                    count += 1;
                    if count == n {
                        break;
                    }
                }
            }
            if count > out.level {
                out.level = count;
                out.entry_ts_ms = e.ts;
                out.step_ts_ms.clear();
                out.step_ts_ms.extend_from_slice(&self.reach_first[..count]);
                if count == n {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::OwnedRow;

    fn run(toml_steps: &str, mode: &str, window: i64, rows: &[OwnedRow]) -> Outcome {
        let set = FunnelSet::parse(
            &format!(
                "[[funnel]]\nid = \"f\"\nwindow = {window}\nmode = \"{mode}\"\n{toml_steps}\n"
            ),
            "t",
        )
        .unwrap();
        let mut k = Kernel::new(&set);
        let mut got = Outcome::default();
        k.evaluate(rows, |_, o| got = o.clone());
        got
    }

    const ABC: &str = "steps = [ { event = \"a\" }, { event = \"b\" }, { event = \"c\" } ]";

    fn ev(ts: i64, name: &str) -> OwnedRow {
        OwnedRow::event(ts * 1000, name, &[])
    }

    #[test]
    fn ordered_takes_the_longest_chain_and_the_window_is_inclusive() {
        let rows = [ev(0, "a"), ev(5, "b"), ev(10, "c"), ev(11, "c")];
        let o = run(ABC, "ordered", 10, &rows);
        assert_eq!(o.level, 3);
        assert_eq!(o.step_ts_ms, vec![0, 5000, 10_000]);
        let o = run(ABC, "ordered", 9, &rows);
        assert_eq!(o.level, 2);
    }

    #[test]
    fn a_later_start_can_complete_where_the_first_cannot_and_becomes_the_entry() {
        let rows = [ev(0, "a"), ev(100, "a"), ev(101, "b"), ev(102, "c")];
        let o = run(ABC, "ordered", 10, &rows);
        assert_eq!((o.level, o.entry_ts_ms), (3, 100_000));
        assert_eq!(o.breakdown_row, 0, "breakdown is read at the first s1");
    }

    #[test]
    fn same_timestamp_events_follow_step_order() {
        // c and b at the same time: entries sort (ts, step), so b precedes c.
        let rows = [ev(0, "a"), ev(1, "c"), ev(1, "b")];
        assert_eq!(run(ABC, "ordered", 10, &rows).level, 3);
    }

    #[test]
    fn strict_order_stops_at_an_unrelated_event_or_a_skipped_step() {
        let rows = [ev(0, "a"), ev(1, "b"), ev(2, "x"), ev(3, "c")];
        assert_eq!(run(ABC, "strict_order", 10, &rows).level, 2);
        assert_eq!(run(ABC, "ordered", 10, &rows).level, 3);
        let rows = [ev(0, "a"), ev(1, "c"), ev(2, "b"), ev(3, "c")];
        assert_eq!(run(ABC, "strict_order", 10, &rows).level, 1);
        // unrelated events before the first s1 do not matter
        let rows = [ev(0, "x"), ev(1, "a"), ev(2, "b"), ev(3, "c")];
        assert_eq!(run(ABC, "strict_order", 10, &rows).level, 3);
    }

    #[test]
    fn exclusions_void_a_chain_only_strictly_between_its_steps() {
        let steps = format!("{ABC}\nexclude = [ {{ event = \"x\" }} ]");
        let rows = [ev(0, "a"), ev(1, "b"), ev(2, "x"), ev(3, "c")];
        assert_eq!(run(&steps, "ordered", 10, &rows).level, 2);
        // a later b after the exclusion rescues the chain when x only counts between b and c
        let rows = [ev(0, "a"), ev(1, "b"), ev(2, "x"), ev(3, "b"), ev(4, "c")];
        assert_eq!(run(&steps, "ordered", 10, &rows).level, 2);
        let b_to_c = format!("{ABC}\nexclude = [ {{ event = \"x\", between = [2, 3] }} ]");
        let o = run(&b_to_c, "ordered", 10, &rows);
        assert_eq!(o.level, 3);
        assert_eq!(o.step_ts_ms, vec![0, 1000, 4000]);
        // same timestamp as a step is not "between"
        let rows = [ev(0, "a"), ev(1, "b"), ev(1, "x"), ev(2, "c")];
        assert_eq!(run(&steps, "ordered", 10, &rows).level, 3);
        let rows = [ev(0, "a"), ev(1, "b"), ev(2, "x"), ev(2, "c")];
        assert_eq!(run(&steps, "ordered", 10, &rows).level, 3);
    }

    #[test]
    fn unordered_counts_distinct_steps_in_the_window_of_any_anchor() {
        let rows = [ev(0, "c"), ev(5, "a"), ev(9, "b"), ev(30, "a")];
        let o = run(ABC, "unordered", 10, &rows);
        assert_eq!((o.level, o.entry_ts_ms), (3, 0));
        assert_eq!(o.step_ts_ms, vec![0, 5000, 9000]);
        let o = run(ABC, "unordered", 5, &rows);
        assert_eq!((o.level, o.entry_ts_ms), (2, 0));
    }

    #[test]
    fn actors_without_step_one_are_not_reported_but_rows_may_come_unsorted() {
        let rows = [ev(5, "b"), ev(6, "c")];
        assert_eq!(run(ABC, "ordered", 10, &rows).level, 0);
        let rows = [ev(6, "c"), ev(5, "b"), ev(4, "a")];
        assert_eq!(run(ABC, "ordered", 10, &rows).level, 3);
    }
}
