//! A brute-force evaluator of the funnel semantics, written independently of the kernel and as
//! plainly as possible: it enumerates every candidate chain. Exponential; for tests only (small
//! timelines), public so the end-to-end tests can compute expected facts.

use crate::definition::{Funnel, Mode};
use crate::kernel::Outcome;
use crate::row::RowView;

/// One row as the reference sees it for one funnel.
#[derive(Debug, Clone)]
struct Item {
    ts: i64,
    /// 0 = matches no step (only kept for strict_order), else 1-based step.
    step: usize,
    row: usize,
}

#[derive(Debug, Clone)]
struct Excl {
    ts: i64,
    /// 1-based step pairs (j, j+1) it covers, as the list of j.
    pairs: Vec<usize>,
}

fn items<R: RowView>(f: &Funnel, rows: &[R]) -> (Vec<Item>, Vec<Excl>) {
    let mut items = Vec::new();
    let mut excls = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let mut any = false;
        for (j, s) in f.steps.iter().enumerate() {
            if s.matcher.matches(r) {
                any = true;
                items.push(Item {
                    ts: r.ts_ms(),
                    step: j + 1,
                    row: i,
                });
            }
        }
        if !any && f.mode == Mode::StrictOrder && f.uses(r.table()) {
            items.push(Item {
                ts: r.ts_ms(),
                step: 0,
                row: i,
            });
        }
        let mut pairs = Vec::new();
        for x in &f.exclusions {
            if x.matcher.matches(r) {
                pairs.extend(x.between.0..x.between.1);
            }
        }
        if !pairs.is_empty() {
            excls.push(Excl {
                ts: r.ts_ms(),
                pairs,
            });
        }
    }
    items.sort_by_key(|a| (a.ts, a.step, a.row));
    (items, excls)
}

/// Whether an exclusion of pair `j` lies strictly between `a` and `b`.
fn voids(excls: &[Excl], a: i64, b: i64, j: usize) -> bool {
    excls
        .iter()
        .any(|x| a < x.ts && x.ts < b && x.pairs.contains(&j))
}

/// All valid chains starting at item `start` (an s1): calls `visit` with each chain (item indices).
fn enumerate(
    items: &[Item],
    excls: &[Excl],
    window: i64,
    n: usize,
    chain: &mut Vec<usize>,
    visit: &mut dyn FnMut(&[usize]),
) {
    visit(chain);
    let k = chain.len();
    if k == n {
        return;
    }
    let last = *chain.last().unwrap_or(&0);
    let first_ts = items[chain[0]].ts;
    for next in last + 1..items.len() {
        let it = &items[next];
        if it.step == k + 1 && it.ts <= first_ts + window && !voids(excls, items[last].ts, it.ts, k)
        {
            chain.push(next);
            enumerate(items, excls, window, n, chain, visit);
            chain.pop();
        }
    }
}

/// Best over all starts: (level, start index, earliest time per level).
fn best_chain(
    items: &[Item],
    excls: &[Excl],
    window: i64,
    n: usize,
) -> Option<(usize, usize, Vec<i64>)> {
    let mut best: Option<(usize, usize, Vec<i64>)> = None;
    for (s, it) in items.iter().enumerate() {
        if it.step != 1 {
            continue;
        }
        let mut level = 0;
        let mut first = vec![i64::MAX; n];
        let mut chain = vec![s];
        enumerate(items, excls, window, n, &mut chain, &mut |c: &[usize]| {
            level = level.max(c.len());
            let k = c.len() - 1;
            first[k] = first[k].min(items[c[k]].ts);
        });
        if best.as_ref().is_none_or(|b| level > b.0) {
            first.truncate(level);
            best = Some((level, s, first));
        }
    }
    best
}

/// Highest level of plain chains (no exclusions) — ClickHouse's notion of "step reached".
fn plain_level(items: &[Item], window: i64, n: usize) -> usize {
    best_chain(items, &[], window, n).map_or(0, |b| b.0)
}

/// Evaluates one funnel over one actor's rows by brute force.
pub fn evaluate<R: RowView>(f: &Funnel, rows: &[R]) -> Outcome {
    let (mut items, excls) = items(f, rows);
    let n = f.steps.len();
    let w = f.window_ms();
    let none = Outcome::default();
    match f.mode {
        Mode::Ordered | Mode::StrictOrder => {
            let Some(first_s1) = items.iter().position(|i| i.step == 1) else {
                return none;
            };
            if f.mode == Mode::StrictOrder {
                let mut cut = items.len();
                for i in first_s1 + 1..items.len() {
                    let st = items[i].step;
                    if st == 0 || (st >= 2 && plain_level(&items[..i], w, n) < st - 1) {
                        cut = i;
                        break;
                    }
                }
                items.truncate(cut);
            }
            let breakdown_row = items[first_s1].row;
            match best_chain(&items, &excls, w, n) {
                Some((level, s, first)) => Outcome {
                    level,
                    entry_ts_ms: items[s].ts,
                    step_ts_ms: first,
                    breakdown_row,
                },
                None => none,
            }
        }
        Mode::Unordered => {
            let Some(first) = items.first() else {
                return none;
            };
            let breakdown_row = first.row;
            let mut best = none;
            for anchor in &items {
                let t = anchor.ts;
                // Earliest time of each step within the anchor's window, not cut by an exclusion.
                let mut step_first = vec![i64::MAX; n];
                for it in &items {
                    let excluded = excls.iter().any(|x| t < x.ts && x.ts < it.ts);
                    if it.ts >= t && it.ts <= t + w && !excluded {
                        step_first[it.step - 1] = step_first[it.step - 1].min(it.ts);
                    }
                }
                let mut reached: Vec<i64> =
                    step_first.into_iter().filter(|&x| x != i64::MAX).collect();
                reached.sort();
                let better = reached.len() > best.level
                    || (reached.len() == best.level && best.level > 0 && t < best.entry_ts_ms);
                if better {
                    best = Outcome {
                        level: reached.len(),
                        entry_ts_ms: t,
                        step_ts_ms: reached,
                        breakdown_row,
                    };
                }
            }
            best
        }
    }
}
