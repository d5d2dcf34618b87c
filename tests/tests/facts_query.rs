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

/// `funnel query --format json` of app `demo` in `url`: `what` (`--funnel F` or `--counts M`), `extra`.
fn query_json(url: &str, what: &[&str], extra: &[&str]) -> Value {
    let base = ["query", "--facts", url, "--app", "demo", "--format", "json"];
    serde_json::from_str(&stdout_ok(&[&base[..], what, extra].concat())).unwrap()
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
fn demo_batch_days_have_totals_without_breakdown() {
    let (_dir, url) = demo_store();
    let q = |extra: &[&str]| query_json(&url, &["--funnel", "signup"], extra);
    let (totals, by_breakdown) = (q(&[]), q(&["--breakdown"]));
    for (t, b) in totals["days"]
        .as_array()
        .unwrap()
        .iter()
        .zip(by_breakdown["days"].as_array().unwrap())
    {
        let day = t["day"].as_str().unwrap();
        if expected_layer(day) != "batch" {
            continue;
        }
        for s in t["steps"].as_array().unwrap() {
            let sum: u64 = b["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["step"] == s["step"])
                .map(|x| x["actors"].as_u64().unwrap())
                .sum();
            assert_eq!(s["actors"].as_u64(), Some(sum), "{day} {s}");
            assert!(
                s["ttc_median_s"].is_number(),
                "a batch day's total has a time-to-convert: {day} {s}"
            );
        }
    }
}

#[test]
fn counts_totals_equal_the_sum_of_values() {
    let (_dir, url) = demo_store();
    let q = |extra: &[&str]| query_json(&url, &["--counts", "events"], extra);
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

/// A batch run of a funnel with a breakdown: without `--breakdown` the query answers with the exact
/// time-to-convert of all actors (the run's all-breakdowns total), not "-" from summing medians; with
/// `--breakdown` it lists the real breakdown values only, as before.
#[test]
fn without_breakdown_ttc_is_exact_and_breakdown_listings_are_unchanged() {
    use funnelizer::{Aggregator, FunnelSet, Outcome};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("facts.db").display());
    let set = FunnelSet::parse(
        "[[funnel]]\nid = \"f\"\nwindow = \"1d\"\nbreakdown = \"props.os\"\nsteps = [ { event = \"a\" }, { event = \"b\" } ]\n",
        "t",
    )
    .unwrap();
    let day0 = 19_800 * 86_400_000_i64; // 2024-03-18
    let mut agg = Aggregator::new();
    // Step 2 in ms: ios 1000, 2000, 30000 (median 2s); android 4000, 5000 (median 4.5s).
    for (secs, os) in [
        (1, "ios"),
        (2, "ios"),
        (30, "ios"),
        (4, "android"),
        (5, "android"),
    ] {
        let o = Outcome {
            level: 2,
            entry_ts_ms: day0,
            step_ts_ms: vec![day0, day0 + secs * 1000],
            breakdown_row: 0,
        };
        agg.add("app", 0, &o, os);
    }
    let store = facts::open_store(&url).unwrap();
    funnelizer::publish(
        &store,
        &set,
        &agg,
        day0 + 2 * 86_400_000,
        serde_json::json!({}),
    )
    .unwrap();
    drop(store);

    let query = |extra: &[&str]| -> Value {
        let args = [
            &[
                "query", "--facts", &url, "--app", "app", "--funnel", "f", "--format", "json",
            ][..],
            extra,
        ]
        .concat();
        serde_json::from_str(&stdout_ok(&args)).unwrap()
    };
    let summed = query(&[]);
    let steps = summed["days"][0]["steps"].as_array().unwrap();
    assert_eq!(summed["days"][0]["layer"], "batch");
    assert_eq!(steps.len(), 2, "{summed}");
    assert_eq!(steps[1]["breakdown"], "");
    assert_eq!(steps[1]["actors"], 5);
    // Exact over all five actors: 1, 2, 4, 5, 30 s → median 4 s, p90 5 + 0.6 × 25 = 20 s.
    assert_eq!(steps[1]["ttc_median_s"].as_f64(), Some(4.0), "{summed}");
    assert_eq!(steps[1]["ttc_p90_s"].as_f64(), Some(20.0), "{summed}");
    assert_eq!(steps[0]["actors"], 5);
    assert_eq!(steps[0]["ttc_median_s"].as_f64(), Some(0.0));

    let split = query(&["--breakdown"]);
    let listed: Vec<(String, u64, u64, Option<f64>)> = split["days"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["breakdown"].as_str().unwrap().to_string(),
                s["step"].as_u64().unwrap(),
                s["actors"].as_u64().unwrap(),
                s["ttc_median_s"].as_f64(),
            )
        })
        .collect();
    let want: Vec<(String, u64, u64, Option<f64>)> = vec![
        ("android".into(), 1, 2, Some(0.0)),
        ("android".into(), 2, 2, Some(4.5)),
        ("ios".into(), 1, 3, Some(0.0)),
        ("ios".into(), 2, 3, Some(2.0)),
    ];
    assert_eq!(listed, want, "{split}");
}

/// A run whose `--now` is weeks after the last event makes every day up to then batch-complete. `funnel
/// query` still stops at the data's last day (it listed every day up to the watermark with `-`); `--to`
/// asks for more and gets the empty batch days.
#[test]
fn query_stops_at_the_last_day_with_data_unless_to_asks_for_more() {
    use funnelizer::{Aggregator, FunnelSet, Outcome};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("facts.db").display());
    let set = FunnelSet::parse(
        "[[funnel]]\nid = \"f\"\nwindow = \"1d\"\nsteps = [ { event = \"a\" }, { event = \"b\" } ]\n",
        "t",
    )
    .unwrap();
    let day0 = 19_800 * 86_400_000_i64; // 2024-03-18
    let mut agg = Aggregator::new();
    for d in 0..2 {
        let entry = day0 + d * 86_400_000;
        let o = Outcome {
            level: 2,
            entry_ts_ms: entry,
            step_ts_ms: vec![entry, entry + 1000],
            breakdown_row: 0,
        };
        agg.add("app", 0, &o, "");
    }
    let store = facts::open_store(&url).unwrap();
    // Watermark 2024-04-17: batch-complete through 04-16, four weeks past the data.
    funnelizer::publish(
        &store,
        &set,
        &agg,
        day0 + 30 * 86_400_000,
        serde_json::json!({}),
    )
    .unwrap();
    drop(store);
    let args = ["query", "--facts", &url, "--app", "app", "--funnel", "f"];
    let days = |extra: &[&str]| -> Vec<String> {
        let out = stdout_ok(&[&args[..], &["--format", "json"], extra].concat());
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["freshness"]["watermark"], "2024-04-17");
        v["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["day"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(days(&[]), ["2024-03-18", "2024-03-19"]);
    let table = stdout_ok(&args);
    assert!(!table.contains("2024-03-20"), "{table}");
    assert!(
        !table.lines().any(|l| l.contains(" - ") || l.ends_with('-')),
        "{table}"
    );
    let asked = days(&["--to", "2024-03-22"]);
    assert_eq!(asked.first().map(String::as_str), Some("2024-03-18"));
    assert_eq!(asked.last().map(String::as_str), Some("2024-03-22"));
    assert_eq!(asked.len(), 5);
}
