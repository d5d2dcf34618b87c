//! A run killed halfway leaves the previous results published and a failed-run record: killed inside the
//! publish transaction, after staging, and by SIGKILL at an arbitrary moment. The next attempt is not
//! skipped (a crashed run is not a success) and publishes.

mod schedule_support;

use std::time::Duration;

use schedule_support::*;

const FUNNELS: [&str; 1] = ["activation"];

fn watermarks(env: &Env) -> Vec<String> {
    let store = env.store();
    APPS.iter()
        .flat_map(|a| store.watermarks(a).unwrap())
        .map(|w| {
            format!(
                "{} {} {} {}",
                w.app_id, w.funnel_id, w.funnel_version, w.batch_until
            )
        })
        .collect()
}

#[test]
fn a_run_killed_halfway_keeps_the_previous_results_and_records_the_failure() {
    let env = Env::new(400, 2);
    env.config_at(NOW, "");
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let before = env.results(&FUNNELS);
    let marks = watermarks(&env);
    assert!(before.contains("Ok(FunnelAnswer"), "{before}");
    assert!(marks.iter().all(|m| m.ends_with("2025-03-01")), "{marks:?}");

    // A day later the inputs count as changed; every attempt below is killed before it publishes.
    env.config_at("2025-03-02", "");
    for fault in ["stage", "publish"] {
        let o = env.once(&[], &[("FUNNEL_FAULT", fault)]);
        assert_eq!(code(&o), 8, "{fault}: {}", stderr(&o));
        assert_eq!(env.results(&FUNNELS), before, "{fault}: results changed");
        assert_eq!(watermarks(&env), marks, "{fault}");
        let st = env.state();
        assert_eq!(st["attempts"][0]["outcome"], "crashed");
        assert!(
            st["attempts"][0]["error"]
                .as_str()
                .unwrap()
                .contains("killed by signal 6"),
            "{st}"
        );
    }

    // SIGKILL of the child at whatever point it reached (stopped first so it cannot finish meanwhile; the
    // state file names the child as soon as it is spawned).
    let t0 = now_ms();
    let sched = env.spawn_once(&[], &[]);
    let pid = env
        .wait_for_child(t0, Duration::from_secs(20))
        .expect("child pid in the state file");
    assert!(
        signal(pid, "STOP"),
        "the child ended before it could be stopped"
    );
    assert!(signal(pid, "KILL"));
    let out = sched.wait_with_output().unwrap();
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("killed by signal 9"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.results(&FUNNELS), before);
    assert_eq!(watermarks(&env), marks);

    // Every failure is on record: the scheduler's attempts and the store's runs.
    let s = env.status(&[]);
    let crashed = s.lines().filter(|l| l.contains(" crashed ")).count();
    assert_eq!(crashed, 3, "{s}");
    let j: serde_json::Value = serde_json::from_str(&env.status(&["--json"])).unwrap();
    let statuses: Vec<&str> = j["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    // stage and publish had begun a run (now abandoned, rows dropped); the SIGKILL may have hit earlier.
    assert!(
        statuses.iter().filter(|s| **s == "abandoned").count() >= 2,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&"published"), "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == "published").count(),
        1,
        "{statuses:?}"
    );

    // The next attempt is not skipped and publishes the new day.
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(watermarks(&env).iter().all(|m| m.ends_with("2025-03-02")));
    assert_ne!(env.results(&FUNNELS), before);
}

#[test]
fn the_timeout_and_the_memory_budget_kill_the_run_and_say_so() {
    let env = Env::new(300, 2);
    env.config_at(NOW, "");
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // The facts, not the run ids: a child can publish in the moment between the supervisor's last look
    // and its SIGKILL (the facts are then the same numbers under a new run id).
    let facts = || -> Vec<_> {
        FUNNELS
            .iter()
            .map(|f| funnel_days(&env.store(), f))
            .collect()
    };
    let before = facts();

    // The config's timeout line is replaced by a tiny one.
    let tight = |line: &str| {
        let text = std::fs::read_to_string(&env.config).unwrap();
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("timeout"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&env.config, format!("{text}{line}\n")).unwrap();
    };
    tight("timeout = \"1ms\"");
    let o = env.once(&["--force"], &[]);
    assert_eq!(code(&o), 8, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("killed after the timeout (1ms)"),
        "{}",
        stderr(&o)
    );

    env.config_at(NOW, "memory_budget = \"1MiB\"");
    let o = env.once(&["--force"], &[]);
    assert_eq!(code(&o), 8, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("passed the budget of 1 MiB"),
        "{}",
        stderr(&o)
    );

    assert_eq!(facts(), before);
    let st = env.state();
    assert_eq!(st["attempts"][0]["outcome"], "crashed");
    assert_eq!(st["attempts"][1]["outcome"], "crashed");
}
