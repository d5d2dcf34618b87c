//! The merged scan on SSTables real Cassandra wrote: the `hello` tables of the 3.11 fixtures have two
//! generations (md-1, md-2) overlapping on keys, with columns added between them; the `cf_with_duplicates`
//! file holds duplicate rows; the legacy counter tables hold counter contexts. Each must merge to one row
//! per primary key, equal to a brute-force merge computed from each SSTable's own rows by column name.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sstable_reader::{
    counter_total, discover, resolve, Columns, DeletionTime, MergeTable, OwnedCell, Projection,
    ReadOptions, SSTable, Selection, Unfiltered,
};

const NOW: i64 = 1_900_000_000;

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/sstables")
        .join(rel)
}

fn open_dir(dir: &Path) -> Vec<SSTable> {
    discover(&[dir.to_path_buf()], &Selection::default())
        .unwrap()
        .files()
        .map(|f| SSTable::open(f, None, ReadOptions::default()).unwrap())
        .collect()
}

type Key = (Vec<u8>, Vec<Option<Vec<u8>>>);
type Answer = BTreeMap<Key, BTreeMap<(String, Option<Vec<u8>>), Vec<u8>>>;

/// Brute force: every version of every cell, by column name and path; the winner by `resolve`; then the
/// partition and row deletions and TTLs at NOW.
fn brute_force(ssts: &[SSTable]) -> Answer {
    #[derive(Default)]
    struct RowAcc {
        liveness: Option<(i64, i64)>, // (timestamp, expiry)
        deletion: Option<DeletionTime>,
        cells: BTreeMap<(String, Option<Vec<u8>>), OwnedCell>,
        complex: BTreeMap<String, DeletionTime>,
    }
    let mut rows: BTreeMap<Key, RowAcc> = BTreeMap::new();
    let mut pdel: BTreeMap<Vec<u8>, DeletionTime> = BTreeMap::new();
    for sst in ssts {
        let mut scan = sst.scanner(Projection::all(&sst.schema));
        while let Some(h) = scan.next_partition().unwrap() {
            let key = scan.key().to_vec();
            let d = pdel.entry(key.clone()).or_insert(DeletionTime::LIVE);
            *d = d.max(h.deletion);
            while let Some(u) = scan.next_unfiltered().unwrap() {
                let Unfiltered::Row(r) = u else {
                    panic!(
                        "{}: range tombstones are not in this model",
                        sst.data_path().display()
                    )
                };
                let ck = (0..r.clustering_len())
                    .map(|i| r.clustering(i).map(<[u8]>::to_vec))
                    .collect();
                let acc = rows.entry((key.clone(), ck)).or_default();
                let l = r.liveness();
                if !l.is_empty() && acc.liveness.is_none_or(|(t, _)| l.timestamp > t) {
                    acc.liveness = Some((
                        l.timestamp,
                        if l.is_expiring() {
                            l.local_expiration_time
                        } else {
                            i64::MAX
                        },
                    ));
                }
                acc.deletion = Some(acc.deletion.unwrap_or(DeletionTime::LIVE).max(r.deletion()));
                let cols = if r.is_static() {
                    &sst.schema.statics
                } else {
                    &sst.schema.regulars
                };
                for (c, d) in r.complex_deletions() {
                    let e = acc
                        .complex
                        .entry(cols[c].name.clone())
                        .or_insert(DeletionTime::LIVE);
                    *e = e.max(d);
                }
                for c in r.cells() {
                    let name = cols[c.column].name.clone();
                    let k = (name, c.path.map(<[u8]>::to_vec));
                    match acc.cells.get(&k) {
                        Some(old) if resolve(&c, &old.as_cell()) != Ordering::Greater => {}
                        _ => drop(acc.cells.insert(k, OwnedCell::from_cell(&c))),
                    }
                }
            }
        }
    }
    let mut out = Answer::new();
    for ((key, ck), acc) in rows {
        let d = pdel[&key].max(acc.deletion.unwrap_or(DeletionTime::LIVE));
        let live = acc.liveness.is_some_and(|(t, e)| !d.deletes(t) && NOW < e);
        let cells: BTreeMap<_, _> = acc
            .cells
            .into_iter()
            .filter(|((name, _), c)| {
                c.as_cell().is_live(NOW)
                    && !d.deletes(c.timestamp)
                    && !acc
                        .complex
                        .get(name)
                        .is_some_and(|cd| cd.deletes(c.timestamp))
            })
            .map(|(k, c)| (k, c.value))
            .collect();
        if live || !cells.is_empty() {
            out.insert((key, ck), cells);
        }
    }
    out
}

fn merged(table: &MergeTable) -> Answer {
    let mut out = Answer::new();
    let mut scan = table.scan(&Columns::All, NOW).unwrap();
    while let Some(p) = scan.next_partition().unwrap() {
        for r in p.static_row().into_iter().chain(p.rows()) {
            let cols = if r.is_static() {
                &table.schema().statics
            } else {
                &table.schema().regulars
            };
            let ck = (0..r.clustering_len())
                .map(|i| r.clustering(i).map(<[u8]>::to_vec))
                .collect();
            let cells = r
                .cells()
                .map(|c| {
                    (
                        (cols[c.column].name.clone(), c.path.map(<[u8]>::to_vec)),
                        c.value.to_vec(),
                    )
                })
                .collect();
            assert!(
                out.insert((p.key().to_vec(), ck), cells).is_none(),
                "a primary key returned twice"
            );
        }
    }
    out
}

#[test]
fn hello_generations_merge_to_one_row_per_key() {
    let base = shared("cassandra-3.11-types/data/hello");
    let mut checked = 0;
    for entry in std::fs::read_dir(&base).unwrap() {
        let dir = entry.unwrap().path();
        let ssts = open_dir(&dir);
        assert_eq!(ssts.len(), 2, "{}: md-1 and md-2", dir.display());
        let expected = brute_force(&ssts);
        let table = MergeTable::new(ssts).unwrap();
        let got = merged(&table);
        assert_eq!(got, expected, "{}", dir.display());
        // one row per key, however many generations hold it
        let keys: std::collections::BTreeSet<_> = got.keys().map(|k| k.0.clone()).collect();
        assert_eq!(
            keys.len(),
            got.len(),
            "{}: these tables have no clustering: one row per partition",
            dir.display()
        );
        checked += got.len();
    }
    assert!(checked >= 5, "rows checked: {checked}");
}

#[test]
fn world_key_foo_combines_both_generations() {
    // `hello.world` holds key "foo" in both generations; the merged row has the cells of both.
    let dir = std::fs::read_dir(shared("cassandra-3.11-types/data/hello"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("world-")
        })
        .unwrap();
    let per_file: Vec<usize> = open_dir(&dir)
        .iter()
        .map(|s| {
            let mut scan = s.scanner(Projection::all(&s.schema));
            let mut n = 0;
            while scan.next_partition().unwrap().is_some() {
                if scan.key() == b"foo" {
                    while let Some(Unfiltered::Row(r)) = scan.next_unfiltered().unwrap() {
                        n += r.cells().count();
                    }
                }
            }
            n
        })
        .collect();
    assert!(
        per_file.iter().all(|&n| n > 0),
        "both generations write foo: {per_file:?}"
    );
    let table = MergeTable::new(open_dir(&dir)).unwrap();
    let got = merged(&table);
    let foo: Vec<_> = got.iter().filter(|(k, _)| k.0 == b"foo").collect();
    assert_eq!(foo.len(), 1);
    // gen 1 wrote bigintval, gen 2 (after columns were added) blobval and booleanval
    assert_eq!(
        foo[0].1.len(),
        per_file.iter().sum::<usize>(),
        "{:?}",
        foo[0].1.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        foo[0].1.get(&("bigintval".to_string(), None)),
        Some(&100i64.to_be_bytes().to_vec())
    );
}

#[test]
fn duplicate_rows_collapse() {
    let ssts = open_dir(&shared(
        "cassandra/other/invalid-legacy-sstables/Keyspace1/cf_with_duplicates_3_0",
    ));
    let expected = brute_force(&ssts);
    let table = MergeTable::new(ssts).unwrap();
    let got = merged(&table);
    assert_eq!(got, expected);
    assert_eq!(got.len(), 1, "after scrub the table holds 1 row: {got:?}");
    let ((key, ck), cells) = got.into_iter().next().unwrap();
    assert_eq!(key, 1i32.to_be_bytes());
    assert_eq!(ck, vec![Some(2i32.to_be_bytes().to_vec())]);
    assert_eq!(cells.values().next().unwrap(), &3i32.to_be_bytes());
}

#[test]
fn legacy_counters_read_through_the_merge() {
    for v in ["ma", "mc", "nb", "oa"] {
        for (table, rows) in [("simple_counter", 5usize), ("clust_counter", 250)] {
            let dir = shared(&format!(
                "cassandra/legacy/{v}/legacy_tables/legacy_{v}_{table}"
            ));
            if !dir.exists() {
                continue;
            }
            let t = MergeTable::new(open_dir(&dir)).unwrap();
            let mut scan = t.scan(&Columns::All, NOW).unwrap();
            let mut n = 0;
            while let Some(p) = scan.next_partition().unwrap() {
                for r in p.rows() {
                    assert_eq!(
                        counter_total(r.cell(0).unwrap().value).unwrap(),
                        1,
                        "{v} {table}"
                    );
                    n += 1;
                }
            }
            assert_eq!(n, rows, "{v} {table}");
        }
    }
}
