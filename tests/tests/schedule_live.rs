//! Live data directories: compaction deletes SSTables while a run lists, opens and scans them. The run does
//! not crash (mmapped files stay readable; the scheduler re-lists and reruns when the inputs changed
//! under a failed run), and the published run reports which SSTables it read.

mod schedule_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use schedule_support::*;

/// Moves every `snapshots/<tag>/` file up into its table directory: the layout of a live node.
fn make_live(data: &Path) {
    for f in data_files(data) {
        let snap = f.parent().unwrap().to_path_buf();
        let table_dir = snap.parent().unwrap().parent().unwrap().to_path_buf();
        if !snap.exists() {
            continue;
        }
        for e in std::fs::read_dir(&snap).unwrap() {
            let p = e.unwrap().path();
            std::fs::rename(&p, table_dir.join(p.file_name().unwrap())).unwrap();
        }
        std::fs::remove_dir_all(snap.parent().unwrap()).unwrap();
    }
}

fn live_env(actors: u64, sstables: u32) -> Env {
    let env = Env::new(actors, sstables);
    make_live(&env.data);
    std::fs::write(
        &env.config,
        format!("facts = \"sqlite:facts.db\"\nfunnels = \"funnels.toml\"\ncache = \"cache\"\ndata = [\"data\"]\nthreads = 1\nnow = \"{NOW}\"\nretries = 2\n"),
    )
    .unwrap();
    env
}

fn remove_sstable(files: &[PathBuf]) {
    for f in files {
        let _ = std::fs::remove_file(f);
    }
}

fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[test]
fn sstables_deleted_during_the_scan_do_not_crash_it() {
    let env = live_env(1500, 8);
    let before: Vec<Vec<PathBuf>> = sstables_of(&env.data, "events")
        .into_iter()
        .chain(sstables_of(&env.data, "conversions"))
        .collect();
    assert_eq!(before.len(), 16);
    let t0 = now_ms();
    let sched = env.spawn_once(&[], &[]);
    env.wait_for_child(t0, Duration::from_secs(20))
        .expect("child");
    // Compaction: every few ms another SSTable goes (Data.db and its siblings), 5 in all.
    for victim in before.iter().step_by(3).take(5) {
        remove_sstable(victim);
        std::thread::sleep(Duration::from_millis(15));
    }
    let out = sched.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_str(&env.status(&["--json"])).unwrap();
    let read: Vec<String> = j["runs"][0]["sstables_read"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    eprintln!("the first run read {} of 16 SSTables", read.len());
    assert!(!read.is_empty());
    let all: Vec<String> = before
        .iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect();
    for r in &read {
        assert!(all.contains(r), "{r} was never on disk");
    }
    // The next attempt compares the compacted directory with what the published run was fingerprinted
    // on: when the first attempt had to rerun after the deletions, it already covered the 11 SSTables
    // left (skip); otherwise they changed (run).
    let first = &env.state()["attempts"][0];
    let o = env.once(&[], &[]);
    if first["sstables"] == 16 - 5 {
        assert!(first["retries"].as_u64() > Some(0), "{first}");
        assert_eq!(code(&o), 3, "{}", stderr(&o));
    } else {
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(stderr(&o).contains("gone"), "{}", stderr(&o));
    }
    let j: serde_json::Value = serde_json::from_str(&env.status(&["--json"])).unwrap();
    assert_eq!(
        j["runs"][0]["sstables_read"].as_array().unwrap().len(),
        16 - 5
    );
}

#[test]
fn a_run_failing_on_an_sstable_that_compaction_then_removed_is_relisted_and_rerun() {
    let env = live_env(300, 3);
    // An SSTable that cannot be read (as if caught half-written) …
    let events = sstables_of(&env.data, "events");
    let bad = events[1].clone();
    corrupt_data_db(&bad);

    let t0 = now_ms();
    let sched = env.spawn_once(&[], &[]);
    let sched_pid = sched.id();
    let child = env
        .wait_for_child(t0, Duration::from_secs(20))
        .expect("child");
    // Freeze the scheduler (not its run): the run fails on the bad SSTable and waits to be reaped.
    assert!(signal(sched_pid, "STOP"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while process_state(child) != Some('Z') && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(process_state(child), Some('Z'), "the run did not end");
    // … which compaction then removes before the scheduler looks again.
    remove_sstable(&bad);
    assert!(signal(sched_pid, "CONT"));
    let out = sched.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("the inputs changed during the run"), "{err}");
    assert!(err.contains("re-listing and rerunning (1/2)"), "{err}");
    let st = env.state();
    assert_eq!(st["attempts"][0]["outcome"], "published");
    assert_eq!(st["attempts"][0]["retries"], 1);
    assert_eq!(st["attempts"][0]["sstables"], 5);
}

#[test]
fn without_the_removal_the_same_failure_is_an_input_error() {
    let env = live_env(300, 2);
    let events = sstables_of(&env.data, "events");
    corrupt_data_db(&events[0]);
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    assert_eq!(env.state()["attempts"][0]["retries"], 0);
}
