//! Raw rows against a real Cassandra 4.x/5.x or ScyllaDB node. Compiled in only when `FUNNEL_CQL_NODES`
//! (`host:port[,…]`) is set at build time (see `stream/build.rs`):
//! `FUNNEL_CQL_NODES=127.0.0.1:9042 cargo test -p stream --test raw_cql`.
//! Keyspace `FUNNEL_CQL_RAW_KEYSPACE` (default `funnel_raw_test`); optional `FUNNEL_CQL_USER` /
//! `FUNNEL_CQL_PASSWORD`.
#![cfg(all(feature = "cql", funnel_cql_nodes))]

use std::collections::BTreeMap;
use std::net::IpAddr;

use scylla::value::{CqlTimestamp, CqlTimeuuid};
use stream::raw::{rows_of, HitRow, RawWriter, RAW_TTL_S};
use stream::Message;

fn url() -> String {
    let nodes =
        std::env::var("FUNNEL_CQL_NODES").expect("FUNNEL_CQL_NODES (set at build time) is unset");
    let ks = std::env::var("FUNNEL_CQL_RAW_KEYSPACE").unwrap_or_else(|_| "funnel_raw_test".into());
    let mut url = format!("cql://{nodes}/{ks}");
    if let (Ok(u), Ok(p)) = (
        std::env::var("FUNNEL_CQL_USER"),
        std::env::var("FUNNEL_CQL_PASSWORD"),
    ) {
        url.push_str(&format!("?user={u}&password={p}"));
    }
    url
}

type HitSelect = (
    String,
    String,
    CqlTimestamp,
    CqlTimeuuid,
    String,
    String,
    IpAddr,
    String,
    Option<BTreeMap<String, String>>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_written_once_whatever_the_retries() {
    let writer = RawWriter::connect(&url(), true)
        .await
        .expect("connect + init");
    let ks = writer.keyspace().to_string();
    let app = format!(
        "raw-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    );
    let msgs: Vec<Message> = [
        format!(r#"{{"type":"hit","app_id":"{app}","hit_id":"5f0c6b2e-3b1a-11ef-9a8c-0242ac120002","ts":"2026-11-20T10:00:00.250Z","tracker":"fb","referrer":"r","ip":"203.0.113.9","user_agent":"UA/1","props":{{"c":"bf"}}}}"#),
        format!(r#"{{"type":"event","app_id":"{app}","actor_id":"u1","event_id":"6a1d2f10-3b1a-11ef-9a8c-0242ac120002","ts":"2026-11-20T10:05:00Z","name":"install","ip":"2001:db8::1","user_agent":"App/2","props":{{"plan":"free"}}}}"#),
    ]
    .iter()
    .map(|j| Message::parse(Some(j.as_bytes())).expect("valid"))
    .collect();
    let rows = rows_of(&msgs);
    assert_eq!(rows.len(), 2);
    // At-least-once: the same batch written three times is still one row each.
    for _ in 0..3 {
        writer.write(&rows).await.expect("write");
    }
    let s = writer.driver().expect("connected to a cluster").session();
    let h: &HitRow = &rows.hits[0];
    let got = s
        .query_unpaged(
            format!("SELECT app_id, fingerprint, ts, hit_id, tracker, referrer, ip, user_agent, props FROM {ks}.hits WHERE app_id = ? AND fingerprint = ?"),
            (&h.app_id, &h.fingerprint),
        )
        .await
        .expect("select hits")
        .into_rows_result()
        .expect("rows");
    let hits: Vec<HitSelect> = got
        .rows::<HitSelect>()
        .expect("typed")
        .collect::<Result<_, _>>()
        .expect("decode");
    assert_eq!(hits.len(), 1);
    let r = &hits[0];
    assert_eq!(
        (
            &r.0,
            &r.1,
            r.2,
            r.3,
            &r.4,
            &r.5,
            r.6,
            &r.7,
            r.8.clone().unwrap_or_default()
        ),
        (
            &h.app_id,
            &h.fingerprint,
            h.ts,
            h.hit_id,
            &h.tracker,
            &h.referrer,
            h.ip,
            &h.user_agent,
            h.props.clone()
        )
    );
    let ttl: (Option<i32>,) = s
        .query_unpaged(
            format!("SELECT TTL(tracker) FROM {ks}.hits WHERE app_id = ? AND fingerprint = ?"),
            (&h.app_id, &h.fingerprint),
        )
        .await
        .expect("select ttl")
        .into_rows_result()
        .expect("rows")
        .single_row()
        .expect("one row");
    let ttl = ttl.0.expect("table TTL applies");
    assert!(ttl > 0 && ttl <= RAW_TTL_S, "{ttl}");
    let e = &rows.events[0];
    let n: (i64,) = s
        .query_unpaged(
            format!("SELECT count(*) FROM {ks}.events WHERE app_id = ? AND actor_id = ?"),
            (&e.app_id, &e.actor_id),
        )
        .await
        .expect("count events")
        .into_rows_result()
        .expect("rows")
        .single_row()
        .expect("one row");
    assert_eq!(n.0, 1);
}
