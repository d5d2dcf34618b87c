//! One attempt, the scheduler's state machine: take the lock next to the store (busy → [`Outcome::Busy`])
//! → reread the funnels file → open the store → pick the snapshot → fingerprint the SSTables and funnel
//! versions → skip when equal to the last published run's ([`Outcome::Skipped`]) → run `funnel run` as a
//! child under the timeout and memory budget → on success remember the fingerprint; on a failure during
//! which the inputs changed (compaction), re-list and rerun (up to `retries`); otherwise the child's exit
//! code (or how it was killed) says what failed. Every attempt is recorded in the state file that
//! `funnel status` reads.

use std::path::Path;
use std::sync::Arc;

use facts::{FactReader, RunStatus};
use funnelizer::{FunnelSet, RunInputs};
use serde_json::json;

use crate::child::{orphan_run_alive, run_command};
use crate::config::Config;
use crate::error::Error;
use crate::fingerprint::Fingerprint;
use crate::fingerprint::{collect, funnel_versions, resolve_snapshot, source_tables, RunKey};
use crate::lock::RunLock;
use crate::log::Log;
use crate::outcome::Outcome;
use crate::state::{Attempt, LastSuccess, ScheduleState};
use crate::supervise::{supervise, Echo, Limits};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One attempt under the lock; records it in the state file and logs its end. `program` is the `funnel`
/// binary the child runs.
pub(crate) fn attempt(cfg: &Config, program: &Path, force: bool, log: Log) -> Outcome {
    let lock = match RunLock::try_acquire(&cfg.paths.lock) {
        Ok(Some(l)) => l,
        Ok(None) => {
            let holder = RunLock::holder(&cfg.paths.lock).unwrap_or_default();
            log.event(
                "warn",
                "busy",
                &format!(
                    "another scheduler holds {} ({holder}); not running",
                    cfg.paths.lock.display()
                ),
                json!({ "outcome": Outcome::Busy, "exit_code": Outcome::Busy.exit_code(), "holder": holder }),
            );
            return Outcome::Busy;
        }
        Err(e) => {
            let o = e.outcome();
            log.event(
                "error",
                o.as_str(),
                &funnelizer::chain(&e),
                json!({ "outcome": o, "exit_code": o.exit_code() }),
            );
            return o;
        }
    };
    let mut state = match ScheduleState::load(&cfg.paths.state) {
        Ok(s) => s,
        Err(e) => {
            log.event(
                "error",
                "store_error",
                &format!("{} (move it away to start afresh)", funnelizer::chain(&e)),
                json!({ "outcome": Outcome::StoreError, "exit_code": Outcome::StoreError.exit_code() }),
            );
            return Outcome::StoreError;
        }
    };
    // A run whose scheduler was killed goes on as an orphan, without the lock: wait for it.
    if let Some(pid) = state
        .attempts
        .iter()
        .filter(|a| a.outcome == Outcome::Running)
        .filter_map(|a| a.child_pid)
        .find(|pid| orphan_run_alive(*pid, &cfg.facts))
    {
        log.event(
            "warn",
            "busy",
            &format!(
                "the run (pid {pid}) of a scheduler that was stopped is still going; not running"
            ),
            json!({ "outcome": Outcome::Busy, "exit_code": Outcome::Busy.exit_code(), "orphan_pid": pid }),
        );
        return Outcome::Busy;
    }
    // Attempts still marked running were cut short (the scheduler was stopped or killed with its run):
    // nobody else can be running them, since we hold the lock.
    for stale in state
        .attempts
        .iter_mut()
        .filter(|a| a.outcome == Outcome::Running)
    {
        let at = stale.finished_at_ms.unwrap_or(stale.started_at_ms);
        stale.finish(
            at,
            Outcome::Crashed,
            Some("interrupted: the scheduler stopped during this attempt".into()),
        );
    }
    let mut att = Attempt::start(now_ms());
    let result = Locked {
        cfg,
        program,
        force,
        log,
    }
    .run(&mut state, &mut att);
    let (outcome, error) = match result {
        Ok(o) => (o, None),
        Err(e) => (e.outcome(), Some(funnelizer::chain(&e))),
    };
    att.finish(now_ms(), outcome, error.clone());
    state.record(&att);
    let mut outcome = outcome;
    if let Err(e) = state.save(&cfg.paths.state) {
        log.event("error", "store_error", &funnelizer::chain(&e), json!({}));
        if outcome.is_ok() {
            outcome = Outcome::StoreError;
        }
    }
    log_end(log, &att, outcome, error.as_deref());
    drop(lock);
    outcome
}

fn log_end(log: Log, att: &Attempt, outcome: Outcome, error: Option<&str>) {
    let level = if outcome.is_ok() { "info" } else { "error" };
    let msg = match (error, outcome) {
        (Some(e), _) => format!("{outcome}: {e}"),
        (None, Outcome::Skipped) => format!(
            "skipped: {}",
            att.reason.as_deref().unwrap_or("nothing changed")
        ),
        (None, _) => format!(
            "{outcome}: run {} over {} SSTables{}",
            att.run_id.map_or_else(|| "?".into(), |r| r.to_string()),
            att.sstables,
            att.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    };
    log.event(
        level,
        "attempt_end",
        &msg,
        json!({
            "outcome": outcome,
            "exit_code": outcome.exit_code(),
            "run_id": att.run_id,
            "sstables": att.sstables,
            "bytes": att.bytes,
            "retries": att.retries,
            "reason": att.reason,
            "error": error,
            "peak_rss_anon": att.peak_rss_anon,
            "started_at_ms": att.started_at_ms,
            "finished_at_ms": att.finished_at_ms,
            "fingerprint": att.fingerprint,
        }),
    );
}

/// Whether run `id` is still a published run of the store (the store may have been replaced).
fn still_published(store: &dyn FactReader, url: &str, id: i64) -> Result<bool, Error> {
    Ok(store
        .runs(500)
        .map_err(Error::store(url))?
        .iter()
        .any(|r| r.run_id.0 == id && r.status == RunStatus::Published))
}

fn note_fingerprint(att: &mut Attempt, fp: &Fingerprint) {
    att.sstables = fp.sstable_count();
    att.bytes = fp.bytes();
    att.fingerprint = Some(fp.key());
}

/// The part of an attempt that runs under the lock.
struct Locked<'a> {
    cfg: &'a Config,
    program: &'a Path,
    force: bool,
    log: Log,
}

impl Locked<'_> {
    fn run(&self, state: &mut ScheduleState, att: &mut Attempt) -> Result<Outcome, Error> {
        let (cfg, log) = (self.cfg, self.log);
        let set = FunnelSet::load(&cfg.funnels)?;
        let store = facts::open_store(&cfg.facts).map_err(Error::store(&cfg.facts))?;
        // Tables come from `funnel facts init`, never from every attempt (DDL racing DDL on Cassandra).
        let tables = source_tables(&set);
        let snapshot = resolve_snapshot(&cfg.data, &tables, &cfg.snapshot)?;
        let now_s = match &cfg.now {
            // Checked when the config was read.
            Some(n) => funnelizer::parse_time(n).map_err(|e| Error::Config {
                path: cfg.origin.display().to_string(),
                message: format!("now = {n:?}: {e}"),
            })?,
            None => att.started_at_ms.div_euclid(1000),
        };
        let key = RunKey {
            tables,
            funnels: funnel_versions(&set),
            snapshot: snapshot.clone(),
            now_day: now_s.div_euclid(86_400),
            schema: cfg.schema.clone(),
        };
        let (mut fp, relisted) = collect(&cfg.data, &key)?;
        if relisted > 0 {
            log.event(
                "warn",
                "relisted",
                &format!(
                    "SSTables vanished while listing (compaction); listed {} times",
                    relisted + 1
                ),
                json!({ "relisted": relisted }),
            );
        }
        note_fingerprint(att, &fp);
        let previous = state.last_success.clone();
        if let Some(prev) = &previous {
            if !self.force && prev.fingerprint.key() == fp.key() {
                let published = match prev.run_id {
                    Some(id) => still_published(&store, &cfg.facts, id)?,
                    None => false,
                };
                if published {
                    att.run_id = prev.run_id;
                    att.reason = Some(format!(
                        "inputs ({} SSTables) and funnel versions ({}) unchanged since run {}",
                        fp.sstable_count(),
                        fp.funnels.len(),
                        prev.run_id.map_or_else(|| "?".into(), |r| r.to_string())
                    ));
                    return Ok(Outcome::Skipped);
                }
            }
        }
        att.reason = Some(match (&previous, self.force) {
            (_, true) => "forced".to_string(),
            (None, _) => "no published run yet".to_string(),
            (Some(p), _) => {
                let d = fp.diff(&p.fingerprint);
                if d.is_empty() {
                    "the last published run is gone from the store".to_string()
                } else {
                    d.join("; ")
                }
            }
        });
        log.event(
            "info",
            "run_start",
            &format!(
                "running over {} SSTables ({:.1} MB), {} funnels{}: {}",
                fp.sstable_count(),
                fp.bytes() as f64 / 1e6,
                fp.funnels.len(),
                snapshot.as_deref().map(|s| format!(", snapshot {s}")).unwrap_or_default(),
                att.reason.as_deref().unwrap_or_default()
            ),
            json!({ "sstables": fp.sstable_count(), "bytes": fp.bytes(), "funnels": fp.funnels, "snapshot": snapshot }),
        );
        loop {
            let before = store
                .runs(1)
                .map_err(Error::store(&cfg.facts))?
                .first()
                .map_or(0, |r| r.run_id.0);
            let cmd = run_command(self.program, cfg, snapshot.as_deref(), now_s);
            let echo: Echo = Arc::new(move |line: &str| log.child_line(line));
            let state_path = cfg.paths.state.clone();
            let mut running = state.clone();
            let report = supervise(
                cmd,
                Limits {
                    timeout: cfg.timeout,
                    memory_budget: cfg.memory_budget,
                },
                Some(echo),
                |pid| {
                    // Visible to `funnel status` while the child runs.
                    att.child_pid = Some(pid);
                    running.record(att);
                    let _ = running.save(&state_path);
                },
            )
            .map_err(Error::Spawn)?;
            att.child_pid = Some(report.pid);
            att.peak_rss_anon = report.peak_rss_anon;
            if report.end.success() {
                let runs = store.runs(20).map_err(Error::store(&cfg.facts))?;
                let ours = runs
                    .iter()
                    .filter(|r| r.run_id.0 > before && r.status == RunStatus::Published)
                    .min_by_key(|r| r.run_id);
                let Some(ours) = ours else {
                    return Err(Error::Run {
                        outcome: Outcome::Failed,
                        message: "`funnel run` exited 0 but published no run".into(),
                    });
                };
                att.run_id = Some(ours.run_id.0);
                let read: Vec<String> = RunInputs::of(ours)
                    .map(|i| i.sstables().map(str::to_string).collect())
                    .unwrap_or_default();
                log.event(
                    "info",
                    "run_published",
                    &format!(
                        "run {} published {} rows; it read {} SSTables",
                        ours.run_id,
                        ours.rows,
                        read.len()
                    ),
                    json!({ "run_id": ours.run_id.0, "rows": ours.rows, "sstables_read": read }),
                );
                state.last_success = Some(LastSuccess {
                    run_id: Some(ours.run_id.0),
                    finished_at_ms: now_ms(),
                    fingerprint: fp,
                });
                return Ok(Outcome::Published);
            }
            let err_line = report.error_line().unwrap_or_default();
            let what = format!(
                "`funnel run` (pid {}) {}{}",
                report.pid,
                report.end.describe(),
                if err_line.is_empty() {
                    String::new()
                } else {
                    format!(": {err_line}")
                }
            );
            // Runs of a dead child are marked abandoned by the store (its rows dropped); reading the runs
            // triggers that in SQLite. The previous results stay published.
            let _ = store.runs(1);
            if report.end.killed() {
                return Err(Error::Run {
                    outcome: Outcome::Crashed,
                    message: what,
                });
            }
            // Did the inputs change under the run (compaction deleted SSTables it was about to open)?
            let (now_fp, _) = collect(&cfg.data, &key)?;
            if now_fp.key() != fp.key() && att.retries < cfg.retries {
                att.retries += 1;
                log.event(
                    "warn",
                    "retry",
                    &format!(
                        "{what}; the inputs changed during the run ({}), re-listing and rerunning ({}/{})",
                        now_fp.diff(&fp).join("; "),
                        att.retries,
                        cfg.retries
                    ),
                    json!({ "retry": att.retries }),
                );
                fp = now_fp;
                note_fingerprint(att, &fp);
                continue;
            }
            // `funnel run` says what failed through its exit code (any other code: a failure of no
            // documented kind, e.g. a panic).
            return Err(Error::Run {
                outcome: report.end.run_outcome().unwrap_or(Outcome::Failed),
                message: what,
            });
        }
    }
}
