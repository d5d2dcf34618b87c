//! The batch job as a library call, on the project's generated snapshot (`testdata/snapshot`): what it
//! reports equals what it published, its progress sink hears every phase in order, the facts do not
//! depend on threads or ranges, and its errors say what kind of failure they are.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use facts::RunStatus;
use funnelizer::{ErrorKind, FunnelSet, Job, JobOptions, Phase, Progress, RunInputs, Snapshot};

/// 2026-11-01T00:00:00Z, the end of the testdata's history.
const NOW_S: i64 = 1_793_491_200;

fn testdata() -> (PathBuf, FunnelSet) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let set = FunnelSet::load(&root.join("funnels.toml")).unwrap();
    (root.join("snapshot"), set)
}

/// Keeps every report.
#[derive(Default)]
struct Recorder(Mutex<Vec<Snapshot>>);

impl Progress for Recorder {
    fn update(&self, now: &Snapshot) {
        self.0.lock().unwrap().push(now.clone());
    }
}

#[test]
fn a_job_publishes_what_it_reports_and_tells_its_progress() {
    let (data, set) = testdata();
    let dir = tempfile::tempdir().unwrap();
    let store =
        facts::open_store(&format!("sqlite:{}", dir.path().join("f.db").display())).unwrap();
    let mut options = JobOptions::new(vec![data.clone()], NOW_S);
    options.threads = Some(2);
    options.progress_interval = Duration::from_millis(1);
    let recorder = Arc::new(Recorder::default());
    let report = Job::new(set.clone(), options)
        .with_progress(recorder.clone())
        .run(store.as_ref())
        .unwrap();

    let runs = store.runs(5).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].run_id, runs[0].status),
        (report.run, RunStatus::Published)
    );
    let recorded = RunInputs::of(&runs[0]).unwrap();
    assert_eq!(recorded, report.inputs);
    assert_eq!(recorded.apps, ["app-001", "app-002", "app-003"]);
    assert_eq!(recorded.events.len(), report.events_sstables);
    assert_eq!(
        recorded.labels("any_order_engagement", &set.funnels[3].version),
        Some(
            &[
                "≥ 1 step".to_string(),
                "≥ 2 steps".into(),
                "≥ 3 steps".into()
            ][..]
        )
    );
    assert_eq!(report.threads, 2);
    assert_eq!(report.timelines, funnelizer::Timelines::Streamed);
    assert!(report.actors > 0 && report.rows_read >= report.timeline_rows);
    // (Chunks that straddle two ranges are read by both.)
    assert!(report.disk_bytes_read > 0 && report.bytes_on_disk > 0);
    let entered: u64 = report
        .published
        .facts
        .iter()
        .filter(|f| f.funnel_id == "install_to_purchase" && f.step == 1)
        .map(|f| f.actors)
        .sum();
    assert_eq!(report.actors_per_level(&set.funnels[0])[0], entered);

    let seen = recorder.0.lock().unwrap();
    let mut phases: Vec<Phase> = seen.iter().map(|s| s.phase).collect();
    phases.dedup();
    assert_eq!(
        phases,
        [
            Phase::Opening,
            Phase::Streaming,
            Phase::Publishing,
            Phase::Done
        ]
    );
    let last = seen.last().unwrap();
    assert_eq!(
        (last.rows_read, last.disk_bytes_total),
        (report.rows_read, report.bytes_on_disk)
    );
    assert!(seen.windows(2).all(|w| w[0].rows_read <= w[1].rows_read));
}

#[test]
fn facts_do_not_depend_on_threads_or_ranges() {
    let (data, set) = testdata();
    let dir = tempfile::tempdir().unwrap();
    let mut facts = Vec::new();
    for (threads, ranges) in [(1, 1), (2, 8), (3, 5)] {
        let url = format!(
            "sqlite:{}",
            dir.path().join(format!("{threads}.db")).display()
        );
        let store = facts::open_store(&url).unwrap();
        let mut options = JobOptions::new(vec![data.clone()], NOW_S);
        options.threads = Some(threads);
        options.ranges_per_thread = ranges;
        let report = Job::new(set.clone(), options).run(store.as_ref()).unwrap();
        facts.push(report.published.facts);
    }
    assert!(!facts[0].is_empty());
    assert!(facts.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn errors_say_what_kind_of_failure_they_are() {
    let (data, set) = testdata();
    let dir = tempfile::tempdir().unwrap();
    let store =
        facts::open_store(&format!("sqlite:{}", dir.path().join("f.db").display())).unwrap();
    let run = |options: JobOptions| Job::new(set.clone(), options).run(store.as_ref());

    let err = run(JobOptions::new(vec![dir.path().join("missing")], NOW_S)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Input, "{err}");

    let mut options = JobOptions::new(vec![data.clone()], NOW_S);
    options.schema = Some(dir.path().join("no-schema.cql"));
    assert_eq!(run(options).unwrap_err().kind(), ErrorKind::Config);

    let mut options = JobOptions::new(vec![data.clone()], NOW_S);
    options.snapshot = Some("no-such-tag".into());
    let err = run(options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Input, "{err}");
    assert!(store.runs(5).unwrap().is_empty(), "nothing was begun");
}
