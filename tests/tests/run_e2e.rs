//! End to end: `funnel gen` writes a 3-node cluster's snapshots (RF 2, several overlapping SSTables per
//! node, overwrites, deletions, erased actors, TTLs that expire part of the history) → `funnel run` merges
//! them and publishes facts → the facts in the SQLite store equal the funnel reference evaluator run over
//! the generator's own live timelines (`live_timelines`, computed from its model, not from the files).
//! Then a funnel added to the definitions file gets results over the whole history on the next run.

use std::path::Path;
use std::process::Command;

use datagen::{live_timelines, GenOptions};
use e2e_tests::{funnel_bin, run_funnel, sort_facts, stored_facts};
use facts::FunnelStepFact;
use funnelizer::{reference, Aggregator, FunnelSet};
use funnelizer::{OwnedRow, OwnedValue, RowView, Value};
use sstable_reader::writer::{writer_version, Compression};

const END_DATE: &str = "2025-03-01";
const END_MS: i64 = 1_740_787_200_000; // 2025-03-01T00:00:00Z
const ACTORS: u64 = 700;
const DAYS: u32 = 20;
const TTL: u32 = 15 * 86_400; // the first days of history have expired at the end

const FUNNELS_V1: &str = r#"
[[funnel]]
id = "activation"
window = "7d"
breakdown = "props.os"
steps = [ { event = "install" }, { event = "signup" }, { event = "purchase" } ]

[[funnel]]
id = "click_to_install"
window = "2d"
mode = "strict_order"
steps = [ { hit = true }, { event = "install" }, { event = "open" } ]

# A predicate on an inet column: the SSTable source renders it as text, row by row.
[[funnel]]
id = "devices_1x"
window = "7d"
steps = [ { event = "install", where = { ip = { prefix = "1" } } }, { event = "signup" } ]
"#;

const FUNNEL_ADDED: &str = r#"
[[funnel]]
id = "browse_to_buy"
window = "3d"
mode = "unordered"
steps = [ { event = "view_item" }, { event = "add_to_cart" }, { event = "purchase", where = { "props.currency" = "EUR" } } ]
"#;

fn gen_options(out: &Path) -> GenOptions {
    GenOptions {
        out: out.to_path_buf(),
        actors: ACTORS,
        days: DAYS,
        events_per_actor: 8.0,
        sstables: 3,
        compression: Compression::Lz4,
        version: writer_version("nb").unwrap(),
        nodes: 3,
        rf: 2,
        seed: 42,
        end_ms: END_MS,
        ttl: TTL,
        apps: 3,
        snapshot_tag: "funnel-gen".into(),
    }
}

/// The reference: every funnel over the generator's live timelines.
fn reference_facts(set: &FunnelSet, o: &GenOptions) -> Vec<FunnelStepFact> {
    let mut agg = Aggregator::new();
    for a in live_timelines(o).unwrap() {
        let mut rows: Vec<OwnedRow> = a
            .events
            .iter()
            .map(|e| {
                let mut row = OwnedRow::event(
                    e.ts_ms,
                    &e.name,
                    &e.props
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect::<Vec<_>>(),
                );
                row.cells.push(("ip".into(), OwnedValue::Str(a.ip.clone())));
                row
            })
            .collect();
        rows.extend(
            a.conversions
                .iter()
                .map(|c| OwnedRow::hit(c.hit_ts_ms, &c.tracker, &c.referrer)),
        );
        if rows.is_empty() {
            continue;
        }
        agg.see_app(&a.app);
        for (i, f) in set.funnels.iter().enumerate() {
            let o = reference::evaluate(f, &rows);
            let mut breakdown = String::new();
            if let (Some(fields), Some(row)) = (&f.breakdown, rows.get(o.breakdown_row)) {
                match fields[row.table().index()].get(row) {
                    Value::Str(s) => breakdown.push_str(s),
                    Value::Int(x) => breakdown.push_str(&x.to_string()),
                    Value::Float(x) => breakdown.push_str(&x.to_string()),
                    Value::Null => {}
                }
            }
            agg.add(&a.app, i, &o, &breakdown);
        }
    }
    sort_facts(agg.facts(set))
}

#[test]
fn gen_run_facts_equal_the_reference_and_a_new_funnel_covers_all_history() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    let o = gen_options(&data);
    run_funnel(&[
        "gen",
        "--out",
        data.to_str().unwrap(),
        "--actors",
        &ACTORS.to_string(),
        "--days",
        &DAYS.to_string(),
        "--events-per-actor",
        "8",
        "--sstables",
        "3",
        "--nodes",
        "3",
        "--rf",
        "2",
        "--seed",
        "42",
        "--end-date",
        END_DATE,
        "--ttl",
        &TTL.to_string(),
        "--apps",
        "3",
        "--quiet",
    ]);
    let funnels = dir.path().join("funnels.toml");
    std::fs::write(&funnels, FUNNELS_V1).unwrap();
    let db = dir.path().join("facts.db");
    let url = format!("sqlite:{}", db.display());
    let report = dir.path().join("report.html");
    let nodes: Vec<String> = (0..3)
        .map(|n| data.join(format!("node{n}")).display().to_string())
        .collect();
    let mut args = vec!["run", "--data"];
    args.extend(nodes.iter().map(String::as_str));
    args.extend([
        "--funnels",
        funnels.to_str().unwrap(),
        "--facts",
        &url,
        "--now",
        END_DATE,
        "--threads",
        "2",
        "--quiet",
        "--report",
        report.to_str().unwrap(),
    ]);
    let (summary, _) = run_funnel(&args);
    assert!(summary.contains("activation"), "{summary}");

    let set = FunnelSet::parse(FUNNELS_V1, "v1").unwrap();
    let expected = reference_facts(&set, &o);
    let apps: Vec<String> = (1..=3).map(|a| format!("app-{a:03}")).collect();
    let store = facts::open_store(&url).unwrap();
    let got = stored_facts(&store, &set, &apps);
    assert!(
        expected
            .iter()
            .any(|f| f.funnel_id == "click_to_install" && f.step == 3),
        "the data must exercise every step"
    );
    assert!(expected.len() > 50, "{} facts", expected.len());
    // The inet predicate keeps some installs and drops others.
    let entered = |id: &str| -> u64 {
        expected
            .iter()
            .filter(|f| f.funnel_id == id && f.step == 1)
            .map(|f| f.actors)
            .sum()
    };
    let (all, some) = (entered("activation"), entered("devices_1x"));
    assert!(0 < some && some < all, "devices_1x {some} of {all}");
    assert!(expected
        .iter()
        .any(|f| f.funnel_id == "devices_1x" && f.step == 2));
    assert_eq!(got, expected);
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("<svg") && html.contains("activation"),
        "self-contained chart per funnel"
    );

    // A funnel added later: the next run computes it over every day on disk.
    std::fs::write(&funnels, format!("{FUNNELS_V1}\n{FUNNEL_ADDED}")).unwrap();
    run_funnel(&args);
    let set2 = FunnelSet::parse(&format!("{FUNNELS_V1}\n{FUNNEL_ADDED}"), "v2").unwrap();
    let expected2 = reference_facts(&set2, &o);
    let got2 = stored_facts(&store, &set2, &apps);
    assert_eq!(got2, expected2);
    let days: std::collections::BTreeSet<i32> = got2
        .iter()
        .filter(|f| f.funnel_id == "browse_to_buy")
        .map(|f| f.day.0)
        .collect();
    // Not just the days since the previous watermark (END_DATE) minus the window: all the days on disk.
    let watermark = (END_MS / 86_400_000) as i32;
    let first_event_day = expected
        .iter()
        .filter(|f| f.funnel_id == "activation")
        .map(|f| f.day.0)
        .min()
        .unwrap();
    assert!(
        days.len() >= 10
            && *days.first().unwrap() <= first_event_day + 1
            && *days.first().unwrap() < watermark - 7,
        "the new funnel covers the history: {days:?}"
    );

    // `funnel report` reads the same facts back from the store.
    let out = dir.path().join("again.html");
    run_funnel(&["report", "--facts", &url, "--out", out.to_str().unwrap()]);
    let again = std::fs::read_to_string(&out).unwrap();
    assert!(again.contains("browse_to_buy"));
}

/// `funnel run`'s exit code says what failed, with the codes of `funnel schedule`
/// (`scheduler::Outcome`): 5 config, 6 input (SSTables), 7 fact store.
#[test]
fn run_exit_codes_say_what_failed() {
    use scheduler::Outcome;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    run_funnel(&[
        "gen",
        "--out",
        data.to_str().unwrap(),
        "--actors",
        "60",
        "--days",
        "3",
        "--sstables",
        "1",
        "--nodes",
        "2",
        "--rf",
        "1",
        "--seed",
        "7",
        "--end-date",
        END_DATE,
        "--quiet",
    ]);
    let nodes: Vec<String> = (0..2)
        .map(|n| data.join(format!("node{n}")).display().to_string())
        .collect();
    let funnels = dir.path().join("funnels.toml");
    std::fs::write(&funnels, FUNNELS_V1).unwrap();
    let bad_funnels = dir.path().join("bad.toml");
    std::fs::write(
        &bad_funnels,
        "[[funnel]]\nid = \"x\"\nwindow = \"forever\"\n",
    )
    .unwrap();
    let good_url = format!("sqlite:{}", dir.path().join("facts.db").display());
    let run = |data: &[String], funnels: &Path, url: &str| {
        let mut args = vec!["run", "--data"];
        args.extend(data.iter().map(String::as_str));
        args.extend([
            "--funnels",
            funnels.to_str().unwrap(),
            "--facts",
            url,
            "--now",
            END_DATE,
            "--threads",
            "2",
            "--quiet",
        ]);
        let out = Command::new(funnel_bin()).args(&args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let code = |o: Outcome| Some(i32::from(o.exit_code()));

    let (c, err) = run(&nodes, &funnels, &good_url);
    assert_eq!(c, Some(0), "{err}");
    let (c, err) = run(&nodes, &bad_funnels, &good_url);
    assert_eq!(c, code(Outcome::ConfigError), "{err}");
    let missing = vec![dir.path().join("no-such-dir").display().to_string()];
    let (c, err) = run(&missing, &funnels, &good_url);
    assert_eq!(c, code(Outcome::InputError), "{err}");
    // A store that cannot be opened: its directory would have to be under a regular file (a
    // missing directory is created, and as root even `/nonexistent-dir` would be).
    let not_a_dir = dir.path().join("not-a-dir");
    std::fs::write(&not_a_dir, "").unwrap();
    let bad_url = format!("sqlite:{}", not_a_dir.join("x.db").display());
    let (c, err) = run(&nodes, &funnels, &bad_url);
    assert_eq!(c, code(Outcome::StoreError), "{err}");

    // A corrupt SSTable: garbage in the middle of every events Data.db.
    let mut corrupted = 0;
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains("events")
                && p.to_string_lossy().ends_with("-Data.db")
            {
                let mut bytes = std::fs::read(&p).unwrap();
                let (mid, len) = (bytes.len() / 2, bytes.len());
                for b in &mut bytes[mid..(mid + 64).min(len)] {
                    *b ^= 0xa5;
                }
                std::fs::write(&p, bytes).unwrap();
                corrupted += 1;
            }
        }
    }
    assert!(corrupted > 0);
    let (c, err) = run(&nodes, &funnels, &good_url);
    assert_eq!(c, code(Outcome::InputError), "{err}");
}
