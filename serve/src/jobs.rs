//! Funnels computed in the background: each save of the browser starts a [`funnelizer::Job`] — the
//! batch job `funnel run` and the scheduler run — over all history under the data paths, one job at a
//! time; the job publishes its run atomically (readers switch to it at once), and [`Jobs::get`] tells
//! how far it is (`GET /api/jobs/{id}`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use funnelizer::{FunnelSet, Job, JobOptions, JobState, Phase, Progress};
use serde::Serialize;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for the job before it.
    Queued,
    /// Reading and computing.
    Running,
    /// Published.
    Done,
    /// Failed; the store keeps the previous results.
    Failed,
}

/// What `GET /api/jobs/{id}` answers.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    /// The job's id.
    pub id: u64,
    /// Where it is.
    pub state: State,
    /// The job's stage (`opening`, `streaming`, `shuffling`, `evaluating`, `publishing`, `done`).
    pub phase: &'static str,
    /// 0 … 1: on-disk bytes read of all (shuffle buckets in its second phase).
    pub progress: f64,
    /// On-disk bytes read so far.
    pub disk_bytes_read: u64,
    /// On-disk bytes of every SSTable it reads.
    pub disk_bytes_total: u64,
    /// Row versions read so far.
    pub rows_read: u64,
    /// The funnels it computes: (id, version).
    pub funnels: Vec<FunnelRef>,
    /// The run it published.
    pub run: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Unix ms.
    pub created_at_ms: i64,
    /// Unix ms, when it ended.
    pub finished_at_ms: Option<i64>,
}

/// A funnel version.
#[derive(Debug, Clone, Serialize)]
pub struct FunnelRef {
    /// Its id.
    pub id: String,
    /// Its version.
    pub version: String,
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Opening => "opening",
        Phase::Streaming => "streaming",
        Phase::Shuffling => "shuffling",
        Phase::Evaluating => "evaluating",
        Phase::Publishing => "publishing",
        Phase::Done => "done",
        _ => "running",
    }
}

/// One job's status, updated by the job's progress callbacks.
struct Entry(Mutex<JobStatus>);

impl Entry {
    fn with(&self, f: impl FnOnce(&mut JobStatus)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }
    fn get(&self) -> JobStatus {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Progress for Entry {
    fn update(&self, now: &JobState) {
        self.with(|s| {
            s.phase = phase_name(now.phase);
            s.disk_bytes_read = now.disk_bytes_read;
            s.disk_bytes_total = now.disk_bytes_total;
            s.rows_read = now.rows_read;
            s.progress = if now.phase == Phase::Done {
                1.0
            } else if now.buckets_total > 0 {
                now.buckets_done as f64 / now.buckets_total as f64
            } else if now.disk_bytes_total > 0 {
                (now.disk_bytes_read as f64 / now.disk_bytes_total as f64).min(1.0)
            } else {
                0.0
            };
        });
    }
}

/// The jobs of a server (kept while it runs).
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    all: Mutex<BTreeMap<u64, Arc<Entry>>>,
    /// One job computes at a time: each reads all history with every core.
    running: Arc<Mutex<()>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Jobs {
    /// Starts computing `set` with `options` into `store` on a thread of its own; returns its id.
    pub fn start(
        &self,
        set: FunnelSet,
        options: JobOptions,
        store: Arc<facts::Store>,
    ) -> JobStatus {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let entry = Arc::new(Entry(Mutex::new(JobStatus {
            id,
            state: State::Queued,
            phase: "queued",
            progress: 0.0,
            disk_bytes_read: 0,
            disk_bytes_total: 0,
            rows_read: 0,
            funnels: set
                .funnels
                .iter()
                .map(|f| FunnelRef {
                    id: f.id.clone(),
                    version: f.version.clone(),
                })
                .collect(),
            run: None,
            error: None,
            created_at_ms: now_ms(),
            finished_at_ms: None,
        })));
        self.all
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, entry.clone());
        let running = self.running.clone();
        let status = entry.get();
        std::thread::spawn(move || {
            let _one_at_a_time = running.lock().unwrap_or_else(|p| p.into_inner());
            entry.with(|s| s.state = State::Running);
            let sink: Arc<dyn Progress> = entry.clone();
            let result = Job::new(set, options).with_progress(sink).run(&*store);
            entry.with(|s| {
                s.finished_at_ms = Some(now_ms());
                match result {
                    Ok(report) => {
                        s.state = State::Done;
                        s.phase = "done";
                        s.progress = 1.0;
                        s.run = Some(report.run.0);
                    }
                    Err(e) => {
                        tracing::warn!(job = id, error = %funnelizer::chain(&e), "job failed");
                        s.state = State::Failed;
                        s.error = Some(funnelizer::chain(&e));
                    }
                }
            });
        });
        status
    }

    /// A job's status.
    pub fn get(&self, id: u64) -> Option<JobStatus> {
        let all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        all.get(&id).map(|e| e.get())
    }
}
