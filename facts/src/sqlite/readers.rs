//! The read side of a [`super::SqliteStore`]: a small pool of query-only connections for
//! [`crate::FactReader`], and the data-version probe that tells a cache when anything changed.
//!
//! Readers do not share the writer's connection: behind its mutex every dashboard read waited for the
//! batch job's staging and publish transactions (and for each other). In WAL mode a reader on its own
//! connection reads the last committed snapshot while a writer writes, so reads neither wait for a
//! publish nor see half of one.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags};

use crate::error::FactsError;

/// Idle read connections kept for reuse; a busier moment opens more and closes them after use.
const IDLE_KEPT: usize = 8;

/// Page cache of each read connection (KiB): reads touch one key's index range.
const READ_CACHE_KIB: i64 = 8_192;

/// The read connections of one store file.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// A connection that never writes nor reads rows: its `PRAGMA data_version` changes whenever any
    /// other connection (of this process or another) commits.
    probe: Mutex<Option<Connection>>,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Readers {
    pub(super) fn new(path: &Path) -> Readers {
        Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            probe: Mutex::new(None),
        }
    }

    /// A new query-only connection (the file is already in WAL mode: its writer set it at open).
    fn open(&self) -> Result<Connection, FactsError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(super::BUSY_TIMEOUT)?;
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "cache_size", -READ_CACHE_KIB)?;
        Ok(conn)
    }

    /// Runs `f` on a read connection of the pool (opening one when all are in use).
    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, FactsError>,
    ) -> Result<T, FactsError> {
        let taken = guard(&self.idle).pop();
        let mut conn = match taken {
            Some(c) => c,
            None => self.open()?,
        };
        let result = f(&mut conn);
        // A connection left inside a transaction (an error midway) is dropped, not reused.
        if conn.is_autocommit() {
            let mut idle = guard(&self.idle);
            if idle.len() < IDLE_KEPT {
                idle.push(conn);
            }
        }
        result
    }

    /// SQLite's `PRAGMA data_version` on the probe connection: equal values mean no commit happened in
    /// between.
    pub(super) fn data_version(&self) -> Result<u64, FactsError> {
        let mut probe = guard(&self.probe);
        let conn = match probe.as_mut() {
            Some(c) => c,
            None => probe.insert(self.open()?),
        };
        let v: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        Ok(v as u64)
    }
}

/// The distinct apps of the speed rows (`run_id = 0`) of `daily_counts` and `funnel_steps`: one index
/// seek per app (each step asks for the first app after the last one), not a scan of every speed row.
pub(super) fn speed_apps(conn: &Connection) -> Result<Vec<String>, FactsError> {
    let mut apps = std::collections::BTreeSet::new();
    for table in ["daily_counts", "funnel_steps"] {
        let mut stmt = conn.prepare_cached(&format!(
            "WITH RECURSIVE apps(app) AS (
                 SELECT (SELECT min(app_id) FROM {table} WHERE run_id = {run})
                 UNION ALL
                 SELECT (SELECT min(app_id) FROM {table} WHERE run_id = {run} AND app_id > apps.app)
                 FROM apps WHERE apps.app IS NOT NULL
             )
             SELECT app FROM apps WHERE app IS NOT NULL",
            run = super::SPEED_RUN
        ))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for app in rows {
            apps.insert(app?);
        }
    }
    Ok(apps.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use rusqlite::params;

    use super::super::tests::{fact, meta};
    use super::super::SqliteStore;
    use crate::day::Day;
    use crate::model::{RunStatus, Watermark};
    use crate::store::{BatchPublisher, FactReader};
    use crate::{CountsQuery, FunnelQuery};

    /// Reads finish while the store's own writer is mid-transaction and another process holds the
    /// file's write lock (before: every read waited for the writer's mutex, and `runs` took the write
    /// lock itself).
    #[test]
    fn reads_do_not_wait_for_writers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let store = std::sync::Arc::new(SqliteStore::open(&path).unwrap());
        let run = store.begin_run(&meta()).unwrap();
        store.write_funnel_steps(run, &[fact(1, 3)]).unwrap();
        store
            .publish(run, &[Watermark::funnel("a", "f", "1", Day(5))])
            .unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        other
            .execute(
                "UPDATE runs SET rows = rows + 1 WHERE run_id = ?1",
                params![run.0],
            )
            .unwrap();
        let writer = store.lock();
        let (tx, rx) = mpsc::channel();
        let reader = store.clone();
        std::thread::spawn(move || {
            let read = || -> Result<_, crate::FactsError> {
                let a = reader.read_funnel(&FunnelQuery::new("a", "f"))?;
                reader.read_counts(&CountsQuery::new("a", "hits"))?;
                let w = reader.watermarks("a")?;
                let r = reader.runs(10)?;
                Ok((a.days.len(), w.len(), r.len(), r[0].rows))
            };
            let _ = tx.send(read());
        });
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a read waited for a writer")
            .unwrap();
        drop(writer);
        // The other connection's uncommitted change is not seen.
        assert_eq!(got, (1, 1, 1, 1));
    }

    /// Reading the runs still marks a run whose process is gone as abandoned (the scheduler relies on
    /// it after a child died), though reads no longer take the write lock otherwise.
    #[test]
    fn reading_the_runs_marks_a_dead_process_run_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let store = SqliteStore::open(&path).unwrap();
        let run = store.begin_run(&meta()).unwrap();
        store.begin_run(&meta()).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE runs SET owner_pid = ?1 WHERE run_id = ?2",
                params![dead, run.0],
            )
            .unwrap();
        // Only the newest run is asked for; the dead one behind it is marked all the same.
        assert_eq!(store.runs(1).unwrap()[0].status, RunStatus::Running);
        let stored: String = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT status FROM runs WHERE run_id = ?1", [run.0], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(stored, "abandoned");
    }

    /// The data version moves with every commit, by this store's writer or another connection, and only
    /// then: what a cache keyed by it relies on.
    #[test]
    fn the_data_version_changes_exactly_when_something_is_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.db");
        let store = SqliteStore::open(&path).unwrap();
        let v0 = store.data_version().unwrap().unwrap();
        store.read_funnel(&FunnelQuery::new("a", "f")).unwrap();
        store.runs(5).unwrap();
        assert_eq!(store.data_version().unwrap(), Some(v0), "reads changed it");
        let run = store.begin_run(&meta()).unwrap();
        let v1 = store.data_version().unwrap().unwrap();
        assert_ne!(v1, v0, "this store's own commit");
        let other = SqliteStore::open(&path).unwrap();
        let staged = other.begin_run(&meta()).unwrap();
        let v2 = store.data_version().unwrap().unwrap();
        assert_ne!(v2, v1, "another connection's commit");
        other.fail_run(staged, "x").unwrap();
        store.write_funnel_steps(run, &[fact(1, 1)]).unwrap();
        store
            .publish(run, &[Watermark::funnel("a", "f", "1", Day(5))])
            .unwrap();
        assert_ne!(store.data_version().unwrap(), Some(v2));
    }

    /// One store publishing runs while readers of the same store read: every answer is one whole run.
    #[test]
    fn a_reader_of_the_publishing_store_sees_one_whole_run_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("f.db")).unwrap();
        let wm = [Watermark::funnel("a", "f", "1", Day(60))];
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let readers: Vec<_> = (0..3)
                .map(|_| {
                    scope.spawn(|| {
                        let mut reads = 0;
                        while reads == 0 || !done.load(std::sync::atomic::Ordering::Relaxed) {
                            reads += 1;
                            let a = store.read_funnel(&FunnelQuery::new("a", "f")).unwrap();
                            let values: std::collections::BTreeSet<u64> = a
                                .days
                                .iter()
                                .flat_map(|d| d.steps.iter().map(|s| s.actors))
                                .collect();
                            assert!(values.len() <= 1, "a read mixed runs: {values:?}");
                            if !values.is_empty() {
                                assert_eq!(a.days.len(), 60, "a read saw part of a run");
                            }
                        }
                    })
                })
                .collect();
            for k in 1..=8u64 {
                let run = store.begin_run(&meta()).unwrap();
                for part in 0..3 {
                    let rows: Vec<_> = (part * 20..part * 20 + 20).map(|d| fact(d, k)).collect();
                    store.write_funnel_steps(run, &rows).unwrap();
                }
                store.publish(run, &wm).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            for r in readers {
                r.join().unwrap();
            }
        });
        let last = store.read_funnel(&FunnelQuery::new("a", "f")).unwrap();
        assert!(last.days.iter().all(|d| d.steps[0].actors == 8));
        assert_eq!(store.runs(1).unwrap()[0].status, RunStatus::Published);
    }
}
