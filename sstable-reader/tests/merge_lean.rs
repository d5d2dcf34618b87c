//! The merge's lean decoder and fast path against its general decoder: on generated events (TTLs,
//! overwrites and deletions in later SSTables, erased actors; several nodes and one) and on every table
//! real Cassandra wrote (../shared/sstables), the merged rows and the scan's stats are the same whether
//! plain rows take the lean decoder (and one-version partitions the fast path) or not.

use std::path::{Path, PathBuf};

use datagen::{generate, GenOptions};
use sstable_reader::writer::{writer_version, Compression};
use sstable_reader::{
    discover, Columns, DeletionTime, MergeStats, MergeTable, OwnedRow, ReadOptions, SSTable,
    Selection,
};

type Merged = Vec<(Vec<u8>, DeletionTime, Option<OwnedRow>, Vec<OwnedRow>)>;

/// Every merged partition of `table` under `columns`, decoding plain rows with the lean decoder or
/// not; up to the error, if the scan fails; and the scan's stats.
fn merged(
    table: &MergeTable,
    columns: &Columns,
    now: i64,
    plain: bool,
) -> ((Merged, String), MergeStats) {
    let mut scan = table.scan(columns, now).unwrap();
    if !plain {
        scan.without_plain_rows();
    }
    let mut out = Vec::new();
    loop {
        let p = match scan.next_partition() {
            Ok(Some(p)) => p,
            Ok(None) => return ((out, String::new()), scan.stats()),
            Err(e) => return ((out, e.to_string()), scan.stats()),
        };
        for r in p.rows() {
            for c in r.cells() {
                assert_eq!(r.value(c.column), r.cell(c.column).map(|x| x.value));
            }
        }
        out.push((
            p.key().to_vec(),
            p.deletion(),
            p.static_row().map(|r| r.to_owned_row()),
            p.rows().map(|r| r.to_owned_row()).collect(),
        ));
    }
}

/// The projections checked: none, each regular column alone (simple ones take the lean decoder up
/// to them), and all.
fn projections(table: &MergeTable) -> Vec<Columns> {
    let mut p = vec![Columns::All, Columns::Named(Vec::new())];
    p.extend(
        table
            .schema()
            .regulars
            .iter()
            .map(|c| Columns::Named(vec![c.name.clone()])),
    );
    p
}

/// Rows compared, and partitions that took the one-version fast path.
fn assert_same(table: &MergeTable, now: i64, what: &str) -> (usize, u64) {
    let (mut rows, mut direct) = (0, 0);
    for columns in projections(table) {
        let (plain, stats) = merged(table, &columns, now, true);
        let (general, general_stats) = merged(table, &columns, now, false);
        assert!(
            plain == general,
            "{what}, {columns:?}: the lean decoder differs"
        );
        assert_eq!(general_stats.direct_partitions, 0);
        assert_eq!(
            MergeStats {
                direct_partitions: 0,
                ..stats
            },
            general_stats,
            "{what}, {columns:?}"
        );
        rows += plain.0.iter().map(|p| p.3.len()).sum::<usize>();
        direct += stats.direct_partitions;
    }
    (rows, direct)
}

/// Generated events (TTLs, overwrites and deletions in later SSTables, erased actors), on 3 nodes
/// (every partition has replicas) and on one (most partitions have one version, the fast path):
/// the merged scan is the same whether plain rows take the lean decoder or the general one.
#[test]
fn plain_rows_merge_as_the_general_decoder_does_on_generated_events() {
    for (nodes, rf) in [(3, 2), (1, 1)] {
        let direct = lean_and_general_agree_on_generated_events(nodes, rf);
        if nodes == 1 {
            assert!(direct > 1_000, "{direct} partitions took the fast path");
        }
    }
}

/// [`plain_rows_merge_as_the_general_decoder_does_on_generated_events`] on one layout; returns the
/// partitions that took the fast path.
fn lean_and_general_agree_on_generated_events(nodes: u32, rf: u32) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let o = GenOptions {
        out: dir.path().to_path_buf(),
        actors: 300,
        days: 20,
        events_per_actor: 12.0,
        sstables: 3,
        compression: Compression::Lz4,
        version: writer_version("nb").unwrap(),
        nodes,
        rf,
        seed: 5,
        end_ms: 1_790_000_000_000,
        ttl: 10 * 86_400,
        apps: 2,
        snapshot_tag: "t".into(),
    };
    generate(&o, &mut |_| {}).unwrap();
    let (mut checked, mut direct) = (0, 0);
    for table in ["events", "hits", "conversions"] {
        let ssts: Vec<SSTable> = discover(&[dir.path().to_path_buf()], &Selection::default())
            .unwrap()
            .files()
            .filter(|f| f.to_string_lossy().contains(&format!("/{table}-")))
            .map(|f| SSTable::open(f, None, ReadOptions::default()).unwrap())
            .collect();
        assert!(!ssts.is_empty(), "{table}");
        let t = MergeTable::new(ssts).unwrap();
        let (rows, d) = assert_same(&t, o.end_ms / 1000, table);
        checked += rows;
        direct += d;
    }
    assert!(checked > 10_000, "{checked} rows compared");
    direct
}

/// Plain rows repeating a clustering inside one SSTable (as a 2.x upgrade leaves them) leave the
/// fast path: the later write wins, in one row, as in the general merge.
#[test]
fn repeated_plain_rows_of_one_sstable_merge_to_one() {
    use sstable_reader::writer::{
        schema_from_cql_text, Cell, ColumnContent, ColumnData, Liveness, Partition, Row,
        SSTableWriter, Unfiltered, WriterOptions,
    };
    let dir = tempfile::tempdir().unwrap();
    let cql = "CREATE TABLE ks.t (k text, c int, v int, PRIMARY KEY (k, c));";
    let schema = schema_from_cql_text(cql, "t").unwrap();
    let t0 = 1_600_000_000_000_000; // µs
    let row = |c: i32, ts: i64, v: i32| {
        let ts = t0 + ts;
        let mut r = Row::new(vec![Some(c.to_be_bytes().to_vec())]);
        r.liveness = Some(Liveness {
            timestamp: ts,
            expiry: None,
        });
        r.columns = vec![ColumnData {
            column: 0,
            content: ColumnContent::Simple(Cell::live(ts, v.to_be_bytes().to_vec())),
        }];
        Unfiltered::Row(r)
    };
    let mut p = Partition::new(b"a".to_vec());
    p.unfiltereds = vec![row(1, 10, 1), row(1, 20, 2), row(2, 10, 3)];
    let opts = WriterOptions::new(writer_version("nb").unwrap(), Compression::Lz4);
    let mut w = SSTableWriter::create(dir.path(), 1, &schema, opts).unwrap();
    w.append(&p).unwrap();
    let path = w.finish().unwrap().data_path;
    let t = MergeTable::new(vec![
        SSTable::open(&path, None, ReadOptions::default()).unwrap()
    ])
    .unwrap();
    let now = 1_700_000_000;
    let ((plain, err), stats) = merged(&t, &Columns::All, now, true);
    assert_eq!((err.as_str(), stats.direct_partitions), ("", 0));
    assert_eq!(plain, merged(&t, &Columns::All, now, false).0 .0);
    let values: Vec<(Vec<u8>, Vec<u8>)> = plain[0]
        .3
        .iter()
        .map(|r| (r.clustering[0].clone().unwrap(), r.cells[0].value.clone()))
        .collect();
    assert_eq!(
        values,
        [(1i32, 2i32), (2, 3)].map(|(c, v)| (c.to_be_bytes().to_vec(), v.to_be_bytes().to_vec()))
    );
}

fn data_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut has_data = false;
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            data_dirs(&p, out);
        } else if p.to_string_lossy().ends_with("-Data.db") {
            has_data = true;
        }
    }
    if has_data {
        out.push(dir.to_path_buf());
    }
}

/// The same on the files real Cassandra wrote (../shared/sstables), every table that opens
/// without a schema file — the damaged ones failing with the same error.
#[test]
fn plain_rows_merge_as_the_general_decoder_does_on_real_cassandra_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/sstables");
    let mut dirs = Vec::new();
    data_dirs(&root, &mut dirs);
    let (mut tables, mut direct) = (0, 0);
    for dir in dirs {
        let Ok(found) = discover(std::slice::from_ref(&dir), &Selection::default()) else {
            continue;
        };
        let ssts: Option<Vec<SSTable>> = found
            .files()
            .map(|f| SSTable::open(f, None, ReadOptions::default()).ok())
            .collect();
        let Some(t) = ssts.and_then(|s| MergeTable::new(s).ok()) else {
            continue;
        };
        direct += assert_same(&t, 1_900_000_000, &dir.display().to_string()).1;
        tables += 1;
    }
    assert!(direct > 100, "only {direct} partitions took the fast path");
    assert!(
        tables >= 20,
        "only {tables} tables of ../shared/sstables opened"
    );
}
