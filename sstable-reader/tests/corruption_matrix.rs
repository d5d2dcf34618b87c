//! The corruption matrix: for an SSTable of each format family (big `mc`, `nb`, `oa`, BTI `da`, and a
//! ScyllaDB `me` written by the writer) and each of its components, flip one byte, truncate it, empty
//! it or delete it. The dump is then either exactly the original rows (the damage is in something the
//! read does not use) or an error naming a file of the SSTable (and, for damaged bytes, the offset) —
//! never other rows, never a panic. `verify` fails on each damaged copy, including damage no read
//! notices (a Filter.db, a Statistics.db estimate, a Rows.db row index). The test prints the matrix.

mod common;

use std::path::{Path, PathBuf};

use common::{dump_with, shared};
use sstable_reader::writer::{
    schema_from_cql_text, writer_version, Cell, ColumnContent, ColumnData, Compression, Liveness,
    Partition, Row, SSTableWriter, Unfiltered, WriterOptions,
};
use sstable_reader::ReadOptions;

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::write(to.join(e.file_name()), std::fs::read(e.path()).unwrap()).unwrap();
        }
    }
}

/// A ScyllaDB-layout `me` table (Scylla.db, a shadowable deletion) in `dir`.
fn scylla_table(dir: &Path) {
    let cql = "CREATE TABLE ks.t (k int, c int, v text, PRIMARY KEY (k, c));";
    let schema = schema_from_cql_text(cql, "t").unwrap();
    let mut options = WriterOptions::new(writer_version("me").unwrap(), Compression::Lz4);
    options.scylla = true;
    let mut w = SSTableWriter::create(dir, 1, &schema, options).unwrap();
    for k in [1_i32, 2, 3] {
        let mut p = Partition::new(k.to_be_bytes().to_vec());
        for c in 0..20_i32 {
            let mut row = Row::new(vec![Some(c.to_be_bytes().to_vec())]);
            row.liveness = Some(Liveness {
                timestamp: 1_700_000_000_000_000,
                expiry: None,
            });
            if c == 7 {
                row.shadowable = sstable_reader::DeletionTime {
                    marked_for_delete_at: 1_700_000_000_000_001,
                    local_deletion_time: 1_700_000_000,
                };
            }
            row.columns = vec![ColumnData {
                column: 0,
                content: ColumnContent::Simple(Cell::live(
                    1_700_000_000_000_000,
                    format!("value {k} {c}").into_bytes(),
                )),
            }];
            p.unfiltereds.push(Unfiltered::Row(row));
        }
        w.append(&p).unwrap();
    }
    w.finish().unwrap();
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    Flip,
    Truncate,
    Empty,
    Delete,
}

fn damage(file: &Path, how: Damage) {
    let bytes = std::fs::read(file).unwrap();
    match how {
        Damage::Flip if !bytes.is_empty() => {
            let mut b = bytes.clone();
            let i = b.len() / 2;
            b[i] ^= 0x20;
            std::fs::write(file, b).unwrap();
        }
        Damage::Flip => {}
        Damage::Truncate => std::fs::write(file, &bytes[..bytes.len() / 2]).unwrap(),
        Damage::Empty => std::fs::write(file, b"").unwrap(),
        Damage::Delete => std::fs::remove_file(file).unwrap(),
    }
}

#[test]
fn every_damaged_component_reads_exactly_or_fails_naming_the_file() {
    let scylla = tempfile::tempdir().unwrap();
    let scylla_dir = scylla.path().join("ks/t-0123456789abcdef0123456789abcdef");
    scylla_table(&scylla_dir);
    let families: Vec<(&str, PathBuf)> = vec![
        (
            "mc",
            shared("cassandra/legacy/mc/legacy_tables/legacy_mc_clust"),
        ),
        (
            "nb",
            shared("cassandra/legacy/nb/legacy_tables/legacy_nb_clust"),
        ),
        (
            "oa",
            shared("cassandra/legacy/oa/legacy_tables/legacy_oa_clust"),
        ),
        (
            "da",
            shared("cassandra/legacy/da/legacy_tables/legacy_da_clust"),
        ),
        ("scylla me", scylla_dir),
    ];
    let mut matrix = String::new();
    let mut wrong = Vec::new();
    for (family, source) in &families {
        let original = common::dump(source);
        let names: Vec<String> = std::fs::read_dir(source)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("-big-") || n.contains("-bti-"))
            .collect();
        for name in &names {
            let component = name.rsplit('-').next().unwrap_or(name);
            matrix.push_str(&format!("{family:9} {component:18}"));
            for how in [
                Damage::Flip,
                Damage::Truncate,
                Damage::Empty,
                Damage::Delete,
            ] {
                let tmp = tempfile::tempdir().unwrap();
                let dir = tmp.path().join("ks/t-0123456789abcdef0123456789abcdef");
                copy(source, &dir);
                damage(&dir.join(name), how);
                let result =
                    std::panic::catch_unwind(|| dump_with(&dir, None, ReadOptions::default(), &[]));
                let cell = match result {
                    Err(_) => {
                        wrong.push(format!("{family} {component} {how:?}: panic"));
                        "PANIC"
                    }
                    Ok(Ok(rows)) if rows == original => "same",
                    Ok(Ok(_)) => {
                        wrong.push(format!("{family} {component} {how:?}: other rows"));
                        "OTHER ROWS"
                    }
                    Ok(Err(e)) => {
                        let msg = e.to_string();
                        let names_file = names.iter().any(|n| msg.contains(n.as_str()))
                            || msg.contains(&dir.display().to_string());
                        if !names_file || (e.is_corruption() && e.offset().is_none()) {
                            wrong.push(format!("{family} {component} {how:?}: {msg}"));
                            "UNNAMED"
                        } else if e.is_corruption() {
                            "error@offset"
                        } else {
                            "error"
                        }
                    }
                };
                let data = names.iter().find(|n| n.ends_with("-Data.db")).unwrap();
                let verified = sstable_reader::verify(&dir.join(data));
                let caught = if verified.is_ok() {
                    wrong.push(format!(
                        "{family} {component} {how:?}: verify found nothing"
                    ));
                    "verify-ok"
                } else {
                    "verify-caught"
                };
                matrix.push_str(&format!(" {how:?}={cell}/{caught}"));
            }
            matrix.push('\n');
        }
    }
    println!("{matrix}");
    assert!(wrong.is_empty(), "{matrix}\n{wrong:#?}");
}
