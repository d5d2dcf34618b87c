//! Crash test of `funnel stream` on a real broker: the stream is `kill -9`ed at random points of its
//! progress (and once aborted inside the store transaction), restarted each time; at
//! the end the fact store holds exactly the brute-force reference over the topic's contents — counts,
//! conversions and dead-letter counts — and every poison message is in the dead-letter file.

mod stream_support;

use std::collections::BTreeSet;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use stream::synth::{generate, TrafficSpec};
use stream_support::*;

#[test]
fn kill_9_at_random_points_neither_loses_nor_double_counts() {
    let Some(tansu) = tansu_or_skip("stream_crash") else {
        return;
    };
    let broker = Broker::start(&tansu);
    let (topic, partitions, group) = ("tracking", 3, "speed");
    broker.create_topic(topic, partitions);
    let dir = tempfile::tempdir().unwrap();
    let facts = format!("sqlite:{}", dir.path().join("facts.db").display());
    let dead = dir.path().join("dead.jsonl");
    let seed: u64 = std::env::var("STREAM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (STREAM_TEST_SEED to repeat)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let traffic = generate(&TrafficSpec::new(seed, 1200));
    let brokers = broker.addr();
    let t0 = std::time::Instant::now();
    produce(&brokers, topic, &traffic);
    let total = traffic.len() as i64;
    eprintln!("{:?}: produced {total} messages", t0.elapsed());
    let args = stream_args(
        &brokers,
        topic,
        group,
        &facts,
        &[
            "--batch-max-messages",
            "20",
            "--batch-max-ms",
            "30",
            "--dead-letter-file",
            dead.to_str().unwrap(),
        ],
    );
    let progress = || store_offsets(&facts, group, topic).values().sum::<i64>();

    // A crash inside the store transaction, after the facts were written and before the offset/commit.
    let mut s = StreamProc::start(dir.path(), "fault", &args, &[("FUNNEL_FAULT", "speed")]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = s.exited() {
            break st;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the fault point was never reached:\n{}",
            read(&s.log)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "the fault run must abort");
    assert_eq!(progress(), 0, "the aborted transaction must leave nothing");
    eprintln!("{:?}: aborted inside the store transaction", t0.elapsed());

    // kill -9 at random points of the stream's progress.
    let kills = 4;
    let mut at = Vec::new();
    for k in 0..kills {
        let target = total * (k + 1) / (kills + 1) + rng.random_range(-total / 20..total / 20);
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
        std::thread::sleep(Duration::from_millis(rng.random_range(0..20)));
        s.kill9();
        at.push(progress());
        eprintln!(
            "{:?}: kill -9 at store offset sum {}",
            t0.elapsed(),
            at[at.len() - 1]
        );
    }

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
    let status = s.terminate();
    assert!(
        status.success(),
        "SIGTERM must end cleanly: {status}\n{}",
        tail(&read(&s.log), 40)
    );
    assert!(
        read(&s.log).contains("left the group"),
        "graceful shutdown leaves the group"
    );

    let ends = end_offsets(&brokers, topic, partitions);
    let total: i64 = ends.iter().sum();
    assert!(
        total >= traffic.len() as i64,
        "everything produced is on the broker"
    );
    let offsets = store_offsets(&facts, group, topic);
    assert_eq!(
        offsets.values().copied().collect::<Vec<_>>(),
        ends,
        "store offsets = end offsets"
    );
    assert!(
        at.iter().filter(|p| **p > 0 && **p < total).count() >= 2,
        "kills must land mid-stream: {at:?} of {total}"
    );

    let want =
        assert_store_matches_reference(&facts, &brokers, group, topic, partitions, &["a1", "a2"]);
    assert!(
        want.conversions.len() > 50,
        "the traffic must convert: {}",
        want.conversions.len()
    );
    assert!(!want.poison.is_empty());

    // Every poison message reached the dead-letter file (at least once: a crash may repeat one).
    let contents = read_topic(&brokers, topic, partitions);
    let mut poison_at = BTreeSet::new();
    for (p, msgs) in contents.iter().enumerate() {
        for (o, m) in msgs {
            if stream::Message::parse(m.as_deref()).is_err() {
                poison_at.insert((p as i32, *o));
            }
        }
    }
    let letters: BTreeSet<(i32, i64)> = read(&dead)
        .lines()
        .map(|l| serde_json::from_str::<stream::DeadLetter>(l).expect("dead letter JSON"))
        .map(|d| (d.partition, d.offset))
        .collect();
    assert_eq!(
        letters, poison_at,
        "dead letters = poison messages (by partition, offset)"
    );
}
