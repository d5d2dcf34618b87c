//! Kernel throughput, printed as a ratio against a baseline measured in the same run: the baseline
//! is the least any evaluator must do per actor (visit every row and sort its timestamps); the
//! kernel classifies every row for every funnel and evaluates all funnels.
//! Run: `cargo bench -p funnelizer --bench kernel` (env `BENCH_ACTORS`, default 200000).

use std::hint::black_box;
use std::time::Instant;

use funnelizer::{FunnelSet, Kernel, OwnedRow, RowView};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DEF: &str = r#"
[[funnel]]
id = "ordered"
window = "1h"
breakdown = "props.k"
steps = [ { event = "a" }, { event = ["b", "c"] }, { event = "c" }, { event = "d" } ]
[[funnel]]
id = "strict"
window = "1h"
mode = "strict_order"
steps = [ { event = "a" }, { event = "b" }, { event = "c" } ]
[[funnel]]
id = "unordered"
window = "30m"
mode = "unordered"
steps = [ { event = "b" }, { event = "d" }, { hit = { tracker = "fb" } } ]
exclude = [ { event = "x" } ]
"#;

fn main() {
    let actors: usize = std::env::var("BENCH_ACTORS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let mut rng = StdRng::seed_from_u64(7);
    let names = ["a", "b", "c", "d", "x", "y"];
    let timelines: Vec<Vec<OwnedRow>> = (0..actors)
        .map(|_| {
            let n = rng.random_range(1..=20);
            let base = rng.random_range(0..5_000_000i64) * 1000;
            (0..n)
                .map(|_| {
                    let ts = base + rng.random_range(0..7200i64) * 1000;
                    if rng.random_range(0..10) == 0 {
                        OwnedRow::hit(ts, "fb", "r")
                    } else {
                        OwnedRow::event(ts, names[rng.random_range(0..names.len())], &[("k", "1")])
                    }
                })
                .collect()
        })
        .collect();
    let rows: usize = timelines.iter().map(Vec::len).sum();

    let t = Instant::now();
    let mut buf: Vec<i64> = Vec::new();
    for tl in &timelines {
        buf.clear();
        buf.extend(tl.iter().map(|r| r.ts_ms()));
        buf.sort_unstable();
        black_box(&buf);
    }
    let baseline = t.elapsed();

    let set = FunnelSet::parse(DEF, "bench").expect("bench definitions");
    let mut kernel = Kernel::new(&set);
    let mut entered = [0u64; 3];
    let t = Instant::now();
    for tl in &timelines {
        kernel.evaluate(tl, |f, o| entered[f] += o.level as u64);
    }
    let kernel_time = t.elapsed();
    black_box(entered);

    let per_s = |d: std::time::Duration| rows as f64 / d.as_secs_f64() / 1e6;
    println!(
        "actors {actors}, rows {rows}, funnels {}",
        set.funnels.len()
    );
    println!(
        "baseline (visit + sort): {:?} ({:.1} M rows/s)",
        baseline,
        per_s(baseline)
    );
    println!(
        "kernel (classify + all funnels): {:?} ({:.1} M rows/s)",
        kernel_time,
        per_s(kernel_time)
    );
    println!(
        "ratio kernel/baseline: {:.2}",
        kernel_time.as_secs_f64() / baseline.as_secs_f64()
    );
}
