//! `SqliteStore`: the embedded fact store (`sqlite:PATH`), one SQLite file in WAL mode.
//!
//! Layout: `funnel_steps` and `daily_counts` hold both layers; batch rows carry the id of the run that
//! staged them (`run_id > 0`, `layer = 'batch'`), speed rows carry `run_id = 0` (`layer = 'speed'`) and are
//! summed on upsert. `watermarks` is the pointer: per `(app_id, funnel_id, funnel_version)` it names the
//! published run readers use and `batch_until`. `run_keys` records which keys each run staged (and its first
//! day) so publish, carry-forward and garbage collection are index range operations, never table scans.
//! A killed process leaves a `running` run whose rows nobody points at; the next `begin_run` marks it
//! `abandoned` (its pid is gone) and deletes its rows.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::day::Day;
use crate::error::FactsError;
use crate::fault;
use crate::lambda;
use crate::model::{
    DailyCountFact, FunnelStepFact, RunId, RunMeta, RunRecord, RunStatus, SpeedBatch, Watermark,
    COUNTS_WATERMARK_ID,
};
use crate::query::{CountsAnswer, CountsQuery, Freshness, FunnelAnswer, FunnelQuery};
use crate::store::FactStore;

/// Schema version written to `meta`; bump when the layout changes.
///
/// - 1: first layout.
/// - 2: `speed_batches` keyed by `(group_id, topic, partition, first_offset)` (was without `group_id`, so
///   two consumer groups reading one topic into one store refused each other's batches). [`SqliteStore::open`]
///   migrates a version-1 file in place (see `migrate_speed_batches`).
pub const SCHEMA_VERSION: i64 = 2;

/// How long a writer waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Speed batch keys kept per (group, topic, partition) for duplicate detection (older replays are refused by the
/// committed-offset check instead).
const SPEED_BATCH_KEYS_KEPT: i64 = 10_000;

/// The applied-speed-batch markers (schema 2 key), executed by `init` and by the schema 1 → 2 migration.
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

const SCHEMA: &str = "
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

/// The embedded SQLite fact store. One connection behind a mutex (SQLite connections are not `Sync`);
/// other processes may open the same file at the same time (WAL readers never block, writers wait up to a
/// minute for each other).
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn to_i64(what: &'static str, v: u64) -> Result<i64, FactsError> {
    i64::try_from(v).map_err(|_| FactsError::Invalid {
        what,
        value: v.to_string(),
    })
}

fn parse_day(s: &str) -> Result<Day, FactsError> {
    s.parse()
}

fn check_day(day: Day) -> Result<String, FactsError> {
    if day < Day::FIRST || day > Day::LAST {
        return Err(FactsError::Invalid {
            what: "day (outside 0001-01-01..9999-12-31)",
            value: day.0.to_string(),
        });
    }
    Ok(day.to_string())
}

/// Whether a process with this pid still exists (Linux: `/proc/PID`; elsewhere assumed alive).
fn pid_alive(pid: i64) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

impl SqliteStore {
    /// Open (creating if missing) the SQLite file at `path`, switch it to WAL and create the tables.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, FactsError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(&path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(FactsError::Invalid {
                what: "sqlite journal mode (WAL could not be enabled)",
                value: mode,
            });
        }
        // WAL + NORMAL: a killed process loses nothing committed; only a power cut may lose the last commits.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // 64 MiB page cache per connection: bulk staging and collection touch large B-tree ranges.
        conn.pragma_update(None, "cache_size", -65_536)?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
            path,
        };
        store.init()?;
        Ok(store)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delete rows nobody points at: runs that failed or were abandoned, and keys of published runs whose
    /// watermark moved to a later run. Each deletion is an index range delete, one key at a time.
    fn gc(conn: &mut Connection) -> Result<(), FactsError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let dead: Vec<(i64, String, String, String)> = {
            let mut stmt = tx.prepare(
                "SELECT k.run_id, k.app_id, k.funnel_id, k.funnel_version
                 FROM run_keys k JOIN runs r ON r.run_id = k.run_id
                 WHERE r.status != 'running'
                   AND NOT EXISTS (SELECT 1 FROM watermarks w
                                   WHERE w.run_id = k.run_id AND w.app_id = k.app_id
                                     AND w.funnel_id = k.funnel_id AND w.funnel_version = k.funnel_version)",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (run, app, fid, ver) in dead {
            delete_key_rows(&tx, run, &app, &fid, &ver)?;
            tx.execute(
                "DELETE FROM run_keys WHERE run_id = ?1 AND app_id = ?2 AND funnel_id = ?3 AND funnel_version = ?4",
                params![run, app, fid, ver],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Mark runs whose owning process is gone as abandoned (they can never publish).
    fn reap_abandoned(conn: &mut Connection) -> Result<usize, FactsError> {
        let me = std::process::id() as i64;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let running: Vec<(i64, Option<i64>)> = {
            let mut stmt =
                tx.prepare("SELECT run_id, owner_pid FROM runs WHERE status = 'running'")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut n = 0;
        for (run, pid) in running {
            let Some(pid) = pid else { continue };
            if pid != me && !pid_alive(pid) {
                tx.execute(
                    "UPDATE runs SET status = 'abandoned', finished_at_ms = ?2,
                         error = 'process ' || ?3 || ' ended without publishing or failing the run'
                     WHERE run_id = ?1",
                    params![run, now_ms(), pid],
                )?;
                n += 1;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    fn speed_applied_at(conn: &Connection) -> Result<Option<i64>, FactsError> {
        let v: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'speed_applied_at_ms'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(v.and_then(|s| s.parse().ok()))
    }

    /// `(batch_until, run_id, published_at_ms)` of one key.
    fn pointer(
        conn: &Connection,
        app: &str,
        fid: &str,
        ver: &str,
    ) -> Result<Option<(Day, i64, i64)>, FactsError> {
        let row: Option<(String, i64, i64)> = conn
            .query_row(
                "SELECT batch_until, run_id, published_at_ms FROM watermarks
                 WHERE app_id = ?1 AND funnel_id = ?2 AND funnel_version = ?3",
                params![app, fid, ver],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        row.map(|(d, run, at)| Ok((parse_day(&d)?, run, at)))
            .transpose()
    }

    fn resolve_version(conn: &Connection, q: &FunnelQuery) -> Result<String, FactsError> {
        if let Some(v) = &q.funnel_version {
            return Ok(v.clone());
        }
        let latest: Option<String> = conn
            .query_row(
                "SELECT funnel_version FROM watermarks WHERE app_id = ?1 AND funnel_id = ?2
                 ORDER BY published_at_ms DESC, run_id DESC LIMIT 1",
                params![q.app_id, q.funnel_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(v) = latest {
            return Ok(v);
        }
        let mut stmt = conn.prepare(
            "SELECT DISTINCT funnel_version FROM funnel_steps
             WHERE run_id = 0 AND app_id = ?1 AND funnel_id = ?2 ORDER BY funnel_version",
        )?;
        let versions: Vec<String> = stmt
            .query_map(params![q.app_id, q.funnel_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        match versions.len() {
            0 => Ok(String::new()),
            1 => Ok(versions.into_iter().next().unwrap_or_default()),
            _ => Err(FactsError::AmbiguousVersion {
                app_id: q.app_id.clone(),
                funnel_id: q.funnel_id.clone(),
                versions,
            }),
        }
    }

    fn run_status(tx: &Transaction<'_>, run: RunId) -> Result<RunStatus, FactsError> {
        let s: Option<String> = tx
            .query_row("SELECT status FROM runs WHERE run_id = ?1", [run.0], |r| {
                r.get(0)
            })
            .optional()?;
        s.ok_or(FactsError::UnknownRun(run.0))?.parse()
    }

    /// Ends a staging transaction: counts the staged rows on the run and commits (then the fault
    /// hook for crash tests).
    fn finish_staging(
        tx: rusqlite::Transaction<'_>,
        run: RunId,
        rows: usize,
    ) -> Result<(), FactsError> {
        tx.execute(
            "UPDATE runs SET rows = rows + ?2 WHERE run_id = ?1",
            params![run.0, rows as i64],
        )?;
        tx.commit()?;
        fault::point("stage");
        Ok(())
    }

    fn require_running(tx: &Transaction<'_>, run: RunId) -> Result<(), FactsError> {
        match Self::run_status(tx, run)? {
            RunStatus::Running => Ok(()),
            other => Err(FactsError::RunNotRunning {
                run: run.0,
                status: other.to_string(),
            }),
        }
    }

    fn note_key(
        tx: &Transaction<'_>,
        run: RunId,
        app: &str,
        fid: &str,
        ver: &str,
        day: &str,
    ) -> Result<(), FactsError> {
        tx.prepare_cached(
            "INSERT INTO run_keys (run_id, app_id, funnel_id, funnel_version, min_day) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO UPDATE SET min_day = min(min_day, excluded.min_day)",
        )?
        .execute(params![run.0, app, fid, ver, day])?;
        Ok(())
    }
}

fn delete_key_rows(
    tx: &Transaction<'_>,
    run: i64,
    app: &str,
    fid: &str,
    ver: &str,
) -> Result<(), FactsError> {
    if fid == COUNTS_WATERMARK_ID {
        tx.execute(
            "DELETE FROM daily_counts WHERE run_id = ?1 AND app_id = ?2 AND metric = ?3",
            params![run, app, ver],
        )?;
    } else {
        tx.execute(
            "DELETE FROM funnel_steps WHERE run_id = ?1 AND app_id = ?2 AND funnel_id = ?3 AND funnel_version = ?4",
            params![run, app, fid, ver],
        )?;
    }
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

/// Schema 1 → 2: rebuild `speed_batches` with `group_id` in its key. Lossless (schema 1 already stored
/// `group_id` in every row) and atomic (one immediate transaction; a concurrent opener re-checks under the
/// lock and finds nothing to do). A no-op on files created with schema 2.
fn migrate_speed_batches(conn: &mut Connection) -> Result<(), FactsError> {
    if !speed_batches_key_lacks_group(conn)? {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if speed_batches_key_lacks_group(&tx)? {
        tx.execute_batch("ALTER TABLE speed_batches RENAME TO speed_batches_v1;")?;
        tx.execute_batch(SPEED_BATCHES)?;
        tx.execute_batch(
            "INSERT INTO speed_batches (topic, partition, first_offset, next_offset, group_id, applied_at_ms)
                 SELECT topic, partition, first_offset, next_offset, group_id, applied_at_ms FROM speed_batches_v1;
             DROP TABLE speed_batches_v1;",
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Decode a `funnel_steps` row (columns as selected by `load_steps`).
fn step_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FunnelStepFact> {
    let conv = |i: usize, e: FactsError| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    let day: String = r.get(3)?;
    let step: i64 = r.get(5)?;
    let actors: i64 = r.get(6)?;
    Ok(FunnelStepFact {
        app_id: r.get(0)?,
        funnel_id: r.get(1)?,
        funnel_version: r.get(2)?,
        day: parse_day(&day).map_err(|e| conv(3, e))?,
        breakdown: r.get(4)?,
        step: u32::try_from(step).map_err(|_| {
            conv(
                5,
                FactsError::Invalid {
                    what: "stored step",
                    value: step.to_string(),
                },
            )
        })?,
        actors: u64::try_from(actors).unwrap_or(0),
        ttc_median_s: r.get(7)?,
        ttc_p90_s: r.get(8)?,
    })
}

fn load_steps(
    conn: &Connection,
    run: i64,
    app: &str,
    fid: &str,
    ver: &str,
    range: Option<(Day, Day)>,
) -> Result<Vec<FunnelStepFact>, FactsError> {
    let Some((lo, hi)) = range else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(
        "SELECT app_id, funnel_id, funnel_version, day, breakdown, step, actors, ttc_median_s, ttc_p90_s
         FROM funnel_steps
         WHERE run_id = ?1 AND app_id = ?2 AND funnel_id = ?3 AND funnel_version = ?4 AND day BETWEEN ?5 AND ?6",
    )?;
    let rows = stmt.query_map(
        params![run, app, fid, ver, lo.to_string(), hi.to_string()],
        step_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn load_counts(
    conn: &Connection,
    run: i64,
    q: &CountsQuery,
    range: Option<(Day, Day)>,
) -> Result<Vec<DailyCountFact>, FactsError> {
    let Some((lo, hi)) = range else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(
        "SELECT day, dimension, value, count FROM daily_counts
         WHERE run_id = ?1 AND app_id = ?2 AND metric = ?3 AND day BETWEEN ?4 AND ?5
           AND (?6 IS NULL OR dimension = ?6)",
    )?;
    let rows = stmt.query_map(
        params![
            run,
            q.app_id,
            q.metric,
            lo.to_string(),
            hi.to_string(),
            q.dimension
        ],
        |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (day, dimension, value, count) = row?;
        out.push(DailyCountFact {
            app_id: q.app_id.clone(),
            day: parse_day(&day)?,
            metric: q.metric.clone(),
            dimension,
            value,
            count,
        });
    }
    Ok(out)
}

impl FactStore for SqliteStore {
    fn init(&self) -> Result<(), FactsError> {
        let mut conn = self.lock();
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(SPEED_BATCHES)?;
        migrate_speed_batches(&mut conn)?;
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
             ON CONFLICT DO UPDATE SET value = excluded.value WHERE CAST(value AS INTEGER) < ?1",
            [SCHEMA_VERSION],
        )?;
        Ok(())
    }

    fn begin_run(&self, meta: &RunMeta) -> Result<RunId, FactsError> {
        let mut conn = self.lock();
        Self::reap_abandoned(&mut conn)?;
        Self::gc(&mut conn)?;
        conn.execute(
            "INSERT INTO runs (started_at_ms, status, inputs, funnels, owner_pid) VALUES (?1, 'running', ?2, ?3, ?4)",
            params![
                meta.started_at_ms,
                serde_json::to_string(&meta.inputs)?,
                serde_json::to_string(&meta.funnels)?,
                std::process::id() as i64
            ],
        )?;
        Ok(RunId(conn.last_insert_rowid()))
    }

    fn write_funnel_steps(&self, run: RunId, rows: &[FunnelStepFact]) -> Result<(), FactsError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::require_running(&tx, run)?;
        let mut keys: std::collections::BTreeMap<(&str, &str, &str), String> = Default::default();
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO funnel_steps
                 (run_id, app_id, funnel_id, funnel_version, day, breakdown, step, actors, ttc_median_s, ttc_p90_s, layer)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'batch')",
            )?;
            for r in rows {
                let day = check_day(r.day)?;
                ins.execute(params![
                    run.0,
                    r.app_id,
                    r.funnel_id,
                    r.funnel_version,
                    day,
                    r.breakdown,
                    r.step,
                    to_i64("actors", r.actors)?,
                    r.ttc_median_s,
                    r.ttc_p90_s
                ])?;
                let k = keys
                    .entry((&r.app_id, &r.funnel_id, &r.funnel_version))
                    .or_insert_with(|| day.clone());
                if day < *k {
                    *k = day;
                }
            }
        }
        for ((app, fid, ver), day) in &keys {
            Self::note_key(&tx, run, app, fid, ver, day)?;
        }
        Self::finish_staging(tx, run, rows.len())
    }

    fn write_daily_counts(&self, run: RunId, rows: &[DailyCountFact]) -> Result<(), FactsError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::require_running(&tx, run)?;
        let mut keys: std::collections::BTreeMap<(&str, &str), String> = Default::default();
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO daily_counts (run_id, app_id, metric, day, dimension, value, count, layer)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'batch')",
            )?;
            for r in rows {
                let day = check_day(r.day)?;
                ins.execute(params![
                    run.0,
                    r.app_id,
                    r.metric,
                    day,
                    r.dimension,
                    r.value,
                    r.count
                ])?;
                let k = keys
                    .entry((&r.app_id, &r.metric))
                    .or_insert_with(|| day.clone());
                if day < *k {
                    *k = day;
                }
            }
        }
        for ((app, metric), day) in &keys {
            Self::note_key(&tx, run, app, COUNTS_WATERMARK_ID, metric, day)?;
        }
        Self::finish_staging(tx, run, rows.len())
    }

    fn publish(&self, run: RunId, watermarks: &[Watermark]) -> Result<(), FactsError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::require_running(&tx, run)?;
        let now = now_ms();
        for (i, w) in watermarks.iter().enumerate() {
            let until = check_day(w.batch_until)?;
            let (app, fid, ver) = (&w.app_id, &w.funnel_id, &w.funnel_version);
            let current = Self::pointer(&tx, app, fid, ver)?;
            if let Some((_, cur_run, _)) = current {
                if cur_run > run.0 {
                    return Err(FactsError::StaleRun {
                        run: run.0,
                        current: cur_run,
                        app_id: app.clone(),
                        funnel_id: fid.clone(),
                        funnel_version: ver.clone(),
                    });
                }
            }
            let first_staged: Option<String> = tx
                .query_row(
                    "SELECT min_day FROM run_keys WHERE run_id = ?1 AND app_id = ?2 AND funnel_id = ?3 AND funnel_version = ?4",
                    params![run.0, app, fid, ver],
                    |r| r.get(0),
                )
                .optional()?;
            // Carry forward history the new run did not recompute (days before its first staged day).
            if let (Some((_, old, _)), Some(first)) = (current, &first_staged) {
                let copied = if fid == COUNTS_WATERMARK_ID {
                    tx.execute(
                        "INSERT OR IGNORE INTO daily_counts (run_id, app_id, metric, day, dimension, value, count, layer)
                         SELECT ?1, app_id, metric, day, dimension, value, count, 'batch' FROM daily_counts
                         WHERE run_id = ?2 AND app_id = ?3 AND metric = ?4 AND day < ?5",
                        params![run.0, old, app, ver, first],
                    )?
                } else {
                    tx.execute(
                        "INSERT OR IGNORE INTO funnel_steps
                         (run_id, app_id, funnel_id, funnel_version, day, breakdown, step, actors, ttc_median_s, ttc_p90_s, layer)
                         SELECT ?1, app_id, funnel_id, funnel_version, day, breakdown, step, actors, ttc_median_s, ttc_p90_s, 'batch'
                         FROM funnel_steps
                         WHERE run_id = ?2 AND app_id = ?3 AND funnel_id = ?4 AND funnel_version = ?5 AND day < ?6",
                        params![run.0, old, app, fid, ver, first],
                    )?
                };
                if copied > 0 {
                    let oldest: Option<String> = tx.query_row(
                        "SELECT min_day FROM run_keys WHERE run_id = ?1 AND app_id = ?2 AND funnel_id = ?3 AND funnel_version = ?4",
                        params![old, app, fid, ver],
                        |r| r.get(0),
                    ).optional()?;
                    Self::note_key(&tx, run, app, fid, ver, oldest.as_deref().unwrap_or(first))?;
                }
            }
            if first_staged.is_none() {
                // Staged nothing for this key: the published answer is "no rows", but the key is tracked so
                // the pointer has an owner in run_keys.
                Self::note_key(&tx, run, app, fid, ver, &until)?;
            }
            tx.execute(
                "INSERT INTO watermarks (app_id, funnel_id, funnel_version, batch_until, run_id, published_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT DO UPDATE SET batch_until = excluded.batch_until, run_id = excluded.run_id,
                                           published_at_ms = excluded.published_at_ms",
                params![app, fid, ver, until, run.0, now],
            )?;
            // Speed rows below the new watermark are expired.
            if fid == COUNTS_WATERMARK_ID {
                tx.execute(
                    "DELETE FROM daily_counts WHERE run_id = 0 AND app_id = ?1 AND metric = ?2 AND day < ?3",
                    params![app, ver, until],
                )?;
            } else {
                tx.execute(
                    "DELETE FROM funnel_steps WHERE run_id = 0 AND app_id = ?1 AND funnel_id = ?2
                     AND funnel_version = ?3 AND day < ?4",
                    params![app, fid, ver, until],
                )?;
            }
            if i == 0 {
                fault::point("publish");
            }
        }
        tx.execute(
            "UPDATE runs SET status = 'published', finished_at_ms = ?2 WHERE run_id = ?1",
            params![run.0, now],
        )?;
        tx.commit()?;
        // Published. Collecting superseded rows may fail (e.g. a long-held lock); that must not turn a
        // published run into an error: the next begin_run/publish collects them.
        let _ = Self::gc(&mut conn);
        Ok(())
    }

    fn fail_run(&self, run: RunId, error: &str) -> Result<(), FactsError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::require_running(&tx, run)?;
        tx.execute(
            "UPDATE runs SET status = 'failed', finished_at_ms = ?2, error = ?3 WHERE run_id = ?1",
            params![run.0, now_ms(), error],
        )?;
        tx.commit()?;
        let _ = Self::gc(&mut conn);
        Ok(())
    }

    fn apply_speed_batch(&self, b: &SpeedBatch) -> Result<bool, FactsError> {
        if b.next_offset < b.first_offset {
            return Err(FactsError::Invalid {
                what: "speed batch offsets (next_offset < first_offset)",
                value: format!("{}..{}", b.first_offset, b.next_offset),
            });
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seen: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM speed_batches
                 WHERE group_id = ?1 AND topic = ?2 AND partition = ?3 AND first_offset = ?4",
                params![b.group, b.topic, b.partition, b.first_offset],
                |r| r.get(0),
            )
            .optional()?;
        if seen.is_some() {
            return Ok(false);
        }
        let committed: Option<i64> = tx
            .query_row(
                "SELECT next_offset FROM stream_offsets WHERE group_id = ?1 AND topic = ?2 AND partition = ?3",
                params![b.group, b.topic, b.partition],
                |r| r.get(0),
            )
            .optional()?;
        if committed.is_some_and(|c| b.next_offset <= c && b.next_offset > b.first_offset) {
            // Entirely below the committed offset: consumed before (its marker was pruned).
            return Ok(false);
        }
        if let Some(c) = committed.filter(|c| *c > b.first_offset) {
            return Err(FactsError::OffsetOverlap {
                group: b.group.clone(),
                topic: b.topic.clone(),
                partition: b.partition,
                first_offset: b.first_offset,
                committed: c,
            });
        }
        let now = now_ms();
        tx.execute(
            "INSERT INTO speed_batches (topic, partition, first_offset, next_offset, group_id, applied_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![b.topic, b.partition, b.first_offset, b.next_offset, b.group, now],
        )?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO funnel_steps
                 (run_id, app_id, funnel_id, funnel_version, day, breakdown, step, actors, ttc_median_s, ttc_p90_s, layer)
                 VALUES (0, ?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, NULL, 'speed')
                 ON CONFLICT DO UPDATE SET actors = actors + excluded.actors",
            )?;
            for r in &b.funnel_steps {
                ins.execute(params![
                    r.app_id,
                    r.funnel_id,
                    r.funnel_version,
                    check_day(r.day)?,
                    r.breakdown,
                    r.step,
                    to_i64("actors", r.actors)?
                ])?;
            }
            let mut ins = tx.prepare_cached(
                "INSERT INTO daily_counts (run_id, app_id, metric, day, dimension, value, count, layer)
                 VALUES (0, ?1, ?2, ?3, ?4, ?5, ?6, 'speed')
                 ON CONFLICT DO UPDATE SET count = count + excluded.count",
            )?;
            for r in &b.daily_counts {
                ins.execute(params![
                    r.app_id,
                    r.metric,
                    check_day(r.day)?,
                    r.dimension,
                    r.value,
                    r.count
                ])?;
            }
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO stream_state (namespace, key, value, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for s in &b.state_puts {
                put.execute(params![s.namespace, s.key, s.value, s.expires_at_ms])?;
            }
            let mut del =
                tx.prepare_cached("DELETE FROM stream_state WHERE namespace = ?1 AND key = ?2")?;
            for (ns, key) in &b.state_deletes {
                del.execute(params![ns, key])?;
            }
        }
        fault::point("speed");
        tx.execute(
            "INSERT INTO stream_offsets (group_id, topic, partition, next_offset, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO UPDATE SET next_offset = excluded.next_offset, updated_at_ms = excluded.updated_at_ms",
            params![b.group, b.topic, b.partition, b.next_offset, now],
        )?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('speed_applied_at_ms', ?1)
             ON CONFLICT DO UPDATE SET value = excluded.value",
            [now.to_string()],
        )?;
        tx.execute("DELETE FROM stream_state WHERE expires_at_ms <= ?1", [now])?;
        if b.first_offset % 64 == 0 {
            tx.execute(
                "DELETE FROM speed_batches
                 WHERE group_id = ?1 AND topic = ?2 AND partition = ?3 AND first_offset <
                   (SELECT first_offset FROM speed_batches WHERE group_id = ?1 AND topic = ?2 AND partition = ?3
                    ORDER BY first_offset DESC LIMIT 1 OFFSET ?4)",
                params![b.group, b.topic, b.partition, SPEED_BATCH_KEYS_KEPT],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn committed_offsets(&self, group: &str, topic: &str) -> Result<Vec<(i32, i64)>, FactsError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT partition, next_offset FROM stream_offsets WHERE group_id = ?1 AND topic = ?2 ORDER BY partition",
        )?;
        let rows = stmt.query_map(params![group, topic], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn get_state(
        &self,
        namespace: &str,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<u8>>, FactsError> {
        let conn = self.lock();
        let v = conn
            .prepare_cached(
                "SELECT value FROM stream_state WHERE namespace = ?1 AND key = ?2 AND expires_at_ms > ?3",
            )?
            .query_row(params![namespace, key, now_ms], |r| r.get(0))
            .optional()?;
        Ok(v)
    }

    fn scan_state(
        &self,
        namespace: &str,
        key_prefix: &str,
        now_ms: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, FactsError> {
        let conn = self.lock();
        // Keys with the prefix sort in [prefix, prefix + U+10FFFF).
        let upper = format!("{key_prefix}\u{10FFFF}");
        let mut stmt = conn.prepare_cached(
            "SELECT key, value FROM stream_state
             WHERE namespace = ?1 AND key >= ?2 AND key < ?3 AND expires_at_ms > ?4 ORDER BY key",
        )?;
        let rows = stmt.query_map(params![namespace, key_prefix, upper, now_ms], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (k, v) = row?;
            if k.starts_with(key_prefix) {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    fn read_funnel(&self, q: &FunnelQuery) -> Result<FunnelAnswer, FactsError> {
        let mut conn = self.lock();
        // One read transaction: the pointer and the rows it points at come from the same snapshot.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let version = Self::resolve_version(&tx, q)?;
        let pointer = Self::pointer(&tx, &q.app_id, &q.funnel_id, &version)?;
        let watermark = pointer.map(|p| p.0);
        let split = lambda::split(q.from, q.to, watermark);
        let batch = match pointer {
            Some((_, run, _)) => {
                load_steps(&tx, run, &q.app_id, &q.funnel_id, &version, split.batch)?
            }
            None => Vec::new(),
        };
        let speed = load_steps(&tx, 0, &q.app_id, &q.funnel_id, &version, split.speed)?;
        let freshness = Freshness {
            watermark,
            batch_run: pointer.map(|p| RunId(p.1)),
            batch_published_at_ms: pointer.map(|p| p.2),
            speed_applied_at_ms: Self::speed_applied_at(&tx)?,
        };
        tx.finish()?;
        let days = lambda::merge_funnel(q, watermark, batch, speed)?;
        Ok(FunnelAnswer {
            app_id: q.app_id.clone(),
            funnel_id: q.funnel_id.clone(),
            funnel_version: version,
            freshness,
            days,
        })
    }

    fn read_counts(&self, q: &CountsQuery) -> Result<CountsAnswer, FactsError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let pointer = Self::pointer(&tx, &q.app_id, COUNTS_WATERMARK_ID, &q.metric)?;
        let watermark = pointer.map(|p| p.0);
        let split = lambda::split(q.from, q.to, watermark);
        let batch = match pointer {
            Some((_, run, _)) => load_counts(&tx, run, q, split.batch)?,
            None => Vec::new(),
        };
        let speed = load_counts(&tx, 0, q, split.speed)?;
        let freshness = Freshness {
            watermark,
            batch_run: pointer.map(|p| RunId(p.1)),
            batch_published_at_ms: pointer.map(|p| p.2),
            speed_applied_at_ms: Self::speed_applied_at(&tx)?,
        };
        tx.finish()?;
        let days = lambda::merge_counts(q, watermark, batch, speed)?;
        Ok(CountsAnswer {
            app_id: q.app_id.clone(),
            metric: q.metric.clone(),
            freshness,
            days,
        })
    }

    fn watermarks(&self, app_id: &str) -> Result<Vec<Watermark>, FactsError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT funnel_id, funnel_version, batch_until FROM watermarks WHERE app_id = ?1
             ORDER BY funnel_id, funnel_version",
        )?;
        let rows = stmt.query_map([app_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (funnel_id, funnel_version, until) = row?;
            out.push(Watermark {
                app_id: app_id.to_string(),
                funnel_id,
                funnel_version,
                batch_until: parse_day(&until)?,
            });
        }
        Ok(out)
    }

    fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, FactsError> {
        let mut conn = self.lock();
        Self::reap_abandoned(&mut conn)?;
        let mut stmt = conn.prepare_cached(
            "SELECT run_id, started_at_ms, finished_at_ms, status, inputs, funnels, rows, error
             FROM runs ORDER BY run_id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (run_id, started_at_ms, finished_at_ms, status, inputs, funnels, n, error) = row?;
            out.push(RunRecord {
                run_id: RunId(run_id),
                started_at_ms,
                finished_at_ms,
                status: status.parse()?,
                inputs: serde_json::from_str(&inputs)?,
                funnels: serde_json::from_str(&funnels)?,
                rows: u64::try_from(n).unwrap_or(0),
                error,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_of(path: &Path, run: RunId) -> i64 {
        let c = Connection::open(path).unwrap();
        c.query_row(
            "SELECT (SELECT count(*) FROM funnel_steps WHERE run_id = ?1) + (SELECT count(*) FROM daily_counts WHERE run_id = ?1)",
            [run.0],
            |r| r.get(0),
        )
        .unwrap()
    }

    fn fact(day: i32) -> FunnelStepFact {
        FunnelStepFact {
            app_id: "a".into(),
            funnel_id: "f".into(),
            funnel_version: "1".into(),
            day: Day(day),
            breakdown: String::new(),
            step: 1,
            actors: 1,
            ttc_median_s: None,
            ttc_p90_s: None,
        }
    }

    #[test]
    fn a_run_whose_process_died_is_abandoned_and_its_rows_collected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let store = SqliteStore::open(&path).unwrap();
        let meta = RunMeta {
            started_at_ms: 0,
            inputs: serde_json::Value::Null,
            funnels: vec![],
        };
        let crashed = store.begin_run(&meta).unwrap();
        store
            .write_funnel_steps(crashed, &[fact(1), fact(2)])
            .unwrap();
        // Pretend the run belonged to a process that has exited.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE runs SET owner_pid = ?1 WHERE run_id = ?2",
                params![dead_pid, crashed.0],
            )
            .unwrap();
        assert_eq!(rows_of(&path, crashed), 2);
        let next = store.begin_run(&meta).unwrap();
        assert!(next > crashed);
        assert_eq!(rows_of(&path, crashed), 0, "leftover rows of the dead run");
        let runs = store.runs(10).unwrap();
        let rec = runs.iter().find(|r| r.run_id == crashed).unwrap();
        assert_eq!(rec.status, RunStatus::Abandoned);
        assert!(rec
            .error
            .as_deref()
            .unwrap_or("")
            .contains("ended without publishing"));
        // A run of this live process is never reaped.
        assert_eq!(
            runs.iter().find(|r| r.run_id == next).unwrap().status,
            RunStatus::Running
        );
    }

    #[test]
    fn superseded_runs_are_garbage_collected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let store = SqliteStore::open(&path).unwrap();
        let meta = RunMeta {
            started_at_ms: 0,
            inputs: serde_json::Value::Null,
            funnels: vec![],
        };
        let wm = [Watermark::funnel("a", "f", "1", Day(5))];
        let r1 = store.begin_run(&meta).unwrap();
        store.write_funnel_steps(r1, &[fact(1), fact(2)]).unwrap();
        store.publish(r1, &wm).unwrap();
        let r2 = store.begin_run(&meta).unwrap();
        store.write_funnel_steps(r2, &[fact(1), fact(3)]).unwrap();
        // Staged for a key it does not publish: discarded.
        let mut other = fact(1);
        other.funnel_id = "g".into();
        store.write_funnel_steps(r2, &[other]).unwrap();
        store.publish(r2, &wm).unwrap();
        assert_eq!(rows_of(&path, r1), 0);
        assert_eq!(rows_of(&path, r2), 2);
    }

    #[test]
    fn a_concurrent_reader_sees_one_whole_run_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let writer = SqliteStore::open(&path).unwrap();
        let reader = SqliteStore::open(&path).unwrap();
        let meta = RunMeta {
            started_at_ms: 0,
            inputs: serde_json::Value::Null,
            funnels: vec![],
        };
        let wm = [Watermark::funnel("a", "f", "1", Day(60))];
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let r = scope.spawn(|| {
                let mut seen = std::collections::BTreeSet::new();
                let mut reads = 0;
                while reads == 0 || !done.load(std::sync::atomic::Ordering::Relaxed) {
                    reads += 1;
                    let a = reader
                        .read_funnel(&crate::FunnelQuery::new("a", "f"))
                        .unwrap();
                    let values: std::collections::BTreeSet<u64> = a
                        .days
                        .iter()
                        .flat_map(|d| d.steps.iter().map(|s| s.actors))
                        .collect();
                    assert!(values.len() <= 1, "a read mixed runs: {values:?}");
                    if let Some(v) = values.first() {
                        assert_eq!(a.days.len(), 60, "a read saw part of run {v}");
                        seen.insert(*v);
                    }
                }
                seen
            });
            for k in 1..=8u64 {
                let run = writer.begin_run(&meta).unwrap();
                // Run k writes `k` actors on every one of 60 days, in three separate calls.
                for part in 0..3 {
                    let rows: Vec<_> = (part * 20..part * 20 + 20)
                        .map(|d| FunnelStepFact {
                            actors: k,
                            ..fact(d)
                        })
                        .collect();
                    writer.write_funnel_steps(run, &rows).unwrap();
                }
                writer.publish(run, &wm).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            let seen = r.join().unwrap();
            eprintln!("the reader saw runs {seen:?} while 8 runs were published");
        });
        let last = reader
            .read_funnel(&crate::FunnelQuery::new("a", "f"))
            .unwrap();
        assert!(last.days.iter().all(|d| d.steps[0].actors == 8));
    }

    #[test]
    fn a_schema_1_file_is_migrated_to_group_keyed_speed_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // The schema-1 table, with a batch group g1 applied at topic t, partition 0, offsets 0..10.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
                 INSERT INTO meta VALUES ('schema_version', '1');
                 CREATE TABLE speed_batches (
                     topic TEXT NOT NULL, partition INTEGER NOT NULL, first_offset INTEGER NOT NULL,
                     next_offset INTEGER NOT NULL, group_id TEXT NOT NULL, applied_at_ms INTEGER NOT NULL,
                     PRIMARY KEY (topic, partition, first_offset)) WITHOUT ROWID;
                 INSERT INTO speed_batches VALUES ('t', 0, 10, 10, 'g1', 1);
                 CREATE TABLE stream_offsets (group_id TEXT NOT NULL, topic TEXT NOT NULL,
                     partition INTEGER NOT NULL, next_offset INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL,
                     PRIMARY KEY (group_id, topic, partition)) WITHOUT ROWID;
                 INSERT INTO stream_offsets VALUES ('g1', 't', 0, 10, 1);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let c = Connection::open(&path).unwrap();
        let pk: Vec<String> = c
            .prepare("SELECT name FROM pragma_table_info('speed_batches') WHERE pk > 0 ORDER BY pk")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(pk, ["group_id", "topic", "partition", "first_offset"]);
        let version: String = c
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION.to_string());
        let empty = |group: &str| SpeedBatch {
            group: group.into(),
            topic: "t".into(),
            partition: 0,
            first_offset: 10,
            next_offset: 10,
            ..SpeedBatch::default()
        };
        // The migrated marker still refuses g1's replay; g2 is a different key now.
        assert!(!store.apply_speed_batch(&empty("g1")).unwrap());
        assert!(store.apply_speed_batch(&empty("g2")).unwrap());
        assert!(!store.apply_speed_batch(&empty("g2")).unwrap());
        // Re-opening a migrated file is a no-op.
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert!(!store.apply_speed_batch(&empty("g1")).unwrap());
    }

    #[test]
    fn wal_mode_is_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let _store = SqliteStore::open(&path).unwrap();
        let mode: String = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
