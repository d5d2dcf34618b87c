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

/// A generated table whose rows have all expired (1-day TTL, written a year before the clock): `dump`
/// prints nothing, and says on stderr how many rows expired and how to read them (`--now`), merged and
/// with `--no-merge`; the `--now` it suggests reads them.
#[test]
fn dump_of_expired_rows_says_how_many_and_how_to_read_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let g = funnel(&[
        "gen",
        "--out",
        out,
        "--actors",
        "40",
        "--days",
        "3",
        "--seed",
        "5",
        "--ttl",
        "86400",
        "--end-date",
        "2025-06-01",
    ]);
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
    let tally: serde_json::Value = serde_json::from_slice(&g.stdout).unwrap();
    let events = tally["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "events")
        .unwrap();
    // Rows alive at the end of the period plus those already expired then (deleted ones aside).
    let expected = events["live_rows"].as_u64().unwrap() + events["expired_rows"].as_u64().unwrap();
    for extra in [&[][..], &["--no-merge"][..]] {
        let mut args = vec!["dump", out, "--table", "tracking.events"];
        args.extend(extra);
        let d = funnel(&args);
        let err = String::from_utf8(d.stderr).unwrap();
        assert!(d.status.success(), "{err}");
        assert!(d.stdout.is_empty(), "{extra:?}");
        // Merged, one per primary key; each SSTable on its own, one per version.
        let n: u64 = err
            .split("note: no live rows: ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{extra:?}: {err}"));
        if extra.is_empty() {
            assert_eq!(n, expected);
        } else {
            assert!(n >= expected, "{n} < {expected}");
        }
        assert!(
            err.contains("row(s) had expired (TTL) at --now ")
                && err.contains("(the current time)")
                && err.contains("--now TS"),
            "{extra:?}: {err}"
        );
        let suggested = err
            .split("e.g. --now ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .expect("a suggested --now");
        args.extend(["--now", suggested]);
        let again = funnel(&args);
        let lines = String::from_utf8(again.stdout).unwrap().lines().count() as u64;
        assert!(lines > 0, "{extra:?}: --now {suggested} reads rows");
    }
}
