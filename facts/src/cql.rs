//! `CqlStore`: the Cassandra 4.x/5.x / ScyllaDB fact store (`cql://…`), via the `scylla` driver.
//!
//! Every request goes through the session seam ([`crate::cql_session`]): prepared statements only (listed
//! and unit-tested in [`crate::cql_statements`]), reads and writes at `LOCAL_QUORUM`, upserts and deletes
//! marked idempotent so the driver may retry them (no counters); the only lightweight transactions are
//! the publisher lease's and the stream's commits. Routing is token-aware (and DC-aware with `dc=`, [`crate::cql_connect`]). Bulk
//! writes run at most [`CONCURRENCY`] requests at once. What Cassandra accepts of these requests is
//! checked by [`crate::cql_contract`]; `docs/CASSANDRA.md` describes the data model and operations.
//!
//! Atomicity: a run's rows are written under its run id before `publish` flips the watermark rows (one
//! single-partition batch per app, [`publish`]), so readers that follow the pointer see a whole run or the
//! previous one. Speed batches: one conditional single-partition batch per Kafka batch commits the
//! partition's offset, cumulative counts and owned state together, fencing out a consumer whose partition
//! was taken over ([`stream_sink`]).
//!
//! Differences from SQLite: a run whose process died is noticed only when it is still `running` a day
//! ([`ABANDON_AFTER_MS`]) after it began (no pids across hosts); until then its rows are merely invisible.
//! Run ids come from the clock in microseconds (unique per store in practice, increasing).
//! Every method blocks on the store's own tokio runtime (do not call from async code without
//! `spawn_blocking`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::cql_connect;
use crate::cql_session::{BatchKind, BindRow, CqlSession, FromRow, Request, RowSet, Value};
use crate::cql_statements::{self as st, Stmt, LEGACY_TOTAL_BREAKDOWN};
use crate::day::Day;
use crate::error::{CqlError, FactsError};
use crate::fault;
use crate::model::{
    DailyCountFact, FunnelStepFact, FunnelTotalFact, RunId, RunMeta, RunRecord, RunStatus,
    SpeedBatch, StreamPartition, Watermark, COUNTS_WATERMARK_ID,
};
use crate::query::{CountsAnswer, CountsQuery, FunnelAnswer, FunnelQuery};
use crate::read::{self, Key, Pointer, RowSource};
use crate::seen::{seen_bucket, SeenBy, SeenId};
use crate::store::{BatchPublisher, FactReader, StateReader, StreamSink};
use crate::url::CqlUrl;

#[cfg(test)]
mod contract_tests;
mod publish;
mod runs;
mod shards;
mod shared_state;
mod stream_sink;

use runs::RunsRow;

/// Requests in flight at once for bulk writes.
pub const CONCURRENCY: usize = 64;

/// A run still `running` this long after it began is taken as abandoned by the next `begin_run`.
pub const ABANDON_AFTER_MS: i64 = 24 * 3_600_000;

/// Runs of the log `begin_run` and `publish` look at (abandoned and stuck runs).
const RUNS_SCANNED: i32 = 1000;

/// Most days a publish walks when expiring speed rows between the old and the new watermark.
const MAX_EXPIRE_DAYS: i32 = 400;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

struct Inner {
    session: Arc<dyn CqlSession>,
    url: CqlUrl,
    /// Commit points of the Kafka partitions this store committed to ([`stream_sink`]).
    heads: Mutex<HashMap<StreamPartition, stream_sink::Head>>,
    /// `stream_records` partitions this process indexed ([`shared_state`]).
    indexed: Mutex<HashSet<(String, String, String)>>,
}

/// A fact store in a Cassandra/Scylla keyspace.
pub struct CqlStore {
    inner: Arc<Inner>,
    rt: tokio::runtime::Runtime,
    /// Per running run of this process: rows staged and first staged day per key (no counters in CQL).
    staged: Mutex<HashMap<i64, Staged>>,
}

/// `(app_id, funnel_id, funnel_version)`.
type OwnedKey = (String, String, String);
/// Rows staged by a run and its first staged day per key.
type Staged = (u64, BTreeMap<OwnedKey, String>);
/// A `funnel_steps` row as `SELECT_STEPS` returns it.
type StepRow = (
    String,
    String,
    String,
    String,
    String,
    i32,
    i64,
    Option<f64>,
    Option<f64>,
);

impl CqlStore {
    /// Connect to the cluster (tables are not touched: call `init` once per keyspace).
    pub fn connect(url: &CqlUrl) -> Result<CqlStore, FactsError> {
        CqlStore::connect_with(url, |driver| Arc::new(driver))
    }

    /// Connect, sending every request through `wrap(driver session)` — a [`crate::cql_session::Recorder`]
    /// or a fault injector in tests.
    pub fn connect_with(
        url: &CqlUrl,
        wrap: impl FnOnce(crate::cql_session::DriverSession) -> Arc<dyn CqlSession>,
    ) -> Result<CqlStore, FactsError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("facts-cql")
            .build()?;
        #[cfg(feature = "cql-tls")]
        let tls = tls_config(url)?;
        #[cfg(not(feature = "cql-tls"))]
        tls_config(url)?;
        let u = url.clone();
        let session = rt.block_on(async move {
            #[allow(unused_mut)]
            let mut b = scylla::client::session_builder::SessionBuilder::new();
            #[cfg(feature = "cql-tls")]
            {
                b = b.tls_context(tls);
            }
            cql_connect::connect(&u, b).await
        })?;
        Ok(CqlStore::with_session(url, wrap(session), rt))
    }

    /// A store sending its requests to `session` (the driver's, or a recorded one in tests) on the
    /// runtime `rt`.
    pub fn with_session(
        url: &CqlUrl,
        session: Arc<dyn CqlSession>,
        rt: tokio::runtime::Runtime,
    ) -> CqlStore {
        CqlStore {
            inner: Arc::new(Inner {
                session,
                url: url.clone(),
                heads: Mutex::new(HashMap::new()),
                indexed: Mutex::new(HashSet::new()),
            }),
            rt,
            staged: Mutex::new(HashMap::new()),
        }
    }

    /// Run a future on the store's runtime and wait for it (usable from any thread, also one inside
    /// another runtime, where `block_on` would panic).
    fn block<T, F>(&self, f: impl FnOnce(Arc<Inner>) -> F) -> Result<T, FactsError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, FactsError>> + Send + 'static,
    {
        let fut = f(self.inner.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        self.rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| CqlError::TaskLost)?
    }

    fn staged(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Staged>> {
        self.staged.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn ks(&self) -> &str {
        &self.url.keyspace
    }

    /// Send one request through the session seam.
    async fn send(&self, request: Request) -> Result<RowSet, FactsError> {
        self.session.send(&request).await
    }

    async fn exec(&self, s: Stmt, values: impl BindRow) -> Result<(), FactsError> {
        self.send(Request::execute(s, values)).await.map(|_| ())
    }

    /// All rows of a (paged) read.
    async fn rows<R: FromRow>(&self, s: Stmt, values: impl BindRow) -> Result<Vec<R>, FactsError> {
        self.send(Request::execute(s, values))
            .await?
            .into_iter()
            .map(R::from_row)
            .collect()
    }

    async fn first<R: FromRow>(
        &self,
        s: Stmt,
        values: impl BindRow,
    ) -> Result<Option<R>, FactsError> {
        Ok(self.rows(s, values).await?.into_iter().next())
    }

    /// Run writes with bounded concurrency.
    async fn exec_all<V: BindRow>(&self, s: Stmt, values: Vec<V>) -> Result<(), FactsError> {
        stream::iter(values)
            .map(|v| self.exec(s, v))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// One CQL batch of prepared statements.
    async fn batch(
        &self,
        kind: BatchKind,
        statements: Vec<(Stmt, Vec<Value>)>,
    ) -> Result<RowSet, FactsError> {
        self.send(Request::Batch { kind, statements }).await
    }

    async fn require_running(&self, run: RunId) -> Result<(), FactsError> {
        match self.run_status(run).await? {
            RunStatus::Running => Ok(()),
            other => Err(FactsError::RunNotRunning {
                run: run.0,
                status: other.to_string(),
            }),
        }
    }

    async fn pointer(
        &self,
        app: &str,
        fid: &str,
        ver: &str,
    ) -> Result<Option<(Day, i64, i64)>, FactsError> {
        let row: Option<(String, i64, i64)> =
            self.first(st::SELECT_WATERMARK, (app, fid, ver)).await?;
        row.map(|(d, run, at)| Ok((d.parse()?, run, at)))
            .transpose()
    }

    async fn speed_applied_at(&self) -> Result<Option<i64>, FactsError> {
        let v: Option<(Option<String>,)> = self
            .first(st::SELECT_META, ("speed_applied_at_ms",))
            .await?;
        Ok(v.and_then(|(s,)| s).and_then(|s| s.parse().ok()))
    }

    async fn speed_days(
        &self,
        app: &str,
        fid: &str,
        ver: &str,
        range: Option<(Day, Day)>,
    ) -> Result<Vec<String>, FactsError> {
        let Some((lo, hi)) = range else {
            return Ok(Vec::new());
        };
        let days: Vec<(String,)> = self
            .rows(
                st::SELECT_SPEED_DAYS,
                (app, fid, ver, lo.to_string(), hi.to_string()),
            )
            .await?;
        Ok(days.into_iter().map(|d| d.0).collect())
    }

    async fn drop_key(&self, run: i64, app: &str, fid: &str, ver: &str) -> Result<(), FactsError> {
        if fid == COUNTS_WATERMARK_ID {
            self.exec(st::DELETE_COUNTS_RUN, (app, ver, run)).await?;
        } else {
            self.exec(st::DELETE_STEPS_RUN, (app, fid, ver, run))
                .await?;
            self.exec(st::DELETE_TOTALS_RUN, (app, fid, ver, run))
                .await?;
        }
        self.exec(st::DELETE_RUN_KEY, (run, app, fid, ver)).await
    }

    /// Move the totals that older versions stored as `funnel_steps` rows (breakdown
    /// [`LEGACY_TOTAL_BREAKDOWN`]) of every published funnel run into `funnel_totals`.
    async fn migrate_legacy_totals(&self) -> Result<usize, FactsError> {
        let mut moved = 0;
        let apps: Vec<(String,)> = self.rows(st::SELECT_WATERMARK_APPS, ()).await?;
        for (app,) in apps {
            let marks: Vec<(String, String, String, i64, i64)> =
                self.rows(st::SELECT_WATERMARKS, (&app,)).await?;
            for (fid, ver, _, run, _) in marks {
                if fid == COUNTS_WATERMARK_ID {
                    continue;
                }
                let all = (Day::FIRST.to_string(), Day::LAST.to_string());
                let rows: Vec<StepRow> = self
                    .rows(st::SELECT_STEPS, (&app, &fid, &ver, run, all.0, all.1))
                    .await?;
                let legacy: Vec<StepRow> = rows
                    .into_iter()
                    .filter(|r| r.4 == LEGACY_TOTAL_BREAKDOWN)
                    .collect();
                let totals = legacy.iter().map(|r| legacy_total(run, r)).collect();
                self.exec_all(st::INSERT_TOTAL, totals).await?;
                let deletes: Vec<_> = legacy
                    .into_iter()
                    .map(|(a, f, v, d, b, s, ..)| (a, f, v, run, d, b, s))
                    .collect();
                moved += deletes.len();
                self.exec_all(st::DELETE_STEP, deletes).await?;
            }
        }
        Ok(moved)
    }

    /// Before a key's flip: refuse to go backwards, carry forward the days before the run's first staged
    /// day from the key's current run, and record the key in `run_keys`. Returns the key's current pointer.
    async fn prepare_key(
        &self,
        run: i64,
        w: &Watermark,
    ) -> Result<Option<(Day, i64, i64)>, FactsError> {
        let (app, fid, ver) = (&w.app_id, &w.funnel_id, &w.funnel_version);
        let current = self.pointer(app, fid, ver).await?;
        if let Some((_, cur, _)) = current {
            if cur > run {
                return Err(FactsError::StaleRun {
                    run,
                    current: cur,
                    app_id: app.clone(),
                    funnel_id: fid.clone(),
                    funnel_version: ver.clone(),
                });
            }
        }
        let first: Option<(String,)> = self.first(st::SELECT_RUN_KEY, (run, app, fid, ver)).await?;
        // Carry forward days before the run's first staged day from the previous run.
        if let (Some((_, old, _)), Some((first,))) = (current, &first) {
            let day_before = first.parse::<Day>()?.plus(-1).to_string();
            if fid == COUNTS_WATERMARK_ID {
                let old_rows: Vec<(String, String, String, i64)> = self
                    .rows(
                        st::SELECT_COUNTS,
                        (app, ver, old, Day::FIRST.to_string(), day_before),
                    )
                    .await?;
                let values: Vec<_> = old_rows
                    .into_iter()
                    .map(|(d, dim, v, c)| (app.clone(), ver.clone(), run, d, dim, v, c))
                    .collect();
                self.exec_all(st::INSERT_COUNT, values).await?;
            } else {
                let old_rows: Vec<StepRow> = self
                    .rows(
                        st::SELECT_STEPS,
                        (app, fid, ver, old, Day::FIRST.to_string(), &day_before),
                    )
                    .await?;
                // Rows an older version wrote as totals go to funnel_totals.
                let (legacy, old_rows): (Vec<StepRow>, Vec<StepRow>) = old_rows
                    .into_iter()
                    .partition(|r| r.4 == LEGACY_TOTAL_BREAKDOWN);
                let values: Vec<StepValues> = old_rows
                    .into_iter()
                    .map(|(a, f, v, d, b, s, n, m, p)| (a, f, v, run, d, b, s, n, m, p))
                    .collect();
                self.exec_all(st::INSERT_STEP, values).await?;
                let old_totals: Vec<TotalRow> = self
                    .rows(
                        st::SELECT_TOTALS,
                        (app, fid, ver, old, Day::FIRST.to_string(), day_before),
                    )
                    .await?;
                let values: Vec<TotalValues> = old_totals
                    .into_iter()
                    .map(|(d, s, n, m, p)| {
                        (app.clone(), fid.clone(), ver.clone(), run, d, s, n, m, p)
                    })
                    .chain(legacy.iter().map(|r| legacy_total(run, r)))
                    .collect();
                self.exec_all(st::INSERT_TOTAL, values).await?;
            }
        }
        if first.is_none() {
            self.exec(
                st::UPSERT_RUN_KEY,
                (run, app, fid, ver, w.batch_until.to_string()),
            )
            .await?;
        }
        Ok(current)
    }

    /// Delete the speed rows of a key below its new watermark (from its previous one).
    async fn expire_speed(
        &self,
        w: &Watermark,
        current: Option<(Day, i64, i64)>,
    ) -> Result<(), FactsError> {
        let (app, fid, ver) = (&w.app_id, &w.funnel_id, &w.funnel_version);
        let old_until = current
            .map(|c| c.0)
            .unwrap_or(w.batch_until.plus(-MAX_EXPIRE_DAYS));
        let lo = old_until.max(w.batch_until.plus(-MAX_EXPIRE_DAYS));
        for day in self
            .speed_days(app, fid, ver, Some((lo, w.batch_until.plus(-1))))
            .await?
        {
            if fid == COUNTS_WATERMARK_ID {
                self.exec(st::DELETE_COUNTS_SPEED_DAY, (app, ver, &day))
                    .await?;
            } else {
                self.exec(st::DELETE_STEPS_SPEED_DAY, (app, fid, ver, &day))
                    .await?;
            }
            self.exec(st::DELETE_SPEED_DAY, (app, fid, ver, &day))
                .await?;
        }
        Ok(())
    }

    async fn drop_run(&self, run: i64) -> Result<(), FactsError> {
        let keys: Vec<(String, String, String)> = self.rows(st::SELECT_RUN_KEYS, (run,)).await?;
        for (app, fid, ver) in keys {
            self.drop_key(run, &app, &fid, &ver).await?;
        }
        Ok(())
    }
}

/// The rustls client configuration for `tls=true`: the CA file's certificates, or the system roots.
#[cfg(feature = "cql-tls")]
fn tls_config(url: &CqlUrl) -> Result<Option<Arc<rustls::ClientConfig>>, FactsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    if !url.tls {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    match &url.ca_file {
        Some(path) => {
            let ca_error = |source: Box<dyn std::error::Error + Send + Sync>| {
                FactsError::from(CqlError::Tls {
                    reason: format!("CA file {}", path.display()),
                    source: Some(source),
                })
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| ca_error(e.into()))? {
                let cert = cert.map_err(|e| ca_error(e.into()))?;
                roots.add(cert).map_err(|e| ca_error(e.into()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A malformed system certificate is skipped, as browsers do.
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err(FactsError::from(CqlError::Tls {
            reason: "tls=true but no CA certificate was found (pass ca=PATH)".into(),
            source: None,
        }));
    }
    Ok(Some(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )))
}

/// Without the `cql-tls` feature, `tls=true` is refused (never silently downgraded to plain text).
#[cfg(not(feature = "cql-tls"))]
fn tls_config(url: &CqlUrl) -> Result<(), FactsError> {
    if url.tls {
        return Err(FactsError::BackendDisabled(
            "cql with tls=true (build with the `cql-tls` feature)",
        ));
    }
    Ok(())
}

type Fut<T> = std::pin::Pin<Box<dyn Future<Output = Result<T, FactsError>> + Send>>;

fn cql_step(step: u32) -> Result<i32, FactsError> {
    i32::try_from(step).map_err(|_| FactsError::Invalid {
        what: "step",
        value: step.to_string(),
    })
}

fn cql_actors(actors: u64) -> Result<i64, FactsError> {
    i64::try_from(actors).map_err(|_| FactsError::Invalid {
        what: "actors",
        value: actors.to_string(),
    })
}

fn steps_values(run: i64, rows: &[FunnelStepFact]) -> Result<Vec<StepValues>, FactsError> {
    rows.iter()
        .map(|r| {
            Ok((
                r.app_id.clone(),
                r.funnel_id.clone(),
                r.funnel_version.clone(),
                run,
                r.day.to_string(),
                r.breakdown.clone(),
                cql_step(r.step)?,
                cql_actors(r.actors)?,
                r.ttc_median_s,
                r.ttc_p90_s,
            ))
        })
        .collect()
}

type StepValues = (
    String,
    String,
    String,
    i64,
    String,
    String,
    i32,
    i64,
    Option<f64>,
    Option<f64>,
);

/// A `funnel_totals` row as [`st::SELECT_TOTALS`] returns it: day, step, actors, median, p90.
type TotalRow = (String, i32, i64, Option<f64>, Option<f64>);
/// A speed partial of [`st::SELECT_STEPS_SPEED`]: breakdown, step, actors.
type SpeedStepRow = (String, i32, i64);
/// A speed partial of [`st::SELECT_COUNTS_SPEED`]: dimension, value, count.
type SpeedCountRow = (String, String, i64);

/// The values of [`st::INSERT_TOTAL`].
type TotalValues = (
    String,
    String,
    String,
    i64,
    String,
    i32,
    i64,
    Option<f64>,
    Option<f64>,
);

fn total_values(run: i64, r: &FunnelTotalFact) -> Result<TotalValues, FactsError> {
    Ok((
        r.app_id.clone(),
        r.funnel_id.clone(),
        r.funnel_version.clone(),
        run,
        r.day.to_string(),
        cql_step(r.step)?,
        cql_actors(r.actors)?,
        r.ttc_median_s,
        r.ttc_p90_s,
    ))
}

/// A legacy total row of `funnel_steps` (breakdown [`LEGACY_TOTAL_BREAKDOWN`]) as `funnel_totals` values
/// under `run`.
fn legacy_total(run: i64, r: &StepRow) -> TotalValues {
    let (app, fid, ver, day, _, step, actors, median, p90) = r.clone();
    (app, fid, ver, run, day, step, actors, median, p90)
}

impl CqlStore {
    /// Create the keyspace and the tables if missing, then move all-breakdowns totals that older versions
    /// stored in `funnel_steps` into `funnel_totals` (see [`crate::cql_statements`] on upgrading).
    /// Idempotent.
    pub fn init(&self) -> Result<(), FactsError> {
        self.block(|inner| async move {
            let keyspace = st::create_keyspace(inner.ks(), inner.url.replication_factor);
            inner.send(Request::Ddl { cql: keyspace }).await?;
            for ddl in st::TABLES {
                inner
                    .send(Request::Ddl {
                        cql: ddl.to_string(),
                    })
                    .await?;
            }
            for (table, compaction, gc_grace_s) in st::TABLE_OPTIONS {
                let cql = st::table_options_ddl(table, compaction, *gc_grace_s);
                inner.send(Request::Ddl { cql }).await?;
            }
            inner.migrate_legacy_totals().await?;
            inner.migrate_legacy_state().await?;
            Ok(())
        })
    }
}

impl BatchPublisher for CqlStore {
    fn begin_run(&self, meta: &RunMeta) -> Result<RunId, FactsError> {
        let micros = chrono::Utc::now().timestamp_micros();
        let run = RunId(micros);
        let inputs = serde_json::to_string(&meta.inputs)?;
        let funnels = serde_json::to_string(&meta.funnels)?;
        let started = meta.started_at_ms;
        let mine: Vec<i64> = self.staged().keys().copied().collect();
        self.block(move |inner| -> Fut<()> {
            Box::pin(async move {
                // Runs still `running` long after they began belong to dead processes: abandon and drop them.
                let recent: Vec<RunsRow> = inner.recent_runs(run.0, RUNS_SCANNED).await?;
                let cutoff = micros - ABANDON_AFTER_MS * 1000;
                for (bucket, old, ..) in recent
                    .into_iter()
                    .filter(|r| r.4 == "running" && r.1 < cutoff && !mine.contains(&r.1))
                {
                    let why = "still running a day after it began: its process is gone".to_string();
                    inner
                        .finish_run_in(bucket, old, RunStatus::Abandoned, Some(why), None)
                        .await?;
                    inner.drop_run(old).await?;
                }
                let bucket = runs::bucket_of(run.0);
                inner
                    .exec(st::INSERT_RUN, (bucket, run.0, started, inputs, funnels))
                    .await
            })
        })?;
        self.staged().insert(run.0, (0, BTreeMap::new()));
        Ok(run)
    }

    fn write_funnel_steps(&self, run: RunId, rows: &[FunnelStepFact]) -> Result<(), FactsError> {
        let values = steps_values(run.0, rows)?;
        let firsts = first_days(
            rows.iter()
                .map(|r| ((&*r.app_id, &*r.funnel_id, &*r.funnel_version), r.day)),
        );
        self.stage(run, rows.len(), firsts, move |inner| async move {
            inner.exec_all(st::INSERT_STEP, values).await
        })
    }

    fn write_funnel_totals(&self, run: RunId, rows: &[FunnelTotalFact]) -> Result<(), FactsError> {
        let values = rows
            .iter()
            .map(|r| total_values(run.0, r))
            .collect::<Result<Vec<_>, _>>()?;
        let firsts = first_days(
            rows.iter()
                .map(|r| ((&*r.app_id, &*r.funnel_id, &*r.funnel_version), r.day)),
        );
        self.stage(run, rows.len(), firsts, move |inner| async move {
            inner.exec_all(st::INSERT_TOTAL, values).await
        })
    }

    fn write_daily_counts(&self, run: RunId, rows: &[DailyCountFact]) -> Result<(), FactsError> {
        let values: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.app_id.clone(),
                    r.metric.clone(),
                    run.0,
                    r.day.to_string(),
                    r.dimension.clone(),
                    r.value.clone(),
                    r.count,
                )
            })
            .collect();
        let firsts = first_days(rows.iter().map(|r| {
            (
                (r.app_id.as_str(), COUNTS_WATERMARK_ID, r.metric.as_str()),
                r.day,
            )
        }));
        self.stage(run, rows.len(), firsts, move |inner| async move {
            inner.exec_all(st::INSERT_COUNT, values).await
        })
    }

    fn publish(&self, run: RunId, watermarks: &[Watermark]) -> Result<(), FactsError> {
        let wms = watermarks.to_vec();
        let rows = self.staged().get(&run.0).map(|s| s.0).unwrap_or(0);
        self.block(move |inner| -> Fut<()> {
            Box::pin(async move { inner.publish(run, &wms, rows).await })
        })?;
        self.staged().remove(&run.0);
        Ok(())
    }

    fn fail_run(&self, run: RunId, error: &str) -> Result<(), FactsError> {
        let error = error.to_string();
        let rows = self.staged().get(&run.0).map(|s| s.0).unwrap_or(0);
        self.block(move |inner| -> Fut<()> {
            Box::pin(async move {
                // A run whose publish began may be named by some pointers: it keeps its rows and its
                // status (garbage collection drops them once newer runs moved every pointer).
                let rows = Some(rows as i64);
                if inner.run_status(run).await? == RunStatus::Publishing {
                    let status = RunStatus::Publishing;
                    return inner.finish_run(run.0, status, Some(error), rows).await;
                }
                inner.require_running(run).await?;
                inner
                    .finish_run(run.0, RunStatus::Failed, Some(error), rows)
                    .await?;
                inner.drop_run(run.0).await
            })
        })?;
        self.staged().remove(&run.0);
        Ok(())
    }

    fn shard_store(&self) -> Option<&dyn crate::shards::ShardStore> {
        Some(self)
    }
}

impl StreamSink for CqlStore {
    fn apply_speed_batch(&self, b: &SpeedBatch) -> Result<bool, FactsError> {
        b.check_offsets()?;
        let b = b.clone();
        self.block(move |inner| -> Fut<bool> {
            Box::pin(async move { inner.apply_speed(&b).await })
        })
    }

    fn committed_offsets(&self, group: &str, topic: &str) -> Result<Vec<(i32, i64)>, FactsError> {
        let (group, topic) = (group.to_string(), topic.to_string());
        self.block(move |inner| -> Fut<Vec<(i32, i64)>> {
            Box::pin(async move { inner.committed(&group, &topic).await })
        })
    }
}

impl StateReader for CqlStore {
    fn get_state(
        &self,
        namespace: &str,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<Vec<u8>>, FactsError> {
        let got = self.get_states(namespace, &[key.to_string()], now_ms)?;
        Ok(got.into_iter().next().flatten())
    }

    /// [`CONCURRENCY`] single-row reads in flight, answers in the order asked (the trait's default would
    /// wait for each round trip in turn).
    fn get_states(
        &self,
        namespace: &str,
        keys: &[String],
        now_ms: i64,
    ) -> Result<Vec<Option<Vec<u8>>>, FactsError> {
        let (ns, keys) = (namespace.to_string(), keys.to_vec());
        self.block(move |inner| -> Fut<Vec<Option<Vec<u8>>>> {
            Box::pin(async move { inner.get_records(&ns, &keys, now_ms).await })
        })
    }

    /// Single-partition reads of the partitions the indexes list ([`shared_state`]).
    fn scan_state(
        &self,
        namespace: &str,
        key_prefix: &str,
        now_ms: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, FactsError> {
        let (ns, prefix) = (namespace.to_string(), key_prefix.to_string());
        self.block(move |inner| -> Fut<Vec<(String, Vec<u8>)>> {
            Box::pin(async move { inner.scan_records(&ns, &prefix, now_ms).await })
        })
    }

    fn get_owned_states(
        &self,
        owner: &StreamPartition,
        namespace: &str,
        keys: &[String],
        now_ms: i64,
    ) -> Result<Vec<Option<Vec<u8>>>, FactsError> {
        let (o, ns, keys) = (owner.clone(), namespace.to_string(), keys.to_vec());
        self.block(move |inner| -> Fut<Vec<Option<Vec<u8>>>> {
            Box::pin(async move { inner.owned_states(&o, &ns, &keys, now_ms).await })
        })
    }

    fn scan_owned_state(
        &self,
        owner: &StreamPartition,
        namespace: &str,
        key_prefix: &str,
        now_ms: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, FactsError> {
        let (o, ns, prefix) = (owner.clone(), namespace.to_string(), key_prefix.to_string());
        self.block(move |inner| -> Fut<Vec<(String, Vec<u8>)>> {
            Box::pin(async move { inner.scan_owned(&o, &ns, &prefix, now_ms).await })
        })
    }

    fn seen_by(&self, ids: &[SeenId], now_ms: i64) -> Result<Vec<Option<SeenBy>>, FactsError> {
        self.read_seen(ids, now_ms)
    }

    /// Not counted: the ids spread over every app's buckets, so a count would scan the whole table.
    fn count_seen(&self, _now_ms: i64) -> Result<Option<u64>, FactsError> {
        Ok(None)
    }
}

/// A row of [`st::SELECT_SEEN`]: expiry, topic, partition, the message's offset.
type SeenRow = (i64, String, i32, i64);

impl CqlStore {
    /// The seen ids' reads, [`CONCURRENCY`] at a time, in order: each a single-row read of its
    /// (app, bucket) partition.
    fn read_seen(&self, ids: &[SeenId], now_ms: i64) -> Result<Vec<Option<SeenBy>>, FactsError> {
        let keys: Vec<(String, i32, Vec<u8>)> = ids
            .iter()
            .map(|id| {
                let bytes = id.key_bytes();
                (id.app_id.clone(), seen_bucket(&bytes), bytes)
            })
            .collect();
        self.block(move |inner| -> Fut<Vec<Option<SeenBy>>> {
            Box::pin(async move {
                let rows: Vec<Option<SeenRow>> = stream::iter(keys)
                    .map(|k| {
                        let inner = inner.clone();
                        async move { inner.first::<SeenRow>(st::SELECT_SEEN, k).await }
                    })
                    .buffered(CONCURRENCY)
                    .try_collect()
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|row| {
                        row.filter(|r| r.0 > now_ms)
                            .map(|(_, topic, partition, offset)| SeenBy {
                                topic,
                                partition,
                                offset,
                            })
                    })
                    .collect())
            })
        })
    }
}

impl FactReader for CqlStore {
    fn read_funnel(&self, q: &FunnelQuery) -> Result<FunnelAnswer, FactsError> {
        read::read_funnel(&Rows(self), q)
    }

    fn read_counts(&self, q: &CountsQuery) -> Result<CountsAnswer, FactsError> {
        read::read_counts(&Rows(self), q)
    }

    fn watermarks(&self, app_id: &str) -> Result<Vec<Watermark>, FactsError> {
        let app = app_id.to_string();
        self.block(move |inner| -> Fut<Vec<Watermark>> {
            Box::pin(async move {
                let rows: Vec<(String, String, String, i64, i64)> =
                    inner.rows(st::SELECT_WATERMARKS, (&app,)).await?;
                let mut out = Vec::new();
                for (funnel_id, funnel_version, until, _, _) in rows {
                    out.push(Watermark {
                        app_id: app.clone(),
                        funnel_id,
                        funnel_version,
                        batch_until: until.parse()?,
                    });
                }
                out.sort_by(|a, b| {
                    (&a.funnel_id, &a.funnel_version).cmp(&(&b.funnel_id, &b.funnel_version))
                });
                Ok(out)
            })
        })
    }

    fn speed_apps(&self) -> Result<Vec<String>, FactsError> {
        self.block(move |inner| -> Fut<Vec<String>> {
            Box::pin(async move {
                // The partition keys of the speed tables: a scan of keys only, not of their rows.
                let counts: Vec<(String, String, String)> =
                    inner.rows(st::SELECT_COUNT_SPEED_PARTITIONS, ()).await?;
                let steps: Vec<(String, String, String, String)> =
                    inner.rows(st::SELECT_STEP_SPEED_PARTITIONS, ()).await?;
                let apps: std::collections::BTreeSet<String> = counts
                    .into_iter()
                    .map(|(app, _, _)| app)
                    .chain(steps.into_iter().map(|(app, _, _, _)| app))
                    .collect();
                Ok(apps.into_iter().collect())
            })
        })
    }

    fn runs(&self, limit: usize) -> Result<Vec<RunRecord>, FactsError> {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        self.block(move |inner| -> Fut<Vec<RunRecord>> {
            Box::pin(async move {
                let rows = inner.recent_runs(now_ms() * 1000, limit).await?;
                let mut out = Vec::new();
                for (_, run_id, started_at_ms, finished_at_ms, status, inputs, funnels, n, error) in
                    rows
                {
                    out.push(RunRecord {
                        run_id: RunId(run_id),
                        started_at_ms,
                        finished_at_ms,
                        status: status.parse()?,
                        inputs: serde_json::from_str(&inputs)?,
                        funnels: serde_json::from_str(&funnels)?,
                        rows: n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                        error,
                    });
                }
                Ok(out)
            })
        })
    }
}

/// The CQL [`RowSource`]: each call one or a few single-partition reads. The pointer is read first and
/// names an immutable run partition, so the batch rows of an answer all come from one run.
struct Rows<'a>(&'a CqlStore);

type Range = (String, String);

fn range((lo, hi): (Day, Day)) -> Range {
    (lo.to_string(), hi.to_string())
}

/// Owned copies of a key, for the `'static` futures of the store's runtime.
fn owned(key: Key<'_>) -> OwnedKey {
    (
        key.app_id.to_string(),
        key.funnel_id.to_string(),
        key.funnel_version.to_string(),
    )
}

impl RowSource for Rows<'_> {
    fn pointer(&self, key: Key<'_>) -> Result<Option<Pointer>, FactsError> {
        let (app, fid, ver) = owned(key);
        let p = self
            .0
            .block(move |inner| async move { inner.pointer(&app, &fid, &ver).await })?;
        Ok(p.map(|(batch_until, run, published_at_ms)| Pointer {
            batch_until,
            run: RunId(run),
            published_at_ms,
        }))
    }

    fn latest_published_version(
        &self,
        app_id: &str,
        funnel_id: &str,
    ) -> Result<Option<String>, FactsError> {
        let (app, fid) = (app_id.to_string(), funnel_id.to_string());
        self.0.block(move |inner| async move {
            let marks: Vec<(String, String, String, i64, i64)> =
                inner.rows(st::SELECT_WATERMARKS, (&app,)).await?;
            Ok(marks
                .into_iter()
                .filter(|w| w.0 == fid)
                .max_by_key(|w| (w.4, w.3))
                .map(|w| w.1))
        })
    }

    fn speed_versions(&self, app_id: &str, funnel_id: &str) -> Result<Vec<String>, FactsError> {
        let (app, fid) = (app_id.to_string(), funnel_id.to_string());
        self.0.block(move |inner| async move {
            let versions: Vec<(String,)> =
                inner.rows(st::SELECT_SPEED_VERSIONS, (&app, &fid)).await?;
            Ok(versions.into_iter().map(|v| v.0).collect())
        })
    }

    fn batch_steps(
        &self,
        key: Key<'_>,
        run: RunId,
        days: (Day, Day),
    ) -> Result<Vec<FunnelStepFact>, FactsError> {
        let (app, fid, ver) = owned(key);
        let (lo, hi) = range(days);
        let rows: Vec<StepRow> = self.0.block(move |inner| async move {
            inner
                .rows(st::SELECT_STEPS, (app, fid, ver, run.0, lo, hi))
                .await
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (app_id, funnel_id, funnel_version, day, breakdown, step, actors, m, p) in rows {
            // A total an older version left here (before `funnel facts init` moved it) is not a
            // breakdown value.
            if breakdown == LEGACY_TOTAL_BREAKDOWN {
                continue;
            }
            out.push(FunnelStepFact {
                app_id,
                funnel_id,
                funnel_version,
                day: day.parse()?,
                breakdown,
                step: u32::try_from(step).unwrap_or(0),
                actors: u64::try_from(actors).unwrap_or(0),
                ttc_median_s: m,
                ttc_p90_s: p,
            });
        }
        Ok(out)
    }

    fn batch_totals(
        &self,
        key: Key<'_>,
        run: RunId,
        days: (Day, Day),
    ) -> Result<Vec<FunnelTotalFact>, FactsError> {
        let (app, fid, ver) = owned(key);
        let (lo, hi) = range(days);
        let rows: Vec<TotalRow> = self.0.block(move |inner| async move {
            inner
                .rows(st::SELECT_TOTALS, (app, fid, ver, run.0, lo, hi))
                .await
        })?;
        rows.into_iter()
            .map(|(day, step, actors, m, p)| {
                Ok(FunnelTotalFact {
                    app_id: key.app_id.to_string(),
                    funnel_id: key.funnel_id.to_string(),
                    funnel_version: key.funnel_version.to_string(),
                    day: day.parse()?,
                    step: u32::try_from(step).unwrap_or(0),
                    actors: u64::try_from(actors).unwrap_or(0),
                    ttc_median_s: m,
                    ttc_p90_s: p,
                })
            })
            .collect()
    }

    fn speed_steps(
        &self,
        key: Key<'_>,
        days: (Day, Day),
    ) -> Result<Vec<FunnelStepFact>, FactsError> {
        let (app, fid, ver) = owned(key);
        let by_day: Vec<(String, Vec<SpeedStepRow>)> = self.0.block(move |inner| async move {
            let mut out = Vec::new();
            for day in inner.speed_days(&app, &fid, &ver, Some(days)).await? {
                let rows = inner
                    .rows(st::SELECT_STEPS_SPEED, (&app, &fid, &ver, &day))
                    .await?;
                out.push((day, rows));
            }
            Ok(out)
        })?;
        let mut out = Vec::new();
        for (day, rows) in by_day {
            let day: Day = day.parse()?;
            for (breakdown, step, actors) in rows {
                out.push(FunnelStepFact {
                    app_id: key.app_id.to_string(),
                    funnel_id: key.funnel_id.to_string(),
                    funnel_version: key.funnel_version.to_string(),
                    day,
                    breakdown,
                    step: u32::try_from(step).unwrap_or(0),
                    actors: u64::try_from(actors).unwrap_or(0),
                    ttc_median_s: None,
                    ttc_p90_s: None,
                });
            }
        }
        Ok(out)
    }

    fn batch_counts(
        &self,
        q: &CountsQuery,
        run: RunId,
        days: (Day, Day),
    ) -> Result<Vec<DailyCountFact>, FactsError> {
        let (app, metric) = (q.app_id.clone(), q.metric.clone());
        let (lo, hi) = range(days);
        let rows: Vec<(String, String, String, i64)> = self.0.block(move |inner| async move {
            inner
                .rows(st::SELECT_COUNTS, (app, metric, run.0, lo, hi))
                .await
        })?;
        rows.into_iter()
            .map(|(day, dimension, value, count)| {
                Ok(DailyCountFact {
                    app_id: q.app_id.clone(),
                    day: day.parse()?,
                    metric: q.metric.clone(),
                    dimension,
                    value,
                    count,
                })
            })
            .collect()
    }

    fn speed_counts(
        &self,
        q: &CountsQuery,
        days: (Day, Day),
    ) -> Result<Vec<DailyCountFact>, FactsError> {
        let (app, metric) = (q.app_id.clone(), q.metric.clone());
        let by_day: Vec<(String, Vec<SpeedCountRow>)> = self.0.block(move |inner| async move {
            let mut out = Vec::new();
            for day in inner
                .speed_days(&app, COUNTS_WATERMARK_ID, &metric, Some(days))
                .await?
            {
                let rows = inner
                    .rows(st::SELECT_COUNTS_SPEED, (&app, &metric, &day))
                    .await?;
                out.push((day, rows));
            }
            Ok(out)
        })?;
        let mut out = Vec::new();
        for (day, rows) in by_day {
            let day: Day = day.parse()?;
            for (dimension, value, count) in rows {
                out.push(DailyCountFact {
                    app_id: q.app_id.clone(),
                    day,
                    metric: q.metric.clone(),
                    dimension,
                    value,
                    count,
                });
            }
        }
        Ok(out)
    }

    fn speed_applied_at_ms(&self) -> Result<Option<i64>, FactsError> {
        self.0
            .block(|inner| async move { inner.speed_applied_at().await })
    }
}

impl CqlStore {
    /// Stage rows of a running run with `write`, then record the run's first staged day per key (kept in
    /// memory — this process owns the run — and upserted into `run_keys`).
    fn stage<F>(
        &self,
        run: RunId,
        n: usize,
        firsts: BTreeMap<OwnedKey, Day>,
        write: impl FnOnce(Arc<Inner>) -> F,
    ) -> Result<(), FactsError>
    where
        F: Future<Output = Result<(), FactsError>> + Send + 'static,
    {
        self.block(|inner| async move { inner.require_running(run).await })?;
        self.block(write)?;
        let keys: Vec<(i64, String, String, String, String)> = {
            let mut staged = self.staged();
            let entry = staged.entry(run.0).or_default();
            entry.0 += n as u64;
            firsts
                .into_iter()
                .map(|(k, day)| {
                    let day = day.to_string();
                    let e = entry.1.entry(k.clone()).or_insert_with(|| day.clone());
                    if day < *e {
                        *e = day;
                    }
                    (run.0, k.0, k.1, k.2, e.clone())
                })
                .collect()
        };
        self.block(move |inner| async move { inner.exec_all(st::UPSERT_RUN_KEY, keys).await })?;
        fault::point("stage");
        Ok(())
    }
}

/// The earliest day per key of rows being staged.
fn first_days<'a>(
    rows: impl Iterator<Item = ((&'a str, &'a str, &'a str), Day)>,
) -> BTreeMap<OwnedKey, Day> {
    let mut firsts: BTreeMap<OwnedKey, Day> = BTreeMap::new();
    for ((app, fid, ver), day) in rows {
        let first = firsts
            .entry((app.to_string(), fid.to_string(), ver.to_string()))
            .or_insert(day);
        *first = (*first).min(day);
    }
    firsts
}

#[cfg(test)]
mod tests {
    use crate::{open_store, FactsError};

    #[test]
    fn unreachable_cluster_is_an_error_not_a_hang() {
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        let err = open_store("cql://127.0.0.1:1/funnel")
            .err()
            .expect("no server, no store");
        assert!(matches!(err, FactsError::Cql(_)), "{err}");
    }

    #[cfg(not(feature = "cql-tls"))]
    #[test]
    fn tls_without_tls_support_is_refused() {
        let err = open_store("cql://127.0.0.1:1/funnel?tls=true")
            .err()
            .expect("refused");
        assert!(matches!(err, FactsError::BackendDisabled(_)), "{err}");
    }

    #[cfg(feature = "cql-tls")]
    #[test]
    fn tls_with_a_missing_ca_file_is_an_error() {
        let err = open_store("cql://127.0.0.1:1/funnel?tls=true&ca=/nonexistent/ca.pem")
            .err()
            .expect("refused");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
