//! Discovery on a node's real layout, written with the project's writer: each table directory holds live
//! SSTables, `snapshots/2026-10-25-nightly/` (one SSTable), `snapshots/2026-11-01-nightly/` (all of
//! them) and `backups/` side by side. Each selection must yield exactly the files of its copy.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sstable_reader::writer::{
    schema_from_cql_text, write_snapshot_files, Cell, ColumnContent, ColumnData, Compression,
    Partition, Row, SSTableWriter, Unfiltered, WriterOptions,
};
use sstable_reader::{discover, Discovery, Selection, Snapshot};

const OLD: &str = "2026-10-25-nightly";
const NEW: &str = "2026-11-01-nightly";

fn cql(table: &str) -> String {
    format!("CREATE TABLE tracking.{table} (k text, c int, v int, PRIMARY KEY (k, c));")
}

/// Writes SSTable `generation` of `table` into `dir` (a few rows); returns its Data.db.
fn write_sstable(dir: &Path, table: &str, generation: u32) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let schema = schema_from_cql_text(&cql(table), table).unwrap();
    let opts = WriterOptions::new(
        sstable_reader::writer::writer_version("nb").unwrap(),
        Compression::Lz4,
    );
    let mut w = SSTableWriter::create(dir, generation, &schema, opts).unwrap();
    let mut p = Partition::new(format!("key{generation}").into_bytes());
    let mut row = Row::new(vec![Some(1i32.to_be_bytes().to_vec())]);
    row.columns = vec![ColumnData {
        column: 0,
        content: ColumnContent::Simple(Cell::live(
            1_700_000_000_000_000,
            (generation as i32).to_be_bytes().to_vec(),
        )),
    }];
    p.unfiltereds = vec![Unfiltered::Row(row)];
    w.append(&p).unwrap();
    w.finish().unwrap().data_path
}

fn set_mtime(dir: &Path, ago: Duration) {
    std::fs::File::open(dir)
        .unwrap()
        .set_modified(SystemTime::now() - ago)
        .unwrap();
}

/// `<node>/data/tracking/<table>-<id>/` of `tables`: live SSTables 2 and 3 (1 was compacted away), OLD
/// holding 1, NEW holding 1–3, backups/ holding 1. The snapshot directories' mtimes say the opposite of
/// their manifests' `created_at` (which must win).
fn node(node: &Path, tables: &[&str]) {
    for t in tables {
        let dir = node
            .join("data/tracking")
            .join(format!("{t}-0123456789abcdef0123456789abcdef"));
        for g in [2, 3] {
            write_sstable(&dir, t, g);
        }
        write_sstable(&dir.join("backups"), t, 1);
        for (tag, gens, created) in [
            (OLD, &[1][..], "2026-10-25T03:00:00Z"),
            (NEW, &[1, 2, 3][..], "2026-11-01T03:00:00Z"),
        ] {
            let snap = dir.join("snapshots").join(tag);
            let files: Vec<PathBuf> = gens.iter().map(|&g| write_sstable(&snap, t, g)).collect();
            write_snapshot_files(&snap, &files, created, &cql(t)).unwrap();
        }
        set_mtime(&dir.join("snapshots").join(NEW), Duration::from_secs(7200));
        set_mtime(&dir.join("snapshots").join(OLD), Duration::from_secs(60));
    }
}

/// The files found, relative to `root`, as `table-…/copy/generation`.
fn files(found: &Discovery, root: &Path) -> Vec<String> {
    found
        .files()
        .map(|f| {
            let rel = f.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            rel.replace("-0123456789abcdef0123456789abcdef", "")
                .replace("-big-Data.db", "")
        })
        .collect()
}

fn select(tables: &[&str], snapshot: Snapshot) -> Selection {
    Selection {
        tables: tables.iter().map(|t| t.to_string()).collect(),
        snapshot,
    }
}

#[test]
fn each_selection_reads_exactly_its_copy() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    node(&root.join("node1"), &["events", "conversions"]);
    let data = root.join("node1/data");
    // Any directory above the table directories finds the same.
    for at in [
        data.clone(),
        data.join("tracking"),
        root.to_path_buf(),
        root.join("node1"),
    ] {
        let live = discover(std::slice::from_ref(&at), &Selection::default()).unwrap();
        assert_eq!(live.snapshot, None);
        assert_eq!(
            files(&live, root),
            [
                "node1/data/tracking/conversions/nb-2",
                "node1/data/tracking/conversions/nb-3",
                "node1/data/tracking/events/nb-2",
                "node1/data/tracking/events/nb-3",
            ],
            "{}",
            at.display()
        );
    }
    let paths = [data.clone()];
    let old = discover(&paths, &select(&["events"], Snapshot::Tag(OLD.into()))).unwrap();
    assert_eq!(
        files(&old, root),
        [format!("node1/data/tracking/events/snapshots/{OLD}/nb-1")]
    );
    assert_eq!(old.snapshot.as_deref(), Some(OLD));
    // Newest by created_at, although the older tag's directory was modified later.
    let newest = discover(&paths, &select(&["tracking.events"], Snapshot::Newest)).unwrap();
    assert_eq!(newest.snapshot.as_deref(), Some(NEW));
    assert_eq!(
        files(&newest, root),
        (1..=3)
            .map(|g| format!("node1/data/tracking/events/snapshots/{NEW}/nb-{g}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        newest.tables[0].schema_files,
        [data.join(format!(
            "tracking/events-0123456789abcdef0123456789abcdef/snapshots/{NEW}/schema.cql"
        ))]
    );
    // Pointing into a copy reads exactly it; so does a single Data.db.
    let table = data.join("tracking/events-0123456789abcdef0123456789abcdef");
    for (at, want) in [
        (table.join("backups"), vec!["backups/nb-1".to_string()]),
        (
            table.join("snapshots").join(OLD),
            vec![format!("snapshots/{OLD}/nb-1")],
        ),
        (table.join("nb-3-big-Data.db"), vec!["nb-3".to_string()]),
        (table.join("nb-2-big-TOC.txt"), vec!["nb-2".to_string()]),
    ] {
        let found = discover(std::slice::from_ref(&at), &Selection::default()).unwrap();
        let want: Vec<String> = want
            .iter()
            .map(|w| format!("node1/data/tracking/events/{w}"))
            .collect();
        assert_eq!(files(&found, root), want, "{}", at.display());
    }
}

#[test]
fn newest_without_created_at_goes_by_the_directory_time() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    node(&root.join("n"), &["events"]);
    let table = root.join("n/data/tracking/events-0123456789abcdef0123456789abcdef");
    for tag in [OLD, NEW] {
        std::fs::write(
            table.join("snapshots").join(tag).join("manifest.json"),
            "{\"files\": []}",
        )
        .unwrap();
    }
    set_mtime(
        &table.join("snapshots").join(NEW),
        Duration::from_secs(7200),
    );
    set_mtime(&table.join("snapshots").join(OLD), Duration::from_secs(60));
    let found = discover(&[root.to_path_buf()], &select(&[], Snapshot::Newest)).unwrap();
    assert_eq!(found.snapshot.as_deref(), Some(OLD));
}

#[test]
fn newest_is_one_tag_every_table_directory_has() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    node(&root.join("node1"), &["events", "conversions"]);
    node(&root.join("node2"), &["events", "conversions"]);
    let nodes = [root.join("node1"), root.join("node2")];
    let tables = ["events", "conversions"];
    let found = discover(&nodes, &select(&tables, Snapshot::Newest)).unwrap();
    assert_eq!(found.snapshot.as_deref(), Some(NEW));
    assert_eq!(found.files().count(), 2 * 2 * 3);

    // An ad-hoc snapshot of events alone, newer than the nightly ones: the read stays at the nightly
    // snapshot of both tables (reading events alone, it is the newest).
    let adhoc = |n: &str| {
        let dir = root
            .join(n)
            .join("data/tracking/events-0123456789abcdef0123456789abcdef/snapshots/adhoc");
        let files = vec![write_sstable(&dir, "events", 9)];
        write_snapshot_files(&dir, &files, "2026-11-01T12:00:00Z", &cql("events")).unwrap();
        dir
    };
    adhoc("node1");
    let adhoc2 = adhoc("node2");
    let found = discover(&nodes, &select(&tables, Snapshot::Newest)).unwrap();
    assert_eq!(found.snapshot.as_deref(), Some(NEW));
    let found = discover(&nodes, &select(&["events"], Snapshot::Newest)).unwrap();
    assert_eq!(found.snapshot.as_deref(), Some("adhoc"));
    // ...and a tag missing on one node of a table that has it is an error naming that node's directory.
    std::fs::remove_dir_all(&adhoc2).unwrap();
    let err = discover(&nodes, &select(&["events"], Snapshot::Tag("adhoc".into())))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("snapshot adhoc is missing in")
            && err.contains("node2/data/tracking/events-")
            && !err.contains("node1/data/tracking/events-"),
        "{err}"
    );

    // Tonight's snapshot failed on node2: the read stays at the last one taken everywhere.
    std::fs::remove_dir_all(
        root.join("node2/data/tracking/events-0123456789abcdef0123456789abcdef/snapshots")
            .join(NEW),
    )
    .unwrap();
    let found = discover(&nodes, &select(&tables, Snapshot::Newest)).unwrap();
    assert_eq!(found.snapshot.as_deref(), Some(OLD));
    assert_eq!(found.files().count(), 2 * 2);
    // No tag in common: an error listing every directory's tags.
    for n in ["node1", "node2"] {
        std::fs::remove_dir_all(
            root.join(n)
                .join("data/tracking/conversions-0123456789abcdef0123456789abcdef/snapshots")
                .join(OLD),
        )
        .unwrap();
    }
    let err = discover(&nodes, &select(&tables, Snapshot::Newest))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no snapshot tag is in every table directory"),
        "{err}"
    );
}

#[test]
fn snapshots_cassandra_takes_itself_are_not_the_newest() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    node(&root.join("n"), &["events"]);
    let table = root.join("n/data/tracking/events-0123456789abcdef0123456789abcdef");
    let truncated = table.join("snapshots/truncated-1793577600000-events");
    let files = vec![write_sstable(&truncated, "events", 7)];
    write_snapshot_files(&truncated, &files, "2026-11-02T00:00:00Z", &cql("events")).unwrap();
    let found = discover(&[root.to_path_buf()], &select(&[], Snapshot::Newest)).unwrap();
    assert_eq!(found.snapshot.as_deref(), Some(NEW));
    // Asked for by its tag, it is read.
    let tag = Snapshot::Tag("truncated-1793577600000-events".into());
    assert_eq!(
        discover(&[root.to_path_buf()], &select(&[], tag))
            .unwrap()
            .files()
            .count(),
        1
    );
    // What a dropped table leaves behind (its only SSTables in a dropped-… snapshot) is not read.
    let dropped =
        root.join("n/data/tracking/gone-00000000000000000000000000000000/snapshots/dropped-1-gone");
    write_sstable(&dropped, "gone", 1);
    let found = discover(&[root.to_path_buf()], &Selection::default()).unwrap();
    assert_eq!(
        found
            .tables
            .iter()
            .map(|t| t.qualified())
            .collect::<Vec<_>>(),
        ["tracking.events"]
    );
}

#[test]
fn several_snapshots_and_no_live_sstables_ask_for_a_choice() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    node(&root.join("n"), &["events"]);
    let table = root.join("n/data/tracking/events-0123456789abcdef0123456789abcdef");
    for g in [2, 3] {
        for f in std::fs::read_dir(&table).unwrap() {
            let p = f.unwrap().path();
            if p.is_file() && p.to_string_lossy().contains(&format!("nb-{g}-")) {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
    let err = discover(&[root.to_path_buf()], &Selection::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("several snapshots ({OLD}, {NEW})")) && err.contains("--snapshot"),
        "{err}"
    );
    // With one snapshot left, it is read.
    std::fs::remove_dir_all(table.join("snapshots").join(OLD)).unwrap();
    let found = discover(&[root.to_path_buf()], &Selection::default()).unwrap();
    assert_eq!(found.files().count(), 3);
    assert_eq!(found.snapshot, None);
}
