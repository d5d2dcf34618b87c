//! New funnels are computed over all history, and unchanged inputs are skipped: with `--once` (cron) and
//! in the long-running mode, which rereads the funnels file before every tick.

mod schedule_support;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::funnel_bin;
use facts::FunnelQuery;
use schedule_support::*;

#[test]
fn a_funnel_added_between_runs_is_computed_over_all_history_and_unchanged_inputs_are_skipped() {
    let env = Env::new(400, 2);
    env.config_at(NOW, "");
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 3, "unchanged inputs are skipped: {}", stderr(&o));
    assert!(
        !stderr(&o).contains("run|"),
        "a skipped attempt starts no run: {}",
        stderr(&o)
    );

    // Add a funnel: the next attempt runs (and says why) and the new funnel covers all history.
    std::fs::write(&env.funnels, format!("{FUNNELS_V1}\n{FUNNEL_ADDED}")).unwrap();
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("funnel click_to_open@"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("is new"), "{}", stderr(&o));
    let store = env.store();
    let added = funnel_days(&store, "click_to_open");

    // The same funnels computed from scratch into a fresh store by `funnel run`.
    let fresh = env.dir.path().join("fresh.db");
    let out = Command::new(funnel_bin())
        .args([
            "run",
            "--quiet",
            "--snapshot",
            "nightly",
            "--now",
            NOW,
            "--data",
        ])
        .arg(&env.data)
        .arg("--funnels")
        .arg(&env.funnels)
        .arg("--facts")
        .arg(format!("sqlite:{}", fresh.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = facts::open_store(&format!("sqlite:{}", fresh.display())).unwrap();
    assert_eq!(added, funnel_days(&fresh, "click_to_open"));
    // All history: the first day with an entry is the first generated day (10 days before 2025-03-01).
    for (app, d) in &added {
        let first = d.iter().find(|d| !d.steps.is_empty()).expect("entries");
        assert_eq!(first.day.to_string(), "2025-02-19", "{app}");
        assert!(
            d.iter().filter(|d| !d.steps.is_empty()).count() >= 9,
            "{app}: {d:?}"
        );
    }
    // The old funnel is unchanged by the new run (same version, same values).
    assert_eq!(
        funnel_days(&store, "activation"),
        funnel_days(&fresh, "activation")
    );
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
}

/// Reads JSON log lines of a running scheduler until `want` matches one (or the deadline passes).
fn until(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    deadline: Instant,
    seen: &mut Vec<serde_json::Value>,
    want: impl Fn(&serde_json::Value) -> bool,
) -> Option<serde_json::Value> {
    while Instant::now() < deadline {
        let line = lines.next()?.ok()?;
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        seen.push(v.clone());
        if want(&v) {
            return Some(v);
        }
    }
    None
}

#[test]
fn the_long_running_scheduler_rereads_funnels_each_tick() {
    let env = Env::new(200, 1);
    env.config_at(NOW, "every = \"1s\"\nlog = \"json\"");
    let mut child = Command::new(funnel_bin())
        .args(["schedule", "--config"])
        .arg(&env.config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let end = |o: &'static str| {
        move |v: &serde_json::Value| v["event"] == "attempt_end" && v["outcome"] == o
    };
    let first = until(&mut lines, deadline, &mut seen, end("published"));
    let skipped = until(&mut lines, deadline, &mut seen, end("skipped"));
    std::fs::write(&env.funnels, format!("{FUNNELS_V1}\n{FUNNEL_ADDED}")).unwrap();
    let second = until(&mut lines, deadline, &mut seen, end("published"));
    // Ours, by pid.
    child.kill().unwrap();
    child.wait().unwrap();
    let first = first.unwrap_or_else(|| panic!("no first run: {seen:#?}"));
    assert!(skipped.is_some(), "{seen:#?}");
    let second = second.unwrap_or_else(|| panic!("no run after the funnel was added: {seen:#?}"));
    assert!(
        second["reason"].as_str().unwrap().contains("click_to_open"),
        "{second}"
    );
    assert!(second["run_id"].as_i64() > first["run_id"].as_i64());
    let store = env.store();
    let a = store
        .read_funnel(&FunnelQuery::new(APPS[0], "click_to_open"))
        .unwrap();
    assert!(a.days.iter().any(|d| !d.steps.is_empty()));
}
