//! `funnel facts init`, `funnel facts demo` and `funnel query` end to end: every output format says per day
//! which layer answered and where the watermark is; the numbers agree across formats.

use std::process::{Command, Output};

use e2e_tests::funnel_bin;
use serde_json::Value;

fn funnel(args: &[&str]) -> Output {
    Command::new(funnel_bin())
        .args(args)
        .env_remove("FUNNEL_FAULT")
        .env_remove("FUNNEL_FACTS")
        .output()
        .expect("run funnel")
}

fn stdout_ok(args: &[&str]) -> String {
    let out = funnel(args);
    assert!(
        out.status.success(),
        "funnel {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A store with 10 batch days (2024-03-01 .. 03-10, watermark 03-11) and speed days 03-10 .. 03-13.
fn demo_store() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("sub/facts.db").display());
    let out = stdout_ok(&["facts", "init", "--facts", &url]);
    assert!(out.contains("fact tables ready"), "{out}");
    assert!(dir.path().join("sub/facts.db").exists());
    stdout_ok(&[
        "facts",
        "demo",
        "--facts",
        &url,
        "--batch-until",
        "2024-03-11",
        "--days",
        "10",
        "--speed-days",
        "3",
    ]);
    (dir, url)
}

fn expected_layer(day: &str) -> &'static str {
    if day < "2024-03-11" {
        "batch"
    } else {
        "speed"
    }
}

#[test]
fn json_csv_and_table_agree_and_show_the_layer_of_each_day() {
    let (_dir, url) = demo_store();
    let base = [
        "query",
        "--facts",
        url.as_str(),
        "--app",
        "demo",
        "--funnel",
        "signup",
        "--breakdown",
    ];

    let json: Value =
        serde_json::from_str(&stdout_ok(&[&base[..], &["--format", "json"]].concat())).unwrap();
    assert_eq!(json["freshness"]["watermark"], "2024-03-11");
    assert_eq!(json["funnel_version"], "1");
    let days = json["days"].as_array().unwrap();
    let names: Vec<&str> = days.iter().map(|d| d["day"].as_str().unwrap()).collect();
    assert_eq!(names.first(), Some(&"2024-03-01"));
    assert_eq!(names.last(), Some(&"2024-03-13"));
    assert_eq!(names.len(), 13);
    for d in days {
        let day = d["day"].as_str().unwrap();
        assert_eq!(d["layer"], expected_layer(day), "{day}");
        let steps = d["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 9, "3 breakdowns x 3 steps on {day}");
        for s in steps {
            // Time-to-convert only where the batch answered.
            assert_eq!(
                s["ttc_median_s"].is_null(),
                d["layer"] == "speed",
                "{day} {s}"
            );
        }
    }

    // CSV: same numbers, same layers.
    let csv = stdout_ok(&[&base[..], &["--format", "csv"]].concat());
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("day,layer,breakdown,step,actors,ttc_median_s,ttc_p90_s")
    );
    let mut n = 0;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[1], expected_layer(f[0]), "{line}");
        let day = days.iter().find(|d| d["day"] == f[0]).unwrap();
        let step = day["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| {
                s["breakdown"] == f[2]
                    && s["step"].as_u64().map(|n| n.to_string()).as_deref() == Some(f[3])
            })
            .unwrap();
        assert_eq!(step["actors"].to_string(), f[4], "{line}");
        n += 1;
    }
    assert_eq!(n, 13 * 9);

    // Table: the watermark rule sits between the last batch day and the first speed day.
    let table = stdout_ok(&base);
    let rows: Vec<&str> = table.lines().collect();
    let rule = rows
        .iter()
        .position(|l| *l == "-- watermark 2024-03-11 --")
        .expect("watermark line");
    assert!(rows[rule - 1].starts_with("2024-03-10  batch"), "{table}");
    assert!(rows[rule + 1].starts_with("2024-03-11  speed"), "{table}");
    assert!(table.contains("complete before 2024-03-11"), "{table}");
}

#[test]
fn counts_totals_equal_the_sum_of_values() {
    let (_dir, url) = demo_store();
    let q = |extra: &[&str]| -> Value {
        let base = [
            "query",
            "--facts",
            url.as_str(),
            "--app",
            "demo",
            "--counts",
            "events",
            "--format",
            "json",
        ];
        serde_json::from_str(&stdout_ok(&[&base[..], extra].concat())).unwrap()
    };
    let totals = q(&["--from", "2024-03-09", "--to", "2024-03-14"]);
    let by_value = q(&[
        "--from",
        "2024-03-09",
        "--to",
        "2024-03-14",
        "--breakdown",
        "--dimension",
        "name",
    ]);
    let (t, b) = (
        totals["days"].as_array().unwrap(),
        by_value["days"].as_array().unwrap(),
    );
    assert_eq!(t.len(), 6);
    for (td, bd) in t.iter().zip(b) {
        let day = td["day"].as_str().unwrap();
        assert_eq!(td["layer"], expected_layer(day));
        let sum: i64 = bd["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["count"].as_i64().unwrap())
            .sum();
        let total = td["values"]
            .as_array()
            .unwrap()
            .first()
            .map(|v| v["count"].as_i64().unwrap());
        if day == "2024-03-14" {
            // Past the speed layer's last day: listed, nothing in it.
            assert_eq!((total, sum), (None, 0));
        } else {
            assert_eq!(total, Some(sum), "{day}");
            assert!(sum > 0);
        }
    }
}

#[test]
fn bad_invocations_fail_with_a_message() {
    let (_dir, url) = demo_store();
    let both = funnel(&[
        "query", "--facts", &url, "--app", "demo", "--funnel", "f", "--counts", "hits",
    ]);
    assert_eq!(both.status.code(), Some(2));
    let bad_day = funnel(&[
        "query",
        "--facts",
        &url,
        "--app",
        "demo",
        "--funnel",
        "f",
        "--from",
        "2024-13-01",
    ]);
    assert_eq!(bad_day.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_day.stderr).contains("YYYY-MM-DD"));
    let bad_url = funnel(&[
        "query",
        "--facts",
        "mysql://x",
        "--app",
        "demo",
        "--counts",
        "hits",
    ]);
    assert_eq!(bad_url.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_url.stderr).contains("sqlite:PATH"));
}
