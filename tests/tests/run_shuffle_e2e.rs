//! End to end, the hash shuffle: the generator's `tracking.events` (partitioned by (app, actor)) is read
//! back with the reader (merged across nodes, TTLs judged at the end time) and rewritten with our writer as
//! `tracking.events_by_day`, partitioned by (app, day) with the actor a regular column. `funnel run` over
//! that table (and the canonical, actor-keyed `tracking.conversions`: a mixed pair, so both go through the
//! shuffle) must publish exactly the facts of the streaming run over the canonical tables — with a tiny
//! `--memory-budget` that forces spilling, and with the default budget (no spill).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datagen::{generate, GenOptions};
use e2e_tests::{run_funnel, sort_facts};
use facts::FunnelStepFact;
use funnelizer::FunnelSet;
use sstable_reader::writer::{
    schema_from_cql_text, snapshot_dir, table_id, write_snapshot_files, writer_version, Cell,
    CellState, ColumnContent, ColumnData, Compression, Liveness, Partition, Row, SSTableWriter,
    Unfiltered, WriterOptions,
};
use sstable_reader::{
    compare_values, composite, discover, murmur3_token, split_composite, Columns, CqlType,
    DeletionTime, ReadOptions, Selection,
};

const END_DATE: &str = "2025-03-01";
const END_MS: i64 = 1_740_787_200_000; // 2025-03-01T00:00:00Z

const FUNNELS: &str = r#"
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

[[funnel]]
id = "browse_to_buy"
window = "3d"
mode = "unordered"
steps = [ { event = "view_item" }, { event = "add_to_cart" }, { event = "purchase", where = { "props.currency" = "EUR" } } ]
"#;

const BY_DAY_SOURCE: &str = r#"
[source]
events = { table = "tracking.events_by_day", app = "app_id", actor = "actor_id", time = "ts", name = "name" }
"#;

const BY_DAY_CQL: &str = "CREATE TABLE tracking.events_by_day (
    app_id text, day int, ts timestamp, event_id timeuuid,
    actor_id text, name text, props map<text, text>,
    PRIMARY KEY ((app_id, day), ts, event_id)
) WITH CLUSTERING ORDER BY (ts ASC, event_id ASC);
";

fn gen_options(out: &Path) -> GenOptions {
    GenOptions {
        out: out.to_path_buf(),
        actors: 500,
        days: 16,
        events_per_actor: 8.0,
        sstables: 2,
        compression: Compression::Lz4,
        version: writer_version("nb").unwrap(),
        nodes: 2,
        rf: 2,
        seed: 7,
        end_ms: END_MS,
        ttl: 12 * 86_400,
        apps: 3,
        snapshot_tag: "funnel-gen".into(),
    }
}

/// One live row of tracking.events.
struct Event {
    actor: Vec<u8>,
    ts: Vec<u8>,
    event_id: Vec<u8>,
    name: Option<Vec<u8>>,
    props: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads the live rows of tracking.events under `data` and writes them as tracking.events_by_day under
/// `out` (two SSTables, each partition's rows alternating between them, so the reader merges).
fn rewrite_by_day(data: &Path, out: &Path) -> usize {
    let found = discover(&[data.to_path_buf()], &Selection::default()).unwrap();
    let events = found
        .table("tracking.events")
        .unwrap()
        .open(None, ReadOptions::default())
        .unwrap();
    let schema = events.schema();
    let col = |n: &str| schema.regulars.iter().position(|c| c.name == n).unwrap();
    let (name_col, props_col) = (col("name"), col("props"));
    let mut scan = events.scan(&Columns::All, END_MS / 1000).unwrap();
    let mut by_day: BTreeMap<Vec<u8>, Vec<Event>> = BTreeMap::new();
    let mut n = 0;
    while let Some(p) = scan.next_partition().unwrap() {
        let (app, actor) = (
            split_composite(p.key(), 0).unwrap().to_vec(),
            split_composite(p.key(), 1).unwrap().to_vec(),
        );
        for row in p.rows() {
            let ts = row.clustering(0).unwrap().to_vec();
            let ms = i64::from_be_bytes(ts.as_slice().try_into().unwrap());
            let day = (ms.div_euclid(86_400_000) as i32).to_be_bytes();
            let e = Event {
                actor: actor.clone(),
                event_id: row.clustering(1).unwrap().to_vec(),
                ts,
                name: row.cell(name_col).map(|c| c.value.to_vec()),
                props: row
                    .cells()
                    .filter(|c| c.column == props_col)
                    .filter_map(|c| Some((c.path?.to_vec(), c.value.to_vec())))
                    .collect(),
            };
            by_day.entry(composite(&[&app, &day])).or_default().push(e);
            n += 1;
        }
    }

    let wschema = schema_from_cql_text(BY_DAY_CQL, "events_by_day").unwrap();
    let wcol = |n: &str| wschema.regulars.iter().position(|c| c.name == n).unwrap();
    let (w_actor, w_name, w_props) = (wcol("actor_id"), wcol("name"), wcol("props"));
    let mut partitions: Vec<(Vec<u8>, Vec<Event>)> = by_day.into_iter().collect();
    partitions.sort_by(|a, b| (murmur3_token(&a.0), &a.0).cmp(&(murmur3_token(&b.0), &b.0)));
    let id = table_id("tracking", "events_by_day", 1);
    let dir = snapshot_dir(out, None, "tracking", "events_by_day", &id, "byday");
    let mut opts = WriterOptions::new(writer_version("nb").unwrap(), Compression::Lz4);
    opts.expected_partitions = partitions.len() as u64;
    let mut writers = [
        SSTableWriter::create(&dir, 1, &wschema, opts.clone()).unwrap(),
        SSTableWriter::create(&dir, 2, &wschema, opts).unwrap(),
    ];
    let ts_us = END_MS * 1000 - 1;
    for (key, mut rows) in partitions {
        rows.sort_by(|a, b| {
            compare_values(&CqlType::Timestamp, &a.ts, &b.ts)
                .then_with(|| compare_values(&CqlType::TimeUuid, &a.event_id, &b.event_id))
        });
        let mut parts = [Partition::new(key.clone()), Partition::new(key)];
        for (i, e) in rows.into_iter().enumerate() {
            let mut columns = vec![
                (
                    w_actor,
                    ColumnContent::Simple(Cell::live(ts_us, e.actor.clone())),
                ),
                (
                    w_props,
                    ColumnContent::Complex {
                        deletion: DeletionTime::LIVE,
                        cells: e
                            .props
                            .into_iter()
                            .map(|(k, v)| Cell {
                                timestamp: ts_us,
                                state: CellState::Live,
                                path: Some(k),
                                value: v,
                            })
                            .collect(),
                    },
                ),
            ];
            if let Some(name) = e.name {
                columns.push((w_name, ColumnContent::Simple(Cell::live(ts_us, name))));
            }
            columns.sort_by_key(|c| c.0);
            let mut row = Row::new(vec![Some(e.ts), Some(e.event_id)]);
            row.liveness = Some(Liveness {
                timestamp: ts_us,
                expiry: None,
            });
            row.columns = columns
                .into_iter()
                .map(|(column, content)| ColumnData { column, content })
                .collect();
            parts[i % 2].unfiltereds.push(Unfiltered::Row(row));
        }
        for (w, p) in writers.iter_mut().zip(&parts) {
            if !p.unfiltereds.is_empty() {
                w.append(p).unwrap();
            }
        }
    }
    let files: Vec<PathBuf> = writers
        .into_iter()
        .map(|w| w.finish().unwrap().data_path)
        .collect();
    write_snapshot_files(&dir, &files, "2025-03-01T00:00:00Z", BY_DAY_CQL).unwrap();
    n
}

/// Every stored fact of `set`, with the funnel version blanked (it covers the source mapping, which
/// differs between the two layouts), sorted.
fn stored_facts(url: &str, set: &FunnelSet) -> Vec<FunnelStepFact> {
    let store = facts::open_store(url).unwrap();
    let apps: Vec<String> = (1..=3).map(|a| format!("app-{a:03}")).collect();
    let mut out = e2e_tests::stored_facts(&store, set, &apps);
    for f in &mut out {
        f.funnel_version.clear();
    }
    sort_facts(out)
}

#[test]
fn shuffled_day_partitioned_table_gives_the_streaming_facts_with_and_without_spilling() {
    let dir = tempfile::tempdir().unwrap();
    let gen = dir.path().join("cluster");
    generate(&gen_options(&gen), &mut |_| {}).unwrap();
    let byday = dir.path().join("byday");
    let rows = rewrite_by_day(&gen, &byday);
    assert!(rows > 1000, "{rows} rows");

    let canonical = dir.path().join("canonical.toml");
    std::fs::write(&canonical, FUNNELS).unwrap();
    let shuffled = dir.path().join("by_day.toml");
    std::fs::write(&shuffled, format!("{BY_DAY_SOURCE}\n{FUNNELS}")).unwrap();
    let nodes: Vec<String> = (0..2)
        .map(|n| gen.join(format!("node{n}")).display().to_string())
        .collect();
    let byday_s = byday.display().to_string();
    let run_with = |funnels: &Path, db: &str, extra: &[&str]| {
        let url = format!("sqlite:{}", dir.path().join(db).display());
        let mut args = vec!["run", "--data"];
        args.extend(nodes.iter().map(String::as_str));
        args.push(&byday_s);
        let funnels = funnels.display().to_string();
        args.extend([
            "--funnels",
            &funnels,
            "--facts",
            &url,
            "--now",
            END_DATE,
            "--threads",
            "2",
            "--quiet",
        ]);
        args.extend(extra);
        let (_, stderr) = run_funnel(&args);
        (url, stderr)
    };

    let (url, stderr) = run_with(&canonical, "canonical.db", &[]);
    assert!(stderr.contains("streamed: "), "{stderr}");
    let set = FunnelSet::parse(FUNNELS, "canonical").unwrap();
    let expected = stored_facts(&url, &set);
    assert!(expected.len() > 50, "{} facts", expected.len());
    for id in ["activation", "click_to_install", "browse_to_buy"] {
        assert!(
            expected.iter().any(|f| f.funnel_id == id && f.step >= 2),
            "the data must exercise {id}"
        );
    }
    assert!(
        expected.iter().any(|f| !f.breakdown.is_empty()),
        "breakdowns are read from the shuffled map column"
    );
    let by_day_set = FunnelSet::parse(&format!("{BY_DAY_SOURCE}\n{FUNNELS}"), "by_day").unwrap();

    // A 16 KiB budget: most of the shuffled rows go through spill files.
    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    let spill_s = spill.display().to_string();
    let (url, stderr) = run_with(
        &shuffled,
        "tiny.db",
        &["--memory-budget", "16KiB", "--spill-dir", &spill_s],
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("shuffled: "))
        .unwrap_or_else(|| panic!("no shuffle summary: {stderr}"));
    assert!(
        line.contains(" spilled ") && !line.contains("no spill"),
        "{line}"
    );
    // Every events row and the conversions rows too (both tables are shuffled).
    let shuffled_rows: usize = line["shuffled: ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(shuffled_rows > rows, "{line}");
    assert_eq!(stored_facts(&url, &by_day_set), expected);
    assert_eq!(
        std::fs::read_dir(&spill).unwrap().count(),
        0,
        "the spill directory is removed after the run"
    );

    // The default budget (1 GiB): no spill, same facts.
    let (url, stderr) = run_with(&shuffled, "default.db", &[]);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("shuffled: "))
        .unwrap_or_else(|| panic!("no shuffle summary: {stderr}"));
    assert!(line.contains("no spill"), "{line}");
    assert_eq!(stored_facts(&url, &by_day_set), expected);
}
