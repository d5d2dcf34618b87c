//! `SqliteStore`: the embedded fact store (`sqlite:PATH`), one SQLite file in WAL mode.
//!
//! Layout: `funnel_steps` and `daily_counts` hold both layers; batch rows carry the id of the run that
//! staged them (`run_id > 0`, `layer = 'batch'`), speed rows carry `run_id = 0` (`layer = 'speed'`) and are
//! summed on upsert. `funnel_totals` holds the batch runs' all-breakdowns totals. `watermarks` is the
//! pointer: per `(app_id, funnel_id, funnel_version)` it names the published run readers use and
//! `batch_until`. `run_keys` records which keys each run staged (and its first day) so publish,
//! carry-forward and garbage collection are index range operations, never table scans. A killed process
//! leaves a `running` run whose rows nobody points at; the next `begin_run` marks it `abandoned` (its pid is
//! gone) and deletes its rows.

mod readers;
mod rows;
mod schema;
mod shards;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::day::Day;
use crate::error::FactsError;
use crate::fault;
use crate::model::{
    DailyCountFact, FunnelStepFact, FunnelTotalFact, RunId, RunMeta, RunRecord, RunStatus,
    SpeedBatch, Watermark, COUNTS_WATERMARK_ID,
};
use crate::query::{CountsAnswer, CountsQuery, FunnelAnswer, FunnelQuery};
use crate::read::{self, Key};
use crate::seen::{SeenBy, SeenId};
use crate::store::{BatchPublisher, FactReader, StateReader, StreamSink};
use readers::Readers;
use rows::{parse_day, View, SPEED_RUN};
#[cfg(test)]
use schema::SCHEMA_VERSION;

/// How long a writer waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Speed batch keys kept per (group, topic, partition) for duplicate detection (older replays are refused by the
/// committed-offset check instead).
const SPEED_BATCH_KEYS_KEPT: i64 = 10_000;

/// The embedded SQLite fact store. Writes go through one connection behind a mutex (SQLite connections
/// are not `Sync`); [`FactReader`] reads use a pool of read connections of their own, so they never wait
/// for a write. Other processes may open the same file at the same time (WAL readers never block,
/// writers wait up to a minute for each other).
pub struct SqliteStore {
    conn: Mutex<Connection>,
    readers: Readers,
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

/// Switches the file to WAL. On a file another process is creating (still in rollback-journal mode, its
/// creator holding a write lock), SQLite answers BUSY at once instead of waiting — waiting could
/// deadlock two lock upgrades — so the switch is retried here, up to the busy timeout.
fn journal_mode_wal(conn: &Connection) -> Result<String, FactsError> {
    let start = std::time::Instant::now();
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && start.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            r => return Ok(r?),
        }
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
        let mode = journal_mode_wal(&conn)?;
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
        // The stream's seen ids are random keys: each batch dirties hundreds of pages, and at SQLite's
        // default (1000 pages) nearly every batch commit also checkpoints and fsyncs. Folding the WAL back
        // every 10,000 pages (~40 MB of WAL) measured ~25% more stream → facts msg/s
        // (`cargo bench -p stream`, alternating builds, 5 of 6 pairs better). Durability is unchanged:
        // a committed transaction is in the WAL either way.
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
            readers: Readers::new(&path),
            path,
        };
        store.init()?;
        Ok(store)
    }

    /// Create the tables if missing, or migrate a file written by an older version in place (its
    /// `meta.schema_version` says which layout it has). [`SqliteStore::open`] does it; calling it again is a
    /// no-op. A file of a newer version is refused ([`FactsError::SchemaTooNew`]).
    pub fn init(&self) -> Result<(), FactsError> {
        schema::migrate(&mut self.lock(), &self.path)
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

    fn run_status(tx: &Transaction<'_>, run: RunId) -> Result<RunStatus, FactsError> {
        let s: Option<String> = tx
            .query_row("SELECT status FROM runs WHERE run_id = ?1", [run.0], |r| {
                r.get(0)
            })
            .optional()?;
        s.ok_or(FactsError::UnknownRun(run.0))?.parse()
    }

    /// Stage rows under a running run in one transaction: `insert` binds a row (its day already checked
    /// and formatted) to the prepared `sql`; `key` gives the row's `(app_id, funnel_id, funnel_version,
    /// day)`, whose earliest day per key goes to `run_keys` (carry-forward starts below it).
    fn stage<R>(
        &self,
        run: RunId,
        rows: &[R],
        sql: &str,
        key: impl for<'r> Fn(&'r R) -> (&'r str, &'r str, &'r str, Day),
        insert: impl Fn(&mut rusqlite::CachedStatement<'_>, &R, &str) -> Result<(), FactsError>,
    ) -> Result<(), FactsError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::require_running(&tx, run)?;
        let mut firsts: std::collections::BTreeMap<(&str, &str, &str), Day> = Default::default();
        {
            let mut ins = tx.prepare_cached(sql)?;
            for r in rows {
                let (app, fid, ver, day) = key(r);
                insert(&mut ins, r, &check_day(day)?)?;
                let first = firsts.entry((app, fid, ver)).or_insert(day);
                *first = (*first).min(day);
            }
        }
        for ((app, fid, ver), day) in firsts {
            Self::note_key(&tx, run, app, fid, ver, &day.to_string())?;
        }
        tx.execute(
            "UPDATE runs SET rows = rows + ?2 WHERE run_id = ?1",
            params![run.0, rows.len() as i64],
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
        for table in ["funnel_steps", "funnel_totals"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE run_id = ?1 AND app_id = ?2 AND funnel_id = ?3 AND funnel_version = ?4"),
                params![run, app, fid, ver],
            )?;
        }
    }
    Ok(())
}

impl BatchPublisher for SqliteStore {
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
        self.stage(
            run,
            rows,
            "INSERT OR REPLACE INTO funnel_steps
             (run_id, app_id, funnel_id, funnel_version, day, breakdown, step, actors, ttc_median_s, ttc_p90_s, layer)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'batch')",
            |r| (&r.app_id, &r.funnel_id, &r.funnel_version, r.day),
            |ins, r, day| {
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
                Ok(())
            },
        )
    }

    fn write_funnel_totals(&self, run: RunId, rows: &[FunnelTotalFact]) -> Result<(), FactsError> {
        self.stage(
            run,
            rows,
            "INSERT OR REPLACE INTO funnel_totals
             (run_id, app_id, funnel_id, funnel_version, day, step, actors, ttc_median_s, ttc_p90_s)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            |r| (&r.app_id, &r.funnel_id, &r.funnel_version, r.day),
            |ins, r, day| {
                ins.execute(params![
                    run.0,
                    r.app_id,
                    r.funnel_id,
                    r.funnel_version,
                    day,
                    r.step,
                    to_i64("actors", r.actors)?,
                    r.ttc_median_s,
                    r.ttc_p90_s
                ])?;
                Ok(())
            },
        )
    }

    fn write_daily_counts(&self, run: RunId, rows: &[DailyCountFact]) -> Result<(), FactsError> {
        self.stage(
            run,
            rows,
            "INSERT OR REPLACE INTO daily_counts (run_id, app_id, metric, day, dimension, value, count, layer)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'batch')",
            |r| (&r.app_id, COUNTS_WATERMARK_ID, &r.metric, r.day),
            |ins, r, day| {
                ins.execute(params![
                    run.0,
                    r.app_id,
                    r.metric,
                    day,
                    r.dimension,
                    r.value,
                    r.count
                ])?;
                Ok(())
            },
        )
    }

    fn publish(&self, run: RunId, watermarks: &[Watermark]) -> Result<(), FactsError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        Self::require_running(&tx, run)?;
        let now = now_ms();
        for (i, w) in watermarks.iter().enumerate() {
            let until = check_day(w.batch_until)?;
            let (app, fid, ver) = (&w.app_id, &w.funnel_id, &w.funnel_version);
            let key = Key {
                app_id: app,
                funnel_id: fid,
                funnel_version: ver,
            };
            let current = rows::pointer(&tx, key)?.map(|p| p.run.0);
            if let Some(cur_run) = current {
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
            if let (Some(old), Some(first)) = (current, &first_staged) {
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
                    )? + tx.execute(
                        "INSERT OR IGNORE INTO funnel_totals
                         (run_id, app_id, funnel_id, funnel_version, day, step, actors, ttc_median_s, ttc_p90_s)
                         SELECT ?1, app_id, funnel_id, funnel_version, day, step, actors, ttc_median_s, ttc_p90_s
                         FROM funnel_totals
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
                    "DELETE FROM daily_counts WHERE run_id = ?1 AND app_id = ?2 AND metric = ?3 AND day < ?4",
                    params![SPEED_RUN, app, ver, until],
                )?;
            } else {
                tx.execute(
                    "DELETE FROM funnel_steps WHERE run_id = ?1 AND app_id = ?2 AND funnel_id = ?3
                     AND funnel_version = ?4 AND day < ?5",
                    params![SPEED_RUN, app, fid, ver, until],
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

    fn shard_store(&self) -> Option<&dyn crate::shards::ShardStore> {
        Some(self)
    }
}

impl StreamSink for SqliteStore {
    fn apply_speed_batch(&self, b: &SpeedBatch) -> Result<bool, FactsError> {
        b.check_offsets()?;
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
        let committed: Option<i64> = tx
            .query_row(
                "SELECT next_offset FROM stream_offsets WHERE group_id = ?1 AND topic = ?2 AND partition = ?3",
                params![b.group, b.topic, b.partition],
                |r| r.get(0),
            )
            .optional()?;
        if !b.should_apply(seen.is_some(), committed)? {
            return Ok(false);
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
            // In key order: neighbouring ids share B-tree pages. The `first_offset` column holds the
            // offset of the id's message (`SeenBy::offset`; files written before hold their batch's first
            // offset, which is no later: the same answer for every committed id).
            let mut seen: Vec<(&str, Vec<u8>, i64, i64)> = b
                .seen_ids
                .iter()
                .map(|e| {
                    (
                        e.id.app_id.as_str(),
                        e.id.key_bytes(),
                        e.expires_at_ms,
                        e.offset,
                    )
                })
                .collect();
            seen.sort_unstable();
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO stream_seen (app_id, id, expires_at_ms, topic, partition, first_offset)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (app_id, id, expires_at_ms, offset) in &seen {
                put.execute(params![
                    app_id,
                    id,
                    expires_at_ms,
                    b.topic,
                    b.partition,
                    offset
                ])?;
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
        tx.prepare_cached("DELETE FROM stream_seen WHERE expires_at_ms <= ?1")?
            .execute([now])?;
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
}

impl StateReader for SqliteStore {
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

    /// One lock and one prepared statement for all keys (one batch's seen ids).
    fn get_states(
        &self,
        namespace: &str,
        keys: &[String],
        now_ms: i64,
    ) -> Result<Vec<Option<Vec<u8>>>, FactsError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT value FROM stream_state WHERE namespace = ?1 AND key = ?2 AND expires_at_ms > ?3",
        )?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(
                stmt.query_row(params![namespace, key, now_ms], |r| r.get(0))
                    .optional()?,
            );
        }
        Ok(out)
    }

    /// One lock and one prepared primary-key lookup per id.
    fn seen_by(&self, ids: &[SeenId], now_ms: i64) -> Result<Vec<Option<SeenBy>>, FactsError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT topic, partition, first_offset FROM stream_seen
             WHERE app_id = ?1 AND id = ?2 AND expires_at_ms > ?3",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(
                stmt.query_row(params![id.app_id, id.key_bytes(), now_ms], |r| {
                    Ok(SeenBy {
                        topic: r.get(0)?,
                        partition: r.get(1)?,
                        offset: r.get(2)?,
                    })
                })
                .optional()?,
            );
        }
        Ok(out)
    }

    /// A range count on the expiry index.
    fn count_seen(&self, now_ms: i64) -> Result<Option<u64>, FactsError> {
        let conn = self.lock();
        let n: i64 = conn
            .prepare_cached("SELECT COUNT(*) FROM stream_seen WHERE expires_at_ms > ?1")?
            .query_row([now_ms], |r| r.get(0))?;
        Ok(Some(u64::try_from(n).unwrap_or(0)))
    }

    fn count_state(&self, namespace: &str, now_ms: i64) -> Result<u64, FactsError> {
        let conn = self.lock();
        let n: i64 = conn
            .prepare_cached(
                "SELECT COUNT(*) FROM stream_state WHERE namespace = ?1 AND expires_at_ms > ?2",
            )?
            .query_row(params![namespace, now_ms], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

impl FactReader for SqliteStore {
    fn read_funnel(&self, q: &FunnelQuery) -> Result<FunnelAnswer, FactsError> {
        self.readers.with(|conn| {
            // One read transaction: the pointer and the rows it points at come from the same snapshot.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let answer = read::read_funnel(&View(&tx), q)?;
            tx.finish()?;
            Ok(answer)
        })
    }

    fn read_counts(&self, q: &CountsQuery) -> Result<CountsAnswer, FactsError> {
        self.readers.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let answer = read::read_counts(&View(&tx), q)?;
            tx.finish()?;
            Ok(answer)
        })
    }

    fn watermarks(&self, app_id: &str) -> Result<Vec<Watermark>, FactsError> {
        self.readers.with(|conn| {
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
        })
    }

    fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, FactsError> {
        let me = i64::from(std::process::id());
        let (runs, orphaned) = self.readers.with(|conn| read_runs(conn, limit, me))?;
        if !orphaned {
            return Ok(runs);
        }
        // A run whose process died: mark it (a write, so only when there is one), then read again.
        Self::reap_abandoned(&mut self.lock())?;
        Ok(self.readers.with(|conn| read_runs(conn, limit, me))?.0)
    }

    fn speed_apps(&self) -> Result<Vec<String>, FactsError> {
        self.readers.with(|conn| readers::speed_apps(conn))
    }

    fn data_version(&self) -> Result<Option<u64>, FactsError> {
        self.readers.data_version().map(Some)
    }
}

/// The newest `limit` runs, and whether any run is `running` in a process (not `me`) that is gone.
fn read_runs(
    conn: &Connection,
    limit: usize,
    me: i64,
) -> Result<(Vec<RunRecord>, bool), FactsError> {
    let mut orphaned = false;
    let mut pids = conn.prepare_cached("SELECT owner_pid FROM runs WHERE status = 'running'")?;
    for pid in pids.query_map([], |r| r.get::<_, Option<i64>>(0))? {
        orphaned |= pid?.is_some_and(|p| p != me && !pid_alive(p));
    }
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
    Ok((out, orphaned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_a_file_another_process_is_still_creating_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        // The creator: a new file in rollback-journal mode, mid-write (as `funnel stream` is when it
        // creates the store), committing a moment later.
        let creator = Connection::open(&path).unwrap();
        creator
            .execute_batch("BEGIN IMMEDIATE; CREATE TABLE t (a); INSERT INTO t VALUES (1);")
            .unwrap();
        let opener = std::thread::spawn({
            let path = path.clone();
            move || SqliteStore::open(&path).map(|_| ())
        });
        std::thread::sleep(Duration::from_millis(300));
        creator.execute_batch("COMMIT").unwrap();
        opener.join().unwrap().unwrap();
    }

    fn rows_of(path: &Path, run: RunId) -> i64 {
        let c = Connection::open(path).unwrap();
        c.query_row(
            "SELECT (SELECT count(*) FROM funnel_steps WHERE run_id = ?1) + (SELECT count(*) FROM daily_counts WHERE run_id = ?1)",
            [run.0],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// A run's metadata that says nothing (for tests of the store's mechanics).
    pub(super) fn meta() -> RunMeta {
        RunMeta {
            started_at_ms: 0,
            inputs: serde_json::Value::Null,
            funnels: vec![],
        }
    }

    /// Step 1 of funnel `f` of app `a` on `day`, with `actors`.
    pub(super) fn fact(day: i32, actors: u64) -> FunnelStepFact {
        FunnelStepFact {
            app_id: "a".into(),
            funnel_id: "f".into(),
            funnel_version: "1".into(),
            day: Day(day),
            breakdown: String::new(),
            step: 1,
            actors,
            ttc_median_s: None,
            ttc_p90_s: None,
        }
    }

    #[test]
    fn a_run_whose_process_died_is_abandoned_and_its_rows_collected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let store = SqliteStore::open(&path).unwrap();
        let meta = meta();
        let crashed = store.begin_run(&meta).unwrap();
        store
            .write_funnel_steps(crashed, &[fact(1, 1), fact(2, 1)])
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
        let meta = meta();
        let wm = [Watermark::funnel("a", "f", "1", Day(5))];
        let r1 = store.begin_run(&meta).unwrap();
        store
            .write_funnel_steps(r1, &[fact(1, 1), fact(2, 1)])
            .unwrap();
        store.publish(r1, &wm).unwrap();
        let r2 = store.begin_run(&meta).unwrap();
        store
            .write_funnel_steps(r2, &[fact(1, 1), fact(3, 1)])
            .unwrap();
        // Staged for a key it does not publish: discarded.
        let mut other = fact(1, 1);
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
        let meta = meta();
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
                            ..fact(d, 1)
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

    /// Schema 2 as older versions created it (the tables a published funnel run touches), with one run
    /// published: two breakdowns on two days and the all-breakdowns totals under the breakdown "\u{1}all".
    fn schema_2_file(path: &Path) {
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
             INSERT INTO meta VALUES ('schema_version', '2');
             CREATE TABLE runs (
                 run_id INTEGER PRIMARY KEY AUTOINCREMENT, started_at_ms INTEGER NOT NULL,
                 finished_at_ms INTEGER,
                 status TEXT NOT NULL CHECK (status IN ('running', 'published', 'failed', 'abandoned')),
                 inputs TEXT NOT NULL, funnels TEXT NOT NULL, rows INTEGER NOT NULL DEFAULT 0,
                 error TEXT, owner_pid INTEGER);
             CREATE TABLE run_keys (
                 run_id INTEGER NOT NULL, app_id TEXT NOT NULL, funnel_id TEXT NOT NULL,
                 funnel_version TEXT NOT NULL, min_day TEXT NOT NULL,
                 PRIMARY KEY (run_id, app_id, funnel_id, funnel_version)) WITHOUT ROWID;
             CREATE TABLE funnel_steps (
                 run_id INTEGER NOT NULL, app_id TEXT NOT NULL, funnel_id TEXT NOT NULL,
                 funnel_version TEXT NOT NULL, day TEXT NOT NULL, breakdown TEXT NOT NULL,
                 step INTEGER NOT NULL, actors INTEGER NOT NULL, ttc_median_s REAL, ttc_p90_s REAL,
                 layer TEXT NOT NULL CHECK (layer IN ('batch', 'speed')),
                 PRIMARY KEY (run_id, app_id, funnel_id, funnel_version, day, breakdown, step)) WITHOUT ROWID;
             CREATE TABLE watermarks (
                 app_id TEXT NOT NULL, funnel_id TEXT NOT NULL, funnel_version TEXT NOT NULL,
                 batch_until TEXT NOT NULL, run_id INTEGER NOT NULL, published_at_ms INTEGER NOT NULL,
                 PRIMARY KEY (app_id, funnel_id, funnel_version)) WITHOUT ROWID;
             CREATE TABLE speed_batches (
                 topic TEXT NOT NULL, partition INTEGER NOT NULL, first_offset INTEGER NOT NULL,
                 next_offset INTEGER NOT NULL, group_id TEXT NOT NULL, applied_at_ms INTEGER NOT NULL,
                 PRIMARY KEY (group_id, topic, partition, first_offset)) WITHOUT ROWID;
             INSERT INTO runs VALUES (1, 0, 1, 'published', 'null', '[]', 12, NULL, 1);
             INSERT INTO run_keys VALUES (1, 'a', 'f', '1', '2024-05-01');
             INSERT INTO watermarks VALUES ('a', 'f', '1', '2024-05-03', 1, 1);
             INSERT INTO funnel_steps VALUES
                 (1, 'a', 'f', '1', '2024-05-01', 'ios', 1, 3, 0.0, 0.0, 'batch'),
                 (1, 'a', 'f', '1', '2024-05-01', 'ios', 2, 1, 10.0, 10.0, 'batch'),
                 (1, 'a', 'f', '1', '2024-05-01', 'web', 1, 4, 0.0, 0.0, 'batch'),
                 (1, 'a', 'f', '1', '2024-05-01', 'web', 2, 2, 30.0, 40.0, 'batch'),
                 (1, 'a', 'f', '1', '2024-05-01', char(1) || 'all', 1, 7, 0.0, 0.0, 'batch'),
                 (1, 'a', 'f', '1', '2024-05-01', char(1) || 'all', 2, 3, 20.0, 38.0, 'batch'),
                 (1, 'a', 'f', '1', '2024-05-02', 'ios', 1, 5, 0.0, 0.0, 'batch'),
                 (1, 'a', 'f', '1', '2024-05-02', char(1) || 'all', 1, 5, 0.0, 0.0, 'batch');",
        )
        .unwrap();
    }

    /// The published batch sum over breakdowns of one day and step, the way docs/FACTS.md tells a reader
    /// to query it with plain SQL.
    fn plain_sum(path: &Path, day: &str, step: u32) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT SUM(s.actors) FROM funnel_steps s
                 JOIN watermarks w ON w.app_id = s.app_id AND w.funnel_id = s.funnel_id
                                  AND w.funnel_version = s.funnel_version AND w.run_id = s.run_id
                 WHERE s.app_id = 'a' AND s.funnel_id = 'f' AND s.day = ?1 AND s.step = ?2
                   AND s.day < w.batch_until",
                params![day, step],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// `(day, step, actors, median)` of the answer without breakdowns.
    fn summed(store: &SqliteStore) -> Vec<(String, u32, u64, Option<f64>)> {
        let a = store.read_funnel(&FunnelQuery::new("a", "f")).unwrap();
        a.days
            .iter()
            .flat_map(|d| {
                d.steps
                    .iter()
                    .map(move |s| (d.day.to_string(), s.step, s.actors, s.ttc_median_s))
            })
            .collect()
    }

    #[test]
    fn a_schema_2_file_is_migrated_to_funnel_totals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        schema_2_file(&path);
        // The old encoding: a plain sum counts every actor twice.
        assert_eq!(plain_sum(&path, "2024-05-01", 1), 14);
        let store = SqliteStore::open(&path).unwrap();
        let c = Connection::open(&path).unwrap();
        let version: String = c
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION.to_string());
        let legacy: i64 = c
            .query_row(
                "SELECT count(*) FROM funnel_steps WHERE breakdown LIKE char(1) || '%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(legacy, 0);
        assert_eq!(plain_sum(&path, "2024-05-01", 1), 7);
        assert_eq!(plain_sum(&path, "2024-05-01", 2), 3);
        // The answers are the ones the old file gave: the exact totals without breakdown...
        let d = |s: &str| s.to_string();
        assert_eq!(
            summed(&store),
            vec![
                (d("2024-05-01"), 1, 7, Some(0.0)),
                (d("2024-05-01"), 2, 3, Some(20.0)),
                (d("2024-05-02"), 1, 5, Some(0.0)),
            ]
        );
        // ... and the breakdown values only with it.
        let mut q = FunnelQuery::new("a", "f");
        q.breakdown = true;
        let bds: Vec<String> = store.read_funnel(&q).unwrap().days[0]
            .steps
            .iter()
            .map(|s| s.breakdown.clone())
            .collect();
        assert_eq!(bds, ["ios", "ios", "web", "web"]);
        // A run recomputing day 2 carries day 1 forward, its totals included; then the old run is
        // collected.
        let run = store
            .begin_run(&RunMeta {
                started_at_ms: 0,
                inputs: serde_json::Value::Null,
                funnels: vec![],
            })
            .unwrap();
        store
            .write_funnel_steps(
                run,
                &[FunnelStepFact {
                    day: "2024-05-02".parse().unwrap(),
                    breakdown: "web".into(),
                    actors: 6,
                    ..fact(0, 1)
                }],
            )
            .unwrap();
        store
            .publish(
                run,
                &[Watermark::funnel(
                    "a",
                    "f",
                    "1",
                    "2024-05-04".parse().unwrap(),
                )],
            )
            .unwrap();
        assert_eq!(
            summed(&store),
            vec![
                (d("2024-05-01"), 1, 7, Some(0.0)),
                (d("2024-05-01"), 2, 3, Some(20.0)),
                (d("2024-05-02"), 1, 6, None),
            ]
        );
        let old_rows: i64 = c
            .query_row(
                "SELECT (SELECT count(*) FROM funnel_steps WHERE run_id = 1)
                      + (SELECT count(*) FROM funnel_totals WHERE run_id = 1)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old_rows, 0);
        // Opening the migrated file again changes nothing.
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(summed(&store).len(), 3);
    }

    #[test]
    fn a_plain_sum_over_funnel_steps_is_the_total() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let store = SqliteStore::open(&path).unwrap();
        let run = store
            .begin_run(&RunMeta {
                started_at_ms: 0,
                inputs: serde_json::Value::Null,
                funnels: vec![],
            })
            .unwrap();
        let day: Day = "2024-05-01".parse().unwrap();
        let row = |breakdown: &str, step: u32, actors: u64| FunnelStepFact {
            day,
            breakdown: breakdown.into(),
            step,
            actors,
            ..fact(0, 1)
        };
        store
            .write_funnel_steps(
                run,
                &[
                    row("ios", 1, 3),
                    row("web", 1, 4),
                    row("", 1, 2),
                    row("ios", 2, 1),
                ],
            )
            .unwrap();
        let total = |step: u32, actors: u64| FunnelTotalFact {
            app_id: "a".into(),
            funnel_id: "f".into(),
            funnel_version: "1".into(),
            day,
            step,
            actors,
            ttc_median_s: Some(1.0),
            ttc_p90_s: Some(2.0),
        };
        store
            .write_funnel_totals(run, &[total(1, 9), total(2, 1)])
            .unwrap();
        store
            .publish(run, &[Watermark::funnel("a", "f", "1", day.plus(1))])
            .unwrap();
        assert_eq!(plain_sum(&path, "2024-05-01", 1), 9);
        assert_eq!(plain_sum(&path, "2024-05-01", 2), 1);
        let from_totals: i64 = Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT actors FROM funnel_totals WHERE app_id = 'a' AND day = '2024-05-01' AND step = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(from_totals, 9);
    }

    /// Schema 3 kept the seen ids as `stream_state` rows (namespace `seen`, JSON key and value): opening
    /// it moves them into `stream_seen` with their expiry and batch, so copies stay dropped.
    #[test]
    fn a_schema_3_file_keeps_its_seen_ids_in_the_compact_table() {
        use crate::seen::IdKind;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.db");
        let hit = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9";
        let event = "10000000-0000-0000-0000-000000000007";
        drop(SqliteStore::open(&path).unwrap());
        {
            // A schema-3 file: the same tables without `stream_seen`, the ids as state rows.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(&format!(
                "DROP TABLE stream_seen;
                 UPDATE meta SET value = '3' WHERE key = 'schema_version';
                 INSERT INTO stream_state VALUES ('seen', '[\"shop\",\"hit\",\"{hit}\"]',
                     CAST('{{\"ts\":1,\"topic\":\"events\",\"partition\":2,\"first_offset\":40}}' AS BLOB),
                     4102444800000);
                 INSERT INTO stream_state VALUES ('seen', '[\"shop\",\"event\",\"{event}\"]',
                     CAST('{{\"ts\":1,\"topic\":\"events\",\"partition\":0,\"first_offset\":7}}' AS BLOB),
                     4102444800000);
                 INSERT INTO stream_state VALUES ('pending', 'k', CAST('v' AS BLOB), 4102444800000);"
            ))
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let now = now_ms();
        let by = |partition, offset| {
            Some(SeenBy {
                topic: "events".into(),
                partition,
                offset,
            })
        };
        assert_eq!(
            store
                .seen_by(
                    &[
                        SeenId::new("shop", IdKind::Hit, hit),
                        SeenId::new("shop", IdKind::Event, event),
                        SeenId::new("shop", IdKind::Hit, event),
                    ],
                    now
                )
                .unwrap(),
            [by(2, 40), by(0, 7), None]
        );
        assert_eq!(store.count_seen(now).unwrap(), Some(2));
        assert_eq!(
            store.count_state("seen", now).unwrap(),
            0,
            "moved, not copied"
        );
        assert_eq!(
            store.get_state("pending", "k", now).unwrap(),
            Some(b"v".to_vec())
        );
        let c = Connection::open(&path).unwrap();
        let sizes: Vec<i64> = c
            .prepare("SELECT length(id) FROM stream_seen")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(sizes, [17, 17], "a UUID is stored in 17 bytes");
    }

    #[test]
    fn a_legacy_seen_entry_in_another_form_is_refused_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.db");
        drop(SqliteStore::open(&path).unwrap());
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "DROP TABLE stream_seen;
                 UPDATE meta SET value = '3' WHERE key = 'schema_version';
                 INSERT INTO stream_state VALUES ('seen', 'not-json', CAST('{}' AS BLOB), 1);",
            )
            .unwrap();
        }
        let err = SqliteStore::open(&path).err().expect("refused");
        assert!(err.to_string().contains("not-json"), "{err}");
        // Untouched: still schema 3.
        let c = Connection::open(&path).unwrap();
        let v: String = c
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, "3");
    }

    #[test]
    fn a_file_of_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                [(SCHEMA_VERSION + 1).to_string()],
            )
            .unwrap();
        let err = SqliteStore::open(&path).err().expect("refused");
        assert!(
            matches!(err, FactsError::SchemaTooNew { found, .. } if found == SCHEMA_VERSION + 1),
            "{err}"
        );
        assert!(err.to_string().contains("new.db"), "{err}");
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
