//! `verify` checks an SSTable whole: intact real files pass every check; one flipped byte in Index.db
//! (a key), in a compressed chunk or in a checksummed Statistics.db, or a truncated Summary.db, fails the
//! check of that component, naming the file; so does a Filter.db that does not hold every partition key
//! (cleared bits) or is cut short, and a pre-`na` Statistics.db that disagrees with Data.db. Every real
//! SSTable of the shared fixtures passes. A flipped byte in a promoted row index fails its check.

mod common;

use std::path::{Path, PathBuf};

use common::shared;
use sstable_reader::verify;

const FIXTURES: [&str; 4] = [
    "cassandra/legacy/nb/legacy_tables/legacy_nb_clust",
    "cassandra/legacy/md/legacy_tables/legacy_md_simple",
    "cassandra/legacy/da/legacy_tables/legacy_da_clust",
    "cassandra-3.11-types/data/testalltypes/alltypes-b15935a0de6c11eb87f69116fc548b6b",
];

fn copy(fixture: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(shared(fixture)).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::write(dir.join(e.file_name()), std::fs::read(e.path()).unwrap()).unwrap();
        }
    }
    (tmp, dir)
}

fn component(dir: &Path, suffix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
}

/// The failed checks of verifying `data`, each as "what: error".
fn failed_checks(data: &Path) -> Vec<String> {
    verify(data)
        .checks
        .iter()
        .filter_map(|c| c.error.as_ref().map(|e| format!("{}: {e}", c.what)))
        .collect()
}

#[test]
fn intact_fixtures_pass_every_check() {
    for fixture in FIXTURES {
        for f in common::data_files(&shared(fixture)) {
            let v = verify(&f);
            assert!(v.is_ok(), "{fixture}: {v:?}");
            assert!(v.checks.len() >= 3, "{v:?}");
        }
    }
}

#[test]
fn a_damaged_component_fails_its_check_naming_the_file() {
    for fixture in FIXTURES {
        // Index.db: a byte of the first partition's key (promoted row indexes are not checked).
        for (suffix, at) in [
            ("Index.db", 3.0),
            ("Data.db", 0.5),
            ("Statistics.db", 0.9),
            ("Summary.db", -1.0),
        ] {
            let (_tmp, dir) = copy(fixture);
            let Some(file) = component(&dir, suffix) else {
                continue;
            };
            // Before `na`, Statistics.db has no checksums: a changed statistic is not detectable.
            if suffix == "Statistics.db" && file.to_string_lossy().contains("/md-") {
                continue;
            }
            let mut bytes = std::fs::read(&file).unwrap();
            if at < 0.0 {
                bytes.truncate(bytes.len() / 2);
            } else if at >= 1.0 {
                bytes[at as usize] ^= 0x10;
            } else {
                let i = (bytes.len() as f64 * at) as usize;
                bytes[i] ^= 0x10;
            }
            std::fs::write(&file, &bytes).unwrap();
            let data = component(&dir, "Data.db").unwrap();
            let failed = failed_checks(&data);
            assert!(!failed.is_empty(), "{fixture} {suffix}: damage not found");
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                failed
                    .iter()
                    .any(|f| f.contains(&name) || f.contains(suffix)),
                "{fixture} {suffix}: {failed:?}"
            );
        }
    }
}

#[test]
fn a_bloom_filter_missing_a_partition_key_fails_its_check() {
    for fixture in FIXTURES {
        for damage in ["cleared", "cut"] {
            let (_tmp, dir) = copy(fixture);
            let file = component(&dir, "Filter.db").expect("a Filter.db");
            let mut bytes = std::fs::read(&file).unwrap();
            if damage == "cleared" {
                // Every bit clear: no key is in the filter (the header is kept).
                bytes[8..].fill(0);
            } else {
                bytes.truncate(bytes.len() - 3);
            }
            std::fs::write(&file, &bytes).unwrap();
            let failed = failed_checks(&component(&dir, "Data.db").unwrap());
            assert!(
                failed.len() == 1 && failed[0].contains("-Filter.db"),
                "{fixture} {damage}: {failed:?}"
            );
            let expected = if damage == "cleared" {
                "partition 0 (at 0 in Data.db) is not in it"
            } else {
                "words of 8 bytes after the header"
            };
            assert!(
                failed[0].contains(expected),
                "{fixture} {damage}: {failed:?}"
            );
        }
    }
}

/// Statistics.db before `na` has no checksums: verify checks it against Data.db instead. A maximum
/// timestamp lowered below the newest write of Data.db fails the Statistics.db check.
#[test]
fn pre_na_statistics_that_disagree_with_the_data_fail_their_check() {
    let fixture = "cassandra/legacy/md/legacy_tables/legacy_md_simple";
    let (_tmp, dir) = copy(fixture);
    let data = component(&dir, "Data.db").unwrap();
    let sst = sstable_reader::SSTable::open(&data, None, Default::default()).unwrap();
    let max = sst.statistics.stats.as_ref().unwrap().max_timestamp;
    drop(sst);
    let file = component(&dir, "Statistics.db").unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == max.to_be_bytes())
        .expect("the maximum timestamp");
    bytes[at..at + 8].copy_from_slice(&(max - 1_000_000).to_be_bytes());
    std::fs::write(&file, &bytes).unwrap();
    let failed = failed_checks(&data);
    assert!(
        failed.len() == 1
            && failed[0].contains("md-1-big-Statistics.db")
            && failed[0].contains("a minimum and maximum timestamp holding Data.db's"),
        "{failed:?}"
    );
}

/// Every real SSTable of the shared fixtures passes every check, but for the ones made to be invalid
/// (negative local deletion times that `nodetool scrub` repairs) and the versions this reader refuses.
#[test]
fn every_shared_fixture_passes_every_check() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.to_string_lossy().ends_with("-Data.db") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&shared(""), &mut files);
    assert!(files.len() > 100, "{}", files.len());
    let mut passed = 0;
    let mut estimates = 0;
    for f in &files {
        let v = verify(f);
        estimates += v
            .checks
            .iter()
            .filter(|c| c.what.contains("HyperLogLog++ of Data.db's keys") && c.error.is_none())
            .count();
        let failed: Vec<&sstable_reader::Error> =
            v.checks.iter().filter_map(|c| c.error.as_ref()).collect();
        let expected = match failed.as_slice() {
            [] => {
                passed += 1;
                true
            }
            [sstable_reader::Error::Unsupported { .. }] => true,
            [e] => {
                f.to_string_lossy().contains("/negative-")
                    && e.to_string().contains("local deletion time")
            }
            _ => false,
        };
        assert!(expected, "{v:#?}");
    }
    assert!(passed > 100, "{passed} of {}", files.len());
    // Cassandra's own (sparse) key cardinality estimates, recomputed from the keys.
    assert!(estimates > 80, "{estimates} estimates compared");
}

/// A Statistics.db from before `na` has no checksums, and a read does not use the compaction
/// component: one changed byte in the key cardinality estimate of a real Cassandra file (sparse
/// format) is found by verify alone, naming Statistics.db and the offset.
#[test]
fn a_damaged_key_cardinality_estimate_fails_its_check() {
    let source = shared("cassandra-3.11-types/data/hello/bar-fee8cdb0d7e311ebab539116fc548b6b");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp
        .path()
        .join("hello/bar-fee8cdb0d7e311ebab539116fc548b6b");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&source).unwrap() {
        let p = e.unwrap().path();
        std::fs::write(dir.join(p.file_name().unwrap()), std::fs::read(&p).unwrap()).unwrap();
    }
    let before = common::dump(&dir);
    let stats = dir.join("md-2-big-Statistics.db");
    let mut bytes = std::fs::read(&stats).unwrap();
    // The compaction component (type 1) is the estimate's int length, then `int -2`, p, sp, format
    // (1: sparse), the entry count and the entries: change the last entry's byte.
    let count = i32::from_be_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let offsets: Vec<(i32, usize)> = (0..count)
        .map(|i| {
            let at = 4 + 8 * i;
            (
                i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()),
                i32::from_be_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize,
            )
        })
        .collect();
    let start = offsets.iter().find(|(t, _)| *t == 1).unwrap().1;
    let len = i32::from_be_bytes(bytes[start..start + 4].try_into().unwrap()) as usize;
    assert_eq!(bytes[start + 4 + 6], 1, "a sparse estimate");
    let last = start + 4 + len - 1;
    bytes[last] ^= 0x04;
    std::fs::write(&stats, bytes).unwrap();

    let v = verify(&dir.join("md-2-big-Data.db"));
    let failed: Vec<_> = v.checks.iter().filter(|c| c.error.is_some()).collect();
    assert_eq!(failed.len(), 1, "{v:#?}");
    assert!(failed[0].what.contains("key cardinality"), "{v:#?}");
    let e = failed[0].error.as_ref().unwrap().to_string();
    assert!(e.contains("md-2-big-Statistics.db"), "{e}");
    // The read itself is unaffected.
    assert_eq!(common::dump(&dir), before);
}

/// One flipped byte inside a wide partition's promoted row index (the middle of Index.db of the
/// `clust` tables, whose partitions are wide) fails that check alone, naming Index.db — a read does
/// not notice it (it scans without the index), so only verify tells.
#[test]
fn a_damaged_promoted_row_index_fails_its_check() {
    for fixture in [
        "cassandra/legacy/mc/legacy_tables/legacy_mc_clust",
        "cassandra/legacy/nb/legacy_tables/legacy_nb_clust",
        "cassandra/legacy/oa/legacy_tables/legacy_oa_clust",
    ] {
        let (_tmp, dir) = copy(fixture);
        let data = component(&dir, "Data.db").unwrap();
        assert!(verify(&data).is_ok(), "{fixture}");
        let file = component(&dir, "Index.db").unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x20;
        std::fs::write(&file, &bytes).unwrap();
        let failed = failed_checks(&data);
        assert!(
            failed.len() == 1
                && failed[0].starts_with("Index.db promoted row indexes")
                && failed[0].contains("-Index.db"),
            "{fixture}: {failed:#?}"
        );
    }
}

/// A BTI row index (Rows.db) is not used by a read (partitions are scanned whole), so only verify can
/// tell it is damaged: every single changed byte of the real `da` fixtures' Rows.db — entry keys,
/// positions, roots, block counts, deletions, trie nodes, block offsets and separators — fails the
/// Rows.db check and names the file; the read is unchanged.
#[test]
fn every_changed_byte_of_a_bti_row_index_fails_its_check() {
    for fixture in [
        "cassandra/legacy/da/legacy_tables/legacy_da_clust",
        "cassandra/legacy/da/legacy_tables/legacy_da_clust_counter",
    ] {
        let (_tmp, dir) = copy(fixture);
        let data = component(&dir, "Data.db").unwrap();
        let file = component(&dir, "Rows.db").unwrap();
        let original = std::fs::read(&file).unwrap();
        let rows = common::dump(&dir);
        let mut missed = Vec::new();
        for i in 0..original.len() {
            let mut bytes = original.clone();
            bytes[i] ^= 0x20;
            std::fs::write(&file, &bytes).unwrap();
            let v = verify(&data);
            let named = v.checks.iter().any(|c| {
                c.error
                    .as_ref()
                    .is_some_and(|e| e.to_string().contains("-Rows.db"))
            });
            if !named {
                missed.push(i);
            }
            if i == original.len() / 2 {
                assert_eq!(common::dump(&dir), rows, "{fixture}");
            }
        }
        assert!(missed.is_empty(), "{fixture}: bytes {missed:?}");
    }
}
