//! Publishing a batch run on CQL so that no failure loses history.
//!
//! 1. **Lease**: the publisher takes the `leases` row with a lightweight transaction (`IF NOT EXISTS`,
//!    TTL [`LEASE_TTL_S`]) and renews it before each app's flip (`IF holder = ?`); a second scheduler on
//!    another host gets [`CqlError::LeaseHeld`] instead of interleaving its flips and deletes.
//! 2. **Mark** the run `publishing` before any pointer moves: from here on its rows are never dropped by
//!    `fail_run` or an abandoned-run sweep, since a pointer may name them.
//! 3. **Flip per app**: the watermark rows of one app are one partition, so each app's flip is a
//!    single-partition logged batch — applied atomically and in isolation without the batchlog, and never
//!    subject to the batch size thresholds (one mutation); a publish of many apps is never one huge batch.
//! 4. **Ambiguous errors** (a timeout: the write may have been applied, or be later): the flip is sent
//!    again (same values: idempotent) up to [`FLIP_ATTEMPTS`] times, then the app's pointers are read back.
//!    If they name the run it was applied; if not, the publish fails with nothing deleted — the run stays
//!    `publishing`, and a flip applied late loses to any newer run's flip (client timestamps).
//! 5. **Garbage collection follows the pointers**: a superseded run is queued (`gc_queue`) and its rows
//!    are dropped [`GC_GRACE_MS`] later, and only for keys whose pointer names a newer run — readers holding
//!    the old pointer keep reading whole answers, and a run some pointer names is never dropped.

use std::collections::BTreeMap;

use super::{now_ms, Inner};
use crate::cql_session::{BatchKind, BindRow, Request, RowSet, Value};
use crate::cql_statements::{self as st, Stmt};
use crate::error::{CqlError, FactsError};
use crate::fault;
use crate::model::{RunId, RunStatus, Watermark};

/// Seconds the publisher lease lasts unless renewed (each app's flip renews it, and the carry-forward
/// every third of it). A publisher that crashed holds it this long: the next publish waits that much.
pub const LEASE_TTL_S: i32 = 600;

/// How long a superseded run's rows stay after the publish that superseded it.
pub const GC_GRACE_MS: i64 = 2 * 3_600_000;

/// Sends of one app's flip while its outcome stays unknown, before reading the pointers back.
pub const FLIP_ATTEMPTS: usize = 3;

/// Whether an LWT's reply says it was applied (its first column, `[applied]`).
fn applied(rows: &RowSet) -> bool {
    rows.first().and_then(|r| r.first()) == Some(&Value::Bool(true))
}

impl Inner {
    /// Publish `run` (status `running`) with its watermarks: see the module docs.
    pub(super) async fn publish(
        &self,
        run: RunId,
        wms: &[Watermark],
        rows: u64,
    ) -> Result<(), FactsError> {
        self.require_running(run).await?;
        self.acquire_lease(run).await?;
        let result = self.publish_leased(run, wms, rows).await;
        // Best effort: an unreleased lease expires by its TTL.
        let _ = self
            .send(Request::execute(st::RELEASE_LEASE, (run.0,)))
            .await;
        result
    }

    async fn publish_leased(
        &self,
        run: RunId,
        wms: &[Watermark],
        rows: u64,
    ) -> Result<(), FactsError> {
        let now = now_ms();
        let bucket = super::runs::bucket_of(run.0);
        self.exec(st::MARK_PUBLISHING, (bucket, run.0)).await?;
        let mut previous = Vec::with_capacity(wms.len());
        let mut renewed = std::time::Instant::now();
        for w in wms {
            // Carrying history forward can outlast the lease: keep it while working.
            if renewed.elapsed().as_secs() > (LEASE_TTL_S / 3) as u64 {
                self.renew_lease(run).await?;
                renewed = std::time::Instant::now();
            }
            previous.push(self.prepare_key(run.0, w).await?);
        }
        fault::point("publish");
        let mut by_app: BTreeMap<&str, Vec<&Watermark>> = BTreeMap::new();
        for w in wms {
            by_app.entry(&w.app_id).or_default().push(w);
        }
        for (app, marks) in by_app {
            self.renew_lease(run).await?;
            self.flip_app(run, app, &marks, now).await?;
            fault::point("flip");
        }
        self.finish_run(run.0, RunStatus::Published, None, Some(rows as i64))
            .await?;
        let mut superseded = Vec::new();
        for (w, current) in wms.iter().zip(previous) {
            self.expire_speed(w, current).await?;
            if let Some((_, old, _)) = current.filter(|c| c.1 != run.0) {
                superseded.push(old);
            }
        }
        // Runs whose publish never completed: superseded now for every key this run moved.
        let log = self.recent_runs(run.0, super::RUNS_SCANNED).await?;
        superseded.extend(
            log.into_iter()
                .filter(|r| r.1 < run.0 && r.4 == RunStatus::Publishing.as_str())
                .map(|r| r.1),
        );
        superseded.sort_unstable();
        superseded.dedup();
        let due = now + GC_GRACE_MS;
        let queue: Vec<(i64, i64)> = superseded.into_iter().map(|r| (due, r)).collect();
        self.exec_all(st::ENQUEUE_GC, queue).await?;
        // Keys this run staged but did not publish were never visible.
        let keys: Vec<(String, String, String)> = self.rows(st::SELECT_RUN_KEYS, (run.0,)).await?;
        for (app, fid, ver) in keys {
            if !wms
                .iter()
                .any(|w| w.app_id == app && w.funnel_id == fid && w.funnel_version == ver)
            {
                self.drop_key(run.0, &app, &fid, &ver).await?;
            }
        }
        self.collect_due(now).await
    }

    /// Take the publisher lease for `run` (or find it already ours, after an ambiguous first attempt).
    async fn acquire_lease(&self, run: RunId) -> Result<(), FactsError> {
        for _ in 0..2 {
            let sent = self
                .send(Request::execute(
                    st::ACQUIRE_LEASE,
                    (run.0, now_ms(), LEASE_TTL_S),
                ))
                .await;
            match sent {
                Ok(rows) if applied(&rows) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.is_ambiguous_write() => {}
                Err(e) => return Err(e),
            }
            match self.first::<(i64,)>(st::SELECT_LEASE, ()).await? {
                Some((holder,)) if holder == run.0 => return Ok(()),
                Some((holder,)) => return Err(CqlError::LeaseHeld { holder }.into()),
                // Expired between the two requests: try again.
                None => {}
            }
        }
        Err(CqlError::LeaseHeld { holder: 0 }.into())
    }

    /// Extend the lease; fails if another publisher took it (ours expired).
    async fn renew_lease(&self, run: RunId) -> Result<(), FactsError> {
        let values = (LEASE_TTL_S, run.0, now_ms(), run.0);
        match self.send(Request::execute(st::RENEW_LEASE, values)).await {
            Ok(rows) if applied(&rows) => Ok(()),
            Ok(rows) => {
                let holder = rows
                    .first()
                    .and_then(|r| r.get(1))
                    .and_then(|v| match v {
                        Value::BigInt(h) => Some(*h),
                        _ => None,
                    })
                    .unwrap_or(0);
                Err(CqlError::LeaseHeld { holder }.into())
            }
            // Unknown: the read tells.
            Err(e) if e.is_ambiguous_write() => {
                match self.first::<(i64,)>(st::SELECT_LEASE, ()).await? {
                    Some((holder,)) if holder == run.0 => Ok(()),
                    Some((holder,)) => Err(CqlError::LeaseHeld { holder }.into()),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Move the pointers of one app's keys to `run`: one single-partition batch, re-sent while its outcome
    /// is unknown, then checked by reading the pointers back.
    async fn flip_app(
        &self,
        run: RunId,
        app: &str,
        marks: &[&Watermark],
        now: i64,
    ) -> Result<(), FactsError> {
        let statements: Vec<(Stmt, Vec<Value>)> = marks
            .iter()
            .map(|w| {
                let values = (
                    &w.app_id,
                    &w.funnel_id,
                    &w.funnel_version,
                    w.batch_until.to_string(),
                    run.0,
                    now,
                );
                (st::UPSERT_WATERMARK, values.bind_row())
            })
            .collect();
        let mut unknown = None;
        for _ in 0..FLIP_ATTEMPTS {
            match self.batch(BatchKind::Logged, statements.clone()).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_ambiguous_write() => unknown = Some(e),
                Err(e) => return Err(e),
            }
        }
        let pointers: Vec<(String, String, String, i64, i64)> =
            self.rows(st::SELECT_WATERMARKS, (app,)).await?;
        let named = |w: &Watermark| {
            pointers
                .iter()
                .any(|p| p.0 == w.funnel_id && p.1 == w.funnel_version && p.3 == run.0)
        };
        if marks.iter().all(|w| named(w)) {
            return Ok(());
        }
        Err(unknown.unwrap_or_else(|| {
            CqlError::OutcomeUnknown {
                request: format!("flip of app {app}"),
                reason: "no attempt was made".into(),
            }
            .into()
        }))
    }

    /// Drop the rows of queued runs that are due, for every key whose pointer names a newer run (or, for a
    /// run whose publish never started, none at all). A key whose pointer names the run keeps it.
    pub(super) async fn collect_due(&self, now: i64) -> Result<(), FactsError> {
        let due: Vec<(i64, i64)> = self.rows(st::SELECT_GC_DUE, (now,)).await?;
        for (due_at, run) in due {
            let status = match self.run_status(RunId(run)).await {
                Ok(s) => Some(s),
                Err(FactsError::UnknownRun(_)) => None,
                Err(e) => return Err(e),
            };
            // A run whose flip may have happened keeps the keys no newer run has moved.
            let maybe_flipped = matches!(
                status,
                Some(RunStatus::Publishing) | Some(RunStatus::Published)
            );
            let keys: Vec<(String, String, String)> =
                self.rows(st::SELECT_RUN_KEYS, (run,)).await?;
            for (app, fid, ver) in keys {
                let keep = match self.pointer(&app, &fid, &ver).await? {
                    Some((_, p, _)) if p == run => true,
                    Some((_, p, _)) if p > run => false,
                    _ => maybe_flipped,
                };
                if !keep {
                    self.drop_key(run, &app, &fid, &ver).await?;
                }
            }
            self.exec(st::DELETE_GC, (due_at, run)).await?;
        }
        Ok(())
    }
}
