//! The CQL the Cassandra/Scylla store sends: schema (`init`) and every prepared statement, as plain text
//! built from the keyspace, so they can be unit-tested without a server.
//!
//! Layout: batch rows live in one partition per (key, run) — `funnel_steps` and `funnel_totals` by
//! `(app_id, funnel_id, funnel_version, run_id)`, `daily_counts` by `(app_id, metric, run_id)` — so a run is
//! published by flipping `watermarks.run_id` and a superseded run is dropped with one partition delete per
//! table.
//! Speed layer: each (consumer group, topic, Kafka partition) owns one `stream_partitions` partition that
//! holds its commit point (next offset, the last batch's offsets) and everything only that Kafka partition
//! changes: its cumulative counts and funnel partials, its pending state and dead-letter counters. A Kafka
//! batch is committed by ONE conditional single-partition batch ([`COMMIT_PARTITION`], `IF next_offset =
//! ?`, Paxos at `LOCAL_SERIAL`): atomic, isolated, and refused to a consumer whose partition was taken over
//! (the offset moved under it). Readers do not read those partitions: once a commit applied, the changed
//! cumulative values are copied to `daily_counts_speed` / `funnel_steps_speed` (one row per Kafka partition
//! per value, `batch_key` = `group/topic/partition`, [`batch_key`]) with the commit's timestamp as the
//! write timestamp, so a late copy never overwrites a newer one; readers sum one row per Kafka partition.
//! `speed_days` lists which days have speed rows, so reads never scan.
//!
//! Upgrading a keyspace written by a version with per-batch partials (`speed_batches_by_group`, partials
//! keyed `group/topic/partition/first_offset`): stop the stream, run `funnel facts init` (creates
//! `stream_partitions`), start the stream. A partition without a commit point resumes at its
//! `stream_offsets` offset; its old per-batch partial rows stay beside the new per-partition rows until the
//! next publish moves the watermark past their days (keep a publish between the upgrade and the first
//! applied batch, or the days at or past the watermark count the old partials twice). Pending buckets of the
//! old layout (`stream_state`, namespace `pending`) are not carried over: clicks waiting for their event at
//! the upgrade do not convert. `speed_batches_by_group` is no longer read or written (`DROP TABLE
//! ks.speed_batches_by_group` at leisure).
//!
//! Upgrading a keyspace written before `stream_records` (the shared state — conversion records — was
//! `stream_state`, one partition per namespace): stop the stream, run `funnel facts init`, start the stream.
//! `init` copies the namespace `conversion` of `stream_state` ([`SELECT_LEGACY_STATE`], one partition read
//! in pages) into `stream_records` and its indexes, once (`meta` key [`LEGACY_STATE_MOVED`]); the old rows
//! stay (`DROP TABLE ks.stream_state` at leisure; `init` recreates it empty).
//!
//! Upgrading a keyspace created before `funnel_totals` (all-breakdowns totals were `funnel_steps` rows under
//! the breakdown `"\u{1}all"`, [`LEGACY_TOTAL_BREAKDOWN`]): run `funnel facts init` once with the new
//! version, before its first publish. CQL has no `INSERT … SELECT`, so `init` migrates in code: it creates
//! the table (`CREATE TABLE IF NOT EXISTS ks.funnel_totals …`, in [`TABLES`]), then for every published
//! funnel run (`SELECT DISTINCT app_id FROM ks.watermarks`, then each app's watermarks) copies the legacy
//! rows into `funnel_totals` ([`INSERT_TOTAL`]) and deletes them from `funnel_steps` ([`DELETE_STEP`]).
//! Running it again finds nothing to move. A publish also moves legacy rows it carries forward.

/// One statement the store prepares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stmt {
    pub name: &'static str,
    /// CQL with `{ks}` standing for the keyspace.
    pub template: &'static str,
    /// Bind markers (`?`) it takes.
    pub arity: usize,
}

impl Stmt {
    /// The statement for a keyspace.
    pub fn cql(&self, keyspace: &str) -> String {
        self.template.replace("{ks}", keyspace)
    }

    /// Whether it only reads.
    pub fn is_read(&self) -> bool {
        self.template.starts_with("SELECT")
    }

    /// Whether it is conditional (`IF …`): a lightweight transaction.
    pub fn is_conditional(&self) -> bool {
        self.template.contains(" IF ")
    }

    /// Whether it reads at `LOCAL_SERIAL` (through Paxos, so a commit left unfinished by a timeout or a
    /// crash is completed or dropped before the answer): the stream partition's commit point only.
    pub fn is_serial_read(&self) -> bool {
        self.name == "SELECT_PARTITION_HEAD"
    }
}

/// The breakdown value under which keyspaces written before `funnel_totals` stored the all-breakdowns
/// totals in `funnel_steps` (see the module docs on upgrading).
pub const LEGACY_TOTAL_BREAKDOWN: &str = "\u{1}all";

/// The shared-state namespaces `init` copies from the legacy `stream_state` (the stream's conversion
/// records; its other namespaces of that layout were owned state, see the module docs).
pub const LEGACY_SHARED_NAMESPACES: &[&str] = &["conversion"];

/// `meta` key set once `init` copied [`LEGACY_SHARED_NAMESPACES`] to `stream_records`.
pub const LEGACY_STATE_MOVED: &str = "stream_state_moved_at_ms";

/// Default TTL (seconds) of speed partials and applied-batch markers: 120 days. Speed rows below the
/// watermark are also deleted at publish; the TTL only bounds what a stopped batch side leaves.
pub const SPEED_TTL_S: i32 = 120 * 86_400;

/// The keyspace DDL.
pub fn create_keyspace(keyspace: &str, replication_factor: u32) -> String {
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = \
         {{'class': 'NetworkTopologyStrategy', 'replication_factor': {replication_factor}}}"
    )
}

/// Table DDL, in creation order (`{ks}` = keyspace).
pub const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS {ks}.runs (bucket int, run_id bigint, started_at_ms bigint, finished_at_ms bigint, \
     status text, inputs text, funnels text, rows bigint, error text, \
     PRIMARY KEY ((bucket), run_id)) WITH CLUSTERING ORDER BY (run_id DESC)",
    "CREATE TABLE IF NOT EXISTS {ks}.run_keys (run_id bigint, app_id text, funnel_id text, funnel_version text, \
     min_day text, PRIMARY KEY ((run_id), app_id, funnel_id, funnel_version))",
    "CREATE TABLE IF NOT EXISTS {ks}.funnel_steps (app_id text, funnel_id text, funnel_version text, run_id bigint, \
     day text, breakdown text, step int, actors bigint, ttc_median_s double, ttc_p90_s double, layer text, \
     PRIMARY KEY ((app_id, funnel_id, funnel_version, run_id), day, breakdown, step))",
    // All-breakdowns totals of funnels with a breakdown: batch only, same partitioning as funnel_steps.
    "CREATE TABLE IF NOT EXISTS {ks}.funnel_totals (app_id text, funnel_id text, funnel_version text, run_id bigint, \
     day text, step int, actors bigint, ttc_median_s double, ttc_p90_s double, \
     PRIMARY KEY ((app_id, funnel_id, funnel_version, run_id), day, step))",
    "CREATE TABLE IF NOT EXISTS {ks}.daily_counts (app_id text, metric text, run_id bigint, day text, dimension text, \
     value text, count bigint, layer text, PRIMARY KEY ((app_id, metric, run_id), day, dimension, value))",
    "CREATE TABLE IF NOT EXISTS {ks}.funnel_steps_speed (app_id text, funnel_id text, funnel_version text, day text, \
     breakdown text, step int, batch_key text, actors bigint, layer text, \
     PRIMARY KEY ((app_id, funnel_id, funnel_version, day), breakdown, step, batch_key))",
    "CREATE TABLE IF NOT EXISTS {ks}.daily_counts_speed (app_id text, metric text, day text, dimension text, value text, \
     batch_key text, count bigint, layer text, PRIMARY KEY ((app_id, metric, day), dimension, value, batch_key))",
    "CREATE TABLE IF NOT EXISTS {ks}.speed_days (app_id text, funnel_id text, funnel_version text, day text, \
     PRIMARY KEY ((app_id, funnel_id), funnel_version, day))",
    "CREATE TABLE IF NOT EXISTS {ks}.watermarks (app_id text, funnel_id text, funnel_version text, batch_until text, \
     run_id bigint, published_at_ms bigint, PRIMARY KEY ((app_id), funnel_id, funnel_version))",
    // The Kafka partitions a (group, topic) has committed, with their last known offset: the list
    // `committed_offsets` walks (the offset itself is read from `stream_partitions`).
    "CREATE TABLE IF NOT EXISTS {ks}.stream_offsets (group_id text, topic text, partition int, next_offset bigint, \
     updated_at_ms bigint, PRIMARY KEY ((group_id, topic), partition))",
    // One partition per (group, topic, Kafka partition): the commit point (static columns: next offset,
    // the last batch's offsets, the commit's timestamp and the cells it changed) and what that Kafka
    // partition owns — its cumulative counts (`kind` 'count' / 'step', `count`, `at_ts`) and its state
    // (`kind` 's:' + namespace: pending buckets, dead-letter counters). Written only by one conditional
    // batch per Kafka batch (`IF next_offset = ?`).
    "CREATE TABLE IF NOT EXISTS {ks}.stream_partitions (group_id text, topic text, partition int, kind text, key text, \
     next_offset bigint static, batch_first bigint static, batch_next bigint static, commit_ts bigint static, \
     last_cells text static, count bigint, at_ts bigint, value blob, expires_at_ms bigint, \
     PRIMARY KEY ((group_id, topic, partition), kind, key))",
    // Legacy: the shared state of versions before `stream_records`, one partition per namespace (all
    // conversion records in one partition, forever). Only read, once, by `init`'s upgrade.
    "CREATE TABLE IF NOT EXISTS {ks}.stream_state (namespace text, key text, value blob, expires_at_ms bigint, \
     PRIMARY KEY ((namespace), key))",
    // The stream's shared state (conversion records): one partition per (namespace, app, day) — the app
    // and the day of the timestamp a key carries (`crate::cql` `shared_state`) — so no partition grows
    // with history; each key one row.
    "CREATE TABLE IF NOT EXISTS {ks}.stream_records (namespace text, app_id text, day text, key text, value blob, \
     expires_at_ms bigint, PRIMARY KEY ((namespace, app_id, day), key))",
    // How readers find those partitions without a scan: the apps of a namespace (one row per app), and
    // the days of an app (one row per day).
    "CREATE TABLE IF NOT EXISTS {ks}.stream_record_apps (namespace text, app_id text, \
     PRIMARY KEY ((namespace), app_id))",
    "CREATE TABLE IF NOT EXISTS {ks}.stream_record_days (namespace text, app_id text, day text, \
     PRIMARY KEY ((namespace, app_id), day))",
    // The stream's seen ids: one partition per (app, hash bucket of the id, `crate::seen_bucket`), each
    // id one row expiring by TTL at the end of its dedupe window.
    "CREATE TABLE IF NOT EXISTS {ks}.stream_seen (app_id text, bucket int, id blob, expires_at_ms bigint, \
     topic text, partition int, first_offset bigint, PRIMARY KEY ((app_id, bucket), id))",
    "CREATE TABLE IF NOT EXISTS {ks}.meta (key text PRIMARY KEY, value text)",
    // The publisher lease: one row, taken with a lightweight transaction and a TTL, so two schedulers on
    // two hosts never publish at once (a crashed holder's lease expires).
    "CREATE TABLE IF NOT EXISTS {ks}.leases (name text PRIMARY KEY, holder bigint, acquired_at_ms bigint)",
    // Runs whose rows may be collected once `due_at_ms` passed (superseded runs keep their rows for a
    // grace period: readers may hold their pointer). One row per superseded run, few alive at a time.
    // Partial facts of sharded runs: the heads, one partition per run name, one row per shard (a retry
    // overwrites its row); the bodies in chunks of at most `PARTIAL_CHUNK_BYTES`, one partition each, so
    // no partition grows with the data; and the last finalization of each run name.
    "CREATE TABLE IF NOT EXISTS {ks}.shard_partials (run_name text, shard int, shards int, identity text, \
     attempt text, inputs text, body_bytes bigint, chunks int, written_at_ms bigint, \
     PRIMARY KEY ((run_name), shard))",
    "CREATE TABLE IF NOT EXISTS {ks}.shard_partial_chunks (run_name text, shard int, attempt text, chunk int, \
     data blob, PRIMARY KEY ((run_name, shard, attempt, chunk)))",
    "CREATE TABLE IF NOT EXISTS {ks}.shard_runs (run_name text PRIMARY KEY, run_id bigint, attempts text, \
     finalized_at_ms bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.gc_queue (shard int, due_at_ms bigint, run_id bigint, \
     PRIMARY KEY ((shard), due_at_ms, run_id))",
];

/// Leveled compaction: reads touch one SSTable per level (tables read on every query, overwritten rows).
const LCS: &str = "{'class': 'LeveledCompactionStrategy'}";
/// Time-window compaction by day: rows written once and expiring by TTL drop whole SSTables.
const TWCS: &str = "{'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', \
                    'compaction_window_size': 1}";
/// Default `gc_grace_seconds` (10 days): tombstones of deletes outlive a node's absence plus a repair.
const GC_GRACE_S: u32 = 864_000;
/// `gc_grace_seconds` of tables only expiring by TTL, never deleted: no tombstone needs repair to spread.
const GC_GRACE_TTL_ONLY_S: u32 = 3 * 3600;

/// Compaction and `gc_grace_seconds` of every table, applied by `init` (`ALTER TABLE … WITH`, so
/// keyspaces created before are upgraded too):
/// - LCS where reads dominate: the run partitions (`funnel_steps`, `funnel_totals`, `daily_counts`, read by
///   every query and dropped per run), the pointers, the run log, the stream's offsets and state.
/// - TWCS by day for rows that expire by TTL: speed partials (120 days; deleted as days fall below a
///   watermark) and seen ids (TTL only, so a short grace).
pub const TABLE_OPTIONS: &[(&str, &str, u32)] = &[
    ("runs", LCS, GC_GRACE_S),
    ("run_keys", LCS, GC_GRACE_S),
    ("funnel_steps", LCS, GC_GRACE_S),
    ("funnel_totals", LCS, GC_GRACE_S),
    ("daily_counts", LCS, GC_GRACE_S),
    ("funnel_steps_speed", TWCS, GC_GRACE_S),
    ("daily_counts_speed", TWCS, GC_GRACE_S),
    ("speed_days", LCS, GC_GRACE_S),
    ("watermarks", LCS, GC_GRACE_S),
    ("stream_offsets", LCS, GC_GRACE_S),
    ("stream_partitions", LCS, GC_GRACE_S),
    ("stream_state", LCS, GC_GRACE_S),
    ("stream_records", LCS, GC_GRACE_S),
    ("stream_record_apps", LCS, GC_GRACE_S),
    ("stream_record_days", LCS, GC_GRACE_S),
    ("stream_seen", TWCS, GC_GRACE_TTL_ONLY_S),
    ("meta", LCS, GC_GRACE_S),
    ("leases", LCS, GC_GRACE_S),
    ("gc_queue", LCS, GC_GRACE_S),
    ("shard_partials", LCS, GC_GRACE_S),
    ("shard_partial_chunks", LCS, GC_GRACE_S),
    ("shard_runs", LCS, GC_GRACE_S),
];

/// The `ALTER TABLE` setting a table's options (`{ks}` = keyspace).
pub fn table_options_ddl(table: &str, compaction: &str, gc_grace_s: u32) -> String {
    format!("ALTER TABLE {{ks}}.{table} WITH compaction = {compaction} AND gc_grace_seconds = {gc_grace_s}")
}

macro_rules! stmts {
    ($($id:ident = $arity:literal, $text:literal;)*) => {
        $(
            #[doc = $text]
            pub const $id: Stmt = Stmt { name: stringify!($id), template: $text, arity: $arity };
        )*
        /// Every prepared statement.
        pub const ALL: &[Stmt] = &[$($id),*];
    };
}

stmts! {
    INSERT_RUN = 5, "INSERT INTO {ks}.runs (bucket, run_id, started_at_ms, status, inputs, funnels, rows) VALUES (?, ?, ?, 'running', ?, ?, 0)";
    FINISH_RUN = 6, "UPDATE {ks}.runs SET status = ?, finished_at_ms = ?, error = ?, rows = ? WHERE bucket = ? AND run_id = ?";
    MARK_PUBLISHING = 2, "UPDATE {ks}.runs SET status = 'publishing' WHERE bucket = ? AND run_id = ?";
    SELECT_RUN_STATUS = 2, "SELECT status FROM {ks}.runs WHERE bucket = ? AND run_id = ?";
    SELECT_RUNS = 2, "SELECT bucket, run_id, started_at_ms, finished_at_ms, status, inputs, funnels, rows, error FROM {ks}.runs WHERE bucket = ? LIMIT ?";
    UPSERT_RUN_KEY = 5, "INSERT INTO {ks}.run_keys (run_id, app_id, funnel_id, funnel_version, min_day) VALUES (?, ?, ?, ?, ?)";
    SELECT_RUN_KEY = 4, "SELECT min_day FROM {ks}.run_keys WHERE run_id = ? AND app_id = ? AND funnel_id = ? AND funnel_version = ?";
    SELECT_RUN_KEYS = 1, "SELECT app_id, funnel_id, funnel_version FROM {ks}.run_keys WHERE run_id = ?";
    DELETE_RUN_KEY = 4, "DELETE FROM {ks}.run_keys WHERE run_id = ? AND app_id = ? AND funnel_id = ? AND funnel_version = ?";
    INSERT_STEP = 10, "INSERT INTO {ks}.funnel_steps (app_id, funnel_id, funnel_version, run_id, day, breakdown, step, actors, ttc_median_s, ttc_p90_s, layer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'batch')";
    SELECT_STEPS = 6, "SELECT app_id, funnel_id, funnel_version, day, breakdown, step, actors, ttc_median_s, ttc_p90_s FROM {ks}.funnel_steps WHERE app_id = ? AND funnel_id = ? AND funnel_version = ? AND run_id = ? AND day >= ? AND day <= ?";
    DELETE_STEPS_RUN = 4, "DELETE FROM {ks}.funnel_steps WHERE app_id = ? AND funnel_id = ? AND funnel_version = ? AND run_id = ?";
    DELETE_STEP = 7, "DELETE FROM {ks}.funnel_steps WHERE app_id = ? AND funnel_id = ? AND funnel_version = ? AND run_id = ? AND day = ? AND breakdown = ? AND step = ?";
    INSERT_TOTAL = 9, "INSERT INTO {ks}.funnel_totals (app_id, funnel_id, funnel_version, run_id, day, step, actors, ttc_median_s, ttc_p90_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
    SELECT_TOTALS = 6, "SELECT day, step, actors, ttc_median_s, ttc_p90_s FROM {ks}.funnel_totals WHERE app_id = ? AND funnel_id = ? AND funnel_version = ? AND run_id = ? AND day >= ? AND day <= ?";
    DELETE_TOTALS_RUN = 4, "DELETE FROM {ks}.funnel_totals WHERE app_id = ? AND funnel_id = ? AND funnel_version = ? AND run_id = ?";
    INSERT_COUNT = 7, "INSERT INTO {ks}.daily_counts (app_id, metric, run_id, day, dimension, value, count, layer) VALUES (?, ?, ?, ?, ?, ?, ?, 'batch')";
    SELECT_COUNTS = 5, "SELECT day, dimension, value, count FROM {ks}.daily_counts WHERE app_id = ? AND metric = ? AND run_id = ? AND day >= ? AND day <= ?";
    DELETE_COUNTS_RUN = 3, "DELETE FROM {ks}.daily_counts WHERE app_id = ? AND metric = ? AND run_id = ?";
    INSERT_STEP_SPEED = 10, "INSERT INTO {ks}.funnel_steps_speed (app_id, funnel_id, funnel_version, day, breakdown, step, batch_key, actors, layer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'speed') USING TTL ? AND TIMESTAMP ?";
    SELECT_STEPS_SPEED = 4, "SELECT breakdown, step, actors FROM {ks}.funnel_steps_speed WHERE app_id = ? AND funnel_id = ? AND funnel_version = ? AND day = ?";
    DELETE_STEPS_SPEED_DAY = 4, "DELETE FROM {ks}.funnel_steps_speed WHERE app_id = ? AND funnel_id = ? AND funnel_version = ? AND day = ?";
    INSERT_COUNT_SPEED = 9, "INSERT INTO {ks}.daily_counts_speed (app_id, metric, day, dimension, value, batch_key, count, layer) VALUES (?, ?, ?, ?, ?, ?, ?, 'speed') USING TTL ? AND TIMESTAMP ?";
    SELECT_COUNTS_SPEED = 3, "SELECT dimension, value, count FROM {ks}.daily_counts_speed WHERE app_id = ? AND metric = ? AND day = ?";
    DELETE_COUNTS_SPEED_DAY = 3, "DELETE FROM {ks}.daily_counts_speed WHERE app_id = ? AND metric = ? AND day = ?";
    UPSERT_SPEED_DAY = 5, "INSERT INTO {ks}.speed_days (app_id, funnel_id, funnel_version, day) VALUES (?, ?, ?, ?) USING TTL ?";
    SELECT_COUNT_SPEED_PARTITIONS = 0, "SELECT DISTINCT app_id, metric, day FROM {ks}.daily_counts_speed";
    SELECT_STEP_SPEED_PARTITIONS = 0, "SELECT DISTINCT app_id, funnel_id, funnel_version, day FROM {ks}.funnel_steps_speed";
    SELECT_SPEED_DAYS = 5, "SELECT day FROM {ks}.speed_days WHERE app_id = ? AND funnel_id = ? AND funnel_version = ? AND day >= ? AND day <= ?";
    SELECT_SPEED_VERSIONS = 2, "SELECT funnel_version FROM {ks}.speed_days WHERE app_id = ? AND funnel_id = ?";
    DELETE_SPEED_DAY = 4, "DELETE FROM {ks}.speed_days WHERE app_id = ? AND funnel_id = ? AND funnel_version = ? AND day = ?";
    UPSERT_WATERMARK = 6, "INSERT INTO {ks}.watermarks (app_id, funnel_id, funnel_version, batch_until, run_id, published_at_ms) VALUES (?, ?, ?, ?, ?, ?)";
    SELECT_WATERMARK = 3, "SELECT batch_until, run_id, published_at_ms FROM {ks}.watermarks WHERE app_id = ? AND funnel_id = ? AND funnel_version = ?";
    SELECT_WATERMARKS = 1, "SELECT funnel_id, funnel_version, batch_until, run_id, published_at_ms FROM {ks}.watermarks WHERE app_id = ?";
    SELECT_WATERMARK_APPS = 0, "SELECT DISTINCT app_id FROM {ks}.watermarks";
    UPSERT_OFFSET = 5, "INSERT INTO {ks}.stream_offsets (group_id, topic, partition, next_offset, updated_at_ms) VALUES (?, ?, ?, ?, ?)";
    SELECT_OFFSETS = 2, "SELECT partition, next_offset FROM {ks}.stream_offsets WHERE group_id = ? AND topic = ?";
    SELECT_OFFSET = 3, "SELECT next_offset FROM {ks}.stream_offsets WHERE group_id = ? AND topic = ? AND partition = ?";
    SELECT_PARTITION_HEAD = 3, "SELECT next_offset, batch_first, batch_next, commit_ts, last_cells FROM {ks}.stream_partitions WHERE group_id = ? AND topic = ? AND partition = ? LIMIT 1";
    SELECT_PARTITION_CELL = 5, "SELECT count, at_ts, value, expires_at_ms FROM {ks}.stream_partitions WHERE group_id = ? AND topic = ? AND partition = ? AND kind = ? AND key = ?";
    SCAN_PARTITION_KIND = 6, "SELECT key, value, expires_at_ms FROM {ks}.stream_partitions WHERE group_id = ? AND topic = ? AND partition = ? AND kind = ? AND key >= ? AND key < ?";
    COMMIT_PARTITION = 9, "UPDATE {ks}.stream_partitions SET next_offset = ?, batch_first = ?, batch_next = ?, commit_ts = ?, last_cells = ? WHERE group_id = ? AND topic = ? AND partition = ? IF next_offset = ?";
    UPSERT_PARTITION_COUNT = 8, "UPDATE {ks}.stream_partitions USING TTL ? SET count = ?, at_ts = ? WHERE group_id = ? AND topic = ? AND partition = ? AND kind = ? AND key = ?";
    UPSERT_PARTITION_STATE = 8, "UPDATE {ks}.stream_partitions USING TTL ? SET value = ?, expires_at_ms = ? WHERE group_id = ? AND topic = ? AND partition = ? AND kind = ? AND key = ?";
    DELETE_PARTITION_STATE = 5, "DELETE FROM {ks}.stream_partitions WHERE group_id = ? AND topic = ? AND partition = ? AND kind = ? AND key = ?";
    SELECT_LEGACY_STATE = 1, "SELECT key, value, expires_at_ms FROM {ks}.stream_state WHERE namespace = ?";
    UPSERT_RECORD = 7, "INSERT INTO {ks}.stream_records (namespace, app_id, day, key, value, expires_at_ms) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?";
    DELETE_RECORD = 4, "DELETE FROM {ks}.stream_records WHERE namespace = ? AND app_id = ? AND day = ? AND key = ?";
    SELECT_RECORD = 4, "SELECT value, expires_at_ms FROM {ks}.stream_records WHERE namespace = ? AND app_id = ? AND day = ? AND key = ?";
    SCAN_RECORDS = 5, "SELECT key, value, expires_at_ms FROM {ks}.stream_records WHERE namespace = ? AND app_id = ? AND day = ? AND key >= ? AND key < ?";
    UPSERT_RECORD_APP = 2, "INSERT INTO {ks}.stream_record_apps (namespace, app_id) VALUES (?, ?)";
    SELECT_RECORD_APPS = 1, "SELECT app_id FROM {ks}.stream_record_apps WHERE namespace = ?";
    UPSERT_RECORD_DAY = 3, "INSERT INTO {ks}.stream_record_days (namespace, app_id, day) VALUES (?, ?, ?)";
    SELECT_RECORD_DAYS = 2, "SELECT day FROM {ks}.stream_record_days WHERE namespace = ? AND app_id = ?";
    INSERT_SEEN = 8, "INSERT INTO {ks}.stream_seen (app_id, bucket, id, expires_at_ms, topic, partition, first_offset) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?";
    SELECT_SEEN = 3, "SELECT expires_at_ms, topic, partition, first_offset FROM {ks}.stream_seen WHERE app_id = ? AND bucket = ? AND id = ?";
    ACQUIRE_LEASE = 3, "INSERT INTO {ks}.leases (name, holder, acquired_at_ms) VALUES ('publisher', ?, ?) IF NOT EXISTS USING TTL ?";
    RENEW_LEASE = 4, "UPDATE {ks}.leases USING TTL ? SET holder = ?, acquired_at_ms = ? WHERE name = 'publisher' IF holder = ?";
    SELECT_LEASE = 0, "SELECT holder FROM {ks}.leases WHERE name = 'publisher'";
    RELEASE_LEASE = 1, "DELETE FROM {ks}.leases WHERE name = 'publisher' IF holder = ?";
    ENQUEUE_GC = 2, "INSERT INTO {ks}.gc_queue (shard, due_at_ms, run_id) VALUES (0, ?, ?)";
    SELECT_GC_DUE = 1, "SELECT due_at_ms, run_id FROM {ks}.gc_queue WHERE shard = 0 AND due_at_ms <= ?";
    DELETE_GC = 2, "DELETE FROM {ks}.gc_queue WHERE shard = 0 AND due_at_ms = ? AND run_id = ?";
    UPSERT_PARTIAL_HEAD = 10, "INSERT INTO {ks}.shard_partials (run_name, shard, shards, identity, attempt, inputs, body_bytes, chunks, written_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?";
    SELECT_PARTIAL_HEADS = 1, "SELECT shard, shards, identity, attempt, inputs, body_bytes, chunks, written_at_ms FROM {ks}.shard_partials WHERE run_name = ?";
    SELECT_PARTIAL_HEAD = 2, "SELECT attempt, body_bytes, chunks FROM {ks}.shard_partials WHERE run_name = ? AND shard = ?";
    INSERT_PARTIAL_CHUNK = 6, "INSERT INTO {ks}.shard_partial_chunks (run_name, shard, attempt, chunk, data) VALUES (?, ?, ?, ?, ?) USING TTL ?";
    SELECT_PARTIAL_CHUNK = 4, "SELECT data FROM {ks}.shard_partial_chunks WHERE run_name = ? AND shard = ? AND attempt = ? AND chunk = ?";
    DELETE_PARTIAL_CHUNK = 4, "DELETE FROM {ks}.shard_partial_chunks WHERE run_name = ? AND shard = ? AND attempt = ? AND chunk = ?";
    UPSERT_SHARD_RUN = 4, "INSERT INTO {ks}.shard_runs (run_name, run_id, attempts, finalized_at_ms) VALUES (?, ?, ?, ?)";
    SELECT_SHARD_RUN = 1, "SELECT run_id, attempts, finalized_at_ms FROM {ks}.shard_runs WHERE run_name = ?";
    UPSERT_META = 2, "INSERT INTO {ks}.meta (key, value) VALUES (?, ?)";
    SELECT_META = 1, "SELECT value FROM {ks}.meta WHERE key = ?";
}

/// The key of a Kafka partition's speed rows: `group/topic/partition`. The consumer group is part of it so
/// two groups reading one topic into one keyspace each keep their rows (summed by readers, as SQLite sums
/// them). Unambiguous: Kafka topic names cannot contain `/`, and the partition is a number, so the key
/// splits from the right.
pub fn batch_key(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}/{topic}/{partition}")
}

/// Largest chunk of a partial body (one partition, one cell): far below `max_mutation_size`.
pub const PARTIAL_CHUNK_BYTES: usize = 512 * 1024;

/// TTL of the partial facts of sharded runs: 30 days (working state; the published run is what stays).
pub const PARTIAL_TTL_S: i32 = 30 * 86_400;

/// Longest TTL Cassandra accepts (`Attributes.MAX_TTL`): 20 years.
pub const MAX_TTL_S: i64 = 20 * 365 * 86_400;

/// Latest expiry Cassandra 4.1 (and 5.0 in its default storage compatibility mode) accepts, in Unix
/// seconds: 2038-01-19T03:14:06Z (`Cell.MAX_DELETION_TIME`). A write whose `now + TTL` is later is rejected
/// (`ExpirationDateOverflowHandling`, policy `REJECT`), so a 20-year TTL is refused from 2018 on.
pub const MAX_DELETION_TIME_S: i64 = i32::MAX as i64 - 1;

/// Margin kept below [`MAX_DELETION_TIME_S`]: the coordinator's clock, which adds the TTL, may run ahead.
const EXPIRY_MARGIN_S: i64 = 86_400;

/// TTL in seconds for a state entry expiring at `expires_at_ms` (at least 1; CQL has no "already
/// expired"), or 0 — no TTL, kept — when the expiry lies beyond what Cassandra can store (entries kept
/// forever are written with `expires_at_ms = i64::MAX`). Readers hide entries past `expires_at_ms` either
/// way; the TTL only lets Cassandra drop them.
pub fn state_ttl_s(expires_at_ms: i64, now_ms: i64) -> i32 {
    let secs = (expires_at_ms.saturating_sub(now_ms).saturating_add(999) / 1000).max(1);
    let latest = MAX_DELETION_TIME_S - EXPIRY_MARGIN_S - now_ms.div_euclid(1000);
    if secs > MAX_TTL_S.min(latest) {
        return 0;
    }
    i32::try_from(secs).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn table_of(cql: &str) -> Option<String> {
        let words: Vec<&str> = cql.split_whitespace().collect();
        let i = words
            .iter()
            .position(|w| matches!(*w, "INTO" | "FROM" | "UPDATE" | "EXISTS"))?;
        let t = words.get(i + 1)?;
        Some(t.split('(').next()?.to_string())
    }

    #[test]
    fn every_statement_has_its_declared_bind_markers() {
        for s in ALL {
            assert_eq!(s.template.matches('?').count(), s.arity, "{}", s.name);
        }
    }

    #[test]
    fn writes_are_idempotent_upserts_and_deletes_only() {
        for s in ALL {
            let t = s.template;
            // The only lightweight transactions are the publisher lease's and the stream's commit (never
            // marked idempotent).
            assert_eq!(
                s.is_conditional(),
                (t.contains("{ks}.leases ") && !s.is_read()) || s.name == "COMMIT_PARTITION",
                "{}: lightweight transaction",
                s.name
            );
            assert!(
                t.starts_with("INSERT")
                    || t.starts_with("DELETE")
                    || t.starts_with("SELECT")
                    || t.starts_with("UPDATE"),
                "{}",
                s.name
            );
            // No counter arithmetic (`x = x + ?`): re-applying a write must not change the result.
            assert!(
                !t.contains("= rows +") && !t.contains(" + ?"),
                "{}: not idempotent",
                s.name
            );
        }
        for ddl in TABLES {
            assert!(!ddl.contains("counter"), "counter column in {ddl}");
            assert!(ddl.starts_with("CREATE TABLE IF NOT EXISTS {ks}."), "{ddl}");
        }
    }

    #[test]
    fn every_statement_targets_a_created_table_in_the_keyspace() {
        let created: BTreeSet<String> = TABLES.iter().filter_map(|d| table_of(d)).collect();
        assert_eq!(created.len(), TABLES.len());
        for s in ALL {
            let table = table_of(s.template).unwrap_or_else(|| panic!("{}: no table", s.name));
            assert!(
                created.contains(&table),
                "{}: {table} is not created by init",
                s.name
            );
            assert!(s.cql("funnel_ks").contains("funnel_ks."), "{}", s.name);
        }
    }

    #[test]
    fn no_statement_filters() {
        // Expired state is hidden by the reader (its `expires_at_ms`), not filtered by the server.
        for s in ALL {
            assert!(!s.template.contains("ALLOW FILTERING"), "{}", s.name);
        }
    }

    #[test]
    fn a_stream_commit_is_one_conditional_write_of_its_kafka_partition() {
        let ddl = TABLES
            .iter()
            .find(|d| d.contains("{ks}.stream_partitions "))
            .expect("stream partition table");
        assert!(
            ddl.contains("PRIMARY KEY ((group_id, topic, partition), kind, key))"),
            "{ddl}"
        );
        assert!(COMMIT_PARTITION.is_conditional());
        assert!(COMMIT_PARTITION
            .cql("ks")
            .ends_with("WHERE group_id = ? AND topic = ? AND partition = ? IF next_offset = ?"));
        // Everything the commit batch carries names the same partition key.
        for s in [
            UPSERT_PARTITION_COUNT,
            UPSERT_PARTITION_STATE,
            DELETE_PARTITION_STATE,
        ] {
            assert!(s.template.contains("{ks}.stream_partitions "), "{}", s.name);
            assert!(
                s.template.contains(
                    "group_id = ? AND topic = ? AND partition = ? AND kind = ? AND key = ?"
                ),
                "{}",
                s.name
            );
        }
        // The head is read with Paxos (LOCAL_SERIAL): an unfinished commit is finished or dropped first.
        assert!(SELECT_PARTITION_HEAD.is_serial_read());
        assert!(ALL
            .iter()
            .filter(|s| s.is_serial_read())
            .all(|s| s.name == "SELECT_PARTITION_HEAD"));
        assert!(!TABLES.iter().any(|d| d.contains("speed_batches")));
    }

    #[test]
    fn totals_live_beside_the_steps_of_their_run() {
        let ddl = TABLES
            .iter()
            .find(|d| d.contains("{ks}.funnel_totals "))
            .expect("totals table");
        assert!(
            ddl.contains("PRIMARY KEY ((app_id, funnel_id, funnel_version, run_id), day, step))"),
            "{ddl}"
        );
        assert!(!ddl.contains("breakdown"), "{ddl}");
        // Written, read and dropped per run partition, like funnel_steps.
        for s in [INSERT_TOTAL, SELECT_TOTALS, DELETE_TOTALS_RUN] {
            assert!(s.template.contains("funnel_totals"), "{}", s.name);
        }
        assert!(DELETE_TOTALS_RUN
            .template
            .ends_with("WHERE app_id = ? AND funnel_id = ? AND funnel_version = ? AND run_id = ?"));
        // The legacy-row delete names the whole primary key: one row, never a range.
        assert!(DELETE_STEP
            .template
            .ends_with("run_id = ? AND day = ? AND breakdown = ? AND step = ?"));
    }

    #[test]
    fn every_table_has_its_compaction_and_gc_grace() {
        let created: BTreeSet<String> = TABLES.iter().filter_map(|d| table_of(d)).collect();
        let tuned: BTreeSet<String> = TABLE_OPTIONS
            .iter()
            .map(|(t, ..)| format!("{{ks}}.{t}"))
            .collect();
        assert_eq!(created, tuned);
        // The TTL'd rows written once (speed partials, batch markers) compact by time window; the rest
        // leveled.
        let windowed = ["funnel_steps_speed", "daily_counts_speed", "stream_seen"];
        for (table, compaction, _) in TABLE_OPTIONS {
            let twcs = windowed.contains(table);
            assert_eq!(compaction.contains("TimeWindow"), twcs, "{table}");
            if twcs {
                let with_ttl = ALL.iter().any(|s| {
                    s.template
                        .starts_with(&format!("INSERT INTO {{ks}}.{table} "))
                        && s.template.contains("USING TTL ?")
                });
                assert!(with_ttl, "{table}");
            }
        }
        assert_eq!(
            table_options_ddl("watermarks", LCS, 864_000),
            "ALTER TABLE {ks}.watermarks WITH compaction = {'class': 'LeveledCompactionStrategy'} AND gc_grace_seconds = 864000"
        );
    }

    #[test]
    fn the_run_log_is_bucketed_by_month() {
        // One partition for every run ever grows without bound: each statement names its bucket.
        for s in ALL.iter().filter(|s| s.template.contains("{ks}.runs ")) {
            assert!(
                s.template.contains("bucket = ?") || s.template.contains("(?, ?"),
                "{}",
                s.name
            );
            assert!(!s.template.contains("bucket = 0"), "{}", s.name);
        }
    }

    #[test]
    fn keyspace_ddl() {
        assert_eq!(
            create_keyspace("funnel", 3),
            "CREATE KEYSPACE IF NOT EXISTS funnel WITH replication = {'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(batch_key("g", "events", 3), "g/events/3");
        assert_ne!(batch_key("g1", "events", 3), batch_key("g2", "events", 3));
        assert_eq!(state_ttl_s(10_000, 0), 10);
        assert_eq!(state_ttl_s(10_001, 0), 11);
        assert_eq!(state_ttl_s(0, 10_000), 1);
        // Kept forever, or expiring past 2038-01-19: no TTL (Cassandra 4.1 rejects the expiry).
        let now_ms = 1_765_000_000_000; // 2025-12-06
        assert_eq!(state_ttl_s(i64::MAX, now_ms), 0);
        assert_eq!(state_ttl_s(now_ms + MAX_TTL_S * 1000, now_ms), 0);
        let last_day_ms = (MAX_DELETION_TIME_S - 86_400) * 1000;
        assert_eq!(
            state_ttl_s(last_day_ms, now_ms),
            ((last_day_ms - now_ms) / 1000) as i32
        );
        assert_eq!(state_ttl_s(last_day_ms + 1000, now_ms), 0);
        assert_eq!(state_ttl_s(now_ms + 3_600_000, now_ms), 3600);
    }
}
