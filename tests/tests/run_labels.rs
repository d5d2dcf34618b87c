//! What an operator reads after `funnel run`: levels named for what they count (an unordered funnel's
//! level k is "≥ k steps", not step k's event) in the run summary, `funnel query` and `funnel report`
//! (which names steps by their events without the definition file, and shows the entry-day trend); and
//! a live table directory without `schema.cql` is told how to name its key columns.

use std::path::PathBuf;
use std::process::Command;

use e2e_tests::{funnel_bin, make_live, run_funnel, workspace_root};

fn testdata() -> (PathBuf, PathBuf) {
    let root = workspace_root().join("testdata");
    (root.join("snapshot"), root.join("funnels.toml"))
}

/// The summary line of `funnel` `id`'s level `level` (`id` is only on level 1's line).
fn summary_line<'a>(summary: &'a str, id: &str, level: usize) -> &'a str {
    let lines: Vec<&str> = summary.lines().collect();
    let first = lines
        .iter()
        .position(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{id} in {summary}"));
    lines[first + level - 1]
}

#[test]
fn levels_are_named_for_what_they_count_in_the_summary_query_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let (data, funnels) = testdata();
    let url = format!("sqlite:{}", dir.path().join("facts.db").display());
    let (summary, _) = run_funnel(&[
        "run",
        "--data",
        data.to_str().unwrap(),
        "--funnels",
        funnels.to_str().unwrap(),
        "--facts",
        &url,
        "--now",
        "2026-11-01",
        "--quiet",
    ]);
    // any_order_engagement is unordered over open, signup and purchase: its level 2 counts actors with
    // two distinct steps, whichever they were.
    let unordered = summary_line(&summary, "any_order_engagement", 2);
    assert!(unordered.contains("≥ 2 steps"), "{summary}");
    assert!(!unordered.contains("signup"), "{summary}");
    // An ordered funnel's levels are its steps: named, or by what they match.
    assert!(summary_line(&summary, "install_to_purchase", 2).contains("signup"));
    assert!(summary_line(&summary, "paid_click_to_purchase", 1).contains("clicked an ad"));

    let (table, _) = run_funnel(&[
        "query",
        "--facts",
        &url,
        "--app",
        "app-001",
        "--funnel",
        "any_order_engagement",
    ]);
    let header = table.lines().find(|l| l.starts_with("day")).unwrap();
    assert!(
        header.contains("≥ 1 step") && header.contains("≥ 3 steps"),
        "{table}"
    );
    assert!(!header.contains("step2"), "{table}");

    // The report is written from the store alone (no --funnels): steps are named by the labels the run
    // recorded, and every funnel has its entry-day trend.
    let html_path = dir.path().join("report.html");
    run_funnel(&[
        "report",
        "--facts",
        &url,
        "--out",
        html_path.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(!html.contains("step 1"), "steps are named");
    for label in ["<td>2. signup</td>", "clicked an ad", "≥ 2 steps"] {
        assert!(html.contains(label), "{label}");
    }
    // One trend per (app, funnel).
    let charts = html.matches("<svg class=\"trend\"").count();
    assert_eq!(charts, html.matches("<h2>").count(), "{charts} trends");
    assert!(charts >= 4);
}

#[test]
fn a_live_table_directory_without_schema_says_how_to_name_the_key_columns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run_funnel(&[
        "gen",
        "--out",
        data.to_str().unwrap(),
        "--actors",
        "50",
        "--days",
        "3",
        "--sstables",
        "1",
        "--end-date",
        "2025-03-01",
        "--quiet",
    ]);
    let schema = dir.path().join("schema.cql");
    make_live(&data, &schema);
    let (_, funnels) = testdata();
    let url = format!("sqlite:{}", dir.path().join("facts.db").display());
    let run = |extra: &[&str]| {
        Command::new(funnel_bin())
            .args(["run", "--data"])
            .arg(&data)
            .arg("--funnels")
            .arg(&funnels)
            .args(["--facts", &url, "--now", "2025-03-01", "--quiet"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("names of its key columns are unknown"),
        "{err}"
    );
    assert!(
        err.contains("--schema FILE") && err.contains("snapshot directory"),
        "{err}"
    );
    assert!(!err.contains("is not a column of the table"), "{err}");
    // Given the key columns, the same directory runs.
    let out = run(&["--schema", schema.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
