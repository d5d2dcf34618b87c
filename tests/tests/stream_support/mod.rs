//! Shared by the `stream_*` end-to-end tests: a real tansu broker on a free loopback port (killed on drop),
//! `funnel stream` child processes (killed on drop), producing and reading back with rdkafka, and the check
//! that the fact store holds exactly what the brute-force reference computes from the topic's contents.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::{funnel_bin, tools_dir};
use facts::StreamSink;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// The broker binary `.ci/setup-tansu.sh` builds, or `None` (with the reason printed) outside CI.
/// Under `CI=true` a missing broker fails the test.
pub fn tansu_or_skip(test: &str) -> Option<PathBuf> {
    let bin = tools_dir().join("bin/tansu");
    if bin.is_file() {
        return Some(bin);
    }
    let msg = format!(
        "{test}: no broker at {} (run .ci/setup-tansu.sh)",
        bin.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED {msg}");
    None
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A tansu broker with SQLite storage in its own directory; killed (by PID) on drop.
pub struct Broker {
    bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Broker {
    pub fn start(bin: &Path) -> Broker {
        let mut b = Broker {
            bin: bin.to_path_buf(),
            dir: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            child: None,
        };
        b.spawn();
        b
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .expect("broker log");
        let child = Command::new(&self.bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(log.try_clone().expect("log fd")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} in 60 s:\n{}",
                self.port,
                self.log()
            );
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("tansu exited with {status}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `kill -9` the broker and start it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .create()
            .expect("admin client");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let res = rt
            .block_on(admin.create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
            ))
            .expect("create_topics");
        for r in res {
            r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Produces `(key, payload)` pairs and waits until every one is acknowledged.
pub fn produce(brokers: &str, topic: &str, msgs: &[stream::synth::Produced]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    for m in msgs {
        let mut record = BaseRecord::to(topic).key(&m.key).payload(&m.payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    // Queue full: let deliveries drain.
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "produce: {e}"
                    );
                    record = r;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("all messages acknowledged");
}

/// Every partition's (offset, payload) in offset order, read from the broker (what the stream must have consumed).
pub fn read_topic(brokers: &str, topic: &str, partitions: i32) -> Vec<Vec<(i64, Option<Vec<u8>>)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "reader-not-committing")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let mut out = Vec::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(20))
            .expect("watermarks");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Offset(low))
            .expect("tpl");
        consumer.assign(&tpl).expect("assign");
        let mut msgs = Vec::new();
        let mut next = low;
        let deadline = Instant::now() + Duration::from_secs(60);
        while next < high {
            assert!(
                Instant::now() < deadline,
                "reading partition {p} back timed out at {next}/{high}"
            );
            if let Some(r) = consumer.poll(Duration::from_millis(500)) {
                let m = r.expect("read back");
                assert_eq!(m.partition(), p);
                msgs.push((m.offset(), m.payload().map(<[u8]>::to_vec)));
                next = m.offset() + 1;
            }
        }
        out.push(msgs);
    }
    out
}

/// End offsets per partition.
pub fn end_offsets(brokers: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("client");
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(20))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// A running `funnel stream`; `kill -9` on drop.
pub struct StreamProc {
    child: Option<Child>,
    pub log: PathBuf,
}

impl StreamProc {
    pub fn start(dir: &Path, name: &str, args: &[String], env: &[(&str, &str)]) -> StreamProc {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("stream log");
        let mut cmd = Command::new(funnel_bin());
        cmd.arg("stream")
            .args(args)
            .env("RUST_LOG", "info,stream=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        StreamProc {
            child: Some(cmd.spawn().expect("starting funnel stream")),
            log,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process already exited (and how).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "funnel stream did not exit within 60 s of SIGTERM; log:\n{}",
                    read(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for StreamProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The common `funnel stream` arguments.
pub fn stream_args(
    brokers: &str,
    topic: &str,
    group: &str,
    facts: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut v: Vec<String> = [
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--group",
        group,
        "--facts",
        facts,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(
        [
            "--kafka",
            "session.timeout.ms=6000",
            "--kafka",
            "heartbeat.interval.ms=500",
        ]
        .map(String::from),
    );
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Sum of the store's committed offsets for the group, per partition.
pub fn store_offsets(facts_url: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let store = facts::open_store(facts_url).expect("store");
    store
        .committed_offsets(group, topic)
        .expect("offsets")
        .into_iter()
        .collect()
}

/// Waits until the store's offsets reach the topic's end offsets.
pub fn wait_caught_up(
    facts_url: &str,
    group: &str,
    brokers: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
    logs: &[&Path],
) {
    let ends = end_offsets(brokers, topic, partitions);
    let deadline = Instant::now() + timeout;
    loop {
        let got = store_offsets(facts_url, group, topic);
        let done = ends
            .iter()
            .enumerate()
            .all(|(p, end)| *end == 0 || got.get(&(p as i32)).copied().unwrap_or(0) >= *end);
        if done {
            return;
        }
        if Instant::now() > deadline {
            let logs: String = logs
                .iter()
                .map(|l| format!("--- {}\n{}\n", l.display(), tail(&read(l), 60)))
                .collect();
            panic!("not caught up: store offsets {got:?}, end offsets {ends:?}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// The store holds exactly the reference over the topic's contents: counts, conversions, dead-letter counts.
pub fn assert_store_matches_reference(
    facts_url: &str,
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
    apps: &[&str],
) -> stream::reference::Expected {
    let contents = read_topic(brokers, topic, partitions);
    let cfg = stream::AttributionConfig::default();
    let want =
        stream::reference::expected(contents.iter().flatten().map(|(_, p)| p.as_deref()), &cfg);
    let store = facts::open_store(facts_url).expect("store");
    let mut counts = BTreeMap::new();
    for app in apps {
        counts.extend(stream::read_counts(&store, app).expect("counts"));
    }
    let total = |c: &BTreeMap<(String, i32, String, String, String), i64>, metric: &str| -> i64 {
        c.iter()
            .filter(|(k, _)| k.2 == metric)
            .map(|(_, v)| *v)
            .sum()
    };
    for metric in ["hits", "events", "conversions"] {
        assert_eq!(
            total(&counts, metric),
            total(&want.counts, metric),
            "total {metric}: store vs reference"
        );
    }
    assert_eq!(
        counts, want.counts,
        "daily counts differ from the reference"
    );
    let conversions: std::collections::BTreeSet<_> = stream::read_conversions(&store, None)
        .expect("conversions")
        .into_iter()
        .collect();
    assert_eq!(
        conversions, want.conversions,
        "conversions differ from the brute-force reference"
    );
    let dl = stream::read_dead_letter_counts(&store, group, topic).expect("dead letters");
    let want_dl: BTreeMap<String, u64> = want
        .poison
        .iter()
        .map(|(r, n)| (r.as_str().to_string(), *n))
        .collect();
    assert_eq!(dl, want_dl, "dead-letter counts per reason");
    want
}

/// Kafka's committed offsets of a consumer group, per partition (`-1`: none), as an external lag tool
/// reads them.
pub fn kafka_committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offset reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(20))
        .expect("committed offsets");
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}

/// Commits `offsets` (per partition) for `group` as a client outside the group would (what a lost commit
/// leaves behind); retried while the broker still has the group busy.
pub fn kafka_commit(brokers: &str, group: &str, topic: &str, offsets: &[i64]) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("committer");
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets.iter().enumerate() {
        tpl.add_partition_offset(topic, p as i32, Offset::Offset(*o))
            .expect("tpl");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync) {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("commit refused ({e}); retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("cannot commit {offsets:?} for {group}: {e}"),
        }
    }
}

/// `GET /metrics` of a running `funnel stream --metrics ADDR` (empty until it listens).
pub fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut sock) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = sock.read_to_string(&mut out);
    out
}

/// The `funnel_stream_consumer_lag` series of a scrape: partition → value.
pub fn lag_series(metrics: &str) -> BTreeMap<i32, i64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("funnel_stream_consumer_lag{partition=\""))
        .filter_map(|rest| {
            let (p, v) = rest.split_once("\"} ")?;
            Some((p.parse().ok()?, v.trim().parse().ok()?))
        })
        .collect()
}
