//! SSTables in ScyllaDB's layout (`me` with `Scylla.db`, written by this crate's writer as ScyllaDB
//! writes them): TOC components the reader does not know are tolerated, `Scylla.db` is parsed and
//! honoured, ScyllaDB's shadowable row deletion (extended flag 0x80) and Cassandra's (0x02) delete with
//! Cassandra's shadowable semantics — a deleted row never comes back live unless a newer liveness
//! shadows the deletion — and what is not understood is refused naming the file.

mod common;

use std::path::{Path, PathBuf};

use common::{dump_with, NOW};
use sstable_reader::writer::{
    schema_from_cql_text, writer_version, Cell, ColumnContent, ColumnData, Compression, Liveness,
    Partition, Row, SSTableWriter, Unfiltered, WriterOptions,
};
use sstable_reader::{Columns, DeletionTime, Error, MergeTable, ReadOptions, SSTable};

const T: i64 = 1_700_000_000_000_000;

fn del(at: i64) -> DeletionTime {
    DeletionTime {
        marked_for_delete_at: at,
        local_deletion_time: at / 1_000_000,
    }
}

fn row(c: i32, liveness: Option<i64>, v: Option<(i64, i32)>) -> Row {
    let mut r = Row::new(vec![Some(c.to_be_bytes().to_vec())]);
    r.liveness = liveness.map(|timestamp| Liveness {
        timestamp,
        expiry: None,
    });
    r.columns = v
        .map(|(ts, v)| ColumnData {
            column: 0,
            content: ColumnContent::Simple(Cell::live(ts, v.to_be_bytes().to_vec())),
        })
        .into_iter()
        .collect();
    r
}

/// Writes generation `generation` of `ks.t (k int, c int, v int, PRIMARY KEY (k, c))`, partition 1,
/// with `rows`, in ScyllaDB's layout (`me`, Scylla.db) or Cassandra's (`nb`).
fn write(dir: &Path, generation: u32, scylla: bool, rows: Vec<Row>) -> PathBuf {
    let cql = "CREATE TABLE ks.t (k int, c int, v int, PRIMARY KEY (k, c));";
    let schema = schema_from_cql_text(cql, "t").unwrap();
    let version = writer_version(if scylla { "me" } else { "nb" }).unwrap();
    let mut options = WriterOptions::new(version, Compression::Lz4);
    options.scylla = scylla;
    let mut w = SSTableWriter::create(dir, generation, &schema, options).unwrap();
    let mut p = Partition::new(1_i32.to_be_bytes().to_vec());
    p.unfiltereds = rows.into_iter().map(Unfiltered::Row).collect();
    w.append(&p).unwrap();
    w.finish().unwrap().data_path
}

fn table_dir(root: &Path) -> PathBuf {
    root.join("ks/t-5b4c2f0e8a3d11ef9a8c0242ac120002")
}

/// The merged live rows as (c, v).
fn merged(dir: &Path) -> Vec<(i32, Option<i32>)> {
    let files = common::data_files(dir);
    let ssts = files
        .iter()
        .map(|f| SSTable::open(f, None, ReadOptions::default()))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let table = MergeTable::new(ssts).unwrap();
    let v = table.schema().column("v").unwrap().index;
    let mut scan = table.scan(&Columns::All, NOW).unwrap();
    let mut out = Vec::new();
    while let Some(p) = scan.next_partition().unwrap() {
        for r in p.rows() {
            let c = i32::from_be_bytes(r.clustering(0).unwrap().try_into().unwrap());
            out.push((
                c,
                r.value(v)
                    .map(|b| i32::from_be_bytes(b.try_into().unwrap())),
            ));
        }
    }
    out
}

/// The live rows of each SSTable on its own (`dump --no-merge`), as (c, v).
fn unmerged(dir: &Path) -> Vec<(i64, Option<i64>)> {
    dump_with(dir, None, ReadOptions::default(), &[])
        .unwrap()
        .iter()
        // Without schema.cql the clustering column is `ck0` (the header names only regular columns).
        .map(|r| (r["ck0"].as_i64().unwrap(), r["v"].as_i64()))
        .collect()
}

/// One SSTable's rows: 1 live; 2 shadowably deleted after its insert; 3 deleted shadowably, then
/// inserted again (the newer liveness shadows the deletion: its older cell is visible again); 4 with a
/// regular deletion under the shadowable one (ScyllaDB keeps both; the regular one still deletes).
fn rows(scylla: bool) -> Vec<Row> {
    let mut two = row(2, Some(T), Some((T, 20)));
    two.shadowable = del(T + 10);
    let mut three = row(3, Some(T + 20), Some((T + 5, 30)));
    three.shadowable = del(T + 10);
    let mut out = vec![row(1, Some(T), Some((T, 10))), two, three];
    if scylla {
        let mut four = row(4, Some(T + 20), Some((T + 1, 40)));
        four.deletion = del(T + 5);
        four.shadowable = del(T + 10);
        out.push(four);
    }
    out
}

#[test]
fn scylla_shadowable_deletions_delete_as_cassandra_s_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = table_dir(tmp.path());
    let data = write(&dir, 1, true, rows(true));
    assert!(data.to_string_lossy().ends_with("me-1-big-Data.db"));
    let toc = std::fs::read_to_string(dir.join("me-1-big-TOC.txt")).unwrap();
    assert!(toc.contains("Scylla.db"), "{toc}");
    let sst = SSTable::open(&data, None, ReadOptions::default()).unwrap();
    let meta = sst.scylla.as_ref().expect("Scylla.db was read");
    assert!(meta.has_shadowable_tombstones() && meta.sharding.len() == 1);
    let expected = vec![(1, Some(10)), (3, Some(30)), (4, None)];
    assert_eq!(merged(&dir), expected);
    assert_eq!(
        unmerged(&dir),
        vec![(1, Some(10)), (3, Some(30)), (4, None)]
    );
}

#[test]
fn a_newer_liveness_in_another_sstable_shadows_the_deletion() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = table_dir(tmp.path());
    write(&dir, 1, true, rows(true));
    // Row 2 inserted again after its shadowable deletion, in a later SSTable: the deletion is shadowed,
    // so its older cell is back (materialized-view semantics); row 1 deleted shadowably later on.
    let mut one = row(1, None, None);
    one.shadowable = del(T + 50);
    write(&dir, 2, true, vec![one, row(2, Some(T + 30), None)]);
    assert_eq!(merged(&dir), vec![(2, Some(20)), (3, Some(30)), (4, None)]);
}

#[test]
fn cassandra_shadowable_deletions_read_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = table_dir(tmp.path());
    write(&dir, 1, false, rows(false));
    assert_eq!(merged(&dir), vec![(1, Some(10)), (3, Some(30))]);
    assert_eq!(unmerged(&dir), vec![(1, Some(10)), (3, Some(30))]);
}

#[test]
fn unknown_toc_components_are_tolerated_and_bad_lines_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = table_dir(tmp.path());
    write(&dir, 1, true, rows(true));
    let toc = dir.join("me-1-big-TOC.txt");
    let text = std::fs::read_to_string(&toc).unwrap();
    std::fs::write(&toc, format!("{text}Index2.db\nSomething-New.bin\n")).unwrap();
    assert_eq!(merged(&dir).len(), 3);
    std::fs::write(&toc, format!("{text}not a component\n")).unwrap();
    let err = dump_with(&dir, None, ReadOptions::default(), &[]).unwrap_err();
    let msg = err.to_string();
    assert!(
        err.is_corruption()
            && msg.contains("me-1-big-TOC.txt")
            && msg.contains("\"not a component\"")
            && err.offset() == Some(text.len() as u64),
        "{msg}"
    );
}

#[test]
fn unknown_scylla_features_are_refused_naming_file_and_feature() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = table_dir(tmp.path());
    write(&dir, 1, true, rows(true));
    let path = dir.join("me-1-big-Scylla.db");
    let mut bytes = std::fs::read(&path).unwrap();
    let features = 2u32.to_be_bytes();
    // The features subcomponent: tag 2, size 8, then the be64 bits.
    let at = (4..bytes.len() - 16)
        .find(|&i| bytes[i..i + 4] == features && bytes[i + 4..i + 8] == 8u32.to_be_bytes())
        .unwrap();
    bytes[at + 8 + 2] |= 0x01; // bit 40
    std::fs::write(&path, &bytes).unwrap();
    let err = dump_with(&dir, None, ReadOptions::default(), &[]).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Unsupported { .. })
            && msg.contains("me-1-big-Scylla.db")
            && msg.contains("feature bit 40")
            && msg.contains(&format!("offset {}", at + 8)),
        "{msg}"
    );
}

#[test]
fn the_scylla_flag_without_the_shadowable_feature_is_refused() {
    for remove in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = table_dir(tmp.path());
        write(&dir, 1, true, rows(true));
        let path = dir.join("me-1-big-Scylla.db");
        if remove {
            std::fs::remove_file(&path).unwrap();
            let toc = dir.join("me-1-big-TOC.txt");
            let text = std::fs::read_to_string(&toc)
                .unwrap()
                .replace("Scylla.db\n", "");
            std::fs::write(&toc, text).unwrap();
        } else {
            let mut bytes = std::fs::read(&path).unwrap();
            let at = (4..bytes.len() - 16)
                .find(|&i| bytes[i..i + 8] == [0, 0, 0, 2, 0, 0, 0, 8])
                .unwrap();
            bytes[at + 15] &= !0x04; // ShadowableTombstones
            std::fs::write(&path, &bytes).unwrap();
        }
        let err = dump_with(&dir, None, ReadOptions::default(), &[]).unwrap_err();
        let msg = err.to_string();
        assert!(
            err.is_corruption() && msg.contains("me-1-big-Data.db") && msg.contains("0x80"),
            "{msg}"
        );
    }
}

#[test]
fn a_missing_scylla_db_listed_in_the_toc_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = table_dir(tmp.path());
    write(&dir, 1, true, rows(true));
    std::fs::remove_file(dir.join("me-1-big-Scylla.db")).unwrap();
    let err = dump_with(&dir, None, ReadOptions::default(), &[]).unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }) && err.to_string().contains("Scylla.db"),
        "{err}"
    );
}

/// ScyllaDB's `ms` and `mt` (2025.4 and later: a trie-based partition index of its own) are refused
/// with an error naming the file and the format, whether the file is opened or found in a directory.
#[test]
fn scylla_ms_and_mt_files_are_refused_naming_file_and_format() {
    for version in ["ms", "mt"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = table_dir(tmp.path());
        write(&dir, 1, true, rows(true));
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix("me-") {
                std::fs::rename(&path, dir.join(format!("{version}-{rest}"))).unwrap();
            }
        }
        let data = dir.join(format!("{version}-1-big-Data.db"));
        let opened = SSTable::open(&data, None, ReadOptions::default()).unwrap_err();
        let found = dump_with(&dir, None, ReadOptions::default(), &[]).unwrap_err();
        for err in [opened, found] {
            let msg = err.to_string();
            assert!(
                matches!(err, Error::Unsupported { .. })
                    && msg.contains(&format!("{version}-1-big-"))
                    && msg.contains(&format!("{version:?}"))
                    && msg.contains("ScyllaDB's format with its trie-based partition index"),
                "{msg}"
            );
        }
    }
}
