//! Two schedulers on one store never overlap: one holding the lock (its run frozen mid-way) turns the other
//! away with exit 4; many started at once run one at a time, and every published run is one exit 0.

mod schedule_support;

use std::time::Duration;

use schedule_support::*;

#[test]
fn a_second_scheduler_is_turned_away_while_a_run_is_in_progress() {
    let env = Env::new(300, 2);
    env.config_at(NOW, "");
    let t0 = now_ms();
    let first = env.spawn_once(&[], &[]);
    let first_pid = first.id();
    let pid = env
        .wait_for_child(t0, Duration::from_secs(20))
        .expect("first run's child");
    // Freeze the first run so it is certainly in progress while the second starts.
    assert!(
        signal(pid, "STOP"),
        "the first run ended before it could be frozen"
    );
    let second = env.once(&["--force"], &[]);
    let second_long = {
        // The long-running mode skips its tick the same way (and keeps running; stopped by pid here).
        env.write_config(&format!("now = \"{NOW}\"\nevery = \"1h\"\nlog = \"json\""));
        let mut c = std::process::Command::new(e2e_tests::funnel_bin());
        let mut child = c
            .args(["schedule", "--config"])
            .arg(&env.config)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut busy_line = String::new();
        {
            use std::io::BufRead;
            let mut r = std::io::BufReader::new(child.stderr.as_mut().unwrap());
            while busy_line.is_empty()
                || !busy_line.contains("\"attempt_end\"") && !busy_line.contains("\"busy\"")
            {
                busy_line.clear();
                if r.read_line(&mut busy_line).unwrap() == 0 {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        busy_line
    };
    assert!(signal(pid, "CONT"));
    let first = first.wait_with_output().unwrap();
    assert_eq!(code(&second), 4, "{}", stderr(&second));
    assert_eq!(
        first_pid_of(&stderr(&second)),
        first_pid.to_string(),
        "the busy message names the holder"
    );
    assert!(second_long.contains("\"event\":\"busy\""), "{second_long}");
    assert_eq!(code(&first), 0, "{}", stderr(&first));
    let runs = env.store().runs(10).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
}

/// The pid named in a "busy" message ("… (pid N since …)").
fn first_pid_of(msg: &str) -> String {
    msg.split("(pid ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or("?")
        .to_string()
}

#[test]
fn schedulers_started_together_run_one_at_a_time() {
    let env = Env::new(200, 1);
    env.config_at(NOW, "");
    let mut zeros = 0;
    for _round in 0..3 {
        let children: Vec<_> = (0..4).map(|_| env.spawn_once(&["--force"], &[])).collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            match code(&out) {
                0 => zeros += 1,
                4 => {}
                other => panic!("exit {other}: {}", stderr(&out)),
            }
        }
    }
    assert!(zeros >= 3, "at least one scheduler per round ran");
    // Every attempt that held the lock is in the state; their time spans never overlap.
    let st = env.state();
    let mut spans: Vec<(i64, i64)> = st["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["started_at_ms"].as_i64().unwrap(),
                a["finished_at_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(spans.len(), zeros);
    spans.sort_unstable();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "overlapping attempts {w:?}");
    }
    let published = env
        .store()
        .runs(100)
        .unwrap()
        .iter()
        .filter(|r| r.status == facts::RunStatus::Published)
        .count();
    assert_eq!(published, zeros);
}

#[test]
fn the_run_of_a_killed_scheduler_still_blocks_the_next_one() {
    let env = Env::new(300, 2);
    env.config_at(NOW, "");
    let t0 = now_ms();
    let sched = env.spawn_once(&[], &[]);
    let sched_pid = sched.id();
    let run_pid = env
        .wait_for_child(t0, Duration::from_secs(20))
        .expect("child");
    assert!(
        signal(run_pid, "STOP"),
        "the run ended before it could be frozen"
    );
    // The scheduler dies (its lock goes with it); its run lives on, frozen.
    assert!(signal(sched_pid, "KILL"));
    let out = sched.wait_with_output().unwrap();
    assert_eq!(out.status.code(), None, "killed");
    let o = env.once(&["--force"], &[]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "the run (pid {run_pid}) of a scheduler that was stopped"
        )),
        "{}",
        stderr(&o)
    );
    // Once the orphan is gone the next attempt runs, and the cut-short attempt is on record.
    assert!(signal(run_pid, "KILL"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{run_pid}/cmdline")).exists()
        && std::fs::read(format!("/proc/{run_pid}/cmdline")).is_ok_and(|c| !c.is_empty())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let st = env.state();
    assert_eq!(st["attempts"][0]["outcome"], "published");
    assert_eq!(st["attempts"][1]["outcome"], "crashed");
    assert!(st["attempts"][1]["error"]
        .as_str()
        .unwrap()
        .contains("interrupted"));
}
