//! Crash tests of the fact store through the real `funnel` binary: a process killed (SIGABRT via the
//! `FUNNEL_FAULT` hook) in the middle of publishing a batch run, of staging it, or of applying a speed
//! batch leaves readers with the previous complete results; a rerun then publishes the new ones.
//!
//! The hook exists only in test builds: `facts/fault-injection`, which this crate turns on as a
//! dev-dependency (run them with `cargo test --workspace`, which builds the binary with it).

use std::path::Path;
use std::process::{Command, Output};

use e2e_tests::funnel_bin;
use serde_json::Value;

const UNTIL: &str = "2024-05-10";

fn funnel(args: &[&str], fault: Option<&str>) -> Output {
    let mut cmd = Command::new(funnel_bin());
    cmd.args(args)
        .env_remove("FUNNEL_FAULT")
        .env_remove("FUNNEL_FACTS");
    if let Some(point) = fault {
        cmd.env("FUNNEL_FAULT", point);
    }
    cmd.output().expect("run funnel")
}

fn demo(url: &str, seed: u64, fault: Option<&str>) -> Output {
    let seed = seed.to_string();
    funnel(
        &[
            "facts",
            "demo",
            "--facts",
            url,
            "--batch-until",
            UNTIL,
            "--days",
            "20",
            "--speed-days",
            "2",
            "--seed",
            &seed,
        ],
        fault,
    )
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "funnel failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The process must have died by the injected abort, not exited cleanly or with an error.
fn assert_aborted(out: &Output) {
    assert!(
        !out.status.success(),
        "the faulted run did not crash (was `funnel` built without `facts/fault-injection`? \
         build it with `cargo test --workspace`)"
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(6),
            "not killed by SIGABRT: {}",
            out.status
        );
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("FUNNEL_FAULT"));
}

/// `funnel query … --format json` parsed.
fn query(url: &str, what: &[&str], extra: &[&str]) -> Value {
    let mut args = vec![
        "query",
        "--facts",
        url,
        "--app",
        "demo",
        "--format",
        "json",
        "--breakdown",
    ];
    args.extend_from_slice(what);
    args.extend_from_slice(extra);
    let out = ok(funnel(&args, None));
    serde_json::from_slice(&out.stdout).expect("query prints one JSON document")
}

/// Funnel and hits answers: (days, freshness) of each.
fn snapshot(url: &str, extra: &[&str]) -> (Value, Value, Value) {
    let f = query(url, &["--funnel", "signup"], extra);
    let c = query(url, &["--counts", "hits"], extra);
    (f["days"].clone(), c["days"].clone(), f["freshness"].clone())
}

fn url_in(dir: &Path) -> String {
    format!("sqlite:{}", dir.join("facts.db").display())
}

#[test]
fn killed_publish_leaves_previous_results_and_rerun_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let url = url_in(dir.path());
    ok(demo(&url, 1, None));
    let (steps1, counts1, fresh1) = snapshot(&url, &[]);
    assert_eq!(
        steps1.as_array().unwrap().len(),
        22,
        "20 batch days + 2 speed days"
    );
    assert_eq!(fresh1["watermark"], UNTIL);

    // Killed inside the publish transaction (after the first pointer flip), then mid-staging.
    for point in ["publish", "stage"] {
        let out = demo(&url, 2, Some(point));
        assert_aborted(&out);
        let (steps, counts, fresh) = snapshot(&url, &[]);
        assert_eq!(
            steps, steps1,
            "funnel changed after a run killed at {point}"
        );
        assert_eq!(
            counts, counts1,
            "counts changed after a run killed at {point}"
        );
        assert_eq!(fresh["batch_run"], fresh1["batch_run"]);
    }

    // The rerun publishes seed 2; its batch days equal those of a store that only ever saw seed 2.
    let out = ok(demo(&url, 2, None));
    assert!(String::from_utf8_lossy(&out.stdout).contains("published run"));
    let batch_days = ["--to", "2024-05-09"];
    let (steps2, counts2, fresh2) = snapshot(&url, &batch_days);
    assert_ne!(fresh2["batch_run"], fresh1["batch_run"]);
    assert!(fresh2["batch_run"].as_i64().unwrap() > fresh1["batch_run"].as_i64().unwrap() + 1);
    let clean = tempfile::tempdir().unwrap();
    let clean_url = url_in(clean.path());
    ok(demo(&clean_url, 2, None));
    let (want_steps, want_counts, _) = snapshot(&clean_url, &batch_days);
    assert_eq!(steps2, want_steps);
    assert_eq!(counts2, want_counts);
    let seed1_batch_days: Vec<Value> = steps1.as_array().unwrap()[..20].to_vec();
    assert_ne!(
        Value::Array(seed1_batch_days),
        steps2,
        "seed 1 and seed 2 must differ for this test to mean anything"
    );
}

#[test]
fn killed_speed_batch_is_applied_exactly_once_on_rerun() {
    let clean = tempfile::tempdir().unwrap();
    let clean_url = url_in(clean.path());
    ok(demo(&clean_url, 7, None));
    let want = snapshot(&clean_url, &[]);

    let dir = tempfile::tempdir().unwrap();
    let url = url_in(dir.path());
    let out = demo(&url, 7, Some("speed"));
    assert_aborted(&out);
    // The batch run was published before the crash; nothing of the killed speed batch is visible.
    let (steps, _, _) = snapshot(&url, &[]);
    let speed_days: Vec<&Value> = steps
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["layer"] == "speed")
        .collect();
    assert_eq!(
        speed_days.len(),
        0,
        "a killed speed batch left rows: {speed_days:?}"
    );

    ok(demo(&url, 7, None));
    let (steps, counts, _) = snapshot(&url, &[]);
    assert_eq!(
        steps, want.0,
        "speed batches applied other than exactly once"
    );
    assert_eq!(counts, want.1);
}

/// What `cargo build`/`cargo install` make of `funnel` has no fault hooks (and reads no `FUNNEL_FAULT`):
/// only this crate's dev-dependency turns the feature on.
#[test]
fn builds_of_the_binary_leave_fault_injection_out() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = e2e_tests::workspace_root().join("Cargo.toml");
    let tree = |package: &str, edges: &str| {
        let out = Command::new(&cargo)
            .args(["tree", "--offline", "--locked", "-e", edges, "-p", package])
            .arg("--manifest-path")
            .arg(&manifest)
            .output()
            .expect("run cargo tree");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let cli = tree("cli", "features");
    assert!(cli.contains("facts feature \"default\""), "{cli}");
    assert!(!cli.contains("fault-injection"), "{cli}");
    // The tests' own build has it (what the crash tests above rely on).
    assert!(tree("e2e-tests", "features").contains("facts feature \"fault-injection\""));
}
