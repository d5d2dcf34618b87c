//! Helpers shared by the end-to-end tests: where the workspace, the built `funnel` binary and the
//! shared real SSTables are; running the binary; reading the facts a run stored.

use std::path::{Path, PathBuf};
use std::process::Command;

use facts::{FactReader, FunnelQuery, FunnelStepFact};
use funnelizer::FunnelSet;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace")
        .to_path_buf()
}

/// `../shared/sstables`, read in place (never copied into the project).
pub fn shared_sstables() -> PathBuf {
    workspace_root().join("../shared/sstables")
}

/// The `funnel` binary built by `cargo test --workspace` (the `cli` package has integration tests, so
/// cargo builds its binary next to the test executables' `deps/` directory before any test runs).
pub fn funnel_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("funnel{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds the binary)",
        bin.display()
    );
    bin
}

/// The tools directory that `.ci/run` fills (`.tools/`: the Python venv, the tansu broker).
pub fn tools_dir() -> PathBuf {
    workspace_root().join(".tools")
}

/// Runs `funnel ARGS`, which must succeed; returns its stdout and stderr.
pub fn run_funnel(args: &[&str]) -> (String, String) {
    let out = Command::new(funnel_bin())
        .args(args)
        .output()
        .expect("run funnel");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "funnel {args:?}: {stderr}");
    (stdout, stderr)
}

/// Moves a generated snapshot's SSTables into their table directories (the layout of a live node, where
/// Cassandra writes no schema.cql); the snapshots' `schema.cql` statements are appended to
/// `keep_schema`, kept aside.
pub fn make_live(data: &Path, keep_schema: &Path) {
    let ks = data.join("tracking");
    for table in std::fs::read_dir(&ks).unwrap() {
        let table = table.unwrap().path();
        let snapshots = table.join("snapshots");
        for tag in std::fs::read_dir(&snapshots).unwrap() {
            let tag = tag.unwrap().path();
            for f in std::fs::read_dir(&tag).unwrap() {
                let f = f.unwrap().path();
                let name = f.file_name().unwrap().to_owned();
                if name == "schema.cql" {
                    let mut all = std::fs::read_to_string(keep_schema).unwrap_or_default();
                    all.push_str(&std::fs::read_to_string(&f).unwrap());
                    std::fs::write(keep_schema, all).unwrap();
                } else if name != "manifest.json" {
                    std::fs::rename(&f, table.join(name)).unwrap();
                }
            }
        }
        std::fs::remove_dir_all(&snapshots).unwrap();
    }
}

/// Facts in one order: app, funnel, version, day, breakdown, step.
pub fn sort_facts(mut v: Vec<FunnelStepFact>) -> Vec<FunnelStepFact> {
    v.sort_by(|a, b| {
        (
            &a.app_id,
            &a.funnel_id,
            &a.funnel_version,
            a.day,
            &a.breakdown,
            a.step,
        )
            .cmp(&(
                &b.app_id,
                &b.funnel_id,
                &b.funnel_version,
                b.day,
                &b.breakdown,
                b.step,
            ))
    });
    v
}

/// What the store answers for every app and funnel of `set` (with breakdowns), sorted.
pub fn stored_facts(
    store: &dyn FactReader,
    set: &FunnelSet,
    apps: &[String],
) -> Vec<FunnelStepFact> {
    let mut out = Vec::new();
    for app in apps {
        for f in &set.funnels {
            let mut q = FunnelQuery::new(app, &f.id);
            q.funnel_version = Some(f.version.clone());
            q.breakdown = true;
            let answer = store.read_funnel(&q).expect("read the facts");
            for d in answer.days {
                for s in d.steps {
                    out.push(FunnelStepFact {
                        app_id: app.clone(),
                        funnel_id: f.id.clone(),
                        funnel_version: f.version.clone(),
                        day: d.day,
                        breakdown: s.breakdown,
                        step: s.step,
                        actors: s.actors,
                        ttc_median_s: s.ttc_median_s,
                        ttc_p90_s: s.ttc_p90_s,
                    });
                }
            }
        }
    }
    sort_facts(out)
}
