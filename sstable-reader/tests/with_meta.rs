//! `dump --no-merge --with-meta` shows every deletion of each SSTable: a cell tombstone in a row with no
//! live cell, complex (collection) deletions, a row deletion next to newer live cells, shadowable
//! deletions (and whether a newer liveness shadows them); a collection's element metadata is one array
//! under the column's name, so no JSON object repeats a key.

mod common;

use std::path::Path;

use sstable_reader::writer::{
    schema_from_cql_text, writer_version, Cell, CellState, ColumnContent, ColumnData, Compression,
    Liveness, Marker, MarkerDeletion, Partition, Row, SSTableWriter, Unfiltered, WriterOptions,
};
use sstable_reader::{
    BoundKind, DeletionTime, MetaItem, OwnedRow, Projection, ReadOptions, RowRenderer, SSTable,
    TableSchema,
};

const T: i64 = 1_700_000_000_000_000;
const CQL: &str = "CREATE TABLE ks.m (k int, c int, v int, w int, l list<int>, m map<text, int>, \
                   PRIMARY KEY (k, c));";

fn del(at: i64) -> DeletionTime {
    DeletionTime {
        marked_for_delete_at: at,
        local_deletion_time: at / 1_000_000,
    }
}

fn col(schema: &TableSchema, name: &str) -> usize {
    schema.regulars.iter().position(|c| c.name == name).unwrap()
}

fn int(ts: i64, v: i32) -> Cell {
    Cell::live(ts, v.to_be_bytes().to_vec())
}

fn element(ts: i64, path: &[u8], v: i32) -> Cell {
    Cell {
        timestamp: ts,
        state: CellState::Live,
        path: Some(path.to_vec()),
        value: v.to_be_bytes().to_vec(),
    }
}

fn live(row: &mut Row, ts: i64) {
    row.liveness = Some(Liveness {
        timestamp: ts,
        expiry: None,
    });
}

fn rows(schema: &TableSchema) -> Vec<Row> {
    let simple = |name: &str, cell: Cell| ColumnData {
        column: col(schema, name),
        content: ColumnContent::Simple(cell),
    };
    let ck = |c: i32| vec![Some(c.to_be_bytes().to_vec())];
    // 1: only a cell tombstone (nothing live).
    let mut one = Row::new(ck(1));
    one.columns = vec![simple(
        "v",
        Cell {
            timestamp: T + 1,
            state: CellState::Tombstone {
                local_deletion_time: (T + 1) / 1_000_000,
            },
            path: None,
            value: Vec::new(),
        },
    )];
    // 2: a row deletion, then a newer insert: live, its older cell deleted.
    let mut two = Row::new(ck(2));
    live(&mut two, T + 10);
    two.deletion = del(T + 5);
    two.columns = vec![simple("v", int(T + 1, 1)), simple("w", int(T + 10, 2))];
    // 3: a list and a map overwritten (complex deletions) with two elements each.
    let mut three = Row::new(ck(3));
    live(&mut three, T);
    let timeuuid = |n: u8| {
        let mut u = [0u8; 16];
        u[6] = 0x10; // version 1
        u[8] = 0x80;
        u[15] = n;
        u
    };
    three.columns = vec![
        ColumnData {
            column: col(schema, "l"),
            content: ColumnContent::Complex {
                deletion: del(T + 2),
                cells: vec![
                    element(T + 3, &timeuuid(1), 7),
                    element(T + 3, &timeuuid(2), 8),
                ],
            },
        },
        ColumnData {
            column: col(schema, "m"),
            content: ColumnContent::Complex {
                deletion: del(T + 2),
                cells: vec![element(T + 3, b"a", 1), element(T + 3, b"b", 2)],
            },
        },
    ];
    three.columns.sort_by_key(|c| c.column);
    // 4: deleted shadowably after its insert (not live); 5: inserted again after it (shadowed).
    let mut four = Row::new(ck(4));
    live(&mut four, T);
    four.shadowable = del(T + 10);
    four.columns = vec![simple("v", int(T, 4))];
    let mut five = Row::new(ck(5));
    live(&mut five, T + 20);
    five.shadowable = del(T + 10);
    five.columns = vec![simple("v", int(T + 5, 5))];
    vec![one, two, three, four, five]
}

fn dump_meta(data: &Path) -> Vec<String> {
    let sst = SSTable::open(data, None, ReadOptions::default()).unwrap();
    let mut r = RowRenderer::new(&sst.schema, &[], common::NOW, true);
    let mut scan = sst.scanner(Projection::all(&sst.schema));
    let mut lines = Vec::new();
    while let Some(p) = scan.next_partition().unwrap() {
        r.start_partition(scan.key(), p.deletion, &mut lines)
            .unwrap();
        while let Some(u) = scan.next_unfiltered().unwrap() {
            match u {
                sstable_reader::Unfiltered::Row(row) => {
                    r.row(OwnedRow::from_row(&row), &mut lines).unwrap()
                }
                sstable_reader::Unfiltered::Marker(m) => r.marker(&m, &mut lines).unwrap(),
            }
        }
        r.end_partition(&mut lines).unwrap();
    }
    lines
}

/// The lines of `dump --with-meta` (the merged view) of the table in `dir`.
fn dump_merged(dir: &Path) -> Vec<String> {
    let found = sstable_reader::discover(&[dir.to_path_buf()], &Default::default()).unwrap();
    let table = found.tables[0].open(None, ReadOptions::default()).unwrap();
    let mut r = RowRenderer::new(table.schema(), &[], common::NOW, true);
    let mut scan = table
        .scan(&sstable_reader::Columns::All, common::NOW)
        .unwrap()
        .keeping_deletions();
    let mut lines = Vec::new();
    while let Some(p) = scan.next_partition().unwrap() {
        r.start_partition(p.key(), p.deletion(), &mut lines)
            .unwrap();
        for item in p.rows_with_deletions(table.schema()) {
            match item {
                MetaItem::Row(row) => r.row(row, &mut lines).unwrap(),
                MetaItem::Marker(m) => r.owned_marker(&m, &mut lines).unwrap(),
            }
        }
        r.end_partition(&mut lines).unwrap();
    }
    lines
}

#[test]
fn every_deletion_is_shown_and_no_key_repeats() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ks/m-5b4c2f0e8a3d11ef9a8c0242ac120002");
    let schema = schema_from_cql_text(CQL, "m").unwrap();
    let options = WriterOptions::new(writer_version("nb").unwrap(), Compression::Lz4);
    let mut w = SSTableWriter::create(&dir, 1, &schema, options).unwrap();
    let mut p = Partition::new(9_i32.to_be_bytes().to_vec());
    p.unfiltereds = rows(&schema).into_iter().map(Unfiltered::Row).collect();
    w.append(&p).unwrap();
    let data = w.finish().unwrap().data_path;
    std::fs::write(dir.join("schema.cql"), CQL).unwrap();

    let lines = dump_meta(&data);
    let json: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_c = |c: i64| {
        json.iter()
            .find(|j| j["c"].as_i64() == Some(c))
            .unwrap_or_else(|| panic!("no line for c = {c}: {lines:#?}"))
    };
    let at = |us: i64| sstable_reader::format_timestamp_us(us).unwrap();

    let one = by_c(1);
    assert_eq!(one["_tombstone"], "cells", "{one}");
    assert!(
        one["_meta"]["cells"]["v"]["deleted_at"].is_string(),
        "{one}"
    );
    assert_eq!(one["_meta"]["cells"]["v"]["writetime"], at(T + 1));

    let two = by_c(2);
    assert_eq!(
        (two["v"].as_i64(), two["w"].as_i64()),
        (None, Some(2)),
        "{two}"
    );
    assert_eq!(two["_meta"]["deletion"]["marked_for_delete_at"], at(T + 5));

    let three = by_c(3);
    assert_eq!(three["m"], serde_json::json!({"a": 1, "b": 2}), "{three}");
    let meta = &three["_meta"];
    for name in ["l", "m"] {
        assert_eq!(
            meta["complex_deletions"][name]["marked_for_delete_at"],
            at(T + 2),
            "{meta}"
        );
        assert_eq!(
            meta["cells"][name].as_array().map(Vec::len),
            Some(2),
            "{meta}"
        );
    }
    assert_eq!(meta["cells"]["m"][1]["path"], "b");
    assert!(
        meta["cells"]["l"][0]["path"].is_string(),
        "a timeuuid: {meta}"
    );
    // Each column once in `_meta.cells` (serde_json keeps the last of duplicate keys: count them).
    let line = &lines[json.iter().position(|j| j["c"] == 3).unwrap()];
    let cells = &line[line.find("\"cells\":").unwrap()..];
    assert_eq!(cells.matches("\"m\":").count(), 1, "{line}");
    assert_eq!(cells.matches("\"l\":").count(), 1, "{line}");

    let four = by_c(4);
    assert_eq!(four["_tombstone"], "shadowable_row", "{four}");
    assert_eq!(four["_meta"]["shadowable_deletion"]["shadowed"], false);
    let five = by_c(5);
    assert_eq!(five["v"].as_i64(), Some(5), "{five}");
    assert_eq!(five["_meta"]["shadowable_deletion"]["shadowed"], true);
}

/// The merged view of `dump --with-meta` (the default view): two SSTables of one partition merged, and
/// each deletion the merged rows still hold is shown — a cell tombstone where nothing is live, a row
/// deletion next to newer live cells (also from the other SSTable), complex deletions with an
/// element's tombstone, shadowable deletions (shadowed or not), a newer row deletion of a row the
/// other SSTable inserted; a tombstone that a newer cell overwrote is not.
#[test]
fn the_merged_view_shows_the_deletions_its_rows_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ks/m-5b4c2f0e8a3d11ef9a8c0242ac120002");
    let schema = schema_from_cql_text(CQL, "m").unwrap();
    let options = WriterOptions::new(writer_version("nb").unwrap(), Compression::Lz4);
    let ck = |c: i32| vec![Some(c.to_be_bytes().to_vec())];
    let simple = |name: &str, cell: Cell| ColumnData {
        column: col(&schema, name),
        content: ColumnContent::Simple(cell),
    };
    // Generation 1: the rows of the --no-merge test, and row 6 inserted; row 7 with a cell tombstone
    // that generation 2 overwrites.
    let mut first = rows(&schema);
    let mut six = Row::new(ck(6));
    live(&mut six, T);
    six.columns = vec![simple("v", int(T, 6))];
    let mut seven = Row::new(ck(7));
    seven.columns = vec![simple(
        "v",
        Cell {
            timestamp: T + 1,
            state: CellState::Tombstone {
                local_deletion_time: (T + 1) / 1_000_000,
            },
            path: None,
            value: Vec::new(),
        },
    )];
    first.extend([six, seven]);
    // Generation 2: row 2 gets a newer `v`, row 3's map element "a" is deleted, row 6 is deleted
    // after its insert, row 7's `v` is written after the tombstone.
    let mut two = Row::new(ck(2));
    two.columns = vec![simple("v", int(T + 20, 20))];
    let mut three = Row::new(ck(3));
    three.columns = vec![ColumnData {
        column: col(&schema, "m"),
        content: ColumnContent::Complex {
            deletion: DeletionTime::LIVE,
            cells: vec![Cell {
                timestamp: T + 40,
                state: CellState::Tombstone {
                    local_deletion_time: (T + 40) / 1_000_000,
                },
                path: Some(b"a".to_vec()),
                value: Vec::new(),
            }],
        },
    }];
    let mut six = Row::new(ck(6));
    six.deletion = del(T + 30);
    let mut seven = Row::new(ck(7));
    seven.columns = vec![simple("v", int(T + 50, 7))];
    for (generation, rows) in [(1, first), (2, vec![two, three, six, seven])] {
        let mut w = SSTableWriter::create(&dir, generation, &schema, options.clone()).unwrap();
        let mut p = Partition::new(9_i32.to_be_bytes().to_vec());
        p.unfiltereds = rows.into_iter().map(Unfiltered::Row).collect();
        w.append(&p).unwrap();
        w.finish().unwrap();
    }
    std::fs::write(dir.join("schema.cql"), CQL).unwrap();

    let lines = dump_merged(&dir);
    let json: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_c = |c: i64| {
        json.iter()
            .find(|j| j["c"].as_i64() == Some(c))
            .unwrap_or_else(|| panic!("no line for c = {c}: {lines:#?}"))
    };
    let at = |us: i64| sstable_reader::format_timestamp_us(us).unwrap();
    let cs: Vec<i64> = json.iter().map(|j| j["c"].as_i64().unwrap()).collect();
    assert_eq!(
        cs,
        [1, 2, 3, 4, 5, 6, 7],
        "one line per clustering: {lines:#?}"
    );

    let one = by_c(1);
    assert_eq!(one["_tombstone"], "cells", "{one}");
    assert_eq!(one["_meta"]["cells"]["v"]["writetime"], at(T + 1));

    let two = by_c(2);
    assert_eq!(
        (two["v"].as_i64(), two["w"].as_i64()),
        (Some(20), Some(2)),
        "{two}"
    );
    assert_eq!(two["_meta"]["deletion"]["marked_for_delete_at"], at(T + 5));

    let three = by_c(3);
    assert_eq!(three["m"], serde_json::json!({"b": 2}), "{three}");
    let meta = &three["_meta"];
    assert_eq!(
        meta["complex_deletions"]["m"]["marked_for_delete_at"],
        at(T + 2),
        "{meta}"
    );
    assert_eq!(meta["cells"]["m"][0]["path"], "a", "{meta}");
    assert!(meta["cells"]["m"][0]["deleted_at"].is_string(), "{meta}");
    assert_eq!(meta["cells"]["m"][1]["path"], "b", "{meta}");
    assert_eq!(meta["cells"]["l"].as_array().map(Vec::len), Some(2));

    let four = by_c(4);
    assert_eq!(four["_tombstone"], "shadowable_row", "{four}");
    assert_eq!(four["_meta"]["shadowable_deletion"]["shadowed"], false);
    let five = by_c(5);
    assert_eq!(five["v"].as_i64(), Some(5), "{five}");
    assert_eq!(five["_meta"]["shadowable_deletion"]["shadowed"], true);

    let six = by_c(6);
    assert_eq!(six["_tombstone"], "row", "{six}");
    assert_eq!(six["_meta"]["deletion"]["marked_for_delete_at"], at(T + 30));
    assert!(six.get("v").is_none(), "{six}");

    let seven = by_c(7);
    assert_eq!(seven["v"].as_i64(), Some(7), "{seven}");
    assert!(seven.get("_tombstone").is_none(), "{seven}");
    assert!(
        seven["_meta"]["cells"]["v"].get("deleted_at").is_none(),
        "the overwritten tombstone is gone: {seven}"
    );
}

/// The merged view shows the range tombstones of two SSTables merged as a read returns them: where
/// two ranges overlap the newer deletion holds (a boundary where one gives way to the other), a range
/// that the partition deletion supersedes is not shown, and a row deletion or cell tombstone that a
/// newer range covers is not shown either.
#[test]
fn the_merged_view_merges_range_tombstones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ks/m-5b4c2f0e8a3d11ef9a8c0242ac120002");
    let schema = schema_from_cql_text(CQL, "m").unwrap();
    let options = WriterOptions::new(writer_version("nb").unwrap(), Compression::Lz4);
    let ck = |c: i32| vec![Some(c.to_be_bytes().to_vec())];
    let v = col(&schema, "v");
    let row = |c: i32, ts: i64| {
        let mut r = Row::new(ck(c));
        live(&mut r, ts);
        r.columns = vec![ColumnData {
            column: v,
            content: ColumnContent::Simple(int(ts, c)),
        }];
        Unfiltered::Row(r)
    };
    let bound = |kind: BoundKind, c: i32, at: i64| {
        Unfiltered::Marker(Marker {
            kind,
            values: ck(c),
            deletion: MarkerDeletion::Bound(del(at)),
        })
    };
    // Partition 9. Generation 1: rows 1..=8 at T, the range [2, 5] deleted at T + 10.
    // Generation 2: row 3 deleted at T + 5 (older than the range), the range (4, 7) deleted at
    // T + 20 holding a tombstone of row 5's `v` at T + 15 (older than it) and row 6 written again
    // at T + 30. Partition 10: generation 1 rows 1..=3 at T and the range [1, 2] at T + 10;
    // generation 2 deletes the partition at T + 15 and the range [2, 3] at T + 20.
    let mut first = vec![row(1, T), bound(BoundKind::InclStartBound, 2, T + 10)];
    first.extend((2..=5).map(|c| row(c, T)));
    first.push(bound(BoundKind::InclEndBound, 5, T + 10));
    first.extend((6..=8).map(|c| row(c, T)));
    let mut three = Row::new(ck(3));
    three.deletion = del(T + 5);
    let mut five = Row::new(ck(5));
    five.columns = vec![ColumnData {
        column: v,
        content: ColumnContent::Simple(Cell {
            timestamp: T + 15,
            state: CellState::Tombstone {
                local_deletion_time: (T + 15) / 1_000_000,
            },
            path: None,
            value: Vec::new(),
        }),
    }];
    let second = vec![
        Unfiltered::Row(three),
        bound(BoundKind::ExclStartBound, 4, T + 20),
        Unfiltered::Row(five),
        row(6, T + 30),
        bound(BoundKind::ExclEndBound, 7, T + 20),
    ];
    let other_first = vec![
        bound(BoundKind::InclStartBound, 1, T + 10),
        row(1, T),
        row(2, T),
        bound(BoundKind::InclEndBound, 2, T + 10),
        row(3, T),
    ];
    let other_second = vec![
        bound(BoundKind::InclStartBound, 2, T + 20),
        bound(BoundKind::InclEndBound, 3, T + 20),
    ];
    for (generation, nine, ten, ten_deletion) in [
        (1, first, other_first, DeletionTime::LIVE),
        (2, second, other_second, del(T + 15)),
    ] {
        let mut w = SSTableWriter::create(&dir, generation, &schema, options.clone()).unwrap();
        // Partitions in ring order.
        let mut parts = vec![(9_i32, nine, DeletionTime::LIVE), (10, ten, ten_deletion)];
        parts.sort_by_key(|(k, _, _)| sstable_reader::murmur3_token(&k.to_be_bytes()));
        for (k, unfiltereds, deletion) in parts {
            let mut p = Partition::new(k.to_be_bytes().to_vec());
            p.deletion = deletion;
            p.unfiltereds = unfiltereds;
            w.append(&p).unwrap();
        }
        w.finish().unwrap();
    }
    std::fs::write(dir.join("schema.cql"), CQL).unwrap();

    let at = |us: i64| sstable_reader::format_timestamp_us(us).unwrap();
    let lines = dump_merged(&dir);
    let summary: Vec<String> = lines
        .iter()
        .map(|l| {
            let j: serde_json::Value = serde_json::from_str(l).unwrap();
            let deletion = |k: &str| j[k]["marked_for_delete_at"].as_str().map(str::to_owned);
            match j["_tombstone"].as_str() {
                Some("partition") => format!("{} partition {}", j["k"], j["_meta"]),
                Some(t) if t.starts_with("range_") => format!(
                    "{} {} {} closes {:?} opens {:?}",
                    j["k"],
                    j["kind"].as_str().unwrap(),
                    j["bound"][0],
                    deletion("closes"),
                    deletion("opens")
                ),
                t => format!("{} row {} {:?} {}", j["k"], j["c"], t, j["v"]),
            }
        })
        .collect();
    let some = |us: i64| Some(at(us));
    let mut expected = vec![
        "9 row 1 None 1".to_owned(),
        format!("9 InclStartBound 2 closes None opens {:?}", some(T + 10)),
        format!(
            "9 InclEndExclStartBoundary 4 closes {:?} opens {:?}",
            some(T + 10),
            some(T + 20)
        ),
        "9 row 6 None 6".to_owned(),
        format!("9 ExclEndBound 7 closes {:?} opens None", some(T + 20)),
        "9 row 7 None 7".to_owned(),
        "9 row 8 None 8".to_owned(),
        format!("10 InclStartBound 2 closes None opens {:?}", some(T + 20)),
        format!("10 InclEndBound 3 closes {:?} opens None", some(T + 20)),
    ];
    // The partition tombstone line of 10 comes first in its partition.
    let ten = summary
        .iter()
        .position(|l| l.starts_with("10 "))
        .expect("partition 10");
    assert!(summary[ten].starts_with("10 partition"), "{summary:#?}");
    let mut got = summary.clone();
    got.remove(ten);
    // Partitions come in ring order; compare each partition's lines in order.
    got.sort_by_key(|l| !l.starts_with("9 "));
    expected.sort_by_key(|l| !l.starts_with("9 "));
    assert_eq!(got, expected, "{lines:#?}");
}
