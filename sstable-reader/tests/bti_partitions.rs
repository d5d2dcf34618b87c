//! BTI partition indexes on files real Cassandra wrote (the `da` legacy tables, ByteOrderedPartitioner,
//! partitions "0".."4"; the clust tables index their rows in Rows.db): Partitions.db lists exactly the
//! partitions a sequential scan of Data.db finds; plans over them have several ranges whose scans add
//! up to the single-range scan; damaged copies of Partitions.db are errors naming the file, not panics.

mod common;

use std::path::{Path, PathBuf};

use sstable_reader::test_common::{data_positions, PartitionTrie, Target};
use sstable_reader::{
    discover, plan_ranges, Columns, Error, MergeTable, OwnedRow, Projection, ReadOptions, SSTable,
    Selection,
};

const TABLES: [&str; 4] = ["simple", "simple_counter", "clust", "clust_counter"];

fn dir(t: &str) -> PathBuf {
    common::shared(&format!("cassandra/legacy/da/legacy_tables/legacy_da_{t}"))
}

fn open(dir: &Path) -> SSTable {
    let files: Vec<PathBuf> = discover(&[dir.to_path_buf()], &Selection::default())
        .unwrap()
        .files()
        .cloned()
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    SSTable::open(&files[0], None, ReadOptions::default()).unwrap()
}

/// (key, position) of every partition, by a sequential scan of Data.db.
fn scanned(sst: &SSTable) -> Vec<(Vec<u8>, u64)> {
    let mut scan = sst.scanner(Projection::none(&sst.schema));
    let mut out = Vec::new();
    while let Some(h) = scan.next_partition().unwrap() {
        out.push((scan.key().to_vec(), h.position));
    }
    out
}

#[test]
fn partitions_db_lists_the_partitions_of_data_db() {
    for t in TABLES {
        let sst = open(&dir(t));
        let seq = scanned(&sst);
        let keys: Vec<&[u8]> = seq.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [b"0", b"1", b"2", b"3", b"4"], "{t}");
        let positions = data_positions(&sst.descriptor, sst.data.len()).unwrap();
        let want: Vec<u64> = seq.iter().map(|(_, p)| *p).collect();
        assert_eq!(positions, want, "{t}");
        let (footer, payloads) = PartitionTrie::open(&sst.descriptor)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(footer.key_count, 5, "{t}");
        assert_eq!(
            (&footer.first_key[..], &footer.last_key[..]),
            (&b"0"[..], &b"4"[..])
        );
        let via_rows = payloads
            .iter()
            .filter(|p| matches!(p.target, Target::Rows(_)))
            .count();
        if t.starts_with("clust") {
            assert_eq!(via_rows, 5, "{t}: every partition has a row index");
        } else {
            assert_eq!(via_rows, 0, "{t}");
        }
    }
}

/// (key, rows) of every merged partition of `spans`.
fn rows(t: &MergeTable, spans: &[Option<(u64, u64)>]) -> Vec<(Vec<u8>, Vec<OwnedRow>)> {
    let mut scan = t.scan_spans(&Columns::All, common::NOW, spans).unwrap();
    let mut out = Vec::new();
    while let Some(p) = scan.next_partition().unwrap() {
        out.push((
            p.key().to_vec(),
            p.rows().map(|r| r.to_owned_row()).collect(),
        ));
    }
    out
}

#[test]
fn bti_tables_split_into_ranges_that_add_up_to_one_scan() {
    for name in TABLES {
        let t = MergeTable::new(vec![open(&dir(name))]).unwrap();
        let whole_spans = vec![Some((0, t.sstables()[0].data.len()))];
        let whole = rows(&t, &whole_spans);
        assert_eq!(whole.len(), 5, "{name}");
        assert!(whole.iter().all(|(_, r)| !r.is_empty()), "{name}");
        let ranges = plan_ranges(&[&t], 8).unwrap();
        let nonempty = ranges.iter().filter(|r| r.spans[0][0].is_some()).count();
        assert!(ranges.len() > 1 && nonempty > 1, "{name}: {ranges:?}");
        let mut at = 0;
        let mut parallel = Vec::new();
        for r in &ranges {
            if let Some((s, e)) = r.spans[0][0] {
                assert_eq!(s, at, "{name}: spans are contiguous");
                at = e;
            }
            parallel.extend(rows(&t, &r.spans[0]));
        }
        assert_eq!(at, t.sstables()[0].data.len(), "{name}");
        assert_eq!(parallel, whole, "{name}");
    }
}

/// A writable copy of a fixture directory.
fn copy(t: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir(t)).unwrap() {
        let e = e.unwrap();
        let to = tmp.path().join(e.file_name());
        std::fs::copy(e.path(), &to).unwrap();
        let mut perm = std::fs::metadata(&to).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(&to, perm).unwrap();
    }
    tmp
}

fn component(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("da-1-bti-{name}"))
}

/// The offset of a corruption error about `file`.
fn corrupt_in(r: sstable_reader::Result<impl std::fmt::Debug>, file: &str) -> u64 {
    match r {
        Err(Error::Corrupt { path, offset, .. }) if path.ends_with(file) => offset,
        other => panic!("expected corruption in {file}, got {other:?}"),
    }
}

#[test]
fn damaged_partitions_db_is_an_error_naming_the_file() {
    for t in TABLES {
        let tmp = copy(t);
        let sst = open(tmp.path());
        let pdb = component(tmp.path(), "Partitions.db");
        let good = std::fs::read(&pdb).unwrap();
        let len = good.len();
        let positions = || data_positions(&sst.descriptor, sst.data.len());

        // Every truncation.
        for n in 0..len {
            std::fs::write(&pdb, &good[..n]).unwrap();
            corrupt_in(positions(), "da-1-bti-Partitions.db");
        }
        // Every single-bit flip and every byte inverted: an answer or an error, never a panic or a hang.
        for i in 0..len {
            for x in (0..8).map(|b| 1u8 << b).chain([0xff]) {
                let mut bad = good.clone();
                bad[i] ^= x;
                std::fs::write(&pdb, &bad).unwrap();
                if let Err(e) = positions() {
                    assert!(
                        matches!(e, Error::Corrupt { .. }),
                        "{t}: byte {i} ^ {x:#x}: {e}"
                    );
                }
            }
        }
        // The root beyond the trie: named through the planner, at the footer's root field.
        let mut bad = good.clone();
        bad[len - 1] = 0xf0;
        std::fs::write(&pdb, &bad).unwrap();
        let table = MergeTable::new(vec![open(tmp.path())]).unwrap();
        let err = plan_ranges(&[&table], 8);
        assert_eq!(
            corrupt_in(err, "da-1-bti-Partitions.db"),
            len as u64 - 8,
            "{t}"
        );
        let msg = plan_ranges(&[&table], 8).unwrap_err().to_string();
        assert!(
            msg.contains("Partitions.db") && msg.contains("root"),
            "{msg}"
        );
        std::fs::write(&pdb, &good).unwrap();
        assert_eq!(positions().unwrap().len(), 5);

        // A truncated Rows.db is an error naming Rows.db.
        if t.starts_with("clust") {
            let rdb = component(tmp.path(), "Rows.db");
            let rows = std::fs::read(&rdb).unwrap();
            std::fs::write(&rdb, &rows[..rows.len() - 20]).unwrap();
            corrupt_in(positions(), "da-1-bti-Rows.db");
        }
    }
}
