//! A node directory as operators point at it: live SSTables without `schema.cql`, and the node's own
//! `system_schema` (written with the reader's writer). `funnel schema` recovers the statements, and
//! `funnel run` and `funnel dump` read the node with no `--schema`, exactly as with one.

use std::path::Path;
use std::process::Command;

use e2e_tests::{funnel_bin, make_live, run_funnel, workspace_root};
use sstable_reader::CqlSchema;

/// A generated node: `data/` with live SSTables and `system_schema`; the schema statements kept aside.
fn node(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("data");
    run_funnel(&[
        "gen",
        "--out",
        data.to_str().unwrap(),
        "--actors",
        "60",
        "--days",
        "3",
        "--sstables",
        "2",
        "--end-date",
        "2025-03-01",
        "--quiet",
    ]);
    let schema = dir.join("schema.cql");
    make_live(&data, &schema);
    let parsed = CqlSchema::read(&schema).unwrap();
    sstable_reader::writer::write_system_schema(&data, &parsed, 1_700_000_000_000_000).unwrap();
    (data, schema)
}

/// The tables, each with its columns by name (statements list non-key columns by name).
fn sorted_tables(s: &CqlSchema) -> Vec<sstable_reader::CqlTable> {
    let mut t = s.tables.clone();
    t.sort_by(|a, b| a.name.cmp(&b.name));
    for table in &mut t {
        table.columns.sort_by(|a, b| a.0.cmp(&b.0));
    }
    t
}

#[test]
fn funnel_schema_recovers_the_statements() {
    let dir = tempfile::tempdir().unwrap();
    let (data, schema) = node(dir.path());
    let (text, _) = run_funnel(&["schema", data.to_str().unwrap()]);
    let recovered = CqlSchema::parse(&text, "funnel schema").unwrap();
    let original = CqlSchema::read(&schema).unwrap();
    assert_eq!(
        sorted_tables(&recovered),
        sorted_tables(&original),
        "{text}"
    );
    // One table, and the node directory above the data directory works too.
    let (one, _) = run_funnel(&[
        "schema",
        dir.path().to_str().unwrap(),
        "--keyspace",
        "tracking",
        "--table",
        "events",
    ]);
    assert_eq!(one.matches("CREATE TABLE").count(), 1, "{one}");
    assert!(one.contains("CREATE TABLE tracking.events ("), "{one}");
    // Not a node: a clear error.
    let out = Command::new(funnel_bin())
        .args([
            "schema",
            workspace_root().join("testdata").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no system_schema"));
}

#[test]
fn run_and_dump_read_a_node_without_schema_cql() {
    let dir = tempfile::tempdir().unwrap();
    let (data, schema) = node(dir.path());
    let funnels = workspace_root().join("testdata/funnels.toml");
    let run = |db: &str, extra: &[&str]| {
        let url = format!("sqlite:{}", dir.path().join(db).display());
        let mut args = vec![
            "run",
            "--data",
            data.to_str().unwrap(),
            "--funnels",
            funnels.to_str().unwrap(),
            "--facts",
            &url,
            "--now",
            "2025-03-01",
            "--quiet",
        ];
        args.extend(extra);
        run_funnel(&args).0
    };
    let from_node = run("node.db", &[]);
    let from_file = run("file.db", &["--schema", schema.to_str().unwrap()]);
    assert!(!from_node.is_empty());
    assert_eq!(from_node, from_file);

    for extra in [&[][..], &["--no-merge"][..]] {
        let mut args = vec![
            "dump",
            data.to_str().unwrap(),
            "--table",
            "tracking.events",
            "--limit",
            "3",
            "--now",
            "2025-03-01",
        ];
        args.extend(extra);
        let (lines, _) = run_funnel(&args);
        let mut with_file = args.clone();
        with_file.extend(["--schema", schema.to_str().unwrap()]);
        assert_eq!(lines, run_funnel(&with_file).0, "{extra:?}");
        let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
        assert!(
            first.get("app_id").is_some() && first.get("pk0").is_none(),
            "{first}"
        );
    }
}
