//! The merged scan against a brute-force model of what Cassandra returns: random write histories
//! (inserts with and without TTL, updates, cell / row / range / partition / collection deletions, map
//! element writes and deletes, static cells) are replicated to 3 nodes with RF 3 — each write missing one
//! replica now and then (a stale replica) — and spread over several generations per node, written as
//! real SSTables by the writer, merged, and compared with the model's answer at a fixed `now`, for every
//! column and for a projection. Counters: shards of several replicas and generations merge to the sum of
//! each shard's highest clock.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sstable_reader::test_common::global_context;
use sstable_reader::writer::{
    schema_from_cql_text, writer_version, Cell, CellState, ColumnContent, ColumnData, Compression,
    Expiry, Liveness, Marker, MarkerDeletion, Partition, Row, SSTableWriter, Unfiltered,
    WriterOptions,
};
use sstable_reader::{
    counter_total, partition_order, BoundKind, Columns, DeletionTime, MergeTable, ReadOptions,
    SSTable,
};

const CQL: &str = "CREATE TABLE ks.t (k text, c int, v text, n int, m map<text, text>, s int static, PRIMARY KEY (k, c));";
const NOW: i64 = 1_700_000_000; // s
const T0: i64 = NOW * 1_000_000 - 3_600_000_000; // µs, an hour before now

#[derive(Debug, Clone)]
enum Op {
    Insert {
        k: usize,
        c: i32,
        v: String,
        n: i32,
        m: Vec<(String, String)>,
        exp: Option<i64>,
    },
    Update {
        k: usize,
        c: i32,
        col: &'static str,
        v: String,
        n: i32,
        exp: Option<i64>,
    },
    CellDelete {
        k: usize,
        c: i32,
        col: &'static str,
    },
    RowDelete {
        k: usize,
        c: i32,
    },
    RangeDelete {
        k: usize,
        lo: i32,
        hi: i32,
        lo_incl: bool,
        hi_incl: bool,
    },
    PartitionDelete {
        k: usize,
    },
    MapPut {
        k: usize,
        c: i32,
        key: String,
        v: String,
    },
    MapKeyDelete {
        k: usize,
        c: i32,
        key: String,
    },
    MapClear {
        k: usize,
        c: i32,
    },
    Static {
        k: usize,
        s: i32,
    },
}

impl Op {
    fn key(&self) -> usize {
        match self {
            Op::Insert { k, .. }
            | Op::Update { k, .. }
            | Op::CellDelete { k, .. }
            | Op::RowDelete { k, .. }
            | Op::RangeDelete { k, .. }
            | Op::PartitionDelete { k }
            | Op::MapPut { k, .. }
            | Op::MapKeyDelete { k, .. }
            | Op::MapClear { k, .. }
            | Op::Static { k, .. } => *k,
        }
    }

    /// What the op occupies in one SSTable (one op per slot per SSTable keeps the written rows simple).
    fn slot(&self) -> (usize, i64) {
        match self {
            Op::Insert { k, c, .. }
            | Op::Update { k, c, .. }
            | Op::CellDelete { k, c, .. }
            | Op::RowDelete { k, c }
            | Op::MapPut { k, c, .. }
            | Op::MapKeyDelete { k, c, .. }
            | Op::MapClear { k, c } => (*k, *c as i64),
            Op::RangeDelete { k, .. } => (*k, 1000),
            Op::PartitionDelete { k } => (*k, 1001),
            Op::Static { k, .. } => (*k, 1002),
        }
    }
}

fn random_ops(rng: &mut StdRng, keys: usize, n: usize) -> Vec<Op> {
    let words = ["a", "b", "c", "d"];
    let exp = |rng: &mut StdRng| -> Option<i64> {
        match rng.random_range(0..4) {
            0 => Some(NOW - rng.random_range(1..1000)), // expired before now
            1 => Some(NOW + rng.random_range(1..1000)), // still alive at now
            _ => None,
        }
    };
    (0..n)
        .map(|_| {
            let k = rng.random_range(0..keys);
            let c = rng.random_range(-4..=4);
            match rng.random_range(0..100) {
                0..=29 => Op::Insert {
                    k,
                    c,
                    v: format!("v{}", rng.random_range(0..100)),
                    n: rng.random_range(-50..50),
                    m: (0..rng.random_range(0..3))
                        .map(|_| {
                            (
                                words[rng.random_range(0..4)].to_string(),
                                format!("x{}", rng.random_range(0..9)),
                            )
                        })
                        .collect::<BTreeMap<_, _>>()
                        .into_iter()
                        .collect(),
                    exp: exp(rng),
                },
                30..=44 => Op::Update {
                    k,
                    c,
                    col: if rng.random_bool(0.5) { "v" } else { "n" },
                    v: format!("u{}", rng.random_range(0..100)),
                    n: rng.random_range(-50..50),
                    exp: exp(rng),
                },
                45..=51 => Op::CellDelete {
                    k,
                    c,
                    col: if rng.random_bool(0.5) { "v" } else { "n" },
                },
                52..=59 => Op::RowDelete { k, c },
                60..=66 => {
                    let lo = rng.random_range(-5..=4);
                    let hi = rng.random_range(lo..=5);
                    let (lo_incl, hi_incl) = if lo == hi {
                        (true, true)
                    } else {
                        (rng.random_bool(0.5), rng.random_bool(0.5))
                    };
                    Op::RangeDelete {
                        k,
                        lo,
                        hi,
                        lo_incl,
                        hi_incl,
                    }
                }
                67..=69 => Op::PartitionDelete { k },
                70..=79 => Op::MapPut {
                    k,
                    c,
                    key: words[rng.random_range(0..4)].into(),
                    v: format!("p{}", rng.random_range(0..9)),
                },
                80..=86 => Op::MapKeyDelete {
                    k,
                    c,
                    key: words[rng.random_range(0..4)].into(),
                },
                87..=90 => Op::MapClear { k, c },
                _ => Op::Static {
                    k,
                    s: rng.random_range(0..1000),
                },
            }
        })
        .collect()
}

fn key_bytes(k: usize) -> Vec<u8> {
    format!("key{k}").into_bytes()
}

fn del(ts: i64) -> DeletionTime {
    DeletionTime {
        marked_for_delete_at: ts,
        local_deletion_time: ts / 1_000_000,
    }
}

fn state(exp: Option<i64>) -> CellState {
    match exp {
        Some(e) => CellState::Expiring(Expiry {
            ttl: 3600,
            local_expiration_time: e,
        }),
        None => CellState::Live,
    }
}

/// The expected answer: (key, Some(c) | None for the static row) → column → rendered value.
type Answer = BTreeMap<(usize, Option<i32>), BTreeMap<String, String>>;

fn alive(exp: Option<i64>) -> bool {
    exp.is_none_or(|e| NOW < e)
}

/// What Cassandra returns at NOW for `ops` (with timestamps), restricted to `cols`.
fn model(ops: &[(i64, Op)], keys: usize, cols: &[&str]) -> Answer {
    let mut out = Answer::new();
    for k in 0..keys {
        let pdel = ops
            .iter()
            .filter(|(_, o)| matches!(o, Op::PartitionDelete { k: kk } if *kk == k))
            .map(|(t, _)| *t)
            .max()
            .unwrap_or(i64::MIN);
        let mut any_row = false;
        for c in -5..=5 {
            let row_ops: Vec<&(i64, Op)> = ops
                .iter()
                .filter(|(_, o)| o.key() == k && o.slot().1 == c as i64)
                .collect();
            if row_ops.is_empty() {
                continue;
            }
            let mut d = pdel;
            for (t, o) in ops {
                match o {
                    Op::RowDelete { k: kk, c: cc } if *kk == k && *cc == c => d = d.max(*t),
                    Op::RangeDelete {
                        k: kk,
                        lo,
                        hi,
                        lo_incl,
                        hi_incl,
                    } if *kk == k => {
                        let after_lo = if *lo_incl { c >= *lo } else { c > *lo };
                        let before_hi = if *hi_incl { c <= *hi } else { c < *hi };
                        if after_lo && before_hi {
                            d = d.max(*t);
                        }
                    }
                    _ => {}
                }
            }
            let liveness = row_ops
                .iter()
                .filter_map(|(t, o)| {
                    if let Op::Insert { exp, .. } = o {
                        Some((*t, *exp))
                    } else {
                        None
                    }
                })
                .max_by_key(|x| x.0);
            let row_live = liveness.is_some_and(|(t, e)| t > d && alive(e));
            let mut values = BTreeMap::new();
            for col in ["v", "n"] {
                if !cols.contains(&col) {
                    continue;
                }
                // (ts, value or None for a tombstone, expiry)
                let cands = row_ops.iter().filter_map(|(t, o)| match o {
                    Op::Insert { v, n, exp, .. } => Some((
                        *t,
                        Some(if col == "v" { v.clone() } else { n.to_string() }),
                        *exp,
                    )),
                    Op::Update {
                        col: cc, v, n, exp, ..
                    } if *cc == col => Some((
                        *t,
                        Some(if col == "v" { v.clone() } else { n.to_string() }),
                        *exp,
                    )),
                    Op::CellDelete { col: cc, .. } if *cc == col => Some((*t, None, None)),
                    _ => None,
                });
                if let Some((t, Some(v), e)) = cands.max_by_key(|x| x.0) {
                    if t > d && alive(e) {
                        values.insert(col.to_string(), v);
                    }
                }
            }
            if cols.contains(&"m") {
                let cd = row_ops
                    .iter()
                    .filter_map(|(t, o)| match o {
                        Op::Insert { .. } => Some(*t - 1),
                        Op::MapClear { .. } => Some(*t),
                        _ => None,
                    })
                    .max()
                    .unwrap_or(i64::MIN)
                    .max(d);
                let mut entries: BTreeMap<String, (i64, Option<String>, Option<i64>)> =
                    BTreeMap::new();
                for (t, o) in &row_ops {
                    let mut put = |key: &str, v: Option<String>, e: Option<i64>| {
                        let slot = entries
                            .entry(key.to_string())
                            .or_insert((i64::MIN, None, None));
                        if *t > slot.0 {
                            *slot = (*t, v, e);
                        }
                    };
                    match o {
                        Op::Insert { m, exp, .. } => m
                            .iter()
                            .for_each(|(key, v)| put(key, Some(v.clone()), *exp)),
                        Op::MapPut { key, v, .. } => put(key, Some(v.clone()), None),
                        Op::MapKeyDelete { key, .. } => put(key, None, None),
                        _ => {}
                    }
                }
                let live: Vec<String> = entries
                    .into_iter()
                    .filter_map(|(key, (t, v, e))| {
                        v.filter(|_| t > cd && alive(e))
                            .map(|v| format!("{key}={v}"))
                    })
                    .collect();
                if !live.is_empty() {
                    values.insert("m".into(), live.join(";"));
                }
            }
            if row_live || !values.is_empty() {
                any_row = true;
                out.insert((k, Some(c)), values);
            }
        }
        let _ = any_row;
        if cols.contains(&"s") {
            let s = ops
                .iter()
                .filter_map(|(t, o)| {
                    if let Op::Static { k: kk, s } = o {
                        (*kk == k).then_some((*t, *s))
                    } else {
                        None
                    }
                })
                .max_by_key(|x| x.0);
            if let Some((t, s)) = s {
                if t > pdel {
                    out.insert(
                        (k, None),
                        BTreeMap::from([("s".to_string(), s.to_string())]),
                    );
                }
            }
        }
    }
    out
}

struct Cols {
    n: usize,
    v: usize,
    m: usize,
}

/// Builds the partitions one SSTable holds.
fn partitions(ops: &[(i64, Op)], cols: &Cols) -> Vec<Partition> {
    let mut by_key: BTreeMap<usize, Vec<&(i64, Op)>> = BTreeMap::new();
    for op in ops {
        by_key.entry(op.1.key()).or_default().push(op);
    }
    let mut parts = Vec::new();
    for (k, ops) in by_key {
        let mut p = Partition::new(key_bytes(k));
        // (position, rank, unfiltered): ranks order bounds and rows at one clustering value
        let mut items: Vec<(i32, u8, Unfiltered)> = Vec::new();
        let ck = |c: i32| vec![Some(c.to_be_bytes().to_vec())];
        for (t, op) in ops {
            let t = *t;
            let simple = |col: usize, value: Vec<u8>, st: CellState| ColumnData {
                column: col,
                content: ColumnContent::Simple(Cell {
                    timestamp: t,
                    state: st,
                    path: None,
                    value,
                }),
            };
            let tomb = CellState::Tombstone {
                local_deletion_time: t / 1_000_000,
            };
            let complex = |deletion: DeletionTime, cells: Vec<Cell>| ColumnData {
                column: cols.m,
                content: ColumnContent::Complex { deletion, cells },
            };
            let row = |c: i32| Row::new(ck(c));
            match op {
                Op::Insert {
                    c, v, n, m, exp, ..
                } => {
                    let mut r = row(*c);
                    r.liveness = Some(Liveness {
                        timestamp: t,
                        expiry: exp.map(|e| Expiry {
                            ttl: 3600,
                            local_expiration_time: e,
                        }),
                    });
                    let cells = m
                        .iter()
                        .map(|(key, val)| Cell {
                            timestamp: t,
                            state: state(*exp),
                            path: Some(key.as_bytes().to_vec()),
                            value: val.as_bytes().to_vec(),
                        })
                        .collect();
                    let mut cd = vec![
                        simple(cols.n, n.to_be_bytes().to_vec(), state(*exp)),
                        simple(cols.v, v.as_bytes().to_vec(), state(*exp)),
                        complex(del(t - 1), cells),
                    ];
                    cd.sort_by_key(|c| c.column);
                    r.columns = cd;
                    items.push((*c, 1, Unfiltered::Row(r)));
                }
                Op::Update {
                    c, col, v, n, exp, ..
                } => {
                    let mut r = row(*c);
                    r.columns = vec![if *col == "v" {
                        simple(cols.v, v.as_bytes().to_vec(), state(*exp))
                    } else {
                        simple(cols.n, n.to_be_bytes().to_vec(), state(*exp))
                    }];
                    items.push((*c, 1, Unfiltered::Row(r)));
                }
                Op::CellDelete { c, col, .. } => {
                    let mut r = row(*c);
                    r.columns = vec![simple(
                        if *col == "v" { cols.v } else { cols.n },
                        Vec::new(),
                        tomb,
                    )];
                    items.push((*c, 1, Unfiltered::Row(r)));
                }
                Op::RowDelete { c, .. } => {
                    let mut r = row(*c);
                    r.deletion = del(t);
                    items.push((*c, 1, Unfiltered::Row(r)));
                }
                Op::RangeDelete {
                    lo,
                    hi,
                    lo_incl,
                    hi_incl,
                    ..
                } => {
                    let (sk, sr) = if *lo_incl {
                        (BoundKind::InclStartBound, 0)
                    } else {
                        (BoundKind::ExclStartBound, 2)
                    };
                    let (ek, er) = if *hi_incl {
                        (BoundKind::InclEndBound, 2)
                    } else {
                        (BoundKind::ExclEndBound, 0)
                    };
                    items.push((
                        *lo,
                        sr,
                        Unfiltered::Marker(Marker {
                            kind: sk,
                            values: ck(*lo),
                            deletion: MarkerDeletion::Bound(del(t)),
                        }),
                    ));
                    items.push((
                        *hi,
                        er,
                        Unfiltered::Marker(Marker {
                            kind: ek,
                            values: ck(*hi),
                            deletion: MarkerDeletion::Bound(del(t)),
                        }),
                    ));
                }
                Op::PartitionDelete { .. } => p.deletion = del(t),
                Op::MapPut { c, key, v, .. } => {
                    let mut r = row(*c);
                    r.columns = vec![complex(
                        DeletionTime::LIVE,
                        vec![Cell {
                            timestamp: t,
                            state: CellState::Live,
                            path: Some(key.as_bytes().to_vec()),
                            value: v.as_bytes().to_vec(),
                        }],
                    )];
                    items.push((*c, 1, Unfiltered::Row(r)));
                }
                Op::MapKeyDelete { c, key, .. } => {
                    let mut r = row(*c);
                    r.columns = vec![complex(
                        DeletionTime::LIVE,
                        vec![Cell {
                            timestamp: t,
                            state: tomb,
                            path: Some(key.as_bytes().to_vec()),
                            value: Vec::new(),
                        }],
                    )];
                    items.push((*c, 1, Unfiltered::Row(r)));
                }
                Op::MapClear { c, .. } => {
                    let mut r = row(*c);
                    r.columns = vec![complex(del(t), Vec::new())];
                    items.push((*c, 1, Unfiltered::Row(r)));
                }
                Op::Static { s, .. } => {
                    let mut r = Row::new(Vec::new());
                    r.columns = vec![simple(0, s.to_be_bytes().to_vec(), CellState::Live)];
                    p.static_row = Some(r);
                }
            }
        }
        items.sort_by_key(|(c, rank, _)| (*c, *rank));
        p.unfiltereds = items.into_iter().map(|i| i.2).collect();
        parts.push(p);
    }
    parts.sort_by(|a, b| partition_order(&a.key, &b.key));
    parts
}

fn write_sstable(
    dir: &Path,
    generation: u32,
    parts: &[Partition],
    cql: &str,
    table: &str,
) -> std::path::PathBuf {
    let schema = schema_from_cql_text(cql, table).unwrap();
    let opts = WriterOptions::new(writer_version("nb").unwrap(), Compression::Lz4);
    let mut w = SSTableWriter::create(dir, generation, &schema, opts).unwrap();
    for p in parts {
        w.append(p).unwrap();
    }
    w.finish().unwrap().data_path
}

fn render(table: &MergeTable, columns: &Columns) -> Answer {
    render_at(table, columns, NOW)
}

fn render_at(table: &MergeTable, columns: &Columns, now: i64) -> Answer {
    let schema = table.schema();
    let mut scan = table.scan(columns, now).unwrap();
    let mut out = Answer::new();
    while let Some(p) = scan.next_partition().unwrap() {
        let k: usize = std::str::from_utf8(p.key()).unwrap()[3..].parse().unwrap();
        let rows = p.static_row().into_iter().chain(p.rows());
        for r in rows {
            let c = (!r.is_static())
                .then(|| i32::from_be_bytes(r.clustering(0).unwrap().try_into().unwrap()));
            let mut values = BTreeMap::new();
            let mut map = Vec::new();
            for cell in r.cells() {
                let col = if r.is_static() {
                    &schema.statics[cell.column]
                } else {
                    &schema.regulars[cell.column]
                };
                let text = || String::from_utf8(cell.value.to_vec()).unwrap();
                match col.name.as_str() {
                    "v" => drop(values.insert("v".to_string(), text())),
                    "n" | "s" => drop(values.insert(
                        col.name.clone(),
                        i32::from_be_bytes(cell.value.try_into().unwrap()).to_string(),
                    )),
                    "m" => map.push(format!(
                        "{}={}",
                        String::from_utf8(cell.path.unwrap().to_vec()).unwrap(),
                        text()
                    )),
                    other => panic!("unexpected column {other}"),
                }
            }
            if !map.is_empty() {
                values.insert("m".into(), map.join(";"));
            }
            assert!(
                out.insert((k, c), values).is_none(),
                "row ({k}, {c:?}) returned twice"
            );
        }
    }
    out
}

/// The SSTables at `paths` merged with each one's partitions read from a columnar extract of it
/// (written under `dir`) instead of its Data.db.
fn with_extracts(paths: &[std::path::PathBuf], dir: &Path) -> MergeTable {
    with_extracts_holding(paths, dir, None)
}

/// [`with_extracts`] whose extracts hold only the static and regular `columns` (`None`: all): a scan
/// needing another column reads that SSTable's Data.db.
fn with_extracts_holding(
    paths: &[std::path::PathBuf],
    dir: &Path,
    columns: Option<Vec<String>>,
) -> MergeTable {
    let mut ssts = Vec::new();
    let mut feeds = Vec::new();
    let options = extract::WriteOptions::lz4().holding(columns.clone());
    for (i, path) in paths.iter().enumerate() {
        let sst = SSTable::open(path, None, ReadOptions::default()).unwrap();
        let identity = extract::identity(&sst).unwrap();
        let file = dir.join(format!("extract-{i}-{}.arrow", columns.is_some()));
        extract::write_extract_file(&sst, &file, identity.clone(), &options).unwrap();
        let feed = extract::Extract::open(&file, &sst, Some(&identity)).unwrap();
        assert_eq!(
            feed.summary().columns.len(),
            columns.as_ref().map_or(
                sst.schema.statics.len() + sst.schema.regulars.len(),
                Vec::len
            )
        );
        feeds.push(feed);
        ssts.push(sst);
    }
    let mut table = MergeTable::new(ssts).unwrap();
    for (i, feed) in feeds.into_iter().enumerate() {
        table.attach_feed(i, std::sync::Arc::new(feed)).unwrap();
    }
    table
}

/// The SSTables at `paths` merged with each one's partitions read from its cache entry (under `dir`),
/// the entries built by tapped scans of ranges of the ring (what a cold `funnel run --cache` does),
/// holding the static and regular `columns` (`None`: all). The ranges are scanned last first, so every
/// chunk but the first waits for those before it.
fn built_while_scanning(
    paths: &[std::path::PathBuf],
    dir: &Path,
    columns: Option<Vec<String>>,
) -> MergeTable {
    let open = || {
        let ssts = paths
            .iter()
            .map(|p| SSTable::open(p, None, ReadOptions::default()).unwrap())
            .collect();
        MergeTable::new(ssts).unwrap()
    };
    let cache_dir = dir.join(format!("cache-{}", columns.is_some()));
    let cache = extract::Cache::open(&cache_dir, paths).unwrap();
    let cols = columns.map_or(Columns::All, Columns::Named);
    let table = open();
    let (report, missing) = cache.plan_columns(&mut open(), &cols).unwrap();
    assert_eq!((report.hits, missing.len()), (0, paths.len()));
    let build = extract::ColdBuild::new(&cache, &table, missing);
    let ranges = sstable_reader::plan_ranges(&[&table], 4).unwrap();
    for range in ranges.iter().rev() {
        let mut chunks = build.chunks();
        {
            let mut scan = table.scan_spans(&cols, NOW, &range.spans[0]).unwrap();
            for (sst, chunk, attached) in chunks.iter_mut() {
                *attached = scan.tap(*sst, Box::new(chunk)).is_ok();
            }
            while scan.next_partition().unwrap().is_some() {}
        }
        build.submit(range.index, &range.spans[0], chunks);
    }
    let report = build.finish(&table).unwrap();
    assert_eq!(
        (report.built, report.skipped.clone()),
        (paths.len(), Vec::<String>::new())
    );
    let mut warm = open();
    let (report, missing) = cache.plan_columns(&mut warm, &cols).unwrap();
    assert_eq!((report.hits, missing.len()), (paths.len(), 0));
    warm
}

/// How a history's writes are spread over SSTables.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// Any generation, replicated on every node (one replica may miss a write).
    Replicated { nodes: usize },
    /// One node; a generation per slice of clustering values (rows of different SSTables never
    /// interleave, as with time-series tables flushed over time): the merge's concatenation path.
    Sliced,
}

fn check_against_model(layout: Layout, gens: usize, keys: usize, seeds: std::ops::Range<u64>) {
    let schema = schema_from_cql_text(CQL, "t").unwrap();
    let col = |n: &str| schema.regulars.iter().position(|c| c.name == n).unwrap();
    let cols = Cols {
        n: col("n"),
        v: col("v"),
        m: col("m"),
    };
    let nodes = match layout {
        Layout::Replicated { nodes } => nodes,
        Layout::Sliced => 1,
    };
    let mut compared_rows = 0;
    for seed in seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let ops = random_ops(&mut rng, keys, 120);
        let dir = tempfile::tempdir().unwrap();
        // per (node, generation): the ops it holds
        let mut held: Vec<Vec<(i64, Op)>> = vec![Vec::new(); nodes * gens];
        let mut taken: HashSet<(usize, (usize, i64))> = HashSet::new();
        let mut applied = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            let t = T0 + i as i64 * 10;
            let (_, c) = op.slot();
            let free: Vec<usize> = match layout {
                Layout::Sliced if c < 1000 => vec![((c + 4) as usize * gens / 9).min(gens - 1)],
                // a random generation not yet holding this slot (newer writes may land in older files)
                _ => (0..gens).collect(),
            };
            let free: Vec<usize> = free
                .into_iter()
                .filter(|g| !taken.contains(&(*g, op.slot())))
                .collect();
            if free.is_empty() {
                continue;
            }
            let g = free[rng.random_range(0..free.len())];
            taken.insert((g, op.slot()));
            let stale = (nodes > 1 && rng.random_bool(0.3)).then(|| rng.random_range(0..nodes));
            for node in 0..nodes {
                if Some(node) != stale {
                    held[node * gens + g].push((t, op.clone()));
                }
            }
            applied.push((t, op));
        }
        let mut ssts = Vec::new();
        let mut paths = Vec::new();
        for (i, h) in held.iter().enumerate() {
            if h.is_empty() {
                continue;
            }
            let d = dir.path().join(format!("node{}", i / gens));
            let path = write_sstable(&d, (i % gens) as u32 + 1, &partitions(h, &cols), CQL, "t");
            ssts.push(SSTable::open(&path, None, ReadOptions::default()).unwrap());
            paths.push(path);
        }
        let table = MergeTable::new(ssts).unwrap();
        let extracted = with_extracts(&paths, dir.path());
        let narrow = with_extracts_holding(&paths, dir.path(), Some(vec!["v".into()]));
        let one_pass = built_while_scanning(&paths, dir.path(), None);
        let one_pass_v = built_while_scanning(&paths, dir.path(), Some(vec!["v".into()]));
        // The merge over columnar extracts of the same SSTables gives the same rows at any `now`, TTLs
        // expiring between two of them included (expiry times lie within NOW ± 1000 s); extracts
        // holding only `v` answer scans of `v`, and leave scans of more to the Data.db files.
        for now in [NOW - 400, NOW, NOW + 400] {
            for columns in [Columns::All, Columns::Named(vec!["v".into()])] {
                let expected = render_at(&table, &columns, now);
                assert_eq!(
                    render_at(&extracted, &columns, now),
                    expected,
                    "seed {seed}: extracts at now {now}, {columns:?}"
                );
                assert_eq!(
                    render_at(&narrow, &columns, now),
                    expected,
                    "seed {seed}: extracts holding v at now {now}, {columns:?}"
                );
                assert_eq!(
                    render_at(&one_pass, &columns, now),
                    expected,
                    "seed {seed}: entries built while scanning, at now {now}, {columns:?}"
                );
                assert_eq!(
                    render_at(&one_pass_v, &columns, now),
                    expected,
                    "seed {seed}: entries holding v built while scanning, at now {now}, {columns:?}"
                );
            }
        }
        let expected = model(&applied, keys, &["v", "n", "m", "s"]);
        let got = render(&table, &Columns::All);
        assert_eq!(got, expected, "seed {seed}: all columns");
        compared_rows += expected.len();
        let expected_v = model(&applied, keys, &["v"]);
        let got_v = render(&table, &Columns::Named(vec!["v".into()]));
        // Rows kept alive only by unprojected columns are not returned (documented); the model agrees
        // because it judges liveness from the projected columns too.
        assert_eq!(got_v, expected_v, "seed {seed}: projection v");
    }
    assert!(
        compared_rows > 100,
        "the histories must leave live rows to compare ({compared_rows})"
    );
}

#[test]
fn merged_scan_equals_the_model_on_replicated_overlapping_sstables() {
    check_against_model(Layout::Replicated { nodes: 3 }, 4, 6, 0..12);
}

#[test]
fn merged_scan_equals_the_model_on_replicas_of_many_small_partitions() {
    // Many keys, so that many partitions have no range tombstone: their rows merge in runs.
    check_against_model(Layout::Replicated { nodes: 2 }, 4, 24, 200..224);
}

#[test]
fn merged_scan_equals_the_model_on_sstables_holding_successive_slices() {
    // Many keys, so that many partitions have no range tombstone (those take the concatenation path).
    check_against_model(Layout::Sliced, 3, 24, 100..124);
}

#[test]
fn counters_merge_by_shard_across_replicas_and_generations() {
    let cql = "CREATE TABLE ks.cnt (k text, c int, total counter, PRIMARY KEY (k, c));";
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut expected: BTreeMap<(usize, i32), i64> = BTreeMap::new();
    let mut files = Vec::new();
    // each (node, generation) SSTable holds versions of the counters: shards with a clock and the count at that clock
    type Version = Vec<(usize, i32, Vec<(u8, i64, i64)>)>;
    let mut versions: Vec<Version> = Vec::new();
    for _ in 0..6 {
        let mut v = Vec::new();
        for k in 0..4usize {
            for c in 0..3i32 {
                if !rng.random_bool(0.7) {
                    continue;
                }
                let mut shards = Vec::new();
                for id in 1..=3u8 {
                    if rng.random_bool(0.6) {
                        let clock = rng.random_range(1..6i64);
                        shards.push((id, clock, clock * 10 + id as i64));
                    }
                }
                v.push((k, c, shards));
            }
        }
        versions.push(v);
    }
    let mut best: BTreeMap<(usize, i32, u8), (i64, i64)> = BTreeMap::new();
    for (i, v) in versions.iter().enumerate() {
        let mut by_key: BTreeMap<usize, Partition> = BTreeMap::new();
        for (k, c, shards) in v {
            for &(id, clock, count) in shards {
                let e = best.entry((*k, *c, id)).or_insert((clock, count));
                if clock > e.0 {
                    *e = (clock, count);
                }
            }
            expected.entry((*k, *c)).or_insert(0);
            let mut r = Row::new(vec![Some(c.to_be_bytes().to_vec())]);
            r.columns = vec![ColumnData {
                column: 0,
                content: ColumnContent::Simple(Cell::live(T0 + i as i64, global_context(shards))),
            }];
            by_key
                .entry(*k)
                .or_insert_with(|| Partition::new(key_bytes(*k)))
                .unfiltereds
                .push(Unfiltered::Row(r));
        }
        let mut parts: Vec<Partition> = by_key.into_values().collect();
        parts.sort_by(|a, b| partition_order(&a.key, &b.key));
        if !parts.is_empty() {
            files.push(write_sstable(
                &dir.path().join(format!("node{}", i % 3)),
                i as u32 + 1,
                &parts,
                cql,
                "cnt",
            ));
        }
    }
    for ((k, c, _), (_, count)) in &best {
        *expected.entry((*k, *c)).or_insert(0) += count;
    }
    let ssts = files
        .iter()
        .map(|f| SSTable::open(f, None, ReadOptions::default()).unwrap())
        .collect();
    let table = MergeTable::new(ssts).unwrap();
    let mut scan = table.scan(&Columns::All, NOW).unwrap();
    let mut got = BTreeMap::new();
    while let Some(p) = scan.next_partition().unwrap() {
        let k: usize = std::str::from_utf8(p.key()).unwrap()[3..].parse().unwrap();
        for r in p.rows() {
            let c = i32::from_be_bytes(r.clustering(0).unwrap().try_into().unwrap());
            let cell = r.cell(0).unwrap();
            got.insert((k, c), counter_total(cell.value).unwrap());
        }
    }
    assert_eq!(got, expected);
    assert!(expected.values().any(|&v| v > 0));
}

/// An extract's partitions of plain rows (inserts only, some expiring, with collection literals) take the
/// merge's fast path — no merge pass — and give the rows the Data.db merge gives, at any `now`.
#[test]
fn plain_partitions_of_an_extract_skip_the_merge_pass() {
    let schema = schema_from_cql_text(CQL, "t").unwrap();
    let col = |n: &str| schema.regulars.iter().position(|c| c.name == n).unwrap();
    let cols = Cols {
        n: col("n"),
        v: col("v"),
        m: col("m"),
    };
    let mut ops = Vec::new();
    for k in 0..6 {
        for c in 0..5 {
            let t = T0 + k as i64 * 10 + i64::from(c);
            let exp = match c % 3 {
                0 => None,
                1 => Some(NOW - 100),
                _ => Some(NOW + 100),
            };
            let m = vec![(format!("k{c}"), "x".to_string())];
            let (v, n) = (format!("v{c}"), c);
            ops.push((t, Op::Insert { k, c, v, n, m, exp }));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = write_sstable(dir.path(), 1, &partitions(&ops, &cols), CQL, "t");
    let table = MergeTable::new(vec![
        SSTable::open(&path, None, ReadOptions::default()).unwrap()
    ])
    .unwrap();
    let extracted = with_extracts(std::slice::from_ref(&path), dir.path());
    for now in [NOW - 400, NOW, NOW + 400] {
        for columns in [Columns::All, Columns::Named(vec!["v".into()])] {
            assert_eq!(
                render_at(&extracted, &columns, now),
                render_at(&table, &columns, now),
                "at now {now}, {columns:?}"
            );
            let mut scan = extracted.scan(&columns, now).unwrap();
            while scan.next_partition().unwrap().is_some() {}
            let stats = scan.stats();
            assert_eq!(
                (stats.partitions, stats.direct_partitions),
                (6, 6),
                "{stats:?}"
            );
        }
    }
}
