//! Index.db and Summary.db of real Cassandra files: every Index.db entry points at the partition with
//! the same key in Data.db, and every Summary.db sample points at an Index.db entry with its key.

use std::path::PathBuf;

use sstable_reader::test_common::{PartitionIndex, Summary};
use sstable_reader::{Projection, ReadOptions, SSTable};

fn shared(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/sstables")
        .join(p)
}

fn check(data: PathBuf) -> usize {
    let sst = SSTable::open(&data, None, ReadOptions::default()).unwrap();
    let index = PartitionIndex::open(&sst.descriptor).unwrap();
    let mut from_index = Vec::new();
    for e in index.entries() {
        let e = e.unwrap();
        from_index.push((e.key.to_vec(), e.data_position, e.index_position));
    }
    let mut scan = sst.scanner(Projection::none(&sst.schema));
    let mut from_data = Vec::new();
    while let Some(p) = scan.next_partition().unwrap() {
        from_data.push((scan.key().to_vec(), p.position));
    }
    assert_eq!(from_index.len(), from_data.len(), "{}", data.display());
    for ((ik, ip, _), (dk, dp)) in from_index.iter().zip(&from_data) {
        assert_eq!((ik, ip), (dk, dp));
    }
    let summary = Summary::read(&sst.descriptor).unwrap();
    assert!(!summary.entries.is_empty());
    for (key, pos) in &summary.entries {
        let e = index.entry_at(*pos).unwrap();
        assert_eq!(&e.key, key, "summary entry at index position {pos}");
    }
    assert_eq!(summary.first_key, from_index[0].0);
    assert_eq!(summary.last_key, from_index.last().unwrap().0);
    from_index.len()
}

#[test]
fn wide_and_narrow_partitions_in_every_big_version() {
    for v in ["ma", "mb", "mc", "md", "me", "na", "nb", "nc", "oa"] {
        assert_eq!(
            check(shared(&format!(
                "cassandra/legacy/{v}/legacy_tables/legacy_{v}_clust/{v}-1-big-Data.db"
            ))),
            5
        );
        assert_eq!(
            check(shared(&format!(
                "cassandra/legacy/{v}/legacy_tables/legacy_{v}_simple/{v}-1-big-Data.db"
            ))),
            5
        );
    }
}

#[test]
fn murmur3_table_with_many_partitions() {
    let n = check(shared(
        "cassandra-3.11-types/data/baselines/iot-07958d80df8811eb86c59116fc548b6b/md-2-big-Data.db",
    ));
    assert!(n > 100, "{n}");
}
