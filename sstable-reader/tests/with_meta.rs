//! `dump --no-merge --with-meta` shows every deletion of each SSTable: a cell tombstone in a row with no
//! live cell, complex (collection) deletions, a row deletion next to newer live cells, shadowable
//! deletions (and whether a newer liveness shadows them); a collection's element metadata is one array
//! under the column's name, so no JSON object repeats a key.

mod common;

use std::path::Path;

use sstable_reader::writer::{
    schema_from_cql_text, writer_version, Cell, CellState, ColumnContent, ColumnData, Compression,
    Liveness, Partition, Row, SSTableWriter, Unfiltered, WriterOptions,
};
use sstable_reader::{
    DeletionTime, OwnedRow, Projection, ReadOptions, RowRenderer, SSTable, TableSchema,
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
