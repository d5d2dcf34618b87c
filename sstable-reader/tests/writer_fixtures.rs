//! The writer's token function and bloom filter against files real Cassandra wrote (../shared/sstables):
//! every Index.db lists its partitions in token order, and rebuilding a filter over the same keys with the
//! same fp chance must reproduce Filter.db byte for byte (old `md` layout and new `na+` layout).

use std::path::{Path, PathBuf};

use sstable_reader::bytes::Cursor;
use sstable_reader::murmur3_token;
use sstable_reader::test_common::BloomFilter;

fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/sstables")
}

/// (generation prefix like `.../md-1-big-`, version) of every SSTable under `root`.
fn sstables(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                if let Some(prefix) = name.strip_suffix("Index.db") {
                    let version = prefix[..2].to_string();
                    out.push((dir.join(prefix).to_string_lossy().into_owned(), version));
                }
            }
        }
    }
    out.sort();
    out
}

fn index_keys(prefix: &str) -> Vec<Vec<u8>> {
    let buf = std::fs::read(format!("{prefix}Index.db")).unwrap();
    let mut c = Cursor::new(&buf);
    let mut keys = Vec::new();
    while !c.is_empty() {
        let n = c.u16().unwrap() as usize;
        keys.push(c.take(n).unwrap().to_vec());
        c.uvint().unwrap();
        let promoted = c.uvint().unwrap() as usize;
        c.skip(promoted).unwrap();
    }
    keys
}

/// (partitioner class, fp chance) from the VALIDATION component of Statistics.db.
fn validation(prefix: &str, version: &str) -> (String, f64) {
    let buf = std::fs::read(format!("{prefix}Statistics.db")).unwrap();
    let mut c = Cursor::new(&buf);
    let n = c.i32().unwrap();
    if version >= "na" {
        c.i32().unwrap(); // CRC32 of the count
    }
    for _ in 0..n {
        let (kind, offset) = (c.i32().unwrap(), c.i32().unwrap());
        if kind == 0 {
            let mut v = Cursor::at(&buf, offset as usize);
            let name = String::from_utf8(v.utf().unwrap().to_vec()).unwrap();
            return (name, v.f64().unwrap());
        }
    }
    panic!("{prefix}Statistics.db has no validation component");
}

#[test]
fn murmur3_tables_list_partitions_in_our_token_order() {
    let tables = sstables(&shared().join("cassandra-3.11-types/data"));
    assert!(
        tables.len() >= 10,
        "expected the 3.11 fixtures, found {}",
        tables.len()
    );
    let mut checked_pairs = 0;
    for (prefix, version) in &tables {
        let (partitioner, _) = validation(prefix, version);
        assert!(
            partitioner.ends_with("Murmur3Partitioner"),
            "{prefix}: {partitioner}"
        );
        let keys = index_keys(prefix);
        for w in keys.windows(2) {
            let (a, b) = (murmur3_token(&w[0]), murmur3_token(&w[1]));
            assert!(
                a < b || (a == b && w[0] < w[1]),
                "{prefix}: {:x?} ({a}) before {:x?} ({b})",
                w[0],
                w[1]
            );
            checked_pairs += 1;
        }
    }
    assert!(
        checked_pairs > 100,
        "only {checked_pairs} adjacent key pairs checked"
    );
}

#[test]
fn rebuilt_bloom_filters_equal_cassandras_bytes() {
    let mut tables = sstables(&shared().join("cassandra-3.11-types/data"));
    tables.extend(sstables(&shared().join("cassandra/legacy/nb")));
    tables.extend(sstables(&shared().join("cassandra/legacy/oa")));
    let mut compared = 0;
    let mut versions = std::collections::BTreeSet::new();
    for (prefix, version) in &tables {
        let (_, fp) = validation(prefix, version);
        let keys = index_keys(prefix);
        let mut f = BloomFilter::new(keys.len() as u64, fp).unwrap();
        for k in &keys {
            f.add(k);
        }
        let want = std::fs::read(format!("{prefix}Filter.db")).unwrap();
        let old = version.as_str() < "na";
        assert_eq!(
            f.serialize(old),
            want,
            "{prefix}Filter.db ({} keys, fp {fp})",
            keys.len()
        );
        compared += 1;
        versions.insert(version.clone());
    }
    assert!(
        versions.contains("md") && versions.contains("nb"),
        "{versions:?}"
    );
    assert!(compared >= 10);
}
