//! The stream's store side alone, no broker: synthetic traffic (every id fresh, 0.1 % poison) cut into
//! batches of one partition, each built ([`stream::batch::BatchBuilder`]: the seen-id and pending reads,
//! attribution) and applied to a SQLite store in its transaction — the work `funnel stream` does per batch
//! once messages are fetched. Prints messages/s of build + apply, and of a second pass over a store that
//! already remembers the first pass's ids (a larger seen-id state).
//!
//! `cargo bench -p stream --bench store_apply` (env: BENCH_MESSAGES, default 100000; BENCH_BATCH, messages
//! per batch, default 1600 — 200 ms at 8,000 msg/s).

use std::time::Instant;

use facts::StreamSink;
use stream::batch::BatchBuilder;
use stream::synth::{generate, TrafficSpec};
use stream::AttributionConfig;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Applies `traffic` from offset `*offset` on in batches of `batch`; returns seconds spent.
fn apply(
    store: &facts::Store,
    cfg: &AttributionConfig,
    traffic: &[stream::synth::Produced],
    batch: usize,
    offset: &mut i64,
) -> f64 {
    let start = Instant::now();
    for chunk in traffic.chunks(batch) {
        let mut b = BatchBuilder::new(store, cfg, "bench", 0, *offset);
        for m in chunk {
            b.push(*offset, Some(&m.payload), None)
                .expect("offsets in order");
            *offset += 1;
        }
        let (speed, _) = b
            .finish("g", chrono::Utc::now().timestamp_millis())
            .expect("build");
        assert!(store.apply_speed_batch(&speed).expect("apply"));
    }
    start.elapsed().as_secs_f64()
}

fn main() {
    let n = env("BENCH_MESSAGES", 100_000);
    let batch = env("BENCH_BATCH", 1600).max(1);
    let traffic = |seed| {
        let mut t = generate(&TrafficSpec {
            poison: 0.001,
            ..TrafficSpec::new(seed, n * 2 / 7 + 1)
        });
        t.truncate(n);
        t
    };
    let (first, second) = (traffic(1), traffic(2));
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        facts::open_store(&format!("sqlite:{}", dir.path().join("f.db").display())).expect("store");
    let cfg = AttributionConfig::default();
    let mut offset = 0;
    let s1 = apply(&store, &cfg, &first, batch, &mut offset);
    let s2 = apply(&store, &cfg, &second, batch, &mut offset);
    println!("store side of the stream (SQLite), {n} messages per pass in batches of {batch}");
    println!(
        "  pass 1 (empty store)        {:>10.0} msg/s",
        n as f64 / s1
    );
    println!(
        "  pass 2 ({n} ids remembered) {:>10.0} msg/s",
        n as f64 / s2
    );
}
