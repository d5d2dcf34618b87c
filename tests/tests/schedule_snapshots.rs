//! `snapshot = "newest"` (the shipped deploy/schedule.toml) on a node's real layout: each table directory
//! holds live SSTables, `snapshots/2026-10-25-nightly/` (one SSTable), `snapshots/2026-11-01-nightly/`
//! (all of them) and `backups/` side by side. The scheduler publishes exactly the facts of the newest tag.

mod schedule_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use e2e_tests::funnel_bin;
use facts::FunnelDay;
use schedule_support::*;

const OLD: &str = "2026-10-25-nightly";
const NEW: &str = "2026-11-01-nightly";

/// The SSTable generation of a component file name (`nb-3-big-Data.db` → 3).
fn generation(file: &Path) -> Option<u32> {
    file.file_name()?.to_str()?.split('-').nth(1)?.parse().ok()
}

/// Turns the generated `snapshots/nightly/` of every table into the node layout (hard links, as
/// Cassandra's snapshots are): NEW holds all SSTables, OLD the first, the live directory all but the
/// first, backups/ the first. OLD's directory is modified later than NEW's; their manifests' `created_at`
/// say which is newer. Returns NEW's directories.
fn node_layout(data: &Path) -> Vec<PathBuf> {
    let mut newest = Vec::new();
    for t in std::fs::read_dir(data.join("tracking")).unwrap() {
        let table = t.unwrap().path();
        let snaps = table.join("snapshots");
        let new = snaps.join(NEW);
        std::fs::rename(snaps.join("nightly"), &new).unwrap();
        let old = snaps.join(OLD);
        let backups = table.join("backups");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::create_dir_all(&backups).unwrap();
        for f in std::fs::read_dir(&new).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_owned();
            match generation(&f) {
                Some(1) => {
                    std::fs::hard_link(&f, old.join(&name)).unwrap();
                    std::fs::hard_link(&f, backups.join(&name)).unwrap();
                }
                Some(_) => std::fs::hard_link(&f, table.join(&name)).unwrap(),
                None => {}
            }
        }
        std::fs::copy(new.join("schema.cql"), old.join("schema.cql")).unwrap();
        std::fs::write(
            old.join("manifest.json"),
            r#"{"files": ["nb-1-big-Data.db"], "created_at": "2025-02-22T03:00:00Z", "expires_at": null}"#,
        )
        .unwrap();
        let at = |ago: u64| SystemTime::now() - Duration::from_secs(ago);
        std::fs::File::open(&new)
            .unwrap()
            .set_modified(at(7200))
            .unwrap();
        std::fs::File::open(&old)
            .unwrap()
            .set_modified(at(60))
            .unwrap();
        newest.push(new);
    }
    newest.sort();
    newest
}

/// `funnel run` over `data` (with `extra` arguments) into a fresh store `name`; the activation funnel's days.
fn run(env: &Env, name: &str, data: &[PathBuf], extra: &[&str]) -> Vec<(String, Vec<FunnelDay>)> {
    let db = env.dir.path().join(name);
    let out = Command::new(funnel_bin())
        .args(["run", "--quiet", "--now", NOW])
        .args(extra)
        .arg("--data")
        .args(data)
        .arg("--funnels")
        .arg(&env.funnels)
        .arg("--facts")
        .arg(format!("sqlite:{}", db.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = facts::open_store(&format!("sqlite:{}", db.display())).unwrap();
    funnel_days(&store, "activation")
}

#[test]
fn newest_snapshot_on_a_node_layout_publishes_the_newest_tags_facts() {
    let env = Env::new(400, 3);
    let newest = node_layout(&env.data);
    assert_eq!(newest.len(), 3);
    std::fs::write(
        &env.config,
        format!("facts = \"sqlite:facts.db\"\nfunnels = \"funnels.toml\"\ncache = \"cache\"\ndata = [\"data/tracking\"]\nsnapshot = \"newest\"\nthreads = 1\ntimeout = \"2m\"\nnow = \"{NOW}\"\n"),
    )
    .unwrap();
    let o = env.once(&[], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("snapshot {NEW}")),
        "{}",
        stderr(&o)
    );
    let published = funnel_days(&env.store(), "activation");

    let expected = run(&env, "newest.db", &newest, &[]);
    assert_eq!(published, expected);
    // `funnel run --snapshot newest` over the node's data directory picks the same tag.
    let node = [env.data.join("tracking")];
    assert_eq!(
        run(&env, "cli-newest.db", &node, &["--snapshot", "newest"]),
        expected
    );
    // The older tag (whose directory was modified later) is other data: the comparison tells them apart.
    let old: Vec<PathBuf> = newest
        .iter()
        .map(|d| d.parent().unwrap().join(OLD))
        .collect();
    assert_ne!(run(&env, "old.db", &old, &[]), expected);
}

#[test]
fn a_snapshot_argument_with_a_slash_is_refused_before_reading() {
    let env = Env::new(50, 1);
    let out = Command::new(funnel_bin())
        .args(["dump", "--snapshot", "a/b"])
        .arg(&env.data)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no '/'"), "{err}");
}
