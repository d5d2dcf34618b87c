//! Contract and fault tests of the CQL store through its session seam, without a server.
//!
//! The session is a [`Script`]: it answers only the few reads a scenario turns on (the run's status, a
//! key's pointer, the lease) and records every request; it executes nothing. Every recorded request is
//! checked against Cassandra's limits ([`crate::cql_contract`]); faults (a timeout after or before a write
//! applied, a crash at any request, a second publisher) are injected at the seam. What the facts look like
//! after a fault on a real cluster is the real-server suite's part (`conformance.rs`, `FUNNEL_CQL_NODES`).

use std::sync::{Arc, Mutex};

use super::publish::{FLIP_ATTEMPTS, GC_GRACE_MS};
use super::CqlStore;
use crate::cql_contract::{Contract, Ledger, BATCH_WARN_BYTES};
use crate::cql_session::{BatchKind, CqlSession, Recorder, Reply, Request, RowSet, Value};
use crate::cql_statements as st;
use crate::error::{CqlError, FactsError};
use crate::model::{DailyCountFact, FunnelStepFact, RunMeta, SpeedBatch, StateEntry, Watermark};
use crate::seen::{seen_bucket, IdKind, SeenBy, SeenEntry, SeenId, SEEN_BUCKETS};
use crate::store::{BatchPublisher, FactReader, StateReader, StreamSink};
use crate::url::StoreUrl;
use crate::Day;

type Answer = dyn Fn(&Request) -> Result<RowSet, FactsError> + Send + Sync;

/// A session that answers from a closure.
struct Script(Box<Answer>);

impl CqlSession for Script {
    fn send<'a>(&'a self, request: &'a Request) -> Reply<'a> {
        let out = (self.0)(request);
        Box::pin(async move { out })
    }
}

fn scripted(
    answer: impl Fn(&Request) -> Result<RowSet, FactsError> + Send + Sync + 'static,
) -> (CqlStore, Arc<Recorder<Script>>) {
    let rec = Recorder::new(Script(Box::new(answer)));
    let Ok(StoreUrl::Cql(url)) = "cql://127.0.0.1/funnel".parse() else {
        panic!("url")
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    (CqlStore::with_session(&url, rec.clone(), rt), rec)
}

fn stmt(r: &Request) -> &'static str {
    match r {
        Request::Execute { stmt, .. } => stmt.name,
        Request::Batch { statements, .. } => statements.first().map_or("", |s| s.0.name),
        Request::Ddl { .. } => "DDL",
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn one(v: Value) -> RowSet {
    vec![vec![v]]
}

/// Answers of a healthy cluster for a run's life: the run is `running` until marked `publishing`, the
/// lease is free, nothing else exists.
fn healthy(status: &Mutex<&'static str>, r: &Request) -> Result<RowSet, FactsError> {
    Ok(match stmt(r) {
        "SELECT_RUN_STATUS" => one(text(&status.lock().unwrap())),
        "MARK_PUBLISHING" => {
            *status.lock().unwrap() = "publishing";
            Vec::new()
        }
        "ACQUIRE_LEASE" | "RENEW_LEASE" | "RELEASE_LEASE" => one(Value::Bool(true)),
        _ => Vec::new(),
    })
}

fn unknown(what: &str) -> FactsError {
    CqlError::OutcomeUnknown {
        request: what.to_string(),
        reason: "write timeout (injected)".into(),
    }
    .into()
}

fn meta() -> RunMeta {
    RunMeta {
        started_at_ms: 1_700_000_000_000,
        inputs: serde_json::json!({}),
        funnels: Vec::new(),
    }
}

fn marks(apps: usize, funnels: usize) -> Vec<Watermark> {
    let mut out = Vec::new();
    for a in 0..apps {
        for f in 0..funnels {
            out.push(Watermark::funnel(
                &format!("app-{a:03}"),
                &format!("funnel-{f:03}"),
                "v0123456789abcdef",
                Day(19_900),
            ));
        }
    }
    out
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Every kind of violation of the recorded requests (each message once).
fn violations(requests: &[Request]) -> Vec<String> {
    let c = Contract::new();
    let now = now_s();
    let all: std::collections::BTreeSet<String> =
        requests.iter().flat_map(|r| c.violations(r, now)).collect();
    all.into_iter().collect()
}

const DROPS: [&str; 4] = [
    "DELETE_STEPS_RUN",
    "DELETE_TOTALS_RUN",
    "DELETE_COUNTS_RUN",
    "DELETE_RUN_KEY",
];

/// The run ids whose rows a request drops.
fn dropped(requests: &[Request]) -> Vec<i64> {
    requests
        .iter()
        .filter(|r| DROPS.contains(&stmt(r)))
        .filter_map(|r| match r {
            Request::Execute { stmt, values } => values
                .get(if stmt.name == "DELETE_RUN_KEY" {
                    0
                } else {
                    stmt.arity - 1
                })
                .and_then(|v| match v {
                    Value::BigInt(n) => Some(*n),
                    _ => None,
                }),
            _ => None,
        })
        .collect()
}

#[test]
fn a_publish_of_50_apps_by_100_funnels_stays_within_cassandra_limits() {
    let status = Mutex::new("running");
    let (store, rec) = scripted(move |r| healthy(&status, r));
    let run = store.begin_run(&meta()).unwrap();
    store.publish(run, &marks(50, 100)).unwrap();
    let requests = rec.requests();
    assert_eq!(violations(&requests), Vec::<String>::new());
    // Partitions written: an app's pointers are its 100 keys; the run's key list its 5,000 keys.
    let mut ledger = Ledger::new();
    requests.iter().for_each(|r| ledger.observe(r));
    let (rows, bytes, tombstones) = ledger.largest("watermarks");
    assert_eq!((rows, tombstones), (100, 0));
    assert!(bytes < 20 * 1024, "{bytes}");
    assert_eq!(ledger.largest("run_keys").0, 5000);
    // One single-partition flip per app, all 100 of its keys in it.
    let flips: Vec<&Request> = requests
        .iter()
        .filter(|r| matches!(r, Request::Batch { .. }))
        .collect();
    assert_eq!(flips.len(), 50);
    let c = Contract::new();
    for f in flips {
        let Request::Batch { kind, statements } = f else {
            unreachable!()
        };
        assert_eq!(*kind, BatchKind::Logged);
        assert_eq!(statements.len(), 100);
        let partitions: std::collections::BTreeSet<_> = statements
            .iter()
            .map(|(s, v)| c.effect(s, v).partition)
            .collect();
        assert_eq!(partitions.len(), 1);
        // Exempt from the size thresholds as one mutation, and still small: ~11 KB.
        let size: usize = statements
            .iter()
            .map(|(s, v)| c.effect(s, v).data_size)
            .sum();
        assert!(size > BATCH_WARN_BYTES && size < 20 * 1024, "{size}");
    }
}

/// A stream hour at 200 ms batches: partials, pending state expiring in an hour, a conversion kept
/// forever, now and then a dead letter counted forever.
fn stream_batch(i: i64, now_ms: i64) -> SpeedBatch {
    let day = Day(19_900);
    let mut state_puts = vec![
        StateEntry {
            namespace: "pending".into(),
            key: format!("[\"shop\",\"fp{}\"]", i % 500),
            value: vec![b'{'; 200],
            expires_at_ms: now_ms + 3_600_000,
        },
        StateEntry {
            namespace: "conversion".into(),
            key: format!("[\"shop\",\"actor{i}\",{now_ms},\"hit{i}\"]"),
            value: vec![b'{'; 300],
            expires_at_ms: i64::MAX,
        },
    ];
    if i % 100 == 0 {
        state_puts.push(StateEntry {
            namespace: "deadletter".into(),
            key: "[\"events\",0,\"not json\"]".into(),
            value: (i / 100).to_string().into_bytes(),
            expires_at_ms: i64::MAX,
        });
    }
    SpeedBatch {
        group: "funnel".into(),
        topic: "events".into(),
        partition: 0,
        first_offset: i * 50,
        next_offset: (i + 1) * 50,
        daily_counts: vec![DailyCountFact {
            app_id: "shop".into(),
            day,
            metric: "hits".into(),
            dimension: "tracker".into(),
            value: "web".into(),
            count: 50,
        }],
        funnel_steps: vec![FunnelStepFact {
            app_id: "shop".into(),
            funnel_id: "signup".into(),
            funnel_version: "v1".into(),
            day,
            breakdown: String::new(),
            step: 1,
            actors: 3,
            ttc_median_s: None,
            ttc_p90_s: None,
        }],
        state_puts,
        state_deletes: Vec::new(),
        // The ids of the batch's messages (10 of its 50 are valid and new), remembered for a day.
        seen_ids: (0..10)
            .map(|j| SeenEntry {
                id: SeenId::new(
                    "shop",
                    if j % 4 == 0 {
                        IdKind::Event
                    } else {
                        IdKind::Hit
                    },
                    &format!("00000000-0000-4000-8000-{:012x}", i * 10 + j),
                ),
                expires_at_ms: now_ms + 86_400_000,
                offset: i * 50 + j,
            })
            .collect(),
        owned_namespaces: vec!["pending".into(), "deadletter".into()],
    }
}

/// An hour of stream batches (one Kafka partition, 200 ms batches) against the in-memory executor: every
/// request within Cassandra's limits, every commit ONE conditional single-partition batch, the partitions
/// it grows bounded (the commit point and the cumulative rows are overwritten, not appended per batch), and
/// no TTL past 2038.
#[test]
fn an_hour_of_stream_batches_stays_within_cassandra_limits() {
    let memory = crate::cql_memory::MemorySession::new();
    let rec = Recorder::new(memory.clone());
    let store = crate::cql_memory::store_over(rec.clone());
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut ledger = Ledger::new();
    let mut violated = std::collections::BTreeSet::new();
    let mut ttls: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    let c = Contract::new();
    let mut commits = 0;
    // One hour at one batch per 200 ms, checked a thousand batches at a time (the recorder's memory).
    for chunk in 0..18 {
        for i in chunk * 1000..(chunk + 1) * 1000 {
            assert!(store.apply_speed_batch(&stream_batch(i, now_ms)).unwrap());
        }
        let requests = rec.requests();
        rec.clear();
        violated.extend(violations(&requests));
        for r in &requests {
            ledger.observe(r);
            if let Request::Batch { statements, .. } = r {
                commits += 1;
                assert!(r.is_conditional(), "{}", r.name());
                let partitions: std::collections::BTreeSet<_> = statements
                    .iter()
                    .map(|(s, v)| (c.effect(s, v).table, c.effect(s, v).partition))
                    .collect();
                assert_eq!(partitions.len(), 1, "{}", r.name());
                let size: usize = statements
                    .iter()
                    .map(|(s, v)| c.effect(s, v).data_size)
                    .sum();
                assert!(size < 2 * 1024, "a commit of {size} bytes");
            }
            for (stmt, values) in r.statements() {
                let (ns, ttl) = match (stmt.name, values.first(), values.get(6)) {
                    ("UPSERT_RECORD", Some(Value::Text(ns)), _) => (ns.clone(), values.last()),
                    ("UPSERT_PARTITION_STATE", Some(ttl), Some(Value::Text(kind))) => {
                        (kind.trim_start_matches("s:").to_string(), Some(ttl))
                    }
                    ("INSERT_SEEN", ..) => ("seen".to_string(), values.last()),
                    _ => continue,
                };
                if let Some(Value::Int(ttl)) = ttl {
                    ttls.entry(ns).or_default().push(*ttl);
                }
            }
        }
    }
    assert_eq!(violated, Default::default());
    assert_eq!(commits, 18_000, "one commit per batch");
    for table in [
        "funnel_steps_speed",
        "daily_counts_speed",
        "stream_partitions",
        "stream_records",
        "stream_record_apps",
        "stream_record_days",
        "stream_offsets",
        "stream_seen",
    ] {
        let (rows, bytes, tombstones) = ledger.largest(table);
        eprintln!("an hour of stream: largest {table} partition: {rows} rows, {bytes} bytes, {tombstones} tombstones");
    }
    // The Kafka partition's own partition: 500 pending buckets, one count, one funnel row, one dead-letter
    // counter — after 18,000 batches as after the first 500.
    let (rows, bytes, tombstones) = ledger.largest("stream_partitions");
    assert_eq!((rows, tombstones), (503, 0));
    assert!(bytes < 503 * 300, "{bytes} bytes");
    // The conversions (one per batch, all clicked today) are one app's records of one day: their own
    // partition, listed by one index row per app and per day; nothing lands in the legacy table.
    let (rows, bytes, tombstones) = ledger.largest("stream_records");
    assert_eq!((rows, tombstones), (18_000, 0));
    assert!(bytes < 18_000 * 420, "{bytes} bytes");
    assert_eq!(ledger.largest("stream_record_apps").0, 1);
    assert_eq!(ledger.largest("stream_record_days").0, 1);
    assert_eq!(ledger.largest("stream_state"), (0, 0, 0));
    // Readers sum one row per Kafka partition, not one per batch.
    assert_eq!(ledger.largest("daily_counts_speed").0, 1);
    assert_eq!(ledger.largest("funnel_steps_speed").0, 1);
    assert_eq!(ledger.largest("stream_offsets").0, 1);
    // The hour's 180,000 ids spread over the app's 1,024 buckets: ~175 rows of ~125 bytes each.
    let seen: Vec<usize> = ledger
        .partitions
        .iter()
        .filter(|((t, _), _)| t == "stream_seen")
        .map(|(_, p)| p.rows.len())
        .collect();
    assert_eq!(seen.len(), SEEN_BUCKETS as usize);
    assert_eq!(seen.iter().sum::<usize>(), 18_000 * 10);
    let (rows, bytes, tombstones) = ledger.largest("stream_seen");
    assert!(
        rows < 250 && bytes < 250 * 150 && tombstones == 0,
        "{rows} rows, {bytes} bytes"
    );
    // What is kept forever is written without a TTL, what expires within Cassandra's range keeps it.
    assert!(ttls["conversion"].iter().all(|t| *t == 0));
    assert!(ttls["deadletter"].iter().all(|t| *t == 0));
    assert!(ttls["pending"].iter().all(|t| (3000..=3600).contains(t)));
    assert!(ttls["seen"].iter().all(|t| (86_000..=86_400).contains(t)));
    // And the store reads back what an hour applied: 18,000 × 50 hits, in one row.
    let counts = store
        .read_counts(&crate::CountsQuery::new("shop", "hits"))
        .unwrap();
    assert_eq!(counts.days[0].values[0].count, 18_000 * 50);
    assert_eq!(
        store.committed_offsets("funnel", "events").unwrap(),
        vec![(0, 18_000 * 50)]
    );
}

/// Conversions of a week, two apps, clicked on the day of their batch: each (app, day) its own bounded
/// partition, found again by readers through the indexes with single-partition reads only (before, every
/// record of every app and day was one row of `stream_state`'s one `conversion` partition).
#[test]
fn a_week_of_conversions_keeps_each_app_and_day_in_its_own_partition() {
    let memory = crate::cql_memory::MemorySession::new();
    let rec = Recorder::new(memory.clone());
    let store = crate::cql_memory::store_over(rec.clone());
    let now_ms = chrono::Utc::now().timestamp_millis();
    let first_day_ms = Day::from_unix_ms(now_ms).plus(-6).start_unix_ms();
    for day in 0..7i64 {
        for j in 0..1000i64 {
            let i = day * 1000 + j;
            let mut b = stream_batch(i, now_ms);
            let app = if i % 2 == 0 { "shop" } else { "blog" };
            let hit_ts = first_day_ms + day * 86_400_000 + j * 60_000;
            b.state_puts[1].key = format!("[\"{app}\",\"actor{i}\",{hit_ts},\"hit{i}\"]");
            assert!(store.apply_speed_batch(&b).unwrap());
        }
    }
    let requests = rec.requests();
    rec.clear();
    assert_eq!(violations(&requests), Vec::<String>::new());
    let mut ledger = Ledger::new();
    requests.iter().for_each(|r| ledger.observe(r));
    let records: Vec<usize> = ledger
        .partitions
        .iter()
        .filter(|((t, _), _)| t == "stream_records")
        .map(|(_, p)| p.rows.len())
        .collect();
    assert_eq!(records, vec![500; 14], "one partition per app and day");
    assert_eq!(ledger.largest("stream_record_apps").0, 2);
    assert_eq!(ledger.largest("stream_record_days").0, 7);
    assert_eq!(ledger.largest("stream_state"), (0, 0, 0));
    // The indexes are written once per (app, day) by a process, not once per batch.
    let indexed = requests
        .iter()
        .filter(|r| stmt(r) == "UPSERT_RECORD_DAY")
        .count();
    assert_eq!(indexed, 14);
    // Every record back, in key order: the apps, each app's days, then the undated partition and the 14
    // (app, day) partitions — each a single-partition read.
    let all = store.scan_state("conversion", "", 0).unwrap();
    assert_eq!(all.len(), 7000);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    let reads = rec.requests();
    rec.clear();
    assert_eq!(violations(&reads), Vec::<String>::new());
    assert_eq!(reads.len(), 1 + 2 + 15);
    // One app: its days, then its partitions only.
    let shop = store.scan_state("conversion", "[\"shop\",", 0).unwrap();
    assert_eq!(shop.len(), 3500);
    assert_eq!(rec.requests().len(), 1 + 1 + 7);
    // A record by key: one single-row read of its partition.
    rec.clear();
    let (key, value) = &shop[0];
    assert_eq!(
        store.get_state("conversion", key, 0).unwrap().as_ref(),
        Some(value)
    );
    assert_eq!(rec.requests().len(), 1);
}

/// `funnel facts init` on a keyspace of the previous layout copies its conversion records (one partition
/// of `stream_state`) into their (app, day) partitions, once.
#[test]
fn init_moves_the_legacy_conversion_records_once() {
    const LEGACY_PUT: st::Stmt = st::Stmt {
        name: "LEGACY_PUT_STATE",
        template: "INSERT INTO {ks}.stream_state (namespace, key, value, expires_at_ms) VALUES (?, ?, ?, ?)",
        arity: 4,
    };
    let memory = crate::cql_memory::MemorySession::new();
    let rec = Recorder::new(memory.clone());
    let store = crate::cql_memory::store_over(rec.clone());
    let day_ms = 1_717_236_000_000i64;
    let key = |i: i64| {
        let ts = day_ms + (i % 3) * 86_400_000;
        format!("[\"shop\",\"u{i}\",{ts},\"h{i}\",\"e{i}\"]")
    };
    let legacy = |ns: &str, key: String| {
        let put = Request::execute(LEGACY_PUT, (ns, key, vec![7u8], i64::MAX));
        memory.execute(&put).unwrap();
    };
    for i in 0..300 {
        legacy("conversion", key(i));
    }
    // Pending state of that layout is not carried over (docs/CASSANDRA.md).
    legacy("pending", "[\"shop\",\"fp\"]".into());
    assert!(store.scan_state("conversion", "", 0).unwrap().is_empty());
    store.init().unwrap();
    let got = store.scan_state("conversion", "", 0).unwrap();
    assert_eq!(got.len(), 300);
    assert_eq!(
        store.get_state("conversion", &key(7), 0).unwrap(),
        Some(vec![7u8])
    );
    assert_eq!(
        store.get_state("pending", "[\"shop\",\"fp\"]", 0).unwrap(),
        None
    );
    let mut ledger = Ledger::new();
    rec.requests().iter().for_each(|r| ledger.observe(r));
    assert_eq!(ledger.largest("stream_records").0, 100, "three days");
    // Again: the legacy table is not read twice.
    rec.clear();
    store.init().unwrap();
    assert!(!rec
        .requests()
        .iter()
        .any(|r| stmt(r) == "SELECT_LEGACY_STATE"));
    assert_eq!(store.scan_state("conversion", "", 0).unwrap().len(), 300);
}

/// Answers `SELECT_RECORD` after a millisecond (every third key missing) and keeps the most requests it
/// ever had in flight at once.
struct Slow {
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl CqlSession for Slow {
    fn send<'a>(&'a self, request: &'a Request) -> Reply<'a> {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            self.in_flight.fetch_sub(1, SeqCst);
            let Request::Execute { values, .. } = request else {
                return Ok(Vec::new());
            };
            let Value::Text(key) = &values[3] else {
                return Ok(Vec::new());
            };
            let n: u32 = key
                .trim_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .unwrap();
            Ok(if n.is_multiple_of(3) {
                Vec::new()
            } else {
                vec![vec![
                    Value::Blob(key.as_bytes().to_vec()),
                    Value::BigInt(i64::MAX),
                ]]
            })
        })
    }
}

/// A batch's pending buckets are read concurrently (not one round trip after the other), one single-row
/// read each, answered in the order asked.
#[test]
fn pending_buckets_are_read_at_once_in_order() {
    let slow = Arc::new(Slow {
        in_flight: Default::default(),
        most: Default::default(),
    });
    let rec = Recorder::new(slow.clone());
    let Ok(StoreUrl::Cql(url)) = "cql://127.0.0.1/funnel".parse() else {
        panic!("url")
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store = CqlStore::with_session(&url, rec.clone(), rt);
    let keys: Vec<String> = (0..150).map(|i| format!("[\"shop\",\"fp{i}\"]")).collect();
    let got = store.get_states("pending", &keys, 0).unwrap();
    let want: Vec<Option<Vec<u8>>> = (0..150)
        .map(|i: usize| (!i.is_multiple_of(3)).then(|| keys[i].as_bytes().to_vec()))
        .collect();
    assert_eq!(got, want);
    let most = slow.most.load(std::sync::atomic::Ordering::SeqCst);
    assert!(most > 1, "{most} read in flight at most");
    let requests = rec.requests();
    assert_eq!(requests.len(), keys.len());
    assert_eq!(violations(&requests), Vec::<String>::new());
}

/// A batch's seen ids are looked up with single-row reads of their (app, bucket) partitions, answered in
/// the order asked; a row past its expiry (not yet dropped by its TTL) is not an answer.
#[test]
fn seen_ids_are_read_from_their_bucket_partitions() {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let ids: Vec<SeenId> = (0..200)
        .map(|i| {
            SeenId::new(
                "shop",
                IdKind::Hit,
                &format!("00000000-0000-4000-8000-{i:012x}"),
            )
        })
        .collect();
    let (store, rec) = scripted(move |r| {
        let Request::Execute { stmt, values } = r else {
            return Ok(Vec::new());
        };
        if stmt.name != "SELECT_SEEN" {
            return Ok(Vec::new());
        }
        // Ids whose last byte is even were applied by batch 10 of partition 1; those divisible by 3 of
        // them expired a second ago.
        let Value::Blob(id) = &values[2] else {
            panic!("{values:?}")
        };
        let n = *id.last().unwrap();
        if n % 2 == 1 {
            return Ok(Vec::new());
        }
        let expires = if n % 3 == 0 {
            now_ms - 1000
        } else {
            now_ms + 1000
        };
        Ok(vec![vec![
            Value::BigInt(expires),
            text("events"),
            Value::Int(1),
            Value::BigInt(10),
        ]])
    });
    let got = store.seen_by(&ids, now_ms).unwrap();
    let want: Vec<Option<SeenBy>> = (0..200u32)
        .map(|i| {
            let n = i as u8;
            (n.is_multiple_of(2) && !n.is_multiple_of(3)).then(|| SeenBy {
                topic: "events".into(),
                partition: 1,
                offset: 10,
            })
        })
        .collect();
    assert_eq!(got, want);
    let requests = rec.requests();
    assert_eq!(requests.len(), 200);
    let c = Contract::new();
    for (r, id) in requests.iter().zip(&ids) {
        assert_eq!(c.violations(r, now_s()), Vec::<String>::new());
        let Request::Execute { values, .. } = r else {
            unreachable!()
        };
        let bytes = id.key_bytes();
        assert_eq!(
            values,
            &[
                text("shop"),
                Value::Int(seen_bucket(&bytes)),
                Value::Blob(bytes)
            ]
        );
    }
    assert_eq!(store.count_seen(now_ms).unwrap(), None, "no table scan");
}

/// The flip's batches answer an injected error; the pointers read back name `flipped_run` or an old run.
fn flip_fails(
    status: &Mutex<&'static str>,
    sent_run: &Mutex<Option<i64>>,
    applied: bool,
    r: &Request,
) -> Result<RowSet, FactsError> {
    match (r, stmt(r)) {
        (Request::Batch { statements, .. }, _) => {
            if let Some(Value::BigInt(run)) = statements[0].1.get(4) {
                *sent_run.lock().unwrap() = Some(*run);
            }
            Err(unknown("flip"))
        }
        (_, "SELECT_WATERMARKS") => {
            let named = if applied {
                sent_run.lock().unwrap().unwrap_or(1)
            } else {
                1
            };
            Ok(vec![vec![
                text("f"),
                text("1"),
                text("2024-06-01"),
                Value::BigInt(named),
                Value::BigInt(0),
            ]])
        }
        (_, "SELECT_WATERMARK") => Ok(vec![vec![
            text("2024-05-01"),
            Value::BigInt(1),
            Value::BigInt(0),
        ]]),
        _ => healthy(status, r),
    }
}

#[test]
fn a_flip_that_timed_out_but_was_applied_publishes() {
    let status = Mutex::new("running");
    let sent = Mutex::new(None);
    let (store, rec) = scripted(move |r| flip_fails(&status, &sent, true, r));
    let run = store.begin_run(&meta()).unwrap();
    let mark = Watermark::funnel("a", "f", "1", Day(19_900));
    store.publish(run, &[mark]).unwrap();
    let requests = rec.requests();
    let flips = requests
        .iter()
        .filter(|r| matches!(r, Request::Batch { .. }));
    assert_eq!(flips.count(), FLIP_ATTEMPTS);
    assert!(requests.iter().any(|r| stmt(r) == "FINISH_RUN"));
    // Neither the new run nor the old one (a reader may hold its pointer) is dropped.
    assert_eq!(dropped(&requests), Vec::<i64>::new());
    let queued: Vec<&Request> = requests
        .iter()
        .filter(|r| stmt(r) == "ENQUEUE_GC")
        .collect();
    let Request::Execute { values, .. } = queued[0] else {
        unreachable!()
    };
    assert_eq!(
        values[1],
        Value::BigInt(1),
        "the old run waits for its grace period"
    );
    let Value::BigInt(due) = values[0] else {
        unreachable!()
    };
    assert!(due >= chrono::Utc::now().timestamp_millis() + GC_GRACE_MS - 60_000);
}

#[test]
fn a_flip_that_timed_out_unapplied_fails_and_drops_nothing() {
    let status = Arc::new(Mutex::new("running"));
    let sent = Mutex::new(None);
    let st2 = status.clone();
    let (store, rec) = scripted(move |r| flip_fails(&st2, &sent, false, r));
    let run = store.begin_run(&meta()).unwrap();
    let mark = Watermark::funnel("a", "f", "1", Day(19_900));
    let err = store.publish(run, &[mark]).unwrap_err();
    assert!(err.is_ambiguous_write(), "{err}");
    // The job then fails the run: its rows stay (the flip may still land), and so do the old run's.
    store.fail_run(run, "publish failed").unwrap();
    let requests = rec.requests();
    assert_eq!(dropped(&requests), Vec::<i64>::new());
    assert!(!requests
        .iter()
        .any(|r| stmt(r) == "FINISH_RUN" && format!("{r:?}").contains("\"published\"")));
    assert_eq!(*status.lock().unwrap(), "publishing");
}

#[test]
fn a_crash_at_any_request_of_a_publish_never_drops_a_run_a_pointer_may_name() {
    // The full publish of 3 apps × 2 funnels over an old run 1, counted once to know its length.
    let full = {
        let status = Mutex::new("running");
        let (store, rec) = scripted(move |r| match stmt(r) {
            "SELECT_WATERMARK" => Ok(vec![vec![
                text("2024-05-01"),
                Value::BigInt(1),
                Value::BigInt(0),
            ]]),
            _ => healthy(&status, r),
        });
        let run = store.begin_run(&meta()).unwrap();
        store.publish(run, &marks(3, 2)).unwrap();
        rec.requests().len()
    };
    for crash_at in 0..full {
        let status = Arc::new(Mutex::new("running"));
        let count = Arc::new(Mutex::new(0usize));
        let (s2, c2) = (status.clone(), count.clone());
        let (store, rec) = scripted(move |r| {
            let mut n = c2.lock().unwrap();
            *n += 1;
            if *n > crash_at + 1 && *n <= full + 1 {
                return Err(CqlError::Decode {
                    reason: "crashed (injected)".into(),
                }
                .into());
            }
            match stmt(r) {
                "SELECT_WATERMARK" => Ok(vec![vec![
                    text("2024-05-01"),
                    Value::BigInt(1),
                    Value::BigInt(0),
                ]]),
                _ => healthy(&s2, r),
            }
        });
        let Ok(run) = store.begin_run(&meta()) else {
            continue;
        };
        let published = store.publish(run, &marks(3, 2)).is_ok();
        assert_eq!(
            dropped(&rec.requests()),
            Vec::<i64>::new(),
            "crash at request {crash_at}: the old run 1 or the new run was dropped"
        );
        // The failed publish is then failed by the job: a run whose publish began keeps its rows (a
        // pointer may name it); one that never began is dropped (no pointer can).
        if !published {
            let began = *status.lock().unwrap() == "publishing";
            *count.lock().unwrap() = full + 1;
            store.fail_run(run, "crashed").unwrap();
            let d = dropped(&rec.requests());
            assert!(
                d.iter().all(|r| !began && *r == run.0),
                "crash at {crash_at}: {d:?}"
            );
        }
    }
}

#[test]
fn garbage_collection_follows_the_pointers() {
    let status = Mutex::new("running");
    let (store, rec) = scripted(move |r| {
        let values = match r {
            Request::Execute { values, .. } => values.clone(),
            _ => Vec::new(),
        };
        let pointer = |run: i64| {
            Ok(vec![vec![
                text("2024-05-01"),
                Value::BigInt(run),
                Value::BigInt(0),
            ]])
        };
        match stmt(r) {
            "SELECT_GC_DUE" => Ok(vec![vec![Value::BigInt(0), Value::BigInt(5)]]),
            "SELECT_RUN_STATUS" if values[1] == Value::BigInt(5) => Ok(one(text("published"))),
            "SELECT_RUN_KEYS" if values[0] == Value::BigInt(5) => Ok(["f", "g", "h"]
                .iter()
                .map(|f| vec![text("a"), text(f), text("1")])
                .collect()),
            // f still points at run 5, g moved on to run 9, h never moved past run 3.
            "SELECT_WATERMARK" if values[1] == text("f") => pointer(5),
            "SELECT_WATERMARK" if values[1] == text("g") => pointer(9),
            "SELECT_WATERMARK" if values[1] == text("h") => pointer(3),
            _ => healthy(&status, r),
        }
    });
    let run = store.begin_run(&meta()).unwrap();
    store.publish(run, &[]).unwrap();
    let requests = rec.requests();
    let drops: Vec<String> = requests
        .iter()
        .filter(|r| DROPS.contains(&stmt(r)))
        .map(|r| format!("{r:?}"))
        .collect();
    assert!(!drops.is_empty());
    assert!(
        drops.iter().all(|d| d.contains("Text(\"g\")")),
        "{drops:#?}"
    );
    assert!(requests.iter().any(|r| stmt(r) == "DELETE_GC"));
}

#[test]
fn a_second_publisher_is_fenced_by_the_lease() {
    let status = Mutex::new("running");
    let (store, rec) = scripted(move |r| match stmt(r) {
        "ACQUIRE_LEASE" => Ok(vec![vec![Value::Bool(false)]]),
        "SELECT_LEASE" => Ok(one(Value::BigInt(42))),
        _ => healthy(&status, r),
    });
    let run = store.begin_run(&meta()).unwrap();
    let err = store.publish(run, &marks(2, 2)).unwrap_err();
    assert!(
        matches!(&err, FactsError::Cql(e) if matches!(**e, CqlError::LeaseHeld { holder: 42 })),
        "{err}"
    );
    let requests = rec.requests();
    assert!(!requests
        .iter()
        .any(|r| matches!(r, Request::Batch { .. }) || stmt(r) == "MARK_PUBLISHING"));

    // A lease lost midway (expired, taken by another host) stops the flips at the next app.
    let status = Mutex::new("running");
    let renewals = Mutex::new(0);
    let (store, rec) = scripted(move |r| match stmt(r) {
        "RENEW_LEASE" => {
            let mut n = renewals.lock().unwrap();
            *n += 1;
            Ok(vec![vec![Value::Bool(*n == 1), Value::BigInt(42)]])
        }
        _ => healthy(&status, r),
    });
    let run = store.begin_run(&meta()).unwrap();
    let err = store.publish(run, &marks(3, 1)).unwrap_err();
    assert!(err.to_string().contains("run 42"), "{err}");
    let flips = rec
        .requests()
        .iter()
        .filter(|r| matches!(r, Request::Batch { .. }))
        .count();
    assert_eq!(flips, 1);
}

#[test]
fn init_creates_a_replicated_keyspace_then_tunes_every_table() {
    let (store, rec) = scripted(|_| Ok(Vec::new()));
    store.init().unwrap();
    let requests = rec.requests();
    let ddl: Vec<&str> = requests
        .iter()
        .filter_map(|r| match r {
            Request::Ddl { cql } => Some(cql.as_str()),
            _ => None,
        })
        .collect();
    // Three replicas unless the URL says otherwise: one replica cannot answer LOCAL_QUORUM while a node
    // restarts.
    assert!(ddl[0].contains("'replication_factor': 3"), "{}", ddl[0]);
    let created = ddl.iter().filter(|d| d.starts_with("CREATE TABLE")).count();
    let tuned = ddl.iter().filter(|d| d.starts_with("ALTER TABLE")).count();
    assert_eq!((created, tuned), (st::TABLES.len(), st::TABLES.len()));
    // The upgrade's scan of the pointers' apps is the one read across partitions, and only here.
    let v = violations(&requests);
    assert_eq!(v, ["SELECT_WATERMARK_APPS: reads across partitions"]);
}

/// A session keeping the partial-facts tables in memory (heads, chunks, finalizations), answering their
/// reads from what was written; every other request succeeds with no rows.
fn partial_tables() -> impl Fn(&Request) -> Result<RowSet, FactsError> + Send + Sync {
    type Heads = std::collections::BTreeMap<(String, i32), Vec<Value>>;
    type Chunks = std::collections::BTreeMap<(String, i32, String, i32), Value>;
    let heads: Mutex<Heads> = Mutex::new(Heads::new());
    let chunks: Mutex<Chunks> = Mutex::new(Chunks::new());
    let t = |v: &Value| match v {
        Value::Text(s) => s.clone(),
        _ => String::new(),
    };
    let i = |v: &Value| match v {
        Value::Int(n) => *n,
        _ => -1,
    };
    move |r| {
        let Request::Execute { stmt, values } = r else {
            return Ok(Vec::new());
        };
        let v = values;
        Ok(match stmt.name {
            "UPSERT_PARTIAL_HEAD" => {
                heads
                    .lock()
                    .unwrap()
                    .insert((t(&v[0]), i(&v[1])), v[1..9].to_vec());
                Vec::new()
            }
            "SELECT_PARTIAL_HEADS" => heads
                .lock()
                .unwrap()
                .iter()
                .filter(|((n, _), _)| *n == t(&v[0]))
                .map(|(_, row)| row.clone())
                .collect(),
            "SELECT_PARTIAL_HEAD" => heads
                .lock()
                .unwrap()
                .get(&(t(&v[0]), i(&v[1])))
                .map(|row| vec![vec![row[3].clone(), row[5].clone(), row[6].clone()]])
                .unwrap_or_default(),
            "INSERT_PARTIAL_CHUNK" => {
                chunks
                    .lock()
                    .unwrap()
                    .insert((t(&v[0]), i(&v[1]), t(&v[2]), i(&v[3])), v[4].clone());
                Vec::new()
            }
            "DELETE_PARTIAL_CHUNK" => {
                chunks
                    .lock()
                    .unwrap()
                    .remove(&(t(&v[0]), i(&v[1]), t(&v[2]), i(&v[3])));
                Vec::new()
            }
            "SELECT_PARTIAL_CHUNK" => chunks
                .lock()
                .unwrap()
                .get(&(t(&v[0]), i(&v[1]), t(&v[2]), i(&v[3])))
                .map(|d| vec![vec![d.clone()]])
                .unwrap_or_default(),
            _ => Vec::new(),
        })
    }
}

#[test]
fn partials_of_sharded_runs_round_trip_in_bounded_chunks_and_a_retry_drops_its_old_attempt() {
    use crate::shards::{PartialHead, ShardPartial, ShardStore};
    let (store, rec) = scripted(partial_tables());
    let partial = |shard: u32, attempt: &str, body: Vec<u8>, now: i64| ShardPartial {
        head: PartialHead {
            run_name: "nightly".into(),
            shard,
            shards: 4,
            identity: serde_json::json!({"funnels": [["f", "1"]], "now_s": now}),
            attempt: attempt.into(),
            inputs: serde_json::json!({"spans": [["0", "1"]]}),
            body_bytes: body.len() as u64,
            written_at_ms: 1,
        },
        body,
    };
    // 1.3 MB: three chunks.
    let big: Vec<u8> = (0..1_300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    store.put_partial(&partial(1, "a", big.clone(), 5)).unwrap();
    store
        .put_partial(&partial(2, "b", vec![1, 2, 3], 5))
        .unwrap();
    assert_eq!(
        store.partial_body("nightly", 1, "a").unwrap().as_deref(),
        Some(big.as_slice())
    );
    // A retry of shard 1 replaces it; its old chunks are deleted.
    store.put_partial(&partial(1, "c", vec![9; 10], 5)).unwrap();
    assert_eq!(store.partial_body("nightly", 1, "a").unwrap(), None);
    assert_eq!(
        store.partial_body("nightly", 1, "c").unwrap(),
        Some(vec![9; 10])
    );
    let heads = store.partial_heads("nightly").unwrap();
    let got: Vec<_> = heads
        .iter()
        .map(|h| (h.shard, h.attempt.as_str(), h.body_bytes))
        .collect();
    assert_eq!(got, [(1, "c", 10), (2, "b", 3)]);
    // Another run under the same name is refused before anything is written.
    let before = rec.requests().len();
    let e = store.put_partial(&partial(3, "d", vec![1], 6)).unwrap_err();
    assert!(e.to_string().contains("now_s (6 here, 5 there)"), "{e}");
    let after = rec.requests();
    assert!(after[before..]
        .iter()
        .all(|r| stmt(r).starts_with("SELECT")));

    assert_eq!(violations(&after), Vec::<String>::new());
    let mut ledger = Ledger::new();
    after.iter().for_each(|r| ledger.observe(r));
    let (_, chunk_bytes, _) = ledger.largest("shard_partial_chunks");
    assert!(
        chunk_bytes <= st::PARTIAL_CHUNK_BYTES + 200,
        "{chunk_bytes}"
    );
    let (rows, _, _) = ledger.largest("shard_partials");
    assert_eq!(rows, 2, "one head row per shard");
    let live_chunks = ledger
        .partitions
        .iter()
        .filter(|((t, _), p)| t == "shard_partial_chunks" && !p.rows.is_empty())
        .count();
    assert_eq!(
        live_chunks, 2,
        "the replaced attempt's 3 chunks are deleted"
    );
    // Heads and chunks expire; the finalization is a single-row upsert.
    for r in &after {
        if let Request::Execute { stmt, values } = r {
            if matches!(stmt.name, "UPSERT_PARTIAL_HEAD" | "INSERT_PARTIAL_CHUNK") {
                assert_eq!(values.last(), Some(&Value::Int(st::PARTIAL_TTL_S)));
            }
        }
    }
}

/// What a simulated publish wrote: bytes (data size, as Cassandra counts a mutation), writes, the largest
/// run partition's rows, row deletions, and every violation of Cassandra's limits.
#[derive(Default)]
struct PublishTally {
    bytes: usize,
    writes: usize,
    partition_rows: std::collections::HashMap<(String, Vec<u8>), usize>,
    row_deletes: usize,
    violations: std::collections::BTreeSet<String>,
}

/// The 90-day publish simulation (finding 7): 50 apps × 100 funnels, one publish per day, each staging
/// the open window (yesterday and today, one row per day) over a previous run that holds every earlier
/// day. The session answers a key's pointer with the previous run and the carry-forward read with that
/// run's rows; it counts what each publish writes. A publish on day n depends only on the n days of
/// history, so days 1, 30 and 90 stand for the sequence.
fn simulate_publish_on_day(n: i32) -> PublishTally {
    let day0 = Day(20_000);
    let tally = Arc::new(Mutex::new(PublishTally::default()));
    let status = Mutex::new("running");
    let first_staged = Mutex::new(Value::Null);
    let t2 = tally.clone();
    let c = Contract::new();
    let now = now_s();
    // Not recorded: a publish on day 90 sends ~460,000 requests; each is tallied as it passes.
    let script = Script(Box::new(move |r| {
        let mut t = t2.lock().unwrap();
        t.violations.extend(c.violations(r, now));
        for (s, v) in r.statements() {
            let e = c.effect(s, v);
            if e.is_write {
                t.writes += 1;
                t.bytes += e.data_size;
                if e.is_delete && e.clustering.as_ref().is_some_and(|ck| !ck.is_empty()) {
                    t.row_deletes += 1;
                }
                if !e.is_delete {
                    *t.partition_rows
                        .entry((e.table.clone(), e.partition.clone().unwrap_or_default()))
                        .or_default() += 1;
                }
            }
        }
        drop(t);
        let values = match r {
            Request::Execute { values, .. } => values.clone(),
            _ => Vec::new(),
        };
        match stmt(r) {
            "UPSERT_RUN_KEY" => {
                *first_staged.lock().unwrap() = values[4].clone();
                Ok(Vec::new())
            }
            "SELECT_RUN_KEY" => Ok(one(first_staged.lock().unwrap().clone())),
            // The key's pointer: the previous day's run (run id 1).
            "SELECT_WATERMARK" if n > 0 => Ok(vec![vec![
                text(&day0.plus(n).to_string()),
                Value::BigInt(1),
                Value::BigInt(0),
            ]]),
            // The previous run's rows before the staged window: one per day since day 0.
            "SELECT_STEPS" => {
                let Value::Text(hi) = &values[5] else {
                    return Ok(Vec::new());
                };
                let hi: Day = hi.parse().unwrap();
                Ok(day0
                    .through(hi)
                    .map(|d| {
                        vec![
                            values[0].clone(),
                            values[1].clone(),
                            values[2].clone(),
                            text(&d.to_string()),
                            text(""),
                            Value::Int(1),
                            Value::BigInt(7),
                            Value::Null,
                            Value::Null,
                        ]
                    })
                    .collect())
            }
            _ => healthy(&status, r),
        }
    }));
    let store = crate::cql_memory::store_over(Arc::new(script));
    let run = store.begin_run(&meta()).unwrap();
    let today = day0.plus(n);
    let marks = marks(50, 100);
    let rows: Vec<FunnelStepFact> = marks
        .iter()
        .flat_map(|w| {
            [today.plus(-1), today].map(|day| FunnelStepFact {
                app_id: w.app_id.clone(),
                funnel_id: w.funnel_id.clone(),
                funnel_version: w.funnel_version.clone(),
                day,
                breakdown: String::new(),
                step: 1,
                actors: 7,
                ttc_median_s: None,
                ttc_p90_s: None,
            })
        })
        .collect();
    store.write_funnel_steps(run, &rows).unwrap();
    let marks: Vec<Watermark> = marks
        .into_iter()
        .map(|w| Watermark {
            batch_until: today.plus(1),
            ..w
        })
        .collect();
    store.publish(run, &marks).unwrap();
    drop(store);
    Arc::try_unwrap(tally)
        .ok()
        .map(|m| m.into_inner().unwrap())
        .unwrap_or_default()
}

/// Every publish of the 90 days stays within Cassandra's limits (batch thresholds, one partition per
/// flip, no row tombstones, run partitions of one row per day), and this measures what a publish writes as
/// history grows: today every publish copies the whole carried-forward history into its new run.
#[test]
fn ninety_days_of_daily_publishes_of_50_apps_by_100_funnels_measured() {
    let mut written = Vec::new();
    for n in [1, 30, 90] {
        let t = simulate_publish_on_day(n);
        assert_eq!(t.violations, Default::default(), "day {n}");
        assert_eq!(
            t.row_deletes, 0,
            "day {n}: row tombstones a read would scan"
        );
        let largest = t
            .partition_rows
            .iter()
            .filter(|((table, _), _)| table == "funnel_steps")
            .map(|(_, rows)| *rows)
            .max()
            .unwrap_or(0);
        // A run partition holds one row per day of its key's history (here one step, no breakdown).
        assert_eq!(largest, (n + 1) as usize, "day {n}");
        eprintln!(
            "publish on day {n}: {} writes, {} bytes written, largest run partition {largest} rows",
            t.writes, t.bytes
        );
        written.push((n, t.bytes));
    }
    // Finding 7, measured: the bytes a publish writes grow with the days of history it carries forward.
    let per_day = |i: usize| written[i].1 as f64 / written[0].1 as f64;
    eprintln!(
        "bytes per publish relative to day 1: day 30 {:.1}x, day 90 {:.1}x",
        per_day(1),
        per_day(2)
    );
}

/// Deliver 2's bound, not met yet (finding 7: immutable past days are not written once): the bytes of a
/// publish on day 90 are within twice those of day 10. Run with `--ignored` to see today's numbers fail it.
#[test]
#[ignore = "finding 7 is open: every publish re-copies carried-forward history (docs/CASSANDRA.md, Known limits)"]
fn a_publish_writes_bytes_bounded_by_the_open_window_not_by_history() {
    let day10 = simulate_publish_on_day(10).bytes;
    let day90 = simulate_publish_on_day(90).bytes;
    assert!(
        day90 <= 2 * day10,
        "a publish on day 90 wrote {day90} bytes, on day 10 {day10}"
    );
}

/// The 90 daily publishes at a small scale (2 apps × 3 funnels with breakdowns, counts) on the in-memory
/// executor and on SQLite: each publish stages yesterday (revised) and today over the carried-forward
/// history; every dashboard read answers as SQLite's, reads scan no row tombstone, and every request stays
/// within Cassandra's limits.
#[test]
fn ninety_daily_publishes_read_back_as_sqlite() {
    let memory = crate::cql_memory::MemorySession::new();
    let rec = Recorder::new(memory.clone());
    let cql = crate::cql_memory::store_over(rec.clone());
    let dir = tempfile::tempdir().unwrap();
    let sqlite = crate::SqliteStore::open(dir.path().join("facts.db")).unwrap();
    let stores = [crate::Store::Cql(cql), crate::Store::Sqlite(sqlite)];
    let day0 = Day(20_000);
    let keys: Vec<(String, String)> = (0..2)
        .flat_map(|a| (0..3).map(move |f| (format!("app-{a}"), format!("funnel-{f}"))))
        .collect();
    let mut ledger = Ledger::new();
    let mut violated = std::collections::BTreeSet::new();
    for n in 0..90 {
        let today = day0.plus(n);
        let days = [today.plus(-1), today];
        let mut steps = Vec::new();
        let mut counts = Vec::new();
        for (app, fid) in &keys {
            for day in days {
                // Yesterday's numbers are revised by today's run.
                let base = (day.0 as u64 % 17) + 3 * (today.0 - day.0) as u64;
                for b in 0..3 {
                    for step in 1..=3u32 {
                        steps.push(FunnelStepFact {
                            app_id: app.clone(),
                            funnel_id: fid.clone(),
                            funnel_version: "v1".into(),
                            day,
                            breakdown: format!("b{b}"),
                            step,
                            actors: base + 10 * b as u64 + 4 - step as u64,
                            ttc_median_s: None,
                            ttc_p90_s: None,
                        });
                    }
                }
            }
        }
        for a in 0..2 {
            for day in days {
                counts.push(DailyCountFact {
                    app_id: format!("app-{a}"),
                    day,
                    metric: "hits".into(),
                    dimension: "tracker".into(),
                    value: "web".into(),
                    count: i64::from(day.0 % 11 + today.0 - day.0),
                });
            }
        }
        let mut marks: Vec<Watermark> = keys
            .iter()
            .map(|(app, fid)| Watermark::funnel(app, fid, "v1", today.plus(1)))
            .collect();
        marks.extend((0..2).map(|a| Watermark::counts(&format!("app-{a}"), "hits", today.plus(1))));
        for store in &stores {
            let run = store.begin_run(&meta()).unwrap();
            store.write_funnel_steps(run, &steps).unwrap();
            store.write_daily_counts(run, &counts).unwrap();
            store.publish(run, &marks).unwrap();
        }
        let requests = rec.requests();
        rec.clear();
        violated.extend(violations(&requests));
        requests.iter().for_each(|r| ledger.observe(r));
    }
    assert_eq!(violated, Default::default());
    for (app, fid) in &keys {
        for breakdown in [false, true] {
            let mut q = crate::FunnelQuery::new(app, fid);
            q.breakdown = breakdown;
            let [c, s] = stores
                .each_ref()
                .map(|st| format!("{:?}", st.read_funnel(&q).unwrap().days));
            // The days and their values (the freshness names each store's own run ids and times).
            assert!(c == s, "{app} {fid}: the stores answer differently");
            assert!(c.contains(&format!("{:?}", day0.plus(89))), "{app} {fid}");
            assert!(c.contains(&format!("{:?}", day0.plus(-1))), "{app} {fid}");
        }
    }
    for a in 0..2 {
        let mut q = crate::CountsQuery::new(&format!("app-{a}"), "hits");
        q.breakdown = true;
        let [c, s] = stores
            .each_ref()
            .map(|st| format!("{:?}", st.read_counts(&q).unwrap().days));
        assert!(c == s, "app-{a}: the stores answer differently");
    }
    // Dashboard reads scan run partitions: each written once, dropped whole, never row-deleted.
    for table in [
        "funnel_steps",
        "funnel_totals",
        "daily_counts",
        "watermarks",
    ] {
        let (rows, bytes, tombstones) = ledger.largest(table);
        eprintln!("90 publishes: largest {table} partition {rows} rows, {bytes} bytes, {tombstones} tombstones");
        assert!(tombstones < crate::cql_contract::TOMBSTONE_WARN, "{table}");
        assert_eq!(tombstones, 0, "{table}");
    }
    // One row per day, breakdown and step of the key's history: it grows with history (finding 7).
    assert_eq!(ledger.largest("funnel_steps").0, 91 * 3 * 3);
}
