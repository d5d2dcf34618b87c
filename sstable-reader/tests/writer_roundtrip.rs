//! Round trip: random partitions with a column of every CQL type (simple, frozen and multi-cell
//! collections, tuples, UDTs, statics), TTLs, cell/row/partition/range tombstones — written by the writer
//! in `nb` and `oa` with every compression, read back by the crate's reader, must come back identical,
//! and every value must decode as its type and re-encode to the same bytes.

use proptest::prelude::*;
use sstable_reader::writer::{
    schema_from_cql_text, writer_version, Cell, CellState, ColumnContent, ColumnData, Compression,
    EncodingStats, Expiry, Liveness, Marker, MarkerDeletion, Partition, Row, SSTableWriter,
    Unfiltered, WriterOptions,
};
use sstable_reader::{
    partition_order, BoundKind, CqlType, DeletionTime, Projection, ReadOptions, SSTable,
    TableSchema, Value, NO_DELETION_TIME,
};

const SCHEMA: &str = "
CREATE TYPE ks.addr (street text, zip int);
CREATE TABLE ks.all_types (
  k text, c1 int, c2 text,
  s_int int static, s_set set<text> static,
  a_ascii ascii, a_bigint bigint, a_blob blob, a_boolean boolean, a_date date, a_decimal decimal,
  a_double double, a_duration duration, a_float float, a_inet inet, a_int int, a_smallint smallint,
  a_text text, a_time time, a_timestamp timestamp, a_timeuuid timeuuid, a_tinyint tinyint, a_uuid uuid,
  a_varint varint, l_int list<int>, st_text set<text>, m_text_int map<text, int>,
  f_list frozen<list<int>>, f_map frozen<map<text, bigint>>, tup frozen<tuple<int, text>>,
  f_addr frozen<addr>,
  PRIMARY KEY ((k), c1, c2)) WITH CLUSTERING ORDER BY (c1 DESC, c2 ASC);
";

const T0: i64 = 1_700_000_000_000_000; // µs
const L0: i64 = 1_700_000_000; // s

/// Valid serialized bytes for a simple or frozen type.
fn value_for(ty: &CqlType) -> BoxedStrategy<Vec<u8>> {
    use CqlType as T;
    let enc = |ty: CqlType| {
        move |v: Value<'_>| {
            let mut b = Vec::new();
            v.encode(&ty, &mut b).expect("encodable");
            b
        }
    };
    match ty.base().clone() {
        T::Ascii => "[ -~]{0,12}".prop_map(|s| s.into_bytes()).boxed(),
        T::Text => any::<String>()
            .prop_map(|s| s.chars().take(12).collect::<String>().into_bytes())
            .boxed(),
        T::Blob => proptest::collection::vec(any::<u8>(), 0..20).boxed(),
        T::Boolean => any::<bool>().prop_map(|b| vec![b as u8]).boxed(),
        T::TinyInt => any::<i8>().prop_map(|v| v.to_be_bytes().to_vec()).boxed(),
        T::SmallInt => any::<i16>().prop_map(|v| v.to_be_bytes().to_vec()).boxed(),
        T::Int | T::Date | T::Float => any::<[u8; 4]>().prop_map(|v| v.to_vec()).boxed(),
        T::BigInt | T::Timestamp | T::Double => any::<[u8; 8]>().prop_map(|v| v.to_vec()).boxed(),
        T::Time => (0i64..86_400_000_000_000)
            .prop_map(|v| v.to_be_bytes().to_vec())
            .boxed(),
        T::Uuid => any::<[u8; 16]>().prop_map(|v| v.to_vec()).boxed(),
        T::TimeUuid => any::<[u8; 16]>()
            .prop_map(|mut v| {
                v[6] = (v[6] & 0x0f) | 0x10;
                v[8] = (v[8] & 0x3f) | 0x80;
                v.to_vec()
            })
            .boxed(),
        T::Inet => prop_oneof![
            any::<[u8; 4]>().prop_map(|v| v.to_vec()),
            any::<[u8; 16]>().prop_map(|v| v.to_vec())
        ]
        .boxed(),
        T::Varint => proptest::collection::vec(any::<u8>(), 1..12).boxed(),
        T::Decimal => (any::<i32>(), proptest::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(s, u)| {
                let mut b = s.to_be_bytes().to_vec();
                b.extend(u);
                b
            })
            .boxed(),
        T::Duration => (any::<i32>(), any::<i32>(), any::<i64>())
            .prop_map(duration_bytes)
            .boxed(),
        T::List(e) if matches!(*e, T::Int) => proptest::collection::vec(any::<i32>(), 0..5)
            .prop_map(move |v| {
                enc(T::List(Box::new(T::Int)))(Value::List(v.into_iter().map(Value::Int).collect()))
            })
            .boxed(),
        T::Map(..) => proptest::collection::btree_map("[a-z]{1,5}", any::<i64>(), 0..4)
            .prop_map(|m| {
                let mut b = Vec::new();
                b.extend_from_slice(&(m.len() as i32).to_be_bytes());
                for (k, v) in m {
                    b.extend_from_slice(&(k.len() as i32).to_be_bytes());
                    b.extend_from_slice(k.as_bytes());
                    b.extend_from_slice(&8i32.to_be_bytes());
                    b.extend_from_slice(&v.to_be_bytes());
                }
                b
            })
            .boxed(),
        T::Tuple(_) => (any::<i32>(), "[a-z]{0,6}")
            .prop_map(move |(i, s)| {
                enc(T::Tuple(vec![T::Int, T::Text]))(Value::Tuple(vec![
                    Value::Int(i),
                    Value::Text(&s),
                ]))
            })
            .boxed(),
        T::Udt(u) => ("[a-z]{0,6}", any::<i32>())
            .prop_map(move |(s, i)| {
                enc(T::Udt(u.clone()))(Value::Tuple(vec![Value::Text(&s), Value::Int(i)]))
            })
            .boxed(),
        other => panic!("no strategy for {other}"),
    }
}

fn duration_bytes((m, d, n): (i32, i32, i64)) -> Vec<u8> {
    let mut b = Vec::new();
    Value::Duration {
        months: m,
        days: d,
        nanos: n,
    }
    .encode(&CqlType::Duration, &mut b)
    .unwrap();
    b
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Live,
    Expiring,
    Tombstone,
}

fn state(kind: Kind, ttl: i32, ldt: i64) -> CellState {
    match kind {
        Kind::Live => CellState::Live,
        Kind::Expiring => CellState::Expiring(Expiry {
            ttl,
            local_expiration_time: ldt,
        }),
        Kind::Tombstone => CellState::Tombstone {
            local_deletion_time: ldt,
        },
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![6 => Just(Kind::Live), 2 => Just(Kind::Expiring), 1 => Just(Kind::Tombstone)]
}

fn deletion() -> impl Strategy<Value = DeletionTime> {
    prop_oneof![
        4 => Just(DeletionTime::LIVE),
        1 => (0i64..1_000_000, 0i64..100_000)
            .prop_map(|(t, l)| DeletionTime { marked_for_delete_at: T0 + t, local_deletion_time: L0 + l }),
    ]
}

/// A column's data for a row (simple cell or multi-cell column).
fn column(ty: CqlType, index: usize) -> BoxedStrategy<ColumnData> {
    let meta = (0i64..1_000_000, kind(), 1i32..100_000, 0i64..100_000);
    if ty.is_multi_cell() {
        let elem: BoxedStrategy<(Vec<u8>, Vec<u8>)> = match ty.base() {
            CqlType::List(_) => (any::<[u8; 16]>(), any::<i32>())
                .prop_map(|(mut p, v)| {
                    p[6] = (p[6] & 0x0f) | 0x10;
                    (p.to_vec(), v.to_be_bytes().to_vec())
                })
                .boxed(),
            CqlType::Set(_) => "[a-z]{1,6}"
                .prop_map(|s| (s.into_bytes(), Vec::new()))
                .boxed(),
            _ => ("[a-z]{1,6}", any::<i32>())
                .prop_map(|(k, v)| (k.into_bytes(), v.to_be_bytes().to_vec()))
                .boxed(),
        };
        (
            deletion(),
            proptest::collection::btree_map(elem.prop_map(|(p, v)| (p, v)), meta, 0..4),
        )
            .prop_map(move |(del, cells)| {
                let cells = cells
                    .into_iter()
                    .map(|((path, value), (t, k, ttl, l))| Cell {
                        timestamp: T0 + t,
                        state: state(k, ttl, L0 + l),
                        path: Some(path),
                        value: if matches!(k, Kind::Tombstone) {
                            Vec::new()
                        } else {
                            value
                        },
                    })
                    .collect();
                ColumnData {
                    column: index,
                    content: ColumnContent::Complex {
                        deletion: del,
                        cells,
                    },
                }
            })
            .boxed()
    } else {
        let values = if matches!(ty, CqlType::Duration) {
            (any::<i32>(), any::<i32>(), any::<i64>())
                .prop_map(duration_bytes)
                .boxed()
        } else {
            value_for(&ty)
        };
        (meta, values, prop::bool::weighted(0.05))
            .prop_map(move |((t, k, ttl, l), v, empty)| ColumnData {
                column: index,
                content: ColumnContent::Simple(Cell {
                    timestamp: T0 + t,
                    state: state(k, ttl, L0 + l),
                    path: None,
                    value: if matches!(k, Kind::Tombstone) || empty {
                        Vec::new()
                    } else {
                        v
                    },
                }),
            })
            .boxed()
    }
}

fn row_strategy(cols: Vec<CqlType>, clustering: Option<(i32, String)>) -> BoxedStrategy<Row> {
    let per_col: Vec<BoxedStrategy<Option<ColumnData>>> = cols
        .into_iter()
        .enumerate()
        .map(|(i, t)| proptest::option::weighted(0.6, column(t, i)).boxed())
        .collect();
    let liveness = proptest::option::of((
        0i64..1_000_000,
        proptest::option::weighted(0.3, (1i32..100_000, 0i64..100_000)),
    ));
    (per_col, liveness, deletion())
        .prop_map(move |(cols, live, del)| Row {
            clustering: match &clustering {
                Some((a, b)) => vec![Some(a.to_be_bytes().to_vec()), Some(b.clone().into_bytes())],
                None => Vec::new(),
            },
            liveness: live.map(|(t, e)| Liveness {
                timestamp: T0 + t,
                expiry: e.map(|(ttl, l)| Expiry {
                    ttl,
                    local_expiration_time: L0 + l,
                }),
            }),
            deletion: del,
            shadowable: sstable_reader::DeletionTime::LIVE,
            columns: cols.into_iter().flatten().collect(),
        })
        .boxed()
}

fn partition_strategy(schema: &TableSchema) -> BoxedStrategy<Partition> {
    let regular: Vec<CqlType> = schema.regulars.iter().map(|c| c.ty.clone()).collect();
    let statics: Vec<CqlType> = schema.statics.iter().map(|c| c.ty.clone()).collect();
    (
        "[a-zA-Z0-9]{1,10}",
        deletion(),
        proptest::option::of(row_strategy(statics, None)),
        proptest::collection::btree_set((any::<i32>(), "[a-z]{0,3}"), 0..6),
        any::<u64>(),
        prop::bool::weighted(0.3),
    )
        .prop_flat_map(move |(key, pdel, stat, clusterings, seed, with_marker)| {
            // clustering order: c1 DESC, c2 ASC
            let mut cl: Vec<(i32, String)> = clusterings.into_iter().collect();
            cl.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let rows: Vec<BoxedStrategy<Row>> = cl
                .into_iter()
                .map(|c| row_strategy(regular.clone(), Some(c)))
                .collect();
            (
                Just(key),
                Just(pdel),
                Just(stat),
                rows,
                Just(seed),
                Just(with_marker),
            )
        })
        .prop_map(|(key, pdel, stat, rows, seed, with_marker)| {
            let mut unfiltereds: Vec<Unfiltered> = rows.into_iter().map(Unfiltered::Row).collect();
            if with_marker {
                // a range tombstone over everything above c1 = i32::MAX (DESC order: first), before any row
                let d = DeletionTime {
                    marked_for_delete_at: T0 + (seed % 1000) as i64,
                    local_deletion_time: L0 + 7,
                };
                unfiltereds.insert(
                    0,
                    Unfiltered::Marker(Marker {
                        kind: BoundKind::InclStartBound,
                        values: vec![
                            Some(i32::MAX.to_be_bytes().to_vec()),
                            Some(b"zzzz".to_vec()),
                        ],
                        deletion: MarkerDeletion::Bound(d),
                    }),
                );
                unfiltereds.insert(
                    1,
                    Unfiltered::Marker(Marker {
                        kind: BoundKind::InclEndBound,
                        values: vec![
                            Some(i32::MAX.to_be_bytes().to_vec()),
                            Some(b"zzzz".to_vec()),
                        ],
                        deletion: MarkerDeletion::Bound(d),
                    }),
                );
            }
            Partition {
                key: key.into_bytes(),
                deletion: pdel,
                static_row: stat
                    .filter(|s| !s.columns.is_empty() || s.liveness.is_some())
                    .map(|mut s| {
                        s.deletion = DeletionTime::LIVE;
                        s
                    }),
                unfiltereds,
            }
        })
        .boxed()
}

/// Reads an SSTable back into the writer's model.
fn read_back(path: &std::path::Path) -> Vec<Partition> {
    let sst = SSTable::open(path, None, ReadOptions::default()).expect("open");
    let mut scan = sst.scanner(Projection::all(&sst.schema));
    let mut out = Vec::new();
    while let Some(h) = scan.next_partition().expect("partition") {
        let mut p = Partition::new(scan.key().to_vec());
        p.deletion = h.deletion;
        while let Some(u) = scan.next_unfiltered().expect("unfiltered") {
            match u {
                sstable_reader::Unfiltered::Row(r) => {
                    let cols = if r.is_static() {
                        &sst.schema.statics
                    } else {
                        &sst.schema.regulars
                    };
                    let mut row = Row::new(
                        (0..r.clustering_len())
                            .map(|i| r.clustering(i).map(|b| b.to_vec()))
                            .collect(),
                    );
                    let l = r.liveness();
                    if !l.is_empty() {
                        row.liveness = Some(Liveness {
                            timestamp: l.timestamp,
                            expiry: l.is_expiring().then_some(Expiry {
                                ttl: l.ttl,
                                local_expiration_time: l.local_expiration_time,
                            }),
                        });
                    }
                    row.deletion = r.deletion();
                    let complex_del: Vec<(usize, DeletionTime)> = r.complex_deletions().collect();
                    for c in r.cells() {
                        let cell = Cell {
                            timestamp: c.timestamp,
                            state: if c.tombstone {
                                CellState::Tombstone {
                                    local_deletion_time: c.local_deletion_time,
                                }
                            } else if c.ttl != 0 {
                                CellState::Expiring(Expiry {
                                    ttl: c.ttl,
                                    local_expiration_time: c.local_deletion_time,
                                })
                            } else {
                                assert_eq!(c.local_deletion_time, NO_DELETION_TIME);
                                CellState::Live
                            },
                            path: c.path.map(|p| p.to_vec()),
                            value: c.value.to_vec(),
                        };
                        if cols[c.column].ty.is_multi_cell() {
                            match row.columns.last_mut() {
                                Some(ColumnData {
                                    column,
                                    content: ColumnContent::Complex { cells, .. },
                                }) if *column == c.column => cells.push(cell),
                                _ => row.columns.push(ColumnData {
                                    column: c.column,
                                    content: ColumnContent::Complex {
                                        deletion: DeletionTime::LIVE,
                                        cells: vec![cell],
                                    },
                                }),
                            }
                        } else {
                            row.columns.push(ColumnData {
                                column: c.column,
                                content: ColumnContent::Simple(cell),
                            });
                        }
                    }
                    // complex columns with only a deletion (no cells) and deletions of columns with cells
                    for (col, d) in complex_del {
                        match row.columns.iter_mut().find(|cd| cd.column == col) {
                            Some(ColumnData {
                                content: ColumnContent::Complex { deletion, .. },
                                ..
                            }) => *deletion = d,
                            _ => row.columns.push(ColumnData {
                                column: col,
                                content: ColumnContent::Complex {
                                    deletion: d,
                                    cells: Vec::new(),
                                },
                            }),
                        }
                    }
                    row.columns.sort_by_key(|c| c.column);
                    if r.is_static() {
                        if !row.columns.is_empty()
                            || row.liveness.is_some()
                            || !row.deletion.is_live()
                        {
                            p.static_row = Some(row);
                        }
                    } else {
                        p.unfiltereds.push(Unfiltered::Row(row));
                    }
                }
                sstable_reader::Unfiltered::Marker(m) => {
                    let values = (0..m.clustering_len())
                        .map(|i| m.clustering(i).map(|b| b.to_vec()))
                        .collect();
                    let deletion = match (m.end_deletion, m.start_deletion) {
                        (Some(end), Some(start)) => MarkerDeletion::Boundary { end, start },
                        (Some(d), None) | (None, Some(d)) => MarkerDeletion::Bound(d),
                        (None, None) => panic!("marker without deletion"),
                    };
                    p.unfiltereds.push(Unfiltered::Marker(Marker {
                        kind: m.kind,
                        values,
                        deletion,
                    }));
                }
            }
        }
        out.push(p);
    }
    out
}

/// Complex columns that carry no cells and a LIVE deletion are not stored by Cassandra; drop them.
fn normalize(mut ps: Vec<Partition>) -> Vec<Partition> {
    for p in &mut ps {
        let fix = |r: &mut Row| {
            r.columns.retain(|c| !matches!(&c.content, ColumnContent::Complex { deletion, cells } if cells.is_empty() && deletion.is_live()))
        };
        if let Some(s) = p.static_row.as_mut() {
            fix(s);
        }
        if p.static_row
            .as_ref()
            .is_some_and(|s| s.columns.is_empty() && s.liveness.is_none())
        {
            p.static_row = None;
        }
        for u in &mut p.unfiltereds {
            if let Unfiltered::Row(r) = u {
                fix(r);
            }
        }
    }
    ps
}

fn check_values(schema: &TableSchema, ps: &[Partition]) {
    for p in ps {
        for u in p.unfiltereds.iter() {
            let Unfiltered::Row(r) = u else { continue };
            for cd in &r.columns {
                let col = &schema.regulars[cd.column];
                if let ColumnContent::Simple(c) = &cd.content {
                    if !c.value.is_empty() {
                        let v = Value::decode(&col.ty, &c.value)
                            .unwrap_or_else(|e| panic!("{}: {e}", col.name));
                        let mut again = Vec::new();
                        v.encode(&col.ty, &mut again).unwrap();
                        assert_eq!(again, c.value, "{} re-encodes differently", col.name);
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_partitions_of_every_type_round_trip(
        parts in proptest::collection::vec(partition_strategy(&schema_from_cql_text(SCHEMA, "all_types").unwrap()), 1..12),
        version in prop_oneof![Just("nb"), Just("oa")],
        compression in prop::sample::select(Compression::ALL.to_vec()),
        column_index_size in prop_oneof![Just(64 * 1024u64), Just(64u64)],
    ) {
        let schema = schema_from_cql_text(SCHEMA, "all_types").unwrap();
        let mut parts = normalize(parts);
        parts.sort_by(|a, b| partition_order(&a.key, &b.key));
        parts.dedup_by(|a, b| a.key == b.key);
        let dir = tempfile::tempdir().unwrap();
        let table_dir = dir.path().join("ks").join("all_types-0123");
        let mut opts = WriterOptions::new(writer_version(version).unwrap(), compression);
        opts.encoding = EncodingStats::collect(&parts);
        opts.column_index_size = column_index_size;
        opts.expected_partitions = parts.len() as u64;
        let mut w = SSTableWriter::create(&table_dir, 1, &schema, opts).unwrap();
        for p in &parts {
            w.append(p).unwrap();
        }
        let written = w.finish().unwrap();
        prop_assert_eq!(written.partitions, parts.len() as u64);
        let back = normalize(read_back(&written.data_path));
        prop_assert_eq!(&back, &parts);
        check_values(&schema, &back);
    }
}

#[test]
fn out_of_order_partitions_are_rejected() {
    let schema = schema_from_cql_text(SCHEMA, "all_types").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut keys: Vec<Vec<u8>> = (0..10).map(|i| format!("k{i}").into_bytes()).collect();
    keys.sort_by(|a, b| partition_order(a, b));
    let mut w = SSTableWriter::create(
        dir.path(),
        1,
        &schema,
        WriterOptions::new(writer_version("nb").unwrap(), Compression::Lz4),
    )
    .unwrap();
    w.append(&Partition::new(keys[5].clone())).unwrap();
    assert!(w.append(&Partition::new(keys[2].clone())).is_err());
    assert!(w.append(&Partition::new(keys[5].clone())).is_err());
}
