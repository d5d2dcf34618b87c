//! Raw rows: every valid hit becomes a row of `tracking.hits` and every valid event a row of
//! `tracking.events` (the 60-day raw tables, `default_time_to_live = 5184000`; docs/STREAM.md), written to
//! Cassandra/ScyllaDB through the store's CQL session seam ([`facts::cql_session`]: the `scylla` driver
//! with the store's policies, or any recorded session in tests) (`funnel stream --raw cql://…`).
//!
//! # Exactly once
//! A batch's raw rows are written *before* the batch is applied to the fact store and before its offset is
//! committed ([`crate::consumer`]). Each row is one `UPDATE` of every column keyed by its primary key — an
//! idempotent upsert — so a batch written again after a crash, a refused replay or a rebalance rewrites the same cells:
//! at-least-once writes of idempotent upserts are exactly-once rows. If any row cannot be written the batch
//! is neither applied nor committed: the partition rewinds to the store's offset and retries it (error
//! logged, metric `funnel_stream_raw_write_failures_total`).
//!
//! # Statements
//! Prepared statements only ([`UPSERT_HIT`], [`UPSERT_EVENT`]), marked idempotent so the driver's default
//! retry policy may retry them (it retries only idempotent statements), at `LOCAL_QUORUM` — both derived by
//! the seam from the statement ([`facts::cql_session::Request`]), token-aware and, with `dc=NAME` in the
//! URL, datacenter-aware routing, monotonic client timestamps and 5 s timeouts. Writes run with
//! bounded concurrency: at most [`CONCURRENCY`] requests in flight per process, across all partitions.
//! No counters, no lightweight transactions, no logged batches.
//!
//! `props` is a non-frozen `map<text,text>` (the canonical tables' type). Assigning such a map — what an
//! `INSERT` does — first deletes the old one: a tombstone per row written, which every read of the
//! partition scans until compaction drops it. The upserts therefore *append* the message's entries
//! (`props = props + ?`): no tombstone, and writing the same row again writes the same cells.
//!
//! # Mapping (see [`row_of`])
//! `ts` → `timestamp` (epoch ms), `hit_id`/`event_id` → `timeuuid`, `ip` → `inet`, `props` →
//! `map<text,text>`, the hit's `fingerprint` is [`crate::fingerprint()`] of (ip, user agent) — the same key
//! the conversions use. `device_id` is not a column of the canonical tables and is not written.
//! A message whose id is a UUID but not a version-1 (time-based) UUID cannot be stored in a `timeuuid`
//! column (the server refuses it): that row is skipped — its facts still count — logged and counted in
//! `funnel_stream_raw_skipped_total{reason="not_timeuuid"}`, so one bad id cannot stall a partition.
//!
//! # TTL
//! Rows expire through the tables' `default_time_to_live` (60 days from when they are written, not from
//! `ts`); a replayed row's TTL restarts from its rewrite.
//!
//! # Tables
//! [`RawWriter::connect`] with `init = true` (`funnel stream --raw URL --init-raw`) creates the keyspace
//! (replication factor `?rf=N`, default 3) and both tables if missing and sets their compaction (time
//! windows of a day, [`RAW_COMPACTION`]) ([`create_statements`]); without it the tables must exist. TLS (`tls=true`) is not supported here yet and is refused, never downgraded.
//!
//! Tested without a server: the exact statements, every column of the row mapping bound with the CQL type
//! of its column, and a day of synthetic traffic written through a recorded in-memory executor, every
//! request checked against Cassandra's limits (`stream/tests/raw_contract.rs`). With a server: `stream/tests/raw_cql.rs`, compiled in when `FUNNEL_CQL_NODES`
//! names a node at build time (`FUNNEL_CQL_NODES=127.0.0.1:9042 cargo test -p stream --test raw_cql`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use facts::cql_session::{CqlSession, DriverSession, Request, Value};
use facts::cql_statements::Stmt;
use facts::{CqlUrl, StoreUrl};
use futures::stream::{self, TryStreamExt};
use scylla::client::session_builder::SessionBuilder;
use scylla::value::{CqlTimestamp, CqlTimeuuid};
use tokio::sync::Semaphore;

use crate::fingerprint::fingerprint;
use crate::message::{Event, Hit, Message};

/// Requests in flight at once, per process (all partitions together).
pub const CONCURRENCY: usize = 64;

/// `default_time_to_live` of both raw tables: 60 days.
pub const RAW_TTL_S: i32 = 5_184_000;

/// `tracking.hits` (the raw hits), `{ks}` = keyspace.
pub const CREATE_HITS: &str =
    "CREATE TABLE IF NOT EXISTS {ks}.hits (app_id text, fingerprint text, ts timestamp, \
     hit_id timeuuid, tracker text, referrer text, ip inet, user_agent text, props map<text,text>, \
     PRIMARY KEY ((app_id, fingerprint), ts, hit_id)) WITH default_time_to_live = 5184000";

/// `tracking.events` (the raw events), `{ks}` = keyspace.
pub const CREATE_EVENTS: &str =
    "CREATE TABLE IF NOT EXISTS {ks}.events (app_id text, actor_id text, ts timestamp, \
     event_id timeuuid, name text, ip inet, user_agent text, props map<text,text>, \
     PRIMARY KEY ((app_id, actor_id), ts, event_id)) WITH default_time_to_live = 5184000";

/// Both raw tables' DDL (what the contract tests and the in-memory executor take as schema).
pub const TABLES: &[&str] = &[CREATE_HITS, CREATE_EVENTS];

/// One hit: every column, `props` appended (no collection tombstone), so re-writing it is idempotent.
pub const UPSERT_HIT: Stmt = Stmt {
    name: "RAW_UPSERT_HIT",
    template:
        "UPDATE {ks}.hits SET tracker = ?, referrer = ?, ip = ?, user_agent = ?, props = props + ? \
     WHERE app_id = ? AND fingerprint = ? AND ts = ? AND hit_id = ?",
    arity: 9,
};

/// One event: every column, `props` appended (no collection tombstone), so re-writing it is idempotent.
pub const UPSERT_EVENT: Stmt = Stmt {
    name: "RAW_UPSERT_EVENT",
    template: "UPDATE {ks}.events SET name = ?, ip = ?, user_agent = ?, props = props + ? \
     WHERE app_id = ? AND actor_id = ? AND ts = ? AND event_id = ?",
    arity: 8,
};

/// A statement template for a keyspace.
pub fn cql(template: &str, keyspace: &str) -> String {
    template.replace("{ks}", keyspace)
}

/// Compaction of both raw tables: time windows of a day. Rows are written once (a replay rewrites the
/// same cells within minutes) and all expire by the tables' TTL, so whole SSTables drop when their window's
/// rows have expired, instead of expired cells being rewritten by size-tiered merges for 60 days.
pub const RAW_COMPACTION: &str = "{'class': 'TimeWindowCompactionStrategy', \
     'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}";

/// `gc_grace_seconds` of both raw tables: 3 hours. They are never deleted, only expire, so no tombstone
/// needs a repair to reach every replica before it is purged.
pub const RAW_GC_GRACE_S: u32 = 3 * 3600;

/// What `--init-raw` runs, in order: the keyspace, both tables, then their compaction and grace (`ALTER
/// TABLE … WITH`, so tables created before are upgraded too).
pub fn create_statements(keyspace: &str, replication_factor: u32) -> Vec<String> {
    let options = |table| {
        let ddl = facts::cql_statements::table_options_ddl(table, RAW_COMPACTION, RAW_GC_GRACE_S);
        cql(&ddl, keyspace)
    };
    vec![
        facts::cql_statements::create_keyspace(keyspace, replication_factor),
        cql(CREATE_HITS, keyspace),
        cql(CREATE_EVENTS, keyspace),
        options("hits"),
        options("events"),
    ]
}

/// Errors of the raw-row writer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RawError {
    #[error("--raw: {0}")]
    Url(#[from] facts::FactsError),
    #[error("--raw {0}: needs a cql://host:port[,host…]/keyspace URL")]
    NotCql(String),
    #[error(
        "--raw {0}: tls=true is not supported for raw rows yet (refusing to connect without TLS)"
    )]
    TlsUnsupported(String),
    #[error("raw rows: connecting to {nodes}: {reason}")]
    Connect { nodes: String, reason: String },
    #[error("raw rows: creating {what}: {reason}")]
    Init { what: String, reason: String },
    #[error("raw rows: preparing `{statement}`: {reason} (were the tables created? `funnel stream --raw URL --init-raw`)")]
    Prepare { statement: String, reason: String },
    #[error("raw rows: writing a row of {table} (app {app_id}): {reason}")]
    Write {
        table: &'static str,
        app_id: String,
        reason: String,
    },
}

/// A row of `tracking.hits`; fields named and typed as its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct HitRow {
    pub app_id: String,
    pub fingerprint: String,
    pub ts: CqlTimestamp,
    pub hit_id: CqlTimeuuid,
    pub tracker: String,
    pub referrer: String,
    pub ip: IpAddr,
    pub user_agent: String,
    pub props: BTreeMap<String, String>,
}

/// A row of `tracking.events`; fields named and typed as its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub app_id: String,
    pub actor_id: String,
    pub ts: CqlTimestamp,
    pub event_id: CqlTimeuuid,
    pub name: String,
    pub ip: IpAddr,
    pub user_agent: String,
    pub props: BTreeMap<String, String>,
}

impl HitRow {
    /// The values of [`UPSERT_HIT`], in the order of its bind markers.
    pub fn values(&self) -> Vec<Value> {
        vec![
            Value::Text(self.tracker.clone()),
            Value::Text(self.referrer.clone()),
            Value::Inet(self.ip),
            Value::Text(self.user_agent.clone()),
            Value::TextMap(self.props.clone()),
            Value::Text(self.app_id.clone()),
            Value::Text(self.fingerprint.clone()),
            Value::Timestamp(self.ts.0),
            Value::Timeuuid(*self.hit_id.as_bytes()),
        ]
    }
}

impl EventRow {
    /// The values of [`UPSERT_EVENT`], in the order of its bind markers.
    pub fn values(&self) -> Vec<Value> {
        vec![
            Value::Text(self.name.clone()),
            Value::Inet(self.ip),
            Value::Text(self.user_agent.clone()),
            Value::TextMap(self.props.clone()),
            Value::Text(self.app_id.clone()),
            Value::Text(self.actor_id.clone()),
            Value::Timestamp(self.ts.0),
            Value::Timeuuid(*self.event_id.as_bytes()),
        ]
    }
}

/// One message's raw row.
#[derive(Debug, Clone, PartialEq)]
pub enum RawRow {
    Hit(HitRow),
    Event(EventRow),
}

/// Why a valid message has no raw row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    /// Its id is not a version-1 (time-based) UUID, which a `timeuuid` column refuses.
    NotTimeuuid,
}

impl SkipReason {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotTimeuuid => "not_timeuuid",
        }
    }
}

/// A batch's raw rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRows {
    pub hits: Vec<HitRow>,
    pub events: Vec<EventRow>,
    /// Messages without a row, with their id and reason.
    pub skipped: Vec<(String, SkipReason)>,
}

impl RawRows {
    pub fn len(&self) -> usize {
        self.hits.len() + self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn timeuuid(id: &str) -> Result<CqlTimeuuid, SkipReason> {
    match uuid::Uuid::parse_str(id) {
        Ok(u) if u.get_version_num() == 1 => Ok(CqlTimeuuid::from(u)),
        _ => Err(SkipReason::NotTimeuuid),
    }
}

fn hit_row(h: &Hit) -> Result<HitRow, SkipReason> {
    Ok(HitRow {
        app_id: h.app_id.clone(),
        fingerprint: fingerprint(h.ip, &h.user_agent),
        ts: CqlTimestamp(h.ts_ms),
        hit_id: timeuuid(&h.hit_id)?,
        tracker: h.tracker.clone(),
        referrer: h.referrer.clone(),
        ip: h.ip,
        user_agent: h.user_agent.clone(),
        props: h.props.clone(),
    })
}

fn event_row(e: &Event) -> Result<EventRow, SkipReason> {
    Ok(EventRow {
        app_id: e.app_id.clone(),
        actor_id: e.actor_id.clone(),
        ts: CqlTimestamp(e.ts_ms),
        event_id: timeuuid(&e.event_id)?,
        name: e.name.clone(),
        ip: e.ip,
        user_agent: e.user_agent.clone(),
        props: e.props.clone(),
    })
}

/// The raw row of one valid message.
pub fn row_of(msg: &Message) -> Result<RawRow, SkipReason> {
    match msg {
        Message::Hit(h) => hit_row(h).map(RawRow::Hit),
        Message::Event(e) => event_row(e).map(RawRow::Event),
    }
}

/// The raw rows of a batch's valid messages (in order), and the messages that have none.
pub fn rows_of(msgs: &[Message]) -> RawRows {
    let mut out = RawRows::default();
    for m in msgs {
        match row_of(m) {
            Ok(RawRow::Hit(h)) => out.hits.push(h),
            Ok(RawRow::Event(e)) => out.events.push(e),
            Err(reason) => {
                let id = match m {
                    Message::Hit(h) => &h.hit_id,
                    Message::Event(e) => &e.event_id,
                };
                out.skipped.push((id.clone(), reason));
            }
        }
    }
    out
}

/// Writes raw rows to a keyspace through the CQL session seam ([`facts::cql_session`]): prepared
/// statements, `LOCAL_QUORUM`, idempotent (the seam derives both from the statement), token- and DC-aware
/// routing ([`facts::cql_connect`]). Cheap to share (`Arc`); async, runs on the caller's tokio runtime.
pub struct RawWriter {
    session: Arc<dyn CqlSession>,
    /// The driver session behind `session`, when connected to a cluster.
    driver: Option<Arc<DriverSession>>,
    keyspace: String,
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for RawWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawWriter")
            .field("keyspace", &self.keyspace)
            .finish_non_exhaustive()
    }
}

impl RawWriter {
    /// Connects to `url` (`cql://host:port[,host…]/keyspace?user=..&password=..&rf=N&dc=NAME`, parsed by
    /// [`facts::StoreUrl`]); with `init`, creates the keyspace and tables if missing; prepares the upserts.
    pub async fn connect(url: &str, init: bool) -> Result<RawWriter, RawError> {
        let redacted = facts::url::redact(url);
        let cql = match url.parse::<StoreUrl>()? {
            StoreUrl::Cql(c) => c,
            StoreUrl::Sqlite(_) => return Err(RawError::NotCql(redacted)),
        };
        if cql.tls {
            return Err(RawError::TlsUnsupported(redacted));
        }
        Self::connect_cql(&cql, init).await
    }

    /// [`RawWriter::connect`] from a parsed URL.
    pub async fn connect_cql(url: &CqlUrl, init: bool) -> Result<RawWriter, RawError> {
        if url.tls {
            return Err(RawError::TlsUnsupported(url.nodes.join(",")));
        }
        // The store's driver policies: token- and DC-aware routing, timeouts, monotonic client timestamps.
        let driver = facts::cql_connect::connect(url, SessionBuilder::new())
            .await
            .map_err(|e| RawError::Connect {
                nodes: url.nodes.join(","),
                reason: e.to_string(),
            })?;
        let driver = Arc::new(driver);
        let ks = url.keyspace.clone();
        if init {
            for ddl in create_statements(&ks, url.replication_factor) {
                // DDL through the seam: sent unprepared, then a wait for schema agreement.
                let request = Request::Ddl { cql: ddl.clone() };
                driver.send(&request).await.map_err(|e| RawError::Init {
                    what: ddl,
                    reason: e.to_string(),
                })?;
            }
        }
        // Prepared now, so missing tables fail at start rather than at the first batch.
        for stmt in [UPSERT_HIT, UPSERT_EVENT] {
            driver.prepare(&stmt).await.map_err(|e| RawError::Prepare {
                statement: stmt.cql(&ks),
                reason: e.to_string(),
            })?;
        }
        let mut writer = RawWriter::over(driver.clone(), &ks);
        writer.driver = Some(driver);
        Ok(writer)
    }

    /// A writer sending through any session (tests: a recorded in-memory executor).
    pub fn over(session: Arc<dyn CqlSession>, keyspace: &str) -> RawWriter {
        RawWriter {
            session,
            driver: None,
            keyspace: keyspace.to_string(),
            in_flight: Arc::new(Semaphore::new(CONCURRENCY)),
        }
    }

    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    /// The driver session, when connected to a cluster (integration tests read the rows back through it).
    pub fn driver(&self) -> Option<&DriverSession> {
        self.driver.as_deref()
    }

    /// Writes every row; `Ok` only when all were written. Stops at the first failure (already written rows
    /// stay: they are idempotent upserts the retry rewrites).
    pub async fn write(&self, rows: &RawRows) -> Result<(), RawError> {
        let hits = rows.hits.iter().map(|h| {
            Ok((
                Request::execute(UPSERT_HIT, h.values()),
                "hits",
                h.app_id.as_str(),
            ))
        });
        let events = rows.events.iter().map(|e| {
            Ok((
                Request::execute(UPSERT_EVENT, e.values()),
                "events",
                e.app_id.as_str(),
            ))
        });
        stream::iter(hits.chain(events))
            .try_for_each_concurrent(CONCURRENCY, |(request, table, app_id)| async move {
                let failed = |reason: String| RawError::Write {
                    table,
                    app_id: app_id.to_string(),
                    reason,
                };
                let _permit = self
                    .in_flight
                    .acquire()
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                self.session
                    .send(&request)
                    .await
                    .map(|_| ())
                    .map_err(|e| failed(e.to_string()))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HIT: &str = r#"{"type": "hit", "app_id": "a1", "hit_id": "5F0C6B2E-3B1A-11EF-9A8C-0242AC120002",
        "ts": "2026-11-20T10:00:00.250Z", "tracker": "fb", "referrer": "https://news.example/article",
        "ip": "203.0.113.9", "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) Safari/604.1",
        "device_id": "D1", "props": {"campaign": "black-friday", "n": 3}}"#;
    const EVENT: &str = r#"{"type": "event", "app_id": "a1", "actor_id": "u42",
        "event_id": "6a1d2f10-3b1a-11ef-9a8c-0242ac120002", "ts": 1795168051250, "name": "install",
        "ip": "2001:db8::1", "user_agent": "MyApp/2.3 (iPhone; iOS 17.1; Scale/3.00)", "props": {"plan": "free"}}"#;

    fn parse(json: &str) -> Message {
        Message::parse(Some(json.as_bytes())).unwrap()
    }

    fn uuid(s: &str) -> CqlTimeuuid {
        CqlTimeuuid::from(uuid::Uuid::parse_str(s).unwrap())
    }

    #[test]
    fn the_exact_statements() {
        assert_eq!(
            UPSERT_HIT.cql("tracking"),
            "UPDATE tracking.hits SET tracker = ?, referrer = ?, ip = ?, user_agent = ?, props = props + ? \
             WHERE app_id = ? AND fingerprint = ? AND ts = ? AND hit_id = ?"
        );
        assert_eq!(
            UPSERT_EVENT.cql("tracking"),
            "UPDATE tracking.events SET name = ?, ip = ?, user_agent = ?, props = props + ? \
             WHERE app_id = ? AND actor_id = ? AND ts = ? AND event_id = ?"
        );
        assert_eq!(
            create_statements("tracking", 3),
            vec![
                "CREATE KEYSPACE IF NOT EXISTS tracking WITH replication = {'class': 'NetworkTopologyStrategy', 'replication_factor': 3}".to_string(),
                "CREATE TABLE IF NOT EXISTS tracking.hits (app_id text, fingerprint text, ts timestamp, hit_id timeuuid, \
                 tracker text, referrer text, ip inet, user_agent text, props map<text,text>, \
                 PRIMARY KEY ((app_id, fingerprint), ts, hit_id)) WITH default_time_to_live = 5184000".to_string(),
                "CREATE TABLE IF NOT EXISTS tracking.events (app_id text, actor_id text, ts timestamp, event_id timeuuid, \
                 name text, ip inet, user_agent text, props map<text,text>, \
                 PRIMARY KEY ((app_id, actor_id), ts, event_id)) WITH default_time_to_live = 5184000".to_string(),
                "ALTER TABLE tracking.hits WITH compaction = {'class': 'TimeWindowCompactionStrategy', \
                 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1} AND gc_grace_seconds = 10800".to_string(),
                "ALTER TABLE tracking.events WITH compaction = {'class': 'TimeWindowCompactionStrategy', \
                 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1} AND gc_grace_seconds = 10800".to_string(),
            ]
        );
        assert!(CREATE_HITS.contains(&format!("default_time_to_live = {RAW_TTL_S}")));
        assert!(CREATE_EVENTS.contains(&format!("default_time_to_live = {RAW_TTL_S}")));
    }

    /// The columns an upsert's bind markers stand for, in order (`SET c = ?`, `c = c + ?`, `WHERE c = ?`),
    /// and a CREATE TABLE's (name, type) list.
    fn bound_columns(stmt: &str) -> Vec<String> {
        let (sets, wheres) = stmt.split_once(" WHERE ").unwrap();
        let sets = sets.split_once(" SET ").unwrap().1;
        sets.split(", ")
            .chain(wheres.split(" AND "))
            .map(|a| {
                assert!(a.ends_with('?'), "{a}");
                a.split_once(" = ").unwrap().0.trim().to_string()
            })
            .collect()
    }

    fn table_columns(ddl: &str) -> Vec<(String, String)> {
        let open = ddl.find('(').unwrap();
        let body = &ddl[open + 1..ddl.find("PRIMARY KEY").unwrap()];
        body.split(", ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| {
                let (n, t) = c.split_once(' ').unwrap();
                (n.to_string(), t.trim_end_matches(',').to_string())
            })
            .collect()
    }

    #[test]
    fn upserts_write_every_column_of_their_table_and_only_upsert() {
        for (stmt, ddl) in [(UPSERT_HIT, CREATE_HITS), (UPSERT_EVENT, CREATE_EVENTS)] {
            let insert = stmt.template;
            let mut cols: Vec<String> = table_columns(ddl).into_iter().map(|c| c.0).collect();
            let mut bound = bound_columns(insert);
            assert_eq!(insert.matches('?').count(), cols.len());
            assert_eq!(stmt.arity, cols.len());
            cols.sort();
            bound.sort();
            assert_eq!(bound, cols, "{insert}");
            // The map is appended, never assigned: assigning a non-frozen collection writes a tombstone.
            assert!(insert.contains("props = props + ?"), "{insert}");
            assert!(!insert.starts_with("INSERT"), "{insert}");
            assert!(
                !insert.contains(" IF "),
                "lightweight transaction: {insert}"
            );
            assert!(
                !insert.contains("USING TTL"),
                "the table TTL applies: {insert}"
            );
        }
    }

    /// The CQL types of the upsert's bind markers, in order, from the table's DDL.
    fn bound_types(upsert: &Stmt, ddl: &str) -> Vec<String> {
        let types = table_columns(ddl);
        bound_columns(upsert.template)
            .into_iter()
            .map(|c| types.iter().find(|t| t.0 == c).unwrap().1.clone())
            .collect()
    }

    /// Where a value does not bind to its marker's column type: (marker, column type, value type).
    fn type_mismatches(values: &[Value], upsert: &Stmt, ddl: &str) -> Vec<(usize, String, String)> {
        let types = bound_types(upsert, ddl);
        assert_eq!(values.len(), types.len(), "{}", upsert.name);
        types
            .into_iter()
            .zip(values)
            .enumerate()
            .filter(|(_, (t, v))| t != v.cql_type())
            .map(|(i, (t, v))| (i, t, v.cql_type().to_string()))
            .collect()
    }

    #[test]
    fn a_hit_maps_to_every_column_of_tracking_hits() {
        let RawRow::Hit(row) = row_of(&parse(HIT)).unwrap() else {
            panic!("not a hit row")
        };
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) Safari/604.1";
        assert_eq!(
            row,
            HitRow {
                app_id: "a1".into(),
                fingerprint: fingerprint(ip, ua),
                ts: CqlTimestamp(1_795_168_800_250),
                hit_id: uuid("5f0c6b2e-3b1a-11ef-9a8c-0242ac120002"),
                tracker: "fb".into(),
                referrer: "https://news.example/article".into(),
                ip,
                user_agent: ua.into(),
                props: BTreeMap::from([
                    ("campaign".to_string(), "black-friday".to_string()),
                    ("n".to_string(), "3".to_string()),
                ]),
            }
        );
        assert_eq!(row.fingerprint.len(), 16);
        assert_eq!(
            type_mismatches(&row.values(), &UPSERT_HIT, CREATE_HITS),
            vec![]
        );
        let hit_id = uuid::Uuid::parse_str("5f0c6b2e-3b1a-11ef-9a8c-0242ac120002").unwrap();
        assert_eq!(
            row.values(),
            vec![
                Value::Text("fb".into()),
                Value::Text("https://news.example/article".into()),
                Value::Inet(ip),
                Value::Text(ua.into()),
                Value::TextMap(row.props.clone()),
                Value::Text("a1".into()),
                Value::Text(fingerprint(ip, ua)),
                Value::Timestamp(1_795_168_800_250),
                Value::Timeuuid(*hit_id.as_bytes()),
            ]
        );
    }

    #[test]
    fn an_event_maps_to_every_column_of_tracking_events() {
        let RawRow::Event(row) = row_of(&parse(EVENT)).unwrap() else {
            panic!("not an event row")
        };
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            row,
            EventRow {
                app_id: "a1".into(),
                actor_id: "u42".into(),
                ts: CqlTimestamp(1_795_168_051_250),
                event_id: uuid("6a1d2f10-3b1a-11ef-9a8c-0242ac120002"),
                name: "install".into(),
                ip,
                user_agent: "MyApp/2.3 (iPhone; iOS 17.1; Scale/3.00)".into(),
                props: BTreeMap::from([("plan".to_string(), "free".to_string())]),
            }
        );
        assert_eq!(
            type_mismatches(&row.values(), &UPSERT_EVENT, CREATE_EVENTS),
            vec![]
        );
        let values = row.values();
        assert_eq!(values[0], Value::Text("install".into()));
        assert_eq!(values[1], Value::Inet(ip));
        assert_eq!(values[6], Value::Timestamp(1_795_168_051_250));
    }

    #[test]
    fn values_in_the_wrong_order_do_not_fit_the_upsert() {
        // The type check above is able to fail: the ts and id markers swapped.
        let RawRow::Hit(h) = row_of(&parse(HIT)).unwrap() else {
            panic!("not a hit row")
        };
        let mut values = h.values();
        values.swap(7, 8);
        assert_eq!(
            type_mismatches(&values, &UPSERT_HIT, CREATE_HITS),
            vec![
                (7, "timestamp".to_string(), "timeuuid".to_string()),
                (8, "timeuuid".to_string(), "timestamp".to_string())
            ]
        );
    }

    #[test]
    fn ids_that_are_not_timeuuids_are_skipped_with_a_reason() {
        let v4 = HIT.replace(
            "5F0C6B2E-3B1A-11EF-9A8C-0242AC120002",
            "5f0c6b2e-3b1a-41ef-9a8c-0242ac120002",
        );
        let msgs = vec![parse(&v4), parse(EVENT), parse(HIT)];
        let rows = rows_of(&msgs);
        assert_eq!(rows.hits.len(), 1);
        assert_eq!(rows.events.len(), 1);
        assert_eq!(
            rows.skipped,
            vec![(
                "5f0c6b2e-3b1a-41ef-9a8c-0242ac120002".to_string(),
                SkipReason::NotTimeuuid
            )]
        );
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn synthetic_traffic_has_only_timeuuids() {
        let spec = crate::synth::TrafficSpec::new(7, 20);
        let msgs: Vec<Message> = crate::synth::generate(&spec)
            .iter()
            .filter_map(|m| Message::parse(Some(&m.payload)).ok())
            .collect();
        assert!(!msgs.is_empty());
        let rows = rows_of(&msgs);
        assert!(rows.skipped.is_empty(), "{:?}", rows.skipped.first());
        assert_eq!(rows.len(), msgs.len());
    }

    #[tokio::test]
    async fn urls_that_cannot_be_raw_targets_are_refused_before_connecting() {
        let e = RawWriter::connect("sqlite:x.db", false).await.unwrap_err();
        assert!(matches!(e, RawError::NotCql(_)), "{e}");
        let e = RawWriter::connect(
            "cql://127.0.0.1:1/ks?tls=true&user=u&password=hunter2",
            false,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, RawError::TlsUnsupported(_)), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = RawWriter::connect("cql://127.0.0.1:1/bad-ks", false)
            .await
            .unwrap_err();
        assert!(matches!(e, RawError::Url(_)), "{e}");
    }
}
