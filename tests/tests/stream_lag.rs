//! Honest lag on a real broker: `funnel_stream_consumer_lag` has a series for every assigned partition from
//! assignment on (also one that consumes nothing after a restart), and Kafka's committed offsets — what
//! external lag tools read — equal the store's after a run, also after a `kill -9` that lost the last
//! commits.

mod stream_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use stream::synth::{generate, TrafficSpec};
use stream_support::*;

/// Polls `cond` every 100 ms until it holds, or panics with `what` and the last value seen.
fn eventually<T: std::fmt::Debug>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> T,
    cond: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let v = probe();
        if cond(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: last seen {v:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn lag_has_a_series_per_partition_and_kafka_offsets_follow_the_store() {
    let Some(tansu) = tansu_or_skip("stream_lag") else {
        return;
    };
    let broker = Broker::start(&tansu);
    let (topic, partitions, group) = ("tracking", 4, "speed");
    broker.create_topic(topic, partitions);
    let brokers = broker.addr();
    let dir = tempfile::tempdir().unwrap();
    let facts = format!("sqlite:{}", dir.path().join("facts.db").display());
    produce(&brokers, topic, &generate(&TrafficSpec::new(11, 300)));
    let metrics = format!("127.0.0.1:{}", free_port());
    let args = stream_args(&brokers, topic, group, &facts, &["--metrics", &metrics]);
    let store_vec = || -> Vec<i64> {
        let s = store_offsets(&facts, group, topic);
        (0..partitions)
            .map(|p| s.get(&p).copied().unwrap_or(-1))
            .collect()
    };

    let mut s = StreamProc::start(dir.path(), "first", &args, &[]);
    wait_caught_up(
        &facts,
        group,
        &brokers,
        topic,
        partitions,
        Duration::from_secs(60),
        &[&s.log],
    );
    let ends = end_offsets(&brokers, topic, partitions);
    let lag = eventually(
        "a zero lag series for every partition once caught up",
        Duration::from_secs(10),
        || lag_series(&scrape(&metrics)),
        |l| l.len() == partitions as usize && l.values().all(|v| *v == 0),
    );
    eprintln!("caught up at {ends:?}; lag {lag:?}");
    s.kill9();

    // What a lost commit leaves: Kafka behind the store on every partition.
    let behind: Vec<i64> = store_vec().iter().map(|o| (o - 7).max(0)).collect();
    kafka_commit(&brokers, group, topic, &behind);
    assert_eq!(kafka_committed(&brokers, group, topic, partitions), behind);

    // A restart with nothing new to consume: every partition still gets a series, and Kafka catches up.
    let mut s = StreamProc::start(dir.path(), "second", &args, &[]);
    let started = Instant::now();
    let committed = eventually(
        "Kafka's committed offsets = the store's after the restart",
        Duration::from_secs(30),
        || kafka_committed(&brokers, group, topic, partitions),
        |k| *k == store_vec(),
    );
    eprintln!(
        "{:?} after the restart Kafka has {committed:?}",
        started.elapsed()
    );
    assert_eq!(committed, ends);
    let lag = eventually(
        "a zero lag series for every partition, none consumed since the restart",
        Duration::from_secs(10),
        || lag_series(&scrape(&metrics)),
        |l| l.len() == partitions as usize && l.values().all(|v| *v == 0),
    );
    eprintln!("lag after the restart: {lag:?}");

    // Traffic while running: the series follow, and Kafka's offsets track the store's.
    produce(&brokers, topic, &generate(&TrafficSpec::new(12, 200)));
    wait_caught_up(
        &facts,
        group,
        &brokers,
        topic,
        partitions,
        Duration::from_secs(60),
        &[&s.log],
    );
    let ends = end_offsets(&brokers, topic, partitions);
    eventually(
        "Kafka's committed offsets = the store's while running",
        Duration::from_secs(10),
        || kafka_committed(&brokers, group, topic, partitions),
        |k| *k == ends,
    );
    let lag: BTreeMap<i32, i64> = eventually(
        "zero lag after the new traffic",
        Duration::from_secs(10),
        || lag_series(&scrape(&metrics)),
        |l| l.len() == partitions as usize && l.values().all(|v| *v == 0),
    );
    eprintln!("lag after new traffic: {lag:?}");

    // kill -9 right after catching up, then a restart: Kafka equals the store again.
    s.kill9();
    let _s = StreamProc::start(dir.path(), "third", &args, &[]);
    eventually(
        "Kafka's committed offsets = the store's after kill -9",
        Duration::from_secs(30),
        || kafka_committed(&brokers, group, topic, partitions),
        |k| *k == store_vec(),
    );
    assert_eq!(store_vec(), ends);
}
