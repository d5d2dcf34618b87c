//! Two `funnel stream` processes in one consumer group on a real broker: the second joins mid-stream
//! (rebalance), the first is `kill -9`ed (its partitions move after the session timeout) and restarted
//! (rebalance again). The facts equal the brute-force reference; dead letters reach the dead-letter topic;
//! both processes served Prometheus metrics and did work.

mod stream_support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use stream::synth::{generate, TrafficSpec};
use stream_support::*;

fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn two_processes_rebalancing_neither_lose_nor_double_count() {
    let Some(tansu) = tansu_or_skip("stream_rebalance") else {
        return;
    };
    let broker = Broker::start(&tansu);
    let (topic, partitions, group, dead_topic) = ("tracking", 4, "speed", "tracking-dead");
    broker.create_topic(topic, partitions);
    broker.create_topic(dead_topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let facts = format!("sqlite:{}", dir.path().join("facts.db").display());
    let brokers = broker.addr();
    let traffic = generate(&TrafficSpec::new(23, 1200));
    let producer = {
        let (brokers, traffic) = (brokers.clone(), traffic.clone());
        std::thread::spawn(move || {
            for wave in traffic.chunks(traffic.len() / 15 + 1) {
                produce(&brokers, topic, wave);
                std::thread::sleep(Duration::from_millis(800));
            }
        })
    };
    let (port_a, port_b) = (free_port(), free_port());
    let args = |port: u16| {
        let m = format!("127.0.0.1:{port}");
        stream_args(
            &brokers,
            topic,
            group,
            &facts,
            &[
                "--batch-max-messages",
                "40",
                "--batch-max-ms",
                "30",
                "--dead-letter-topic",
                dead_topic,
                "--metrics",
                &m,
            ],
        )
    };
    let mut a = StreamProc::start(dir.path(), "a", &args(port_a), &[]);
    let progress = || store_offsets(&facts, group, topic).values().sum::<i64>();
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress() == 0 {
        assert!(
            Instant::now() < deadline,
            "a made no progress:\n{}",
            read(&a.log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut b = StreamProc::start(dir.path(), "b", &args(port_b), &[]);
    // Wait until b applied something of its own (it got partitions in the rebalance).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = std::net::TcpStream::connect(("127.0.0.1", port_b))
            .ok()
            .map(|_| scrape(port_b))
            .unwrap_or_default();
        if metric(&m, "funnel_stream_messages_total") > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b never got work:\n{}",
            tail(&read(&b.log), 40)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let a_metrics = scrape(port_a);
    assert!(
        metric(&a_metrics, "funnel_stream_messages_total") > 0.0,
        "{a_metrics}"
    );
    a.kill9();
    std::thread::sleep(Duration::from_millis(1500));
    let mut a2 = StreamProc::start(dir.path(), "a2", &args(port_a), &[]);
    producer.join().expect("producer");
    wait_caught_up(
        &facts,
        group,
        &brokers,
        topic,
        partitions,
        Duration::from_secs(120),
        &[&a2.log, &b.log],
    );
    let b_metrics = scrape(port_b);
    assert!(
        b_metrics.contains("funnel_stream_batch_apply_seconds_bucket"),
        "{b_metrics}"
    );
    // librdkafka statistics (every 5 s) feed the lag gauge; b has been running far longer.
    assert!(
        b_metrics.contains("funnel_stream_consumer_lag{partition="),
        "{b_metrics}"
    );
    assert!(
        metric(&b_metrics, "funnel_stream_conversions_total") > 0.0,
        "{b_metrics}"
    );
    assert!(a2.terminate().success());
    assert!(b.terminate().success());
    let want =
        assert_store_matches_reference(&facts, &brokers, group, topic, partitions, &["a1", "a2"]);
    assert!(want.conversions.len() > 50);

    // Dead letters on their topic: every poison (partition, offset) at least once.
    let contents = read_topic(&brokers, topic, partitions);
    let poison_at: BTreeSet<(i32, i64)> = contents
        .iter()
        .enumerate()
        .flat_map(|(p, msgs)| {
            msgs.iter()
                .filter(|(_, m)| stream::Message::parse(m.as_deref()).is_err())
                .map(move |(o, _)| (p as i32, *o))
        })
        .collect();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "dead-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[dead_topic]).unwrap();
    let mut letters = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while letters != poison_at && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            let d: stream::DeadLetter =
                serde_json::from_slice(m.payload().unwrap_or_default()).expect("dead letter JSON");
            assert_eq!(d.topic, topic);
            letters.insert((d.partition, d.offset));
        }
    }
    assert_eq!(letters, poison_at, "dead-letter topic = poison messages");
}
