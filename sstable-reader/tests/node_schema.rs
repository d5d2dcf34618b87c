//! A node's schema from its own `system_schema`: fixtures written with this crate's writer following
//! Cassandra's `SchemaKeyspace` tables (the column sets of 3.11, 4.1 and 5.0), read back into the
//! `CREATE TYPE` / `CREATE TABLE` statements they were made from, and used to name the columns of a
//! live table directory that has no `schema.cql`.

use std::path::{Path, PathBuf};

use sstable_reader::writer::{
    schema_from_cql_text, writer_version, Cell, ColumnContent, ColumnData, Compression, Liveness,
    Partition, Row, SSTableWriter, Unfiltered, WriterOptions,
};
use sstable_reader::{discover, murmur3_token, CqlType, NodeSchema, Selection, TableSchema, Value};

const T: i64 = 1_700_000_000_000_000;

/// What the fixtures are made from, as `funnel schema` prints it.
pub const EXPECTED: &str = "\
CREATE TYPE shop.address (street text, zip int);
CREATE TYPE shop.customer (name text, home frozen<address>);
CREATE TABLE shop.orders (
    customer_id uuid,
    region text,
    placed_at timestamp,
    order_id timeuuid,
    items map<text, int>,
    note text,
    owner frozen<customer>,
    shipping frozen<address> static,
    tags set<text>,
    PRIMARY KEY ((customer_id, region), placed_at, order_id)
) WITH CLUSTERING ORDER BY (placed_at DESC, order_id ASC);
CREATE TABLE shop.visits (
    \"Visitor\" text,
    n int,
    PRIMARY KEY (\"Visitor\")
);
";

/// `system_schema.columns` rows as Cassandra stores them: (keyspace, table, column, kind, position,
/// type, clustering order).
const COLUMNS: &[(&str, &str, &str, &str, i32, &str, &str)] = &[
    (
        "shop",
        "orders",
        "customer_id",
        "partition_key",
        0,
        "uuid",
        "none",
    ),
    (
        "shop",
        "orders",
        "region",
        "partition_key",
        1,
        "text",
        "none",
    ),
    (
        "shop",
        "orders",
        "placed_at",
        "clustering",
        0,
        "timestamp",
        "desc",
    ),
    (
        "shop",
        "orders",
        "order_id",
        "clustering",
        1,
        "timeuuid",
        "asc",
    ),
    (
        "shop",
        "orders",
        "items",
        "regular",
        -1,
        "map<text, int>",
        "none",
    ),
    ("shop", "orders", "note", "regular", -1, "text", "none"),
    (
        "shop",
        "orders",
        "owner",
        "regular",
        -1,
        "frozen<customer>",
        "none",
    ),
    (
        "shop",
        "orders",
        "shipping",
        "static",
        -1,
        "frozen<address>",
        "none",
    ),
    ("shop", "orders", "tags", "regular", -1, "set<text>", "none"),
    (
        "shop",
        "visits",
        "Visitor",
        "partition_key",
        0,
        "text",
        "none",
    ),
    ("shop", "visits", "n", "regular", -1, "int", "none"),
    ("other", "t", "k", "partition_key", 0, "int", "none"),
];

/// `system_schema.types` rows: (keyspace, type, field names, field types).
const TYPES: &[(&str, &str, &[&str], &[&str])] = &[
    ("shop", "address", &["street", "zip"], &["text", "int"]),
    (
        "shop",
        "customer",
        &["name", "home"],
        &["text", "frozen<address>"],
    ),
];

/// Cassandra's `SchemaKeyspace` definitions of the tables written, per version: the key columns are
/// fixed, the other columns of `tables` and `dropped_columns` changed over time.
fn definitions(version: &str) -> Vec<(&'static str, String)> {
    let tables_extra = match version {
        "3.11" => "dclocal_read_repair_chance double, read_repair_chance double,",
        "4.1" => "additional_write_policy text, read_repair text,",
        _ => {
            "additional_write_policy text, read_repair text, allow_auto_snapshot boolean, \
              incremental_backups boolean, memtable text,"
        }
    };
    let dropped_kind = if version == "3.11" { "" } else { "kind text," };
    vec![
        (
            "tables",
            format!(
                "CREATE TABLE system_schema.tables (keyspace_name text, table_name text, \
                 bloom_filter_fp_chance double, caching frozen<map<text, text>>, comment text, \
                 compaction frozen<map<text, text>>, default_time_to_live int, \
                 flags frozen<set<text>>, gc_grace_seconds int, id uuid, {tables_extra} \
                 PRIMARY KEY ((keyspace_name), table_name)) \
                 WITH CLUSTERING ORDER BY (table_name ASC);"
            ),
        ),
        (
            "columns",
            "CREATE TABLE system_schema.columns (keyspace_name text, table_name text, \
             column_name text, clustering_order text, column_name_bytes blob, kind text, \
             position int, type text, PRIMARY KEY ((keyspace_name), table_name, column_name));"
                .to_string(),
        ),
        (
            "types",
            "CREATE TABLE system_schema.types (keyspace_name text, type_name text, \
             field_names frozen<list<text>>, field_types frozen<list<text>>, \
             PRIMARY KEY ((keyspace_name), type_name));"
                .to_string(),
        ),
        (
            "dropped_columns",
            format!(
                "CREATE TABLE system_schema.dropped_columns (keyspace_name text, table_name text, \
                 column_name text, dropped_time timestamp, {dropped_kind} type text, \
                 PRIMARY KEY ((keyspace_name), table_name, column_name));"
            ),
        ),
    ]
}

fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn encode(ty: &CqlType, v: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    v.encode(ty, &mut out).unwrap();
    out
}

/// One row of a `system_schema` table: its clustering (text values) and named regular cells.
struct SchemaRow {
    keyspace: String,
    clustering: Vec<String>,
    cells: Vec<(&'static str, Vec<u8>)>,
}

/// Writes `rows` as the SSTable of `system_schema.<name>` under `data`, in `version`'s file format.
fn write_system_table(data: &Path, version: &str, name: &str, cql: &str, mut rows: Vec<SchemaRow>) {
    let schema = schema_from_cql_text(cql, name).unwrap();
    let dir = data.join(format!("system_schema/{name}-{:032x}", name.len()));
    let format = match version {
        "3.11" => "me",
        "4.1" => "nb",
        _ => "oa",
    };
    let options = WriterOptions::new(writer_version(format).unwrap(), Compression::Lz4);
    let mut w = SSTableWriter::create(&dir, 1, &schema, options).unwrap();
    rows.sort_by(|a, b| {
        let ta = murmur3_token(a.keyspace.as_bytes());
        let tb = murmur3_token(b.keyspace.as_bytes());
        (ta, &a.keyspace, &a.clustering).cmp(&(tb, &b.keyspace, &b.clustering))
    });
    let mut partitions: Vec<Partition> = Vec::new();
    for r in rows {
        if partitions
            .last()
            .is_none_or(|p| p.key != r.keyspace.as_bytes())
        {
            partitions.push(Partition::new(text(&r.keyspace)));
        }
        let mut row = Row::new(r.clustering.iter().map(|c| Some(text(c))).collect());
        row.liveness = Some(Liveness {
            timestamp: T,
            expiry: None,
        });
        let mut columns: Vec<ColumnData> = r
            .cells
            .into_iter()
            .map(|(col, value)| ColumnData {
                column: schema.regulars.iter().position(|c| c.name == col).unwrap(),
                content: ColumnContent::Simple(Cell::live(T, value)),
            })
            .collect();
        columns.sort_by_key(|c| c.column);
        row.columns = columns;
        if let Some(p) = partitions.last_mut() {
            p.unfiltereds.push(Unfiltered::Row(row));
        }
    }
    for p in &partitions {
        w.append(p).unwrap();
    }
    w.finish().unwrap();
}

/// Writes a node's `system_schema` (the rows above, `version`'s column sets) under `data`, and a
/// dropped column `shop.orders.old_note`.
pub fn write_system_schema(data: &Path, version: &str) {
    write_system_schema_dropping(data, version, &[("old_note", (T + 1000) / 1000)]);
}

/// [`write_system_schema`] with these `shop.orders` columns in `dropped_columns` (name, drop time in
/// ms) instead.
fn write_system_schema_dropping(data: &Path, version: &str, dropped: &[(&str, i64)]) {
    let list = CqlType::Frozen(Box::new(CqlType::List(Box::new(CqlType::Text))));
    for (name, cql) in definitions(version) {
        let rows: Vec<SchemaRow> = match name {
            "tables" => {
                let mut seen: Vec<(&str, &str)> = COLUMNS.iter().map(|c| (c.0, c.1)).collect();
                seen.dedup();
                seen.iter()
                    .map(|(ks, t)| SchemaRow {
                        keyspace: ks.to_string(),
                        clustering: vec![t.to_string()],
                        cells: vec![
                            ("comment", text("")),
                            ("id", vec![7; 16]),
                            ("gc_grace_seconds", 864000_i32.to_be_bytes().to_vec()),
                        ],
                    })
                    .collect()
            }
            "columns" => COLUMNS
                .iter()
                .map(|&(ks, t, c, kind, position, ty, order)| SchemaRow {
                    keyspace: ks.to_string(),
                    clustering: vec![t.to_string(), c.to_string()],
                    cells: vec![
                        ("clustering_order", text(order)),
                        ("column_name_bytes", text(c)),
                        ("kind", text(kind)),
                        ("position", position.to_be_bytes().to_vec()),
                        ("type", text(ty)),
                    ],
                })
                .collect(),
            "types" => TYPES
                .iter()
                .map(|&(ks, t, names, types)| {
                    let l = |v: &[&str]| {
                        encode(
                            &list,
                            &Value::List(v.iter().map(|s| Value::Text(s)).collect()),
                        )
                    };
                    SchemaRow {
                        keyspace: ks.to_string(),
                        clustering: vec![t.to_string()],
                        cells: vec![("field_names", l(names)), ("field_types", l(types))],
                    }
                })
                .collect(),
            _ => dropped
                .iter()
                .map(|&(column, ms)| SchemaRow {
                    keyspace: "shop".into(),
                    clustering: vec!["orders".into(), column.into()],
                    cells: vec![
                        ("dropped_time", ms.to_be_bytes().to_vec()),
                        ("type", text("text")),
                    ],
                })
                .collect(),
        };
        write_system_table(data, version, name, &cql, rows);
    }
}

/// A live table directory of `shop.orders` without `schema.cql`: one row.
pub fn write_orders(data: &Path) -> PathBuf {
    let dir = data.join("shop/orders-0123456789abcdef0123456789abcdef");
    let schema = schema_from_cql_text(EXPECTED, "orders").unwrap();
    let options = WriterOptions::new(writer_version("nb").unwrap(), Compression::Lz4);
    let mut w = SSTableWriter::create(&dir, 1, &schema, options).unwrap();
    let key = sstable_reader::composite(&[&[1u8; 16], b"eu"]);
    let mut p = Partition::new(key);
    let mut row = Row::new(vec![
        Some(1_700_000_000_000_i64.to_be_bytes().to_vec()),
        Some({
            let mut u = [0u8; 16];
            u[6] = 0x10;
            u[8] = 0x80;
            u.to_vec()
        }),
    ]);
    row.liveness = Some(Liveness {
        timestamp: T,
        expiry: None,
    });
    let note = schema
        .regulars
        .iter()
        .position(|c| c.name == "note")
        .unwrap();
    row.columns = vec![ColumnData {
        column: note,
        content: ColumnContent::Simple(Cell::live(T, text("fragile"))),
    }];
    p.unfiltereds = vec![Unfiltered::Row(row)];
    w.append(&p).unwrap();
    w.finish().unwrap();
    dir
}

fn key_names(s: &TableSchema) -> Vec<String> {
    s.partition_key
        .iter()
        .chain(&s.clustering)
        .map(|c| format!("{}{}", c.name, if c.reversed { " desc" } else { "" }))
        .collect()
}

#[test]
fn system_schema_round_trips_for_each_cassandra_version() {
    for version in ["3.11", "4.1", "5.0"] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        write_system_schema(&data, version);
        let node = NodeSchema::read(&data).unwrap();
        assert_eq!(node.statements(Some("shop"), None), EXPECTED, "{version}");
        let all = node.statements(None, None);
        assert!(
            all.starts_with("CREATE TABLE other.t (") && all.ends_with(EXPECTED),
            "{all}"
        );
        assert_eq!(node.dropped.len(), 1);
        assert_eq!(node.dropped_columns("shop", "orders")[0].column, "old_note");
        // The statements parse back into the schema they were made from.
        let parsed = node.table_schema("shop", "orders").unwrap().unwrap();
        let original = sstable_reader::CqlSchema::parse(EXPECTED, "expected").unwrap();
        assert_eq!(parsed.table(Some("orders")), original.table(Some("orders")));
        let by_name = |mut v: Vec<sstable_reader::UserType>| {
            v.sort_by(|a, b| a.name.cmp(&b.name));
            v
        };
        assert_eq!(by_name(parsed.types), by_name(original.types));
    }
}

#[test]
fn a_live_table_without_schema_cql_takes_its_names_from_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_system_schema(&data, "4.1");
    write_orders(&data);
    let found = discover(&[data.join("shop")], &Selection::default()).unwrap();
    let orders = found.table("shop.orders").unwrap();
    assert!(orders.schema_files.is_empty());
    let table = orders.open(None, Default::default()).unwrap();
    assert_eq!(
        key_names(table.schema()),
        ["customer_id", "region", "placed_at desc", "order_id"]
    );
}

#[test]
fn cells_of_a_dropped_column_never_appear() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write_system_schema(&data, "5.0");
    let dir = write_orders(&data);
    // An older SSTable, written while the table still had `old_note`: one row kept alive only by it,
    // one with a live `note` too.
    let old_cql = EXPECTED.replace("    note text,\n", "    note text,\n    old_note text,\n");
    let schema = schema_from_cql_text(&old_cql, "orders").unwrap();
    let options = WriterOptions::new(writer_version("nb").unwrap(), Compression::Lz4);
    let mut w = SSTableWriter::create(&dir, 2, &schema, options).unwrap();
    let col = |name: &str| schema.regulars.iter().position(|c| c.name == name).unwrap();
    let mut p = Partition::new(sstable_reader::composite(&[&[2u8; 16], b"us"]));
    for (placed_at, with_note) in [(2_i64, false), (1, true)] {
        let mut row = Row::new(vec![
            Some(placed_at.to_be_bytes().to_vec()),
            Some(vec![0; 16]),
        ]);
        let mut columns = vec![ColumnData {
            column: col("old_note"),
            content: ColumnContent::Simple(Cell::live(T, text("gone"))),
        }];
        if with_note {
            columns.push(ColumnData {
                column: col("note"),
                content: ColumnContent::Simple(Cell::live(T, text("kept"))),
            });
        }
        columns.sort_by_key(|c| c.column);
        row.columns = columns;
        p.unfiltereds.push(Unfiltered::Row(row));
    }
    w.append(&p).unwrap();
    w.finish().unwrap();

    let found = discover(&[data.join("shop")], &Selection::default()).unwrap();
    let table = found
        .table("shop.orders")
        .unwrap()
        .open(None, Default::default())
        .unwrap();
    assert!(table.schema().column("old_note").is_none());
    let note = table.schema().column("note").unwrap().index;
    let mut scan = table
        .scan(&sstable_reader::Columns::All, 1_800_000_000)
        .unwrap();
    let mut notes = Vec::new();
    while let Some(p) = scan.next_partition().unwrap() {
        for r in p.rows() {
            assert_eq!(
                r.cells().count(),
                1,
                "only `note`: {:?}",
                r.cells().collect::<Vec<_>>()
            );
            notes.push(String::from_utf8(r.value(note).unwrap().to_vec()).unwrap());
        }
    }
    notes.sort();
    assert_eq!(notes, ["fragile", "kept"]);
}

/// Cassandra's rule for a column dropped and then added again under the same name
/// (`SerializationHelper.isDropped`, `DroppedColumn`): its cells written at or before the drop never
/// appear — also where they are the only thing keeping a row alive — and those written after it do,
/// whether an SSTable holds only older cells, only newer ones, or both.
#[test]
fn a_column_dropped_and_added_again_shows_only_cells_newer_than_the_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // `note` was dropped at T + 1 ms (and is in the table again).
    write_system_schema_dropping(&data, "4.1", &[("note", T / 1000 + 1)]);
    let dir = write_orders(&data); // note "fragile" written at T: older than the drop
    let schema = schema_from_cql_text(EXPECTED, "orders").unwrap();
    let note = schema
        .regulars
        .iter()
        .position(|c| c.name == "note")
        .unwrap();
    let options = WriterOptions::new(writer_version("nb").unwrap(), Compression::Lz4);
    // Generation 2 holds cells from both sides of the drop, generation 3 only newer ones; each row
    // has no primary-key liveness, so its note alone keeps it alive.
    for (generation, rows) in [
        (2, vec![(2_i64, T + 5000, "new"), (1, T, "old")]), // (placed_at DESC)
        (3, vec![(3, T + 9000, "newest")]),
    ] {
        let mut w = SSTableWriter::create(&dir, generation, &schema, options.clone()).unwrap();
        let mut p = Partition::new(sstable_reader::composite(&[&[2u8; 16], b"us"]));
        for (placed_at, ts, value) in rows {
            let mut row = Row::new(vec![
                Some(placed_at.to_be_bytes().to_vec()),
                Some(vec![0; 16]),
            ]);
            row.columns = vec![ColumnData {
                column: note,
                content: ColumnContent::Simple(Cell::live(ts, text(value))),
            }];
            p.unfiltereds.push(Unfiltered::Row(row));
        }
        w.append(&p).unwrap();
        w.finish().unwrap();
    }
    let found = discover(&[data.join("shop")], &Selection::default()).unwrap();
    let table = found
        .table("shop.orders")
        .unwrap()
        .open(None, Default::default())
        .unwrap();
    let note = table.schema().column("note").unwrap().index;
    let mut rows = Vec::new();
    for columns in [
        sstable_reader::Columns::All,
        sstable_reader::Columns::Named(vec!["note".into()]),
    ] {
        let mut scan = table.scan(&columns, 1_800_000_000).unwrap();
        let mut notes = Vec::new();
        while let Some(p) = scan.next_partition().unwrap() {
            for r in p.rows() {
                notes.push(
                    r.value(note)
                        .map(|v| String::from_utf8(v.to_vec()).unwrap()),
                );
            }
        }
        notes.sort();
        rows.push(notes);
    }
    // The first SSTable's row stays (its liveness is older than the drop, but a row's liveness is
    // not a cell of the dropped column), without its note.
    let expected = vec![None, Some("new".to_string()), Some("newest".to_string())];
    assert_eq!(rows, [expected.clone(), expected]);
}
