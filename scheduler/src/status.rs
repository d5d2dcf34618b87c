//! What `funnel status` shows: the scheduler's state file next to the store (attempts, including skipped
//! and crashed ones, and who holds the lock), the fact store's runs (start, end, inputs, rows, funnels,
//! outcome, error) and the watermarks of every app the runs saw.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use facts::{FactReader, RunRecord, Watermark};
use funnelizer::RunInputs;
use serde_json::{json, Value};

use crate::config::StatePaths;
use crate::error::Error;
use crate::lock::RunLock;
use crate::state::ScheduleState;

/// Everything `funnel status` shows about one store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Status {
    /// Where the scheduler keeps its lock and state, when known.
    pub paths: Option<StatePaths>,
    /// The scheduler's state, when its file exists.
    pub state: Option<ScheduleState>,
    /// Who holds the lock (the holder's note), when someone does.
    pub lock_holder: Option<String>,
    /// The newest runs first.
    pub runs: Vec<RunRecord>,
    /// The watermarks of every app named by a run's inputs or asked for.
    pub watermarks: Vec<Watermark>,
}

impl Status {
    /// Reads the status of the store at `facts_url` (opened as `store`): its `limit` newest runs, the
    /// watermarks of their apps and of `apps`, and the scheduler's state — from `state_file`, else next to
    /// a SQLite store.
    pub fn read(
        store: &dyn FactReader,
        facts_url: &str,
        state_file: Option<&Path>,
        apps: &[String],
        limit: usize,
    ) -> Result<Status, Error> {
        let store_err = Error::store(facts_url);
        let runs = match store.runs(limit.max(1)) {
            Ok(r) => r,
            Err(e) => return Err(store_err(e)),
        };
        let mut all_apps: BTreeSet<String> = apps.iter().cloned().collect();
        for r in &runs {
            all_apps.extend(RunInputs::of(r).map(|i| i.apps).unwrap_or_default());
        }
        let mut watermarks = Vec::new();
        for app in &all_apps {
            watermarks.extend(store.watermarks(app).map_err(Error::store(facts_url))?);
        }
        let paths = match state_file {
            Some(p) => Some(StatePaths {
                lock: p.with_file_name(
                    p.file_name()
                        .map(|n| n.to_string_lossy().replace(".json", ".lock"))
                        .unwrap_or_else(|| "schedule.lock".into()),
                ),
                state: p.to_path_buf(),
            }),
            None => StatePaths::for_store(facts_url, None).ok(),
        };
        let state = match &paths {
            Some(p) if p.state.exists() => Some(ScheduleState::load(&p.state)?),
            _ => None,
        };
        let lock_holder = paths.as_ref().and_then(|p| RunLock::holder(&p.lock));
        Ok(Status {
            paths,
            state,
            lock_holder,
            runs,
            watermarks,
        })
    }

    /// The state file, when known.
    pub fn state_file(&self) -> Option<&PathBuf> {
        self.paths.as_ref().map(|p| &p.state)
    }

    /// The machine-readable document (`funnel status --json`), with at most `limit` attempts.
    pub fn to_json(&self, limit: usize) -> Value {
        json!({
            "scheduler": self.state.as_ref().map(|s| json!({
                "state_file": self.state_file().map(|p| p.display().to_string()),
                "lock_holder": self.lock_holder,
                "attempts": s.attempts.iter().take(limit).collect::<Vec<_>>(),
                "last_success": s.last_success.as_ref().map(|l| json!({
                    "run_id": l.run_id,
                    "finished_at_ms": l.finished_at_ms,
                    "sstables": l.fingerprint.sstable_count(),
                    "funnels": l.fingerprint.funnels,
                    "fingerprint": l.fingerprint.key(),
                })),
            })),
            "runs": self.runs.iter().map(run_json).collect::<Vec<_>>(),
            "watermarks": self.watermarks,
        })
    }
}

/// The SSTables a run says it read (none for runs of other writers).
pub fn sstables_read(run: &RunRecord) -> Vec<String> {
    RunInputs::of(run)
        .map(|i| i.sstables().map(str::to_string).collect())
        .unwrap_or_default()
}

fn run_json(r: &RunRecord) -> Value {
    json!({
        "run_id": r.run_id.0,
        "started_at_ms": r.started_at_ms,
        "finished_at_ms": r.finished_at_ms,
        "status": r.status,
        "rows": r.rows,
        "funnels": r.funnels,
        "error": r.error,
        "sstables_read": sstables_read(r),
        "inputs": r.inputs,
    })
}
