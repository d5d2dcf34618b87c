//! An uncompressed Data.db that no CRC.db covers is checked against Digest.crc32 before any row of it is
//! returned: a flipped bit is an error naming the file, never a different value.

mod common;

use std::path::{Path, PathBuf};

use common::{dump, dump_with, shared};
use sstable_reader::{Error, ReadOptions};

const FIXTURE: &str =
    "cassandra-3.11-types/data/testalltypes/alltypes-b15935a0de6c11eb87f69116fc548b6b";

fn component(dir: &Path, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap()
}

/// A copy of the uncompressed fixture without CRC.db (as TOC.txt then says too): only Digest.crc32
/// covers its Data.db.
fn without_crc_db() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("alltypes");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(shared(FIXTURE)).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name.to_string_lossy().ends_with("CRC.db") {
            continue;
        }
        let to = dir.join(&name);
        std::fs::write(&to, std::fs::read(e.path()).unwrap()).unwrap();
    }
    let toc = component(&dir, "TOC.txt");
    let text = std::fs::read_to_string(&toc).unwrap();
    assert!(text.contains("CRC.db"), "{text}");
    let kept: String = text
        .lines()
        .filter(|l| l.trim() != "CRC.db")
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&toc, kept).unwrap();
    (tmp, dir)
}

#[test]
fn an_intact_file_without_crc_db_reads_exactly() {
    let (_tmp, dir) = without_crc_db();
    assert_eq!(dump(&dir), dump(&shared(FIXTURE)));
}

#[test]
fn a_flipped_bit_without_crc_db_is_a_digest_error_naming_the_file() {
    let (_tmp, dir) = without_crc_db();
    let data = component(&dir, "Data.db");
    let mut bytes = std::fs::read(&data).unwrap();
    // A bit of a value near the end: without the digest the row would read with another value.
    let at = bytes.len() - 10;
    bytes[at] ^= 0x01;
    std::fs::write(&data, &bytes).unwrap();
    let err = dump_with(&dir, None, ReadOptions::default(), &[]).unwrap_err();
    match &err {
        Error::Digest { path, digest, .. } => {
            assert_eq!(path, &data);
            assert!(digest.to_string_lossy().ends_with("Digest.crc32"));
        }
        e => panic!("{e}"),
    }
    assert!(err.is_corruption() && err.to_string().contains("md-1-big-Data.db"));
}

#[test]
fn an_unreadable_digest_is_an_error_naming_it() {
    let (_tmp, dir) = without_crc_db();
    let digest = component(&dir, "Digest.crc32");
    std::fs::write(&digest, "not a number").unwrap();
    let err = dump_with(&dir, None, ReadOptions::default(), &[]).unwrap_err();
    assert!(
        err.is_corruption() && err.to_string().contains("Digest.crc32"),
        "{err}"
    );
    std::fs::remove_file(&digest).unwrap();
    let err = dump_with(&dir, None, ReadOptions::default(), &[]).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("Digest.crc32"),
        "{err}"
    );
}
