//! `funnel schedule --once` exit codes, one per outcome, and what `funnel status` shows afterwards: real
//! generated SSTables, a real SQLite store, real `funnel run` children.

mod schedule_support;

use std::process::Command;

use schedule_support::*;

#[test]
fn once_exit_codes_distinguish_every_outcome_and_status_shows_them() {
    let env = Env::new(300, 2);
    env.config_at(NOW, "");

    // 0: first run publishes.
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("published: run 1"), "{}", stderr(&o));

    // 3: nothing changed.
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("skipped: inputs (4 SSTables) and funnel versions (1) unchanged since run 1"),
        "{}",
        stderr(&o)
    );

    // 4: another scheduler holds the lock (here a shell holding the same flock, until we kill it).
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg("exec 9>\"$1\" && flock -x 9 && echo locked && exec sleep 30")
        .arg("sh")
        .arg(env.lock_path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
    }
    let o = env.once(&["--force"], &[]);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("another scheduler holds"),
        "{}",
        stderr(&o)
    );

    // 5: a broken funnels file (the file is reread on every run) …
    std::fs::write(
        &env.funnels,
        "[[funnel]]\nid = \"x\"\nsteps = [ { evnt = \"a\" } ]\n",
    )
    .unwrap();
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 5, "{}", stderr(&o));
    assert!(stderr(&o).contains("funnels.toml:"), "{}", stderr(&o));
    std::fs::write(&env.funnels, FUNNELS_V1).unwrap();
    // … and a broken config.
    env.write_config("every = \"often\"");
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 5, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("schedule.toml: every = \"often\""),
        "{}",
        stderr(&o)
    );

    // 6: the data path is gone.
    std::fs::write(
        &env.config,
        format!("facts = \"sqlite:facts.db\"\nfunnels = \"funnels.toml\"\ncache = \"cache\"\ndata = [\"nowhere\"]\nnow = \"{NOW}\"\n"),
    )
    .unwrap();
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 6, "{}", stderr(&o));

    // 6: a corrupt SSTable makes the run itself fail reading it.
    env.config_at(NOW, "");
    let events = sstables_of(&env.data, "events");
    let (data_db, pristine) = corrupt_data_db(&events[0]);
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("input_error: `funnel run`"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&data_db, &pristine).unwrap();

    // 7: the store cannot be opened (its directory is a file).
    let blocker = env.dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    std::fs::write(
        &env.config,
        format!("facts = \"sqlite:not-a-dir/facts.db\"\nstate_dir = \"state\"\nfunnels = \"funnels.toml\"\ncache = \"cache\"\ndata = [\"data\"]\nsnapshot = \"newest\"\nnow = \"{NOW}\"\n"),
    )
    .unwrap();
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 7, "{}", stderr(&o));

    // 8: the run is killed (here it aborts inside the publish transaction).
    env.config_at("2025-03-02", "");
    let o = env.once(&[], &[("FUNNEL_FAULT", "publish")]);
    assert_eq!(code(&o), 8, "{}", stderr(&o));
    assert!(stderr(&o).contains("killed by signal 6"), "{}", stderr(&o));

    // --help documents the codes.
    let help = Command::new(e2e_tests::funnel_bin())
        .args(["schedule", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for line in [
        "0  ran and published",
        "3  skipped",
        "4  another scheduler (or the run of a killed one) holds this store",
        "5  config or funnel definition error",
        "6  input (SSTable) error",
        "7  fact store",
        "8  run crashed or was killed",
        "9  run failed",
    ] {
        assert!(help.contains(line), "--help lacks {line:?}:\n{help}");
    }

    // Status: the scheduler's attempts (newest first), the store's runs and the watermarks.
    let s = env.status(&[]);
    let attempts: Vec<&str> = s
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("started"))
        .skip(1)
        .take_while(|l| !l.starts_with("runs"))
        .collect();
    let outcomes: Vec<&str> = attempts
        .iter()
        .map(|l| l.split_whitespace().nth(4).unwrap())
        .collect();
    // Busy, config and store-error attempts without the lock or state are not recorded there.
    assert_eq!(
        outcomes,
        [
            "crashed",
            "input_error",
            "input_error",
            "config_error",
            "skipped",
            "published"
        ],
        "{s}"
    );
    assert!(attempts[0].contains("killed by signal 6"), "{s}");
    assert!(s.contains("last published: run 1"), "{s}");
    assert!(s.contains("lock: free"), "{s}");
    let runs: Vec<&str> = s
        .lines()
        .skip_while(|l| *l != "runs")
        .skip(2)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(runs.len(), 2, "{s}");
    assert!(runs[0].split_whitespace().any(|w| w == "abandoned"), "{s}");
    assert!(runs[1].split_whitespace().any(|w| w == "published"), "{s}");
    assert!(runs[1].contains("activation@"), "{s}");
    for app in APPS {
        assert!(s.contains(&format!("{app:<16} activation")), "{s}");
    }
    assert!(s.contains("2025-03-01"), "watermark day of run 1: {s}");

    // JSON status carries the same.
    let j: serde_json::Value = serde_json::from_str(&env.status(&["--json"])).unwrap();
    assert_eq!(j["scheduler"]["attempts"][0]["outcome"], "crashed");
    assert_eq!(j["scheduler"]["attempts"][0]["exit_code"], 8);
    assert_eq!(j["runs"][1]["status"], "published");
    assert_eq!(j["runs"][1]["sstables_read"].as_array().unwrap().len(), 4);
    assert!(j["watermarks"].as_array().unwrap().len() >= APPS.len());
}

#[test]
fn json_logs_are_one_object_per_line() {
    let env = Env::new(150, 1);
    env.config_at(NOW, "log = \"json\"");
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stderr(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let end = lines.last().unwrap();
    assert_eq!(end["event"], "attempt_end");
    assert_eq!(end["outcome"], "published");
    assert_eq!(end["exit_code"], 0);
    assert_eq!(end["sstables"], 2);
    let published = lines
        .iter()
        .find(|l| l["event"] == "run_published")
        .unwrap();
    assert_eq!(published["sstables_read"].as_array().unwrap().len(), 2);
    assert!(lines.iter().any(|l| l["event"] == "run_output"));
}
