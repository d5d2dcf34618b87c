//! The `funnel` binary itself: every subcommand's `--help` teaches (describes and gives examples), and
//! user mistakes end in a clear one-line error with a failing exit code. (This integration test also
//! makes `cargo test --workspace` build the binary the end-to-end tests in tests/ run.)

use std::process::Command;

fn funnel(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_funnel"))
        .args(args)
        .output()
        .expect("run funnel")
}

#[test]
fn every_subcommand_has_help_with_examples() {
    let top = String::from_utf8(funnel(&["--help"]).stdout).unwrap();
    for sub in [
        "dump", "stats", "gen", "run", "query", "stream", "report", "scan", "schedule", "status",
    ] {
        assert!(top.contains(sub), "top-level help lists {sub}");
        let out = funnel(&[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Usage: funnel"), "{sub}: {text}");
        assert!(
            text.to_lowercase().contains("example"),
            "{sub} --help gives examples:\n{text}"
        );
        // Each example is a command line of its own (clap must not reflow them into a paragraph).
        let example = format!("funnel {sub} ");
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(&example)),
            "{sub} --help: examples start their own lines:\n{text}"
        );
        for l in text.lines().filter(|l| l.contains(&example)) {
            let l = l.trim_start();
            assert!(
                l.starts_with(&example) || l.starts_with("Usage: ") || l.contains('`'),
                "{sub} --help: an example does not start its own line ({l:?}):\n{text}"
            );
            assert_eq!(
                l.matches(&example).count(),
                1,
                "{sub} --help: examples run together on one line:\n{text}"
            );
        }
    }
}

#[test]
fn missing_paths_are_clear_errors() {
    let out = funnel(&["dump", "/nonexistent/dir"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: ") && err.contains("/nonexistent/dir"),
        "{err}"
    );
}

#[test]
fn unsupported_sstables_name_file_and_version() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/sstables/cassandra/other/invalid-legacy-sstables/Keyspace1/Standard1"
    );
    let out = funnel(&["stats", dir]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("Keyspace1-Standard1-ic-0-Data.db") && err.contains("\"ic\""),
        "{err}"
    );
}

#[test]
fn stats_json_is_machine_readable() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/sstables/cassandra/legacy/oa/legacy_tables/legacy_oa_clust"
    );
    let out = funnel(&["stats", dir, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v[0];
    assert_eq!(s["version"], "oa");
    assert_eq!(s["partitions"], 5);
    assert_eq!(s["rows"], 250);
    assert_eq!(s["compression"], "lz4");
    assert_eq!(s["chunk_length"], 16384);
    assert_eq!(
        s["partitioner"],
        "org.apache.cassandra.dht.ByteOrderedPartitioner"
    );
}
