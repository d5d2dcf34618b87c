//! Discovery and parallel merged scans on a generated cluster (`datagen`: 3 nodes, RF 2, overlapping
//! SSTables): the ranges of a plan, scanned independently (seeking into every SSTable), give exactly the
//! partitions and rows of one sequential merged scan, in the same order; discovery selects tables and
//! snapshots and rejects disagreeing schemas, naming the files.

use std::path::Path;

use datagen::{generate, GenOptions};
use sstable_reader::writer::{writer_version, Compression};
use sstable_reader::{
    discover, for_each_ordered, plan_ranges, Columns, MergeTable, ReadOptions, ScanCounters,
    Selection, Snapshot,
};

const END_MS: i64 = 1_740_787_200_000;

fn cluster(out: &Path, tag: &str) {
    let o = GenOptions {
        out: out.to_path_buf(),
        actors: 3000,
        days: 10,
        events_per_actor: 4.0,
        sstables: 3,
        compression: Compression::Lz4,
        version: writer_version("nb").unwrap(),
        nodes: 3,
        rf: 2,
        seed: 9,
        end_ms: END_MS,
        ttl: 0,
        apps: 2,
        snapshot_tag: tag.into(),
    };
    generate(&o, &mut |_| {}).unwrap();
}

/// (key, rows) of every merged partition with live rows.
fn keys_and_rows(t: &MergeTable, spans: Option<&[Option<(u64, u64)>]>) -> Vec<(Vec<u8>, usize)> {
    let mut scan = match spans {
        Some(s) => t
            .scan_spans(&Columns::Named(vec!["name".into()]), END_MS / 1000, s)
            .unwrap(),
        None => t
            .scan(&Columns::Named(vec!["name".into()]), END_MS / 1000)
            .unwrap(),
    };
    let mut out = Vec::new();
    while let Some(p) = scan.next_partition().unwrap() {
        out.push((p.key().to_vec(), p.row_count()));
    }
    out
}

#[test]
fn ranges_scanned_in_parallel_equal_one_sequential_scan() {
    let dir = tempfile::tempdir().unwrap();
    cluster(dir.path(), "snap");
    let tables = discover(
        &[dir.path().to_path_buf()],
        &Selection {
            tables: vec!["tracking.events".into()],
            snapshot: Snapshot::Live,
        },
    )
    .unwrap()
    .tables;
    assert_eq!(tables.len(), 1);
    assert_eq!(
        tables[0].files.len(),
        9,
        "3 nodes x 3 SSTables: {:?}",
        tables[0].files
    );
    let t = tables[0].open(None, ReadOptions::default()).unwrap();
    let whole = keys_and_rows(&t, None);
    assert!(whole.len() > 2000, "{} partitions", whole.len());
    let mut sorted = whole.clone();
    sorted.sort_by_key(|(k, _)| (t.partitioner().token(k), k.clone()));
    assert_eq!(whole, sorted, "ring order");

    let ranges = plan_ranges(&[&t], 8).unwrap();
    assert!(ranges.len() >= 4, "{} ranges", ranges.len());
    // the spans tile every SSTable exactly, and later ranges seek into the files
    for (i, sst) in t.sstables().iter().enumerate() {
        let mut at = 0;
        for r in &ranges {
            if let Some((s, e)) = r.spans[0][i] {
                assert_eq!(s, at, "{}: spans are contiguous", sst.data_path().display());
                at = e;
            }
        }
        assert_eq!(at, sst.data.len());
    }
    let seeking = ranges[1..]
        .iter()
        .flat_map(|r| r.spans[0].iter().flatten())
        .filter(|(s, _)| *s > 0)
        .count();
    assert!(
        seeking >= ranges.len() * 2,
        "{seeking} spans start inside their file"
    );
    let counters = ScanCounters::default();
    let mut parallel = Vec::new();
    for_each_ordered(
        &ranges,
        2,
        |r| {
            let mut scan = t
                .scan_spans(
                    &Columns::Named(vec!["name".into()]),
                    END_MS / 1000,
                    &r.spans[0],
                )?
                .report_to(&counters);
            let mut v = Vec::new();
            while let Some(p) = scan.next_partition()? {
                v.push((p.key().to_vec(), p.row_count()));
            }
            Ok(v)
        },
        |_, v| {
            parallel.extend(v);
            Ok(true)
        },
    )
    .unwrap();
    assert_eq!(parallel, whole);
    let (disk, rows, parts) = counters.get();
    assert_eq!(parts as usize, whole.len());
    assert!(disk > 0 && rows as usize >= whole.iter().map(|w| w.1).sum::<usize>());
}

#[test]
fn discovery_selects_snapshots_and_rejects_disagreeing_schemas() {
    let dir = tempfile::tempdir().unwrap();
    cluster(dir.path(), "a");
    cluster(dir.path(), "b"); // a second snapshot of every table
    let all = [dir.path().to_path_buf()];
    let err = discover(&all, &Selection::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("several snapshots (a, b)") && err.contains("--snapshot"),
        "{err}"
    );
    let tables = discover(
        &all,
        &Selection {
            tables: Vec::new(),
            snapshot: Snapshot::Tag("b".into()),
        },
    )
    .unwrap()
    .tables;
    let names: Vec<String> = tables.iter().map(|t| t.qualified()).collect();
    assert_eq!(
        names,
        ["tracking.conversions", "tracking.events", "tracking.hits"]
    );
    assert!(tables.iter().all(|t| t
        .files
        .iter()
        .all(|f| f.to_string_lossy().contains("/snapshots/b/"))));
    let only = discover(
        &all,
        &Selection {
            tables: vec!["hits".into()],
            snapshot: Snapshot::Tag("a".into()),
        },
    )
    .unwrap()
    .tables;
    assert_eq!(only.len(), 1);
    assert!(discover(
        &all,
        &Selection {
            tables: vec!["tracking.nope".into()],
            snapshot: Snapshot::Tag("a".into())
        }
    )
    .is_err());

    // node1 declares events differently in its schema.cql: an error naming both files
    let events = &tables[1];
    let victim = events
        .schema_files
        .iter()
        .find(|f| f.to_string_lossy().contains("node1"))
        .unwrap()
        .clone();
    let text = std::fs::read_to_string(&victim)
        .unwrap()
        .replace("name text,", "name text, extra int,");
    std::fs::write(&victim, text).unwrap();
    let err = discover(
        &all,
        &Selection {
            tables: vec!["tracking.events".into()],
            snapshot: Snapshot::Tag("b".into()),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&victim.display().to_string()) && err.contains("declared differently"),
        "{err}"
    );
}
