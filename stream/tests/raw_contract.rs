//! Contract test of the stream's raw rows (`stream::raw`), through the CQL session seam: a day of synthetic
//! traffic is written batch by batch by the real [`RawWriter`] into the in-memory statement executor
//! (`facts::cql_memory`, a model of the CQL semantics the store relies on — not a server, not Cassandra),
//! every request recorded and checked against Cassandra's limits as `facts::cql_contract` computes them:
//! mutation size, TTL and expiry (the tables' `default_time_to_live`), whole partition keys, no batches,
//! and the rows and bytes of each partition over the tables' 60-day TTL. The executor refuses a whole-map
//! assignment (a collection tombstone per row), so the load also proves `props` is only appended to.
#![cfg(feature = "cql")]

use facts::cql_contract::{Contract, Ledger, MAX_MUTATION_BYTES};
use facts::cql_memory::MemorySession;
use facts::cql_session::{CqlSession, Recorder, Request, Value};
use facts::cql_statements::Stmt;
use stream::raw::{rows_of, RawWriter, RAW_TTL_S, TABLES, UPSERT_EVENT, UPSERT_HIT};
use stream::synth::{generate, TrafficSpec};
use stream::Message;

/// Messages per consumer batch (a 200 ms batch at ~250 messages/s).
const BATCH: usize = 50;
/// Days a raw row lives (`default_time_to_live`).
const TTL_DAYS: usize = RAW_TTL_S as usize / 86_400;
/// Cassandra 4.1's `compaction_large_partition_warning_threshold` (and the usual partition-size guidance).
const LARGE_PARTITION_BYTES: usize = 100 * 1024 * 1024;
/// Rows per partition over which a read of the whole partition (the raw tables' only read) gets slow.
const LARGE_PARTITION_ROWS: usize = 100_000;

/// A day of traffic of `devices` devices sharing `ips` addresses (few IPs: carrier-grade NAT, so many
/// devices share a fingerprint and its `hits` partition).
fn day(seed: u64, devices: usize, ips: usize) -> Vec<Message> {
    let mut spec = TrafficSpec::new(seed, devices);
    spec.ips = ips;
    spec.span_ms = 86_400_000;
    spec.start_ms = chrono::Utc::now().timestamp_millis() - spec.span_ms;
    generate(&spec)
        .iter()
        .filter_map(|p| Message::parse(Some(&p.payload)).ok())
        .collect()
}

struct Load {
    requests: usize,
    rows: usize,
    largest_request: usize,
    /// Largest partition of each table over the day: (rows, bytes).
    hits: (usize, usize),
    events: (usize, usize),
}

/// Writes `msgs` in consumer batches through a recorded executor and checks every request.
async fn write_day(msgs: &[Message]) -> Load {
    let memory = MemorySession::with_tables(TABLES);
    let recorder = Recorder::new(memory.clone());
    let writer = RawWriter::over(recorder.clone(), "tracking");
    let contract = Contract::with_tables(TABLES);
    let mut ledger = Ledger::with_tables(TABLES);
    let now_s = chrono::Utc::now().timestamp();
    let (mut requests, mut rows, mut largest_request) = (0, 0, 0);
    for batch in msgs.chunks(BATCH) {
        let raw = rows_of(batch);
        writer.write(&raw).await.expect("raw rows written");
        rows += raw.len();
        for r in recorder.requests() {
            let v = contract.violations(&r, now_s);
            assert!(v.is_empty(), "{}: {v:?}", r.name());
            let Request::Execute { stmt, values } = &r else {
                panic!("raw rows are single statements, not batches: {}", r.name());
            };
            assert!(
                *stmt == UPSERT_HIT || *stmt == UPSERT_EVENT,
                "{}",
                stmt.name
            );
            assert!(r.is_idempotent() && !r.is_conditional() && !r.is_read());
            let e = contract.effect(stmt, values);
            assert!(e.partition.is_some() && e.clustering.is_some());
            // The table's TTL applies (no `USING TTL`), and it is one the contract checked above.
            assert_eq!(e.ttl_s, i64::from(RAW_TTL_S), "{}", stmt.name);
            largest_request = largest_request.max(e.data_size);
            ledger.observe(&r);
            requests += 1;
        }
        recorder.clear();
    }
    assert_eq!(requests, rows);
    // Every row is a distinct primary key: the executor holds one row per message.
    assert_eq!(memory.rows("hits") + memory.rows("events"), rows);
    let (h_rows, h_bytes, h_tomb) = ledger.largest("hits");
    let (e_rows, e_bytes, e_tomb) = ledger.largest("events");
    assert_eq!((h_tomb, e_tomb), (0, 0), "raw rows never delete");
    Load {
        requests,
        rows,
        largest_request,
        hits: (h_rows, h_bytes),
        events: (e_rows, e_bytes),
    }
}

/// A day of raw rows for 10,000 devices (~35,000 rows), and the same day behind carrier-grade NAT (400
/// devices per IP): every request within Cassandra's limits, and the largest partition of each table,
/// at that day's rate for the tables' 60 days, under Cassandra's large-partition threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_raw_rows_stays_within_cassandra_limits() {
    for (name, devices, ips) in [("spread", 10_000, 3_334), ("nat", 10_000, 25)] {
        let msgs = day(7, devices, ips);
        let load = write_day(&msgs).await;
        assert!(load.rows > 2 * devices, "{name}: {} rows", load.rows);
        assert!(load.largest_request < MAX_MUTATION_BYTES);
        eprintln!(
            "raw rows, a day ({name}): {} requests, largest {} bytes; largest hits partition {} rows / {} bytes, \
             events {} rows / {} bytes (x{TTL_DAYS} days: hits {} rows / {} bytes)",
            load.requests,
            load.largest_request,
            load.hits.0,
            load.hits.1,
            load.events.0,
            load.events.1,
            load.hits.0 * TTL_DAYS,
            load.hits.1 * TTL_DAYS
        );
        for (table, (rows, bytes)) in [("hits", load.hits), ("events", load.events)] {
            assert!(rows > 0, "{name}: no {table} rows");
            assert!(
                rows * TTL_DAYS < LARGE_PARTITION_ROWS,
                "{name}: {table} partition of {rows} rows a day"
            );
            assert!(
                bytes * TTL_DAYS < LARGE_PARTITION_BYTES,
                "{name}: {table} partition of {bytes} bytes a day"
            );
        }
    }
}

/// The same rows written again (a replayed batch) are the same rows, and `props` keeps the entries of
/// both writes: appended, never assigned (the executor refuses a whole-map assignment).
#[tokio::test]
async fn replayed_rows_are_the_same_rows_and_props_are_appended() {
    let memory = MemorySession::with_tables(TABLES);
    let writer = RawWriter::over(memory.clone(), "tracking");
    let msgs = day(11, 200, 60);
    let rows = rows_of(&msgs);
    for _ in 0..3 {
        writer.write(&rows).await.expect("written");
    }
    assert_eq!(memory.rows("hits"), rows.hits.len());
    assert_eq!(memory.rows("events"), rows.events.len());
    // The first hit again with one more property: the row keeps both.
    let mut again = rows.clone();
    again.hits.truncate(1);
    again.events.clear();
    again.hits[0].props.insert("extra".into(), "x".into());
    writer.write(&again).await.expect("written");
    let h = &again.hits[0];
    const READ: Stmt = Stmt {
        name: "TEST_READ_HIT",
        template: "SELECT tracker, ip, props FROM {ks}.hits WHERE app_id = ? AND fingerprint = ? \
                   AND ts = ? AND hit_id = ?",
        arity: 4,
    };
    let key = h.values()[5..].to_vec();
    let got = memory
        .send(&Request::execute(READ, key))
        .await
        .expect("read");
    assert_eq!(
        got,
        vec![vec![
            Value::Text(h.tracker.clone()),
            Value::Inet(h.ip),
            Value::TextMap(h.props.clone()),
        ]]
    );
    assert_eq!(h.props.len(), 2, "{:?}", h.props);
    // Assigning the whole map is refused by the executor, as it would write a tombstone per row.
    const ASSIGN: Stmt = Stmt {
        name: "TEST_ASSIGN_PROPS",
        template: "UPDATE {ks}.hits SET props = ? WHERE app_id = ? AND fingerprint = ? AND ts = ? \
                   AND hit_id = ?",
        arity: 5,
    };
    let mut values = vec![Value::TextMap(h.props.clone())];
    values.extend(h.values()[5..].iter().cloned());
    let err = memory
        .send(&Request::execute(ASSIGN, values))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("collection"), "{err}");
}
