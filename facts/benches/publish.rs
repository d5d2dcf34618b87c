//! Benchmark: bulk publish of 1 M fact rows into the SQLite store, then 90-day lambda queries.
//!
//! `cargo bench -p facts --bench publish` prints rows/s of staging + publishing (first run, and a second run
//! that also garbage-collects the first), and latency percentiles of 90-day funnel and counts queries.
//! Set `FACTS_BENCH_ROWS` to change the row count (default 1000000).

use std::time::{Duration, Instant};

use facts::{
    BatchPublisher, CountsQuery, DailyCountFact, Day, FactReader, FunnelQuery, FunnelStepFact,
    RunMeta, SpeedBatch, SqliteStore, StreamSink, Watermark,
};

const FUNNELS: usize = 125;
const DAYS: i32 = 100;
const BREAKDOWNS: usize = 20;
const STEPS: u32 = 4;
const FIRST_DAY: Day = Day(19_800);

fn funnel_rows(funnel: usize, salt: u64) -> Vec<FunnelStepFact> {
    let mut out = Vec::with_capacity(DAYS as usize * BREAKDOWNS * STEPS as usize);
    for d in 0..DAYS {
        for b in 0..BREAKDOWNS {
            for s in 1..=STEPS {
                out.push(FunnelStepFact {
                    app_id: "bench".into(),
                    funnel_id: format!("funnel-{funnel:03}"),
                    funnel_version: "1".into(),
                    day: FIRST_DAY.plus(d),
                    breakdown: format!("bd-{b:02}"),
                    step: s,
                    actors: 1000 / s as u64 + salt + (d as u64 % 7),
                    ttc_median_s: Some(60.0 * s as f64),
                    ttc_p90_s: Some(300.0 * s as f64),
                });
            }
        }
    }
    out
}

fn publish_run(
    store: &dyn BatchPublisher,
    funnels: usize,
    salt: u64,
) -> (usize, Duration, Duration) {
    let start = Instant::now();
    let run = store
        .begin_run(&RunMeta {
            started_at_ms: 0,
            inputs: serde_json::json!({"bench": salt}),
            funnels: (0..funnels)
                .map(|f| (format!("funnel-{f:03}"), "1".into()))
                .collect(),
        })
        .expect("begin_run");
    let mut rows = 0;
    let mut watermarks = Vec::new();
    for f in 0..funnels {
        let batch = funnel_rows(f, salt);
        rows += batch.len();
        store.write_funnel_steps(run, &batch).expect("write");
        watermarks.push(Watermark::funnel(
            "bench",
            &format!("funnel-{f:03}"),
            "1",
            FIRST_DAY.plus(DAYS - 3),
        ));
    }
    let counts: Vec<DailyCountFact> = (0..DAYS)
        .flat_map(|d| {
            (0..50).map(move |t| DailyCountFact {
                app_id: "bench".into(),
                day: FIRST_DAY.plus(d),
                metric: "hits".into(),
                dimension: "tracker".into(),
                value: format!("tracker-{t:02}"),
                count: 100 + t as i64,
            })
        })
        .collect();
    rows += counts.len();
    store
        .write_daily_counts(run, &counts)
        .expect("write counts");
    watermarks.push(Watermark::counts("bench", "hits", FIRST_DAY.plus(DAYS - 3)));
    let staged = start.elapsed();
    let p = Instant::now();
    store.publish(run, &watermarks).expect("publish");
    (rows, staged, p.elapsed())
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.9), at(0.99))
}

fn time_queries(label: &str, n: usize, mut f: impl FnMut() -> usize) {
    let mut lat = Vec::with_capacity(n);
    let mut values = 0;
    for _ in 0..n {
        let t = Instant::now();
        values = f();
        lat.push(t.elapsed());
    }
    let (p50, p90, p99) = percentiles(lat);
    println!(
        "{label:<44} {values:>6} values  p50 {p50:>10.2?}  p90 {p90:>10.2?}  p99 {p99:>10.2?}"
    );
}

fn main() {
    let target: usize = std::env::var("FACTS_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let per_funnel = DAYS as usize * BREAKDOWNS * STEPS as usize;
    let funnels = target.div_ceil(per_funnel).clamp(1, FUNNELS * 100);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path().join("bench.db")).expect("open");

    for (label, salt) in [
        ("run 1 (empty store)", 0),
        ("run 2 (replaces + collects run 1)", 1),
    ] {
        let (rows, staged, publish) = publish_run(&store, funnels, salt);
        let total = staged + publish;
        println!(
            "publish {label:<36} {rows} rows: stage {staged:.2?}, publish {publish:.2?}, total {total:.2?} = {:.0} rows/s",
            rows as f64 / total.as_secs_f64()
        );
    }
    let size = std::fs::metadata(dir.path().join("bench.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("store file: {:.1} MiB", size as f64 / (1 << 20) as f64);

    // Speed partials for the last days (past the watermark), so the queries merge both layers.
    for (i, d) in (DAYS - 3..DAYS + 2).enumerate() {
        let batch = SpeedBatch {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            first_offset: i as i64 * 10,
            next_offset: i as i64 * 10 + 10,
            funnel_steps: (0..BREAKDOWNS)
                .flat_map(|b| {
                    (1..=STEPS).map(move |s| FunnelStepFact {
                        app_id: "bench".into(),
                        funnel_id: "funnel-000".into(),
                        funnel_version: "1".into(),
                        day: FIRST_DAY.plus(d),
                        breakdown: format!("bd-{b:02}"),
                        step: s,
                        actors: 10,
                        ttc_median_s: None,
                        ttc_p90_s: None,
                    })
                })
                .collect(),
            ..SpeedBatch::default()
        };
        store.apply_speed_batch(&batch).expect("speed");
    }

    let from = FIRST_DAY.plus(DAYS + 2 - 90);
    let to = FIRST_DAY.plus(DAYS + 1);
    let mut q = FunnelQuery::new("bench", "funnel-000");
    q.from = Some(from);
    q.to = Some(to);
    q.breakdown = true;
    time_queries("90-day funnel query, by breakdown", 200, || {
        let a = store.read_funnel(&q).expect("read");
        a.days.iter().map(|d| d.steps.len()).sum()
    });
    let mut q2 = q.clone();
    q2.breakdown = false;
    time_queries("90-day funnel query, totals", 200, || {
        let a = store.read_funnel(&q2).expect("read");
        a.days.iter().map(|d| d.steps.len()).sum()
    });
    let mut cq = CountsQuery::new("bench", "hits");
    cq.from = Some(from);
    cq.to = Some(to);
    cq.breakdown = true;
    time_queries("90-day counts query, by tracker", 200, || {
        let a = store.read_counts(&cq).expect("read");
        a.days.iter().map(|d| d.values.len()).sum()
    });
}
