//! The batch job as a library call, on the project's generated snapshot (`testdata/snapshot`): what it
//! reports equals what it published, its progress sink hears every phase in order, the facts do not
//! depend on threads or ranges, and its errors say what kind of failure they are.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use facts::{FactReader, RunStatus};
use funnelizer::{ErrorKind, FunnelSet, Job, JobOptions, JobState, Phase, Progress, RunInputs};
use sstable_reader::Snapshot;

/// 2026-11-01T00:00:00Z, the end of the testdata's history.
const NOW_S: i64 = 1_793_491_200;

fn testdata() -> (PathBuf, FunnelSet) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let set = FunnelSet::load(&root.join("funnels.toml")).unwrap();
    (root.join("snapshot"), set)
}

/// Keeps every report.
#[derive(Default)]
struct Recorder(Mutex<Vec<JobState>>);

impl Progress for Recorder {
    fn update(&self, now: &JobState) {
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
        .run(&store)
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
        let report = Job::new(set.clone(), options).run(&store).unwrap();
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
    let run = |options: JobOptions| Job::new(set.clone(), options).run(&store);

    let err = run(JobOptions::new(vec![dir.path().join("missing")], NOW_S)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Input, "{err}");

    let mut options = JobOptions::new(vec![data.clone()], NOW_S);
    options.schema = Some(dir.path().join("no-schema.cql"));
    assert_eq!(run(options).unwrap_err().kind(), ErrorKind::Config);

    let mut options = JobOptions::new(vec![data.clone()], NOW_S);
    options.snapshot = Snapshot::Tag("no-such-tag".into());
    let err = run(options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Input, "{err}");
    assert!(store.runs(5).unwrap().is_empty(), "nothing was begun");

    // A misspelt table: the error lists every table found, the right one among them.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/funnels.toml");
    let text = std::fs::read_to_string(root).unwrap();
    let misspelt = format!("[source]\nevents = {{ table = \"tracking.evnts\" }}\n{text}");
    let set = FunnelSet::parse(&misspelt, "misspelt.toml").unwrap();
    let err = Job::new(set, JobOptions::new(vec![data], NOW_S))
        .run(&store)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Input, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("no SSTables of tracking.evnts"),
        "{message}"
    );
    assert!(message.contains("tracking.events"), "{message}");
}

/// A copy of the testdata whose table directories hold a second, older snapshot (`zz-older`, by its
/// manifest's `created_at`, only the first SSTable of each table) next to `funnel-gen` (all of them).
fn two_snapshots(root: &std::path::Path) -> PathBuf {
    let (data, _) = testdata();
    for t in std::fs::read_dir(data.join("tracking")).unwrap() {
        let table = t.unwrap().path();
        let copy = root.join("tracking").join(table.file_name().unwrap());
        for (tag, all) in [("funnel-gen", true), ("zz-older", false)] {
            let to = copy.join("snapshots").join(tag);
            std::fs::create_dir_all(&to).unwrap();
            for f in std::fs::read_dir(table.join("snapshots/funnel-gen")).unwrap() {
                let f = f.unwrap().path();
                let name = f.file_name().unwrap().to_str().unwrap().to_string();
                if all || name.starts_with("nb-1-") || name == "schema.cql" {
                    std::fs::copy(&f, to.join(&name)).unwrap();
                }
            }
        }
        std::fs::write(
            copy.join("snapshots/zz-older/manifest.json"),
            r#"{"created_at": "2026-10-01T00:00:00Z", "files": ["nb-1-big-Data.db"]}"#,
        )
        .unwrap();
    }
    root.to_path_buf()
}

#[test]
fn the_newest_snapshot_choice_reads_one_tag_the_newest() {
    let (_, set) = testdata();
    let dir = tempfile::tempdir().unwrap();
    let data = two_snapshots(&dir.path().join("data"));
    let run = |snapshot: Snapshot, db: &str| {
        let store =
            facts::open_store(&format!("sqlite:{}", dir.path().join(db).display())).unwrap();
        let mut options = JobOptions::new(vec![data.clone()], NOW_S);
        options.snapshot = snapshot;
        Job::new(set.clone(), options).run(&store)
    };
    let newest = run(Snapshot::Newest, "newest.db").unwrap();
    let tagged = run(Snapshot::Tag("funnel-gen".into()), "tagged.db").unwrap();
    let older = run(Snapshot::Tag("zz-older".into()), "older.db").unwrap();
    assert_eq!(newest.published.facts, tagged.published.facts);
    assert_eq!(newest.events_sstables, 3);
    assert_eq!(older.events_sstables, 1);
    assert_ne!(newest.published.facts, older.published.facts);
    // Without a choice, two snapshots and no live SSTables: discovery names the tags.
    let err = run(Snapshot::Live, "live.db").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Input, "{err}");
}
