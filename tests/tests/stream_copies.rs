//! At-least-once delivery on a real broker, as a property: a random workload in which every valid message
//! is copied a random number of times (copies spread over several batches of their partition, some
//! spelling the id in upper case), consumed by `funnel stream` with `kill -9`s at random points, leaves
//! the store with exactly the facts and conversion records of the workload with each message once, and
//! records = counted conversions. `STREAM_TEST_SEED` repeats a run.

mod stream_support;

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use stream::synth::{generate, with_copies, TrafficSpec};
use stream_support::*;

#[test]
fn copies_count_once_across_batches_partitions_and_kill_9() {
    let Some(tansu) = tansu_or_skip("stream_copies") else {
        return;
    };
    let broker = Broker::start(&tansu);
    let (topic, partitions, group) = ("tracking", 3, "speed");
    broker.create_topic(topic, partitions);
    let brokers = broker.addr();
    let dir = tempfile::tempdir().unwrap();
    let facts = format!("sqlite:{}", dir.path().join("facts.db").display());
    let seed: u64 = std::env::var("STREAM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (STREAM_TEST_SEED to repeat)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let once = generate(&TrafficSpec::new(seed, 500));
    let max_copies = rng.random_range(1..=4);
    let copied = with_copies(&once, seed, max_copies, rng.random_range(5..=80));
    let cfg = stream::AttributionConfig::default();
    let want = stream::reference::expected(once.iter().map(|p| Some(p.payload.as_slice())), &cfg);
    let copies = copied.len() - once.len();
    assert!(copies > 100, "the workload must have copies: {copies}");
    produce(&brokers, topic, &copied);
    let total = copied.len() as i64;
    eprintln!(
        "{} messages once, {copies} copies (up to {max_copies} per message)",
        once.len()
    );

    let args = stream_args(
        &brokers,
        topic,
        group,
        &facts,
        &["--batch-max-messages", "15", "--batch-max-ms", "20"],
    );
    let progress = || store_offsets(&facts, group, topic).values().sum::<i64>();
    let mut kills = Vec::new();
    for k in 0..2 {
        let target = total * (k + 1) / 3 + rng.random_range(-total / 20..total / 20);
        let mut s = StreamProc::start(dir.path(), &format!("run{k}"), &args, &[]);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while progress() < target {
            assert!(
                std::time::Instant::now() < deadline,
                "no progress to {target}:\n{}",
                tail(&read(&s.log), 30)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        s.kill9();
        kills.push(progress());
    }
    eprintln!("kill -9 at store offset sums {kills:?} of {total}");
    let mut s = StreamProc::start(dir.path(), "final", &args, &[]);
    wait_caught_up(
        &facts,
        group,
        &brokers,
        topic,
        partitions,
        Duration::from_secs(120),
        &[&s.log],
    );
    assert!(s.terminate().success());
    assert!(
        kills.iter().filter(|p| **p > 0 && **p < total).count() >= 1,
        "a kill must land mid-stream: {kills:?} of {total}"
    );

    // The facts of the workload with each message once.
    let store = facts::open_store(&facts).expect("store");
    let mut counts = BTreeMap::new();
    for app in ["a1", "a2"] {
        counts.extend(stream::read_counts(&store, app).expect("counts"));
    }
    assert_eq!(counts, want.counts, "daily counts = the workload once");
    let records: std::collections::BTreeSet<_> = stream::read_conversions(&store, None)
        .expect("records")
        .into_iter()
        .collect();
    assert_eq!(
        records, want.conversions,
        "conversion records = the workload once"
    );
    assert!(want.conversions.len() > 30, "the traffic must convert");
    let dl = stream::read_dead_letter_counts(&store, group, topic).expect("dead letters");
    let want_dl: BTreeMap<String, u64> = want
        .poison
        .iter()
        .map(|(r, n)| (r.as_str().to_string(), *n))
        .collect();
    assert_eq!(
        dl, want_dl,
        "poison is not copied: dead letters = the workload once"
    );
    // Also what the brute-force reference (which drops copies) computes from the topic itself.
    assert_store_matches_reference(&facts, &brokers, group, topic, partitions, &["a1", "a2"]);
    let check = stream::check_conversions(&store, &[]).expect("check");
    assert!(check.is_consistent(), "records = counts: {check:?}");
    assert_eq!(check.records, want.conversions.len() as i64);
}
