//! `funnel stream` keeps going through a broker restart (`kill -9` of tansu, same port and storage): no
//! message lost, none counted twice, and the same stream process exits cleanly on SIGTERM afterwards.

mod stream_support;

use std::time::Duration;

use stream::synth::{generate, TrafficSpec};
use stream_support::*;

#[test]
fn broker_restart_loses_and_doubles_nothing() {
    let Some(tansu) = tansu_or_skip("stream_broker_restart") else {
        return;
    };
    let mut broker = Broker::start(&tansu);
    let (topic, partitions, group) = ("tracking", 2, "speed");
    broker.create_topic(topic, partitions);
    let dir = tempfile::tempdir().unwrap();
    let facts = format!("sqlite:{}", dir.path().join("facts.db").display());
    let brokers = broker.addr();
    let traffic = generate(&TrafficSpec::new(11, 600));
    let (first, second) = traffic.split_at(traffic.len() / 2);
    produce(&brokers, topic, first);

    let args = stream_args(
        &brokers,
        topic,
        group,
        &facts,
        &["--batch-max-messages", "50", "--batch-max-ms", "30"],
    );
    let mut s = StreamProc::start(dir.path(), "stream", &args, &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while store_offsets(&facts, group, topic).values().sum::<i64>() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no progress before the restart:\n{}",
            read(&s.log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = store_offsets(&facts, group, topic).values().sum::<i64>();
    broker.restart();
    eprintln!(
        "broker restarted with the store at {before} of {} produced so far",
        first.len()
    );
    produce(&brokers, topic, second);
    wait_caught_up(
        &facts,
        group,
        &brokers,
        topic,
        partitions,
        Duration::from_secs(120),
        &[&s.log],
    );
    assert!(
        s.exited().is_none(),
        "the stream survived the broker restart"
    );
    let status = s.terminate();
    assert!(
        status.success(),
        "SIGTERM after a broker restart ends cleanly: {status}"
    );

    let want =
        assert_store_matches_reference(&facts, &brokers, group, topic, partitions, &["a1", "a2"]);
    assert!(want.valid + want.poison.values().sum::<u64>() >= traffic.len() as u64);
    assert!(!want.conversions.is_empty());
}
