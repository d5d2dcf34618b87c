//! The SQLite layout (DDL) and the in-place migrations of files written by older versions.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::FactsError;

/// Schema version written to `meta`; bump when the layout changes.
///
/// - 1: first layout.
/// - 2: `speed_batches` keyed by `(group_id, topic, partition, first_offset)` (was without `group_id`, so
///   two consumer groups reading one topic into one store refused each other's batches).
/// - 3: all-breakdowns totals in their own table, `funnel_totals` (they were rows of `funnel_steps` under
///   the breakdown `"\u{1}all"`, so a plain `SUM` over `funnel_steps` counted every actor twice).
/// - 4: the stream's seen ids in their own compact table, `stream_seen` (they were `stream_state` rows of
///   namespace `seen` with JSON keys and values: about four times the bytes per id, so every batch
///   dirtied that many more pages).
///
/// - 5: partial facts of sharded runs, `shard_partials` and `shard_runs` (new tables only).
///
/// [`migrate`] brings a file of any older version to this one in place, in one transaction.
pub const SCHEMA_VERSION: i64 = 5;

/// The reserved breakdown value under which schema ≤ 2 stored all-breakdowns totals in `funnel_steps`.
const LEGACY_TOTAL_BREAKDOWN: &str = "\u{1}all";

/// The applied-speed-batch markers (schema 2 key).
const SPEED_BATCHES: &str = "
CREATE TABLE IF NOT EXISTS speed_batches (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    first_offset INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    group_id TEXT NOT NULL,
    applied_at_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition, first_offset)
) WITHOUT ROWID;
";

/// The all-breakdowns totals of batch runs (schema 3).
const FUNNEL_TOTALS: &str = "
CREATE TABLE IF NOT EXISTS funnel_totals (
    run_id INTEGER NOT NULL,
    app_id TEXT NOT NULL,
    funnel_id TEXT NOT NULL,
    funnel_version TEXT NOT NULL,
    day TEXT NOT NULL,
    step INTEGER NOT NULL,
    actors INTEGER NOT NULL,
    ttc_median_s REAL,
    ttc_p90_s REAL,
    PRIMARY KEY (run_id, app_id, funnel_id, funnel_version, day, step)
) WITHOUT ROWID;
";

/// The stream's seen ids (schema 4): the id in its stored form ([`crate::SeenId::key_bytes`], 17 bytes for
/// a UUID), its expiry, and the batch that applied it. Looked up by primary key; evicted by a range
/// delete on the expiry index (expiries grow with event and wall time, so both are appended at the end).
const STREAM_SEEN: &str = "
CREATE TABLE IF NOT EXISTS stream_seen (
    app_id TEXT NOT NULL,
    id BLOB NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    first_offset INTEGER NOT NULL,
    PRIMARY KEY (app_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stream_seen_expiry ON stream_seen (expires_at_ms);
";

/// Partial facts of sharded runs (schema 5): one row per (run name, shard) — a retry replaces it — and
/// one per run name recording its last finalization.
const SHARDS: &str = "
CREATE TABLE IF NOT EXISTS shard_partials (
    run_name TEXT NOT NULL,
    shard INTEGER NOT NULL,
    shards INTEGER NOT NULL,
    identity TEXT NOT NULL,
    attempt TEXT NOT NULL,
    inputs TEXT NOT NULL,
    body BLOB NOT NULL,
    written_at_ms INTEGER NOT NULL,
    PRIMARY KEY (run_name, shard)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shard_runs (
    run_name TEXT NOT NULL PRIMARY KEY,
    run_id INTEGER NOT NULL,
    attempts TEXT NOT NULL,
    finalized_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The `stream_state` namespace where schema ≤ 3 kept the seen ids.
const LEGACY_SEEN_NAMESPACE: &str = "seen";

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at_ms INTEGER NOT NULL,
    finished_at_ms INTEGER,
    status TEXT NOT NULL CHECK (status IN ('running', 'published', 'failed', 'abandoned')),
    inputs TEXT NOT NULL,
    funnels TEXT NOT NULL,
    rows INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    owner_pid INTEGER
);
CREATE TABLE IF NOT EXISTS run_keys (
    run_id INTEGER NOT NULL,
    app_id TEXT NOT NULL,
    funnel_id TEXT NOT NULL,
    funnel_version TEXT NOT NULL,
    min_day TEXT NOT NULL,
    PRIMARY KEY (run_id, app_id, funnel_id, funnel_version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS funnel_steps (
    run_id INTEGER NOT NULL,
    app_id TEXT NOT NULL,
    funnel_id TEXT NOT NULL,
    funnel_version TEXT NOT NULL,
    day TEXT NOT NULL,
    breakdown TEXT NOT NULL,
    step INTEGER NOT NULL,
    actors INTEGER NOT NULL,
    ttc_median_s REAL,
    ttc_p90_s REAL,
    layer TEXT NOT NULL CHECK (layer IN ('batch', 'speed')),
    PRIMARY KEY (run_id, app_id, funnel_id, funnel_version, day, breakdown, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS daily_counts (
    run_id INTEGER NOT NULL,
    app_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    day TEXT NOT NULL,
    dimension TEXT NOT NULL,
    value TEXT NOT NULL,
    count INTEGER NOT NULL,
    layer TEXT NOT NULL CHECK (layer IN ('batch', 'speed')),
    PRIMARY KEY (run_id, app_id, metric, day, dimension, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS watermarks (
    app_id TEXT NOT NULL,
    funnel_id TEXT NOT NULL,
    funnel_version TEXT NOT NULL,
    batch_until TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    published_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, funnel_id, funnel_version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_state (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stream_state_expiry ON stream_state (expires_at_ms);
";

/// The schema version a file records (`None`: a new, empty file).
fn stored_version(conn: &Connection) -> Result<Option<i64>, FactsError> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(None);
    }
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()))
}

/// Create the tables of a new file, or bring an older file to [`SCHEMA_VERSION`] in place. One immediate
/// transaction: a concurrent opener waits, then finds the work done. A file already at the current version
/// is only read (no write lock: opening never waits for a publish in progress). A file of a newer version
/// is refused rather than written with an older layout.
pub(super) fn migrate(conn: &mut Connection, path: &std::path::Path) -> Result<(), FactsError> {
    let too_new = |found: i64| FactsError::SchemaTooNew {
        path: path.to_path_buf(),
        found,
        supported: SCHEMA_VERSION,
    };
    match stored_version(conn)? {
        Some(v) if v == SCHEMA_VERSION => return Ok(()),
        Some(v) if v > SCHEMA_VERSION => return Err(too_new(v)),
        _ => {}
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version = stored_version(&tx)?;
    match version {
        Some(v) if v > SCHEMA_VERSION => return Err(too_new(v)),
        Some(v) if v == SCHEMA_VERSION => return Ok(()),
        _ => {}
    }
    tx.execute_batch(TABLES)?;
    tx.execute_batch(FUNNEL_TOTALS)?;
    tx.execute_batch(STREAM_SEEN)?;
    tx.execute_batch(SHARDS)?;
    if speed_batches_key_lacks_group(&tx)? {
        // Schema 1 → 2: rebuild `speed_batches` with `group_id` in its key. Lossless: schema 1 already
        // stored `group_id` in every row.
        tx.execute_batch("ALTER TABLE speed_batches RENAME TO speed_batches_v1;")?;
        tx.execute_batch(SPEED_BATCHES)?;
        tx.execute_batch(
            "INSERT INTO speed_batches (topic, partition, first_offset, next_offset, group_id, applied_at_ms)
                 SELECT topic, partition, first_offset, next_offset, group_id, applied_at_ms FROM speed_batches_v1;
             DROP TABLE speed_batches_v1;",
        )?;
    }
    tx.execute_batch(SPEED_BATCHES)?;
    if version.is_some_and(|v| v < 3) {
        // Schema ≤ 2 → 3: the totals move out of `funnel_steps` (only batch rows ever had them).
        tx.execute(
            "INSERT OR REPLACE INTO funnel_totals
                 (run_id, app_id, funnel_id, funnel_version, day, step, actors, ttc_median_s, ttc_p90_s)
             SELECT run_id, app_id, funnel_id, funnel_version, day, step, actors, ttc_median_s, ttc_p90_s
             FROM funnel_steps WHERE breakdown = ?1",
            [LEGACY_TOTAL_BREAKDOWN],
        )?;
        tx.execute(
            "DELETE FROM funnel_steps WHERE breakdown = ?1",
            [LEGACY_TOTAL_BREAKDOWN],
        )?;
    }
    if version.is_some_and(|v| v < 4) {
        move_legacy_seen_ids(&tx)?;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT DO UPDATE SET value = excluded.value",
        [SCHEMA_VERSION.to_string()],
    )?;
    tx.commit()?;
    Ok(())
}

/// Whether `speed_batches` has the schema-1 key `(topic, partition, first_offset)`, i.e. `group_id` is not
/// part of its primary key.
fn speed_batches_key_lacks_group(conn: &Connection) -> Result<bool, FactsError> {
    let in_pk: Option<i64> = conn
        .query_row(
            "SELECT pk FROM pragma_table_info('speed_batches') WHERE name = 'group_id'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(in_pk.is_some_and(|pk| pk == 0))
}

/// Schema ≤ 3 → 4: the seen ids move from `stream_state` (namespace `seen`, key `["app","hit"|"event","id"]`,
/// value `{"ts":…,"topic":…,"partition":…,"first_offset":…}`) into `stream_seen`, expiry unchanged, so
/// copies of messages applied before the upgrade are still dropped after it. An entry in any other form
/// is refused with its key (the file is left as it was: the transaction is not committed).
fn move_legacy_seen_ids(tx: &Connection) -> Result<(), FactsError> {
    use crate::seen::{IdKind, SeenId};
    let legacy: Vec<(String, Vec<u8>, i64)> = tx
        .prepare("SELECT key, value, expires_at_ms FROM stream_state WHERE namespace = ?1")?
        .query_map([LEGACY_SEEN_NAMESPACE], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut insert = tx.prepare(
        "INSERT OR REPLACE INTO stream_seen (app_id, id, expires_at_ms, topic, partition, first_offset)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (key, value, expires_at_ms) in legacy {
        let bad = || FactsError::Invalid {
            what: "legacy seen-id entry (stream_state namespace 'seen')",
            value: key.clone(),
        };
        let (app, kind, id): (String, String, String) =
            serde_json::from_str(&key).map_err(|_| bad())?;
        let kind = match kind.as_str() {
            "hit" => IdKind::Hit,
            "event" => IdKind::Event,
            _ => return Err(bad()),
        };
        let by: serde_json::Value = serde_json::from_slice(&value).map_err(|_| bad())?;
        let (Some(topic), Some(partition), Some(first_offset)) = (
            by["topic"].as_str(),
            by["partition"].as_i64().and_then(|p| i32::try_from(p).ok()),
            by["first_offset"].as_i64(),
        ) else {
            return Err(bad());
        };
        let seen = SeenId {
            app_id: app,
            kind,
            id,
        };
        insert.execute(rusqlite::params![
            seen.app_id,
            seen.key_bytes(),
            expires_at_ms,
            topic,
            partition,
            first_offset
        ])?;
    }
    tx.execute(
        "DELETE FROM stream_state WHERE namespace = ?1",
        [LEGACY_SEEN_NAMESPACE],
    )?;
    Ok(())
}
