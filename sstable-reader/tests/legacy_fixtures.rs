//! Apache Cassandra's own legacy test tables (`cassandra/legacy/*`, written by real Cassandra 3.0 … 5.0)
//! decode to exactly the content `LegacySSTableTest` wrote (see ../shared/sstables/cassandra/CONTENT.md
//! and legacy-decoded-facts.json): 5 × 'foo bar baz', 250 clustering rows with the right `ck` strings and
//! the set's 128-char value, counters equal to 1.

mod common;

use common::{dump, shared};
use serde_json::Value;

const VERSIONS: &[&str] = &["ma", "mb", "mc", "md", "me", "na", "nb", "nc", "oa", "da"];

fn facts() -> Value {
    let text = std::fs::read_to_string(shared("cassandra/legacy-decoded-facts.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn tables(v: &str) -> Vec<String> {
    let dir = shared(&format!("cassandra/legacy/{v}/legacy_tables"));
    let mut t: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains("inaccurate"))
        .collect();
    t.sort();
    t
}

fn long_string() -> String {
    "0123456789".repeat(120)
}

#[test]
fn every_version_and_table_has_the_written_content() {
    let facts = facts();
    let mut checked = 0;
    for v in VERSIONS {
        let names = tables(v);
        assert!(names.len() >= 4, "{v}: {names:?}");
        for t in names {
            let path = shared(&format!("cassandra/legacy/{v}/legacy_tables/{t}"));
            let rows = dump(&path);
            let kind = t.trim_start_matches(&format!("legacy_{v}_"));
            let counter = kind.contains("counter");
            let pks: Vec<&str> = rows.iter().map(|r| r["pk0"].as_str().unwrap()).collect();
            if kind.starts_with("simple") {
                assert_eq!(
                    pks,
                    ["0", "1", "2", "3", "4"],
                    "{t}: partitions in ByteOrdered order"
                );
                for r in &rows {
                    if counter {
                        assert_eq!(r["val"], 1, "{t}: {r}");
                    } else {
                        assert_eq!(r["val"], "foo bar baz", "{t}: {r}");
                    }
                }
            } else {
                assert_eq!(rows.len(), 250, "{t}");
                let mut expected_ck: Vec<String> =
                    (0..50).map(|i| format!("{i}{}", long_string())).collect();
                expected_ck.sort(); // UTF8Type clustering order is byte order
                let random = facts[format!("legacy/{t}")]["val128"]
                    .as_object()
                    .map(|m| m.keys().next().unwrap().clone());
                for (p, chunk) in rows.chunks(50).enumerate() {
                    for (r, ck) in chunk.iter().zip(&expected_ck) {
                        assert_eq!(r["pk0"], p.to_string(), "{t}");
                        assert_eq!(r["ck0"].as_str().unwrap(), ck, "{t}");
                        if counter {
                            assert_eq!(r["val"], 1, "{t}");
                        } else {
                            let val = r["val"].as_str().unwrap();
                            assert_eq!(val.len(), 128, "{t}");
                            assert_eq!(
                                Some(val.to_string()),
                                random,
                                "{t}: the set's random value"
                            );
                        }
                    }
                }
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        4 * VERSIONS.len() + 4 * 6,
        "tables checked (compact tables exist for ma, mb, mc, md, me, na)"
    );
}

#[test]
fn uncompressed_lengths_match_the_independent_decoder() {
    let facts = facts();
    for v in VERSIONS {
        for t in tables(v) {
            let dir = shared(&format!("cassandra/legacy/{v}/legacy_tables/{t}"));
            let file = common::data_files(&dir).remove(0);
            let sst = sstable_reader::SSTable::open(&file, None, Default::default()).unwrap();
            let expected = facts[format!("legacy/{t}")]["uncompressed_len"].as_u64();
            assert_eq!(Some(sst.data.len()), expected, "{t}");
            assert_eq!(
                sst.data.compression().unwrap().algorithm,
                sstable_reader::Algorithm::Lz4
            );
        }
    }
}

#[test]
fn partitioner_and_versions_come_from_the_files() {
    for v in VERSIONS {
        let dir = shared(&format!(
            "cassandra/legacy/{v}/legacy_tables/legacy_{v}_simple"
        ));
        let file = common::data_files(&dir).remove(0);
        let sst = sstable_reader::SSTable::open(&file, None, Default::default()).unwrap();
        assert_eq!(sst.descriptor.version.as_str(), *v);
        assert_eq!(
            sst.partitioner(),
            Some("org.apache.cassandra.dht.ByteOrderedPartitioner")
        );
        let stats = sst.statistics.stats.as_ref().unwrap();
        assert!(stats.min_timestamp <= stats.max_timestamp);
        assert_eq!(stats.total_rows, 5, "{v}");
    }
}

#[test]
fn inaccurate_min_max_fixture_has_its_range_tombstone() {
    // DELETE … WHERE k=100 AND c1<3 leaves an open and a close marker; the row (100,4,4,4,4) stays live.
    let rows = dump(&shared(
        "cassandra/legacy/mc/legacy_tables/legacy_mc_inaccurate_min_max",
    ));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["v"], 4);
    let file = common::data_files(&shared(
        "cassandra/legacy/mc/legacy_tables/legacy_mc_inaccurate_min_max",
    ))
    .remove(0);
    let sst = sstable_reader::SSTable::open(&file, None, Default::default()).unwrap();
    let mut scan = sst.scanner(sstable_reader::Projection::all(&sst.schema));
    let mut kinds = Vec::new();
    while scan.next_partition().unwrap().is_some() {
        while let Some(u) = scan.next_unfiltered().unwrap() {
            if let sstable_reader::Unfiltered::Marker(m) = u {
                kinds.push((m.kind, m.clustering_len()));
            }
        }
    }
    use sstable_reader::BoundKind::*;
    assert_eq!(kinds, vec![(InclStartBound, 0), (ExclEndBound, 1)]);
}
