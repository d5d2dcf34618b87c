//! Per-actor evaluation throughput (`Worker::observe_actor`: classify + all funnels + aggregate),
//! in ns/row, over synthetic timelines of rows that look columns up by id like the SSTable source
//! does. As a baseline measured in the same run, the brute-force `reference::evaluate` over the
//! same actors (the printed ratio is kernel/reference; lower is better).
//!
//! Run: `cargo bench -p funnelizer --bench kernel` (env `BENCH_ACTORS`, default 100000;
//! `BENCH_REPS`, default 3 — the best of the repetitions is printed).

use std::hint::black_box;
use std::time::{Duration, Instant};

use funnelizer::{reference, ColumnRef, FunnelSet, RowView, Table, Value, Worker};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The profiled case: one funnel, install → signup → purchase, 7 days.
const PROFILE: &str = r#"
[[funnel]]
id = "purchase"
window = "7d"
steps = [ { event = "install" }, { event = "signup" }, { event = "purchase" } ]
"#;

/// Several funnels of every mode, with hits, property predicates, exclusions and a breakdown.
const MIXED: &str = r#"
[[funnel]]
id = "purchase"
window = "7d"
steps = [ { event = "install" }, { event = "signup" }, { event = "purchase" } ]
[[funnel]]
id = "ordered"
window = "1h"
breakdown = "props.plan"
steps = [ { event = "install" }, { event = ["signup", "login"] }, { event = "view" }, { event = "purchase", where = { "props.plan" = { "!=" = "free" } } } ]
[[funnel]]
id = "strict"
window = "1d"
mode = "strict_order"
steps = [ { hit = { tracker = "fb" } }, { event = "install" }, { event = "signup" } ]
[[funnel]]
id = "unordered"
window = "30m"
mode = "unordered"
steps = [ { event = "view" }, { event = "cart" }, { hit = { referrer = { prefix = "https://ads." } } } ]
exclude = [ { event = "uninstall" } ]
"#;

const NAMES: [&str; 24] = [
    "install",
    "signup",
    "purchase",
    "login",
    "view",
    "cart",
    "uninstall",
    "open",
    "close",
    "scroll",
    "tap",
    "search",
    "share",
    "like",
    "comment",
    "settings",
    "notification",
    "push_open",
    "level_up",
    "ad_view",
    "ad_click",
    "rate",
    "logout",
    "background",
];
const PROPS: [&[(&str, &str)]; 3] = [
    &[("plan", "free"), ("os", "ios")],
    &[("plan", "pro"), ("os", "android")],
    &[("os", "ios"), ("plan", "team")],
];
/// Columns a [`BenchRow`] holds inline (enough for the definitions here).
const MAX_COLS: usize = 4;

/// One synthetic row, independent of any definition.
#[derive(Clone)]
enum Synth {
    Event {
        ts: i64,
        name: usize,
        plan: usize,
    },
    Hit {
        ts: i64,
        tracker: &'static str,
        referrer: &'static str,
    },
}

/// A cell of [`BenchRow`].
#[derive(Clone)]
enum Cell {
    Null,
    Int(i64),
    Str(&'static str),
}

/// A row whose columns are found by `ColumnRef::id`, stored inline (like the SSTable source's
/// rows, whose decoded values sit in one buffer).
struct BenchRow {
    table: Table,
    ts: i64,
    cells: [Cell; MAX_COLS],
    props: &'static [(&'static str, &'static str)],
    props_id: Option<u16>,
}

impl RowView for BenchRow {
    fn table(&self) -> Table {
        self.table
    }
    fn ts_ms(&self) -> i64 {
        self.ts
    }
    fn column(&self, col: &ColumnRef) -> Value<'_> {
        match self.cells.get(col.id as usize) {
            Some(Cell::Int(i)) => Value::Int(*i),
            Some(Cell::Str(s)) => Value::Str(s),
            Some(Cell::Null) | None => Value::Null,
        }
    }
    fn property(&self, map: &ColumnRef, key: &str) -> Option<&str> {
        if self.props_id != Some(map.id) {
            return None;
        }
        self.props.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

fn synth(actors: usize) -> Vec<(usize, Vec<Synth>)> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..actors)
        .map(|a| {
            let n = rng.random_range(1..=30);
            let base = rng.random_range(0..60 * 86_400i64) * 1000;
            let mut events: Vec<Synth> = (0..n)
                .map(|_| {
                    let ts = base + rng.random_range(0..10 * 86_400i64) * 1000;
                    // Funnel events are frequent enough that many actors progress.
                    let name = if rng.random_range(0..3) == 0 {
                        rng.random_range(0..6)
                    } else {
                        rng.random_range(0..NAMES.len())
                    };
                    Synth::Event {
                        ts,
                        name,
                        plan: rng.random_range(0..PROPS.len()),
                    }
                })
                .collect();
            // The events table is clustered by time; conversions come after them.
            events.sort_by_key(|s| match s {
                Synth::Event { ts, .. } | Synth::Hit { ts, .. } => *ts,
            });
            for _ in 0..rng.random_range(0..3) {
                events.push(Synth::Hit {
                    ts: base + rng.random_range(-3600..86_400i64) * 1000,
                    tracker: ["fb", "g", "tt"][rng.random_range(0..3)],
                    referrer: ["https://ads.x/1", "https://news.y/", "direct"]
                        [rng.random_range(0..3)],
                });
            }
            (a % 3, events)
        })
        .collect()
}

fn materialize(set: &FunnelSet, s: &Synth) -> BenchRow {
    let cols = |t: Table| set.columns(t);
    let inline = |cells: Vec<Cell>| -> [Cell; MAX_COLS] {
        assert!(cells.len() <= MAX_COLS, "raise MAX_COLS");
        std::array::from_fn(|i| cells.get(i).cloned().unwrap_or(Cell::Null))
    };
    let props_id = |t: Table| cols(t).iter().position(|c| c == "props").map(|i| i as u16);
    match *s {
        Synth::Event { ts, name, plan } => BenchRow {
            table: Table::Events,
            ts,
            cells: inline(
                cols(Table::Events)
                    .iter()
                    .map(|c| match c.as_str() {
                        "ts" => Cell::Int(ts),
                        "name" => Cell::Str(NAMES[name]),
                        _ => Cell::Null,
                    })
                    .collect(),
            ),
            props: PROPS[plan],
            props_id: props_id(Table::Events),
        },
        Synth::Hit {
            ts,
            tracker,
            referrer,
        } => BenchRow {
            table: Table::Conversions,
            ts,
            cells: inline(
                cols(Table::Conversions)
                    .iter()
                    .map(|c| match c.as_str() {
                        "hit_ts" => Cell::Int(ts),
                        "tracker" => Cell::Str(tracker),
                        "referrer" => Cell::Str(referrer),
                        _ => Cell::Null,
                    })
                    .collect(),
            ),
            props: &[],
            props_id: None,
        },
    }
}

fn best(reps: usize, mut f: impl FnMut()) -> Duration {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn run(label: &str, def: &str, timelines: &[(usize, Vec<Synth>)], reps: usize) {
    let set = FunnelSet::parse(def, "bench").expect("bench definitions");
    let actors: Vec<(&str, Vec<BenchRow>)> = timelines
        .iter()
        .map(|(app, rows)| {
            (
                ["app0", "app1", "app2"][*app],
                rows.iter().map(|s| materialize(&set, s)).collect(),
            )
        })
        .collect();
    let rows: usize = actors.iter().map(|a| a.1.len()).sum();

    let mut entered = 0u64;
    let kernel = best(reps, || {
        let mut w = Worker::new(&set);
        for (app, tl) in &actors {
            w.observe_actor(app, tl);
        }
        let agg = w.into_aggregator();
        entered = agg
            .facts(&set)
            .iter()
            .filter(|f| f.step == 1)
            .map(|f| f.actors)
            .sum();
        black_box(agg);
    });
    let mut ref_entered = 0u64;
    let reference = best(reps, || {
        ref_entered = 0;
        for (_, tl) in &actors {
            for f in &set.funnels {
                ref_entered += u64::from(reference::evaluate(f, tl).level > 0);
            }
        }
    });
    assert_eq!(entered, ref_entered, "kernel and reference disagree");
    let ns = |d: Duration| d.as_nanos() as f64 / rows as f64;
    println!(
        "{label}: actors {}, rows {rows}, funnels {}, entered {entered}",
        actors.len(),
        set.funnels.len()
    );
    println!(
        "  kernel (Worker::observe_actor): {:>8.1} ns/row  ({:?})",
        ns(kernel),
        kernel
    );
    println!(
        "  reference::evaluate:            {:>8.1} ns/row  ({:?})",
        ns(reference),
        reference
    );
    println!(
        "  ratio kernel/reference: {:.3}",
        kernel.as_secs_f64() / reference.as_secs_f64()
    );
}

fn main() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let actors = env("BENCH_ACTORS", 100_000);
    let reps = env("BENCH_REPS", 3).max(1);
    let timelines = synth(actors);
    run("profile (1 funnel)", PROFILE, &timelines, reps);
    run("mixed (4 funnels)", MIXED, &timelines, reps);
}
