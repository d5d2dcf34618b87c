//! Actor timelines straight from SSTables: the events and conversions tables (which share the partition
//! key `(app, actor)` and so the ring order) are each merged across all their SSTables and nodes
//! ([`sstable_reader::MergeTable`]), and the two merged streams are joined partition by partition — one actor's
//! whole timeline at a time, memory bounded by the largest actor.
//!
//! Rows reach the funnel kernel as [`RowView`]s borrowing the merged partitions: each column a definition
//! reads ([`FunnelSet::columns`]) is mapped once to its place in the table (partition key component,
//! clustering column or regular column) and decoded per row into reused buffers — text is borrowed, not
//! copied; `map<text,text>` properties are looked up in the row's cells on demand.
//!
//! Work is split by [`SstableSource::plan`] into ranges of the ring ([`sstable_reader::plan_ranges`]) that
//! [`crate::batch::evaluate_chunks`] evaluates in parallel with [`SstableSource::scan_range`].
//!
//! Tables whose app or actor column is not a partition-key column (e.g. partitioned by day) cannot be
//! streamed actor by actor: [`SstableSource::needs_shuffle`] says so and [`crate::shuffle`] takes over.

use std::fmt::Write as _;

use extract::{ColdBuild, Tapped};
use sstable_reader::{
    counter_total, plan_ranges, split_composite, write_value, Columns, CqlType, MergeTable,
    MergedPartition, MergedRow, MergedScan, ScanCounters, TableSchema, TokenRange,
    Value as CqlValue,
};

use crate::batch::Worker;
use crate::definition::FunnelSet;
use crate::error::Error;
use crate::row::{ColumnRef, RowView, Table, Value};

/// How a column's bytes become a [`Value`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Text,
    Int,
    Float,
    Bool,
    Counter,
    /// Rendered as text (uuid, inet, dates, decimals …).
    Rendered(CqlType),
    /// A `map<text, text>`: read through `property`.
    Map,
}

fn kind_of(ty: &CqlType) -> Kind {
    match ty.base() {
        CqlType::Text | CqlType::Ascii => Kind::Text,
        CqlType::Int
        | CqlType::BigInt
        | CqlType::SmallInt
        | CqlType::TinyInt
        | CqlType::Timestamp => Kind::Int,
        CqlType::Float | CqlType::Double => Kind::Float,
        CqlType::Boolean => Kind::Bool,
        CqlType::Counter => Kind::Counter,
        CqlType::Map(..) => Kind::Map,
        t => Kind::Rendered(t.clone()),
    }
}

/// Where a column lives in the table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Place {
    Missing,
    Key(usize, Kind),
    Clustering(usize, Kind),
    Regular(usize, Kind),
}

#[derive(Debug, Clone)]
pub(crate) struct TableMap {
    pub(crate) table: Table,
    /// By [`ColumnRef::id`].
    pub(crate) places: Vec<Place>,
    pub(crate) time: Place,
    key_len: usize,
    pub(crate) projection: Columns,
    /// By place: the index of its rendering among the row's renderings ([`Kind::Rendered`] places).
    rendered_at: Vec<Option<usize>>,
    /// How many places are rendered.
    n_rendered: usize,
    /// Where the app and actor columns are (any kind of column; what the shuffle reads).
    pub(crate) app_place: Place,
    pub(crate) actor_place: Place,
}

fn place(schema: &TableSchema, name: &str) -> Place {
    if let Some(i) = schema.partition_key.iter().position(|c| c.name == name) {
        return Place::Key(i, kind_of(&schema.partition_key[i].ty));
    }
    if let Some(i) = schema.clustering.iter().position(|c| c.name == name) {
        return Place::Clustering(i, kind_of(&schema.clustering[i].ty));
    }
    if let Some(i) = schema.regulars.iter().position(|c| c.name == name) {
        return Place::Regular(i, kind_of(&schema.regulars[i].ty));
    }
    Place::Missing
}

impl TableMap {
    /// `key_names`: whether the key columns' names come from a schema (else they are `pk0…`, `ck0…`).
    fn new(
        set: &FunnelSet,
        table: Table,
        schema: &TableSchema,
        key_names: bool,
    ) -> Result<TableMap, Error> {
        let src = set.source.of(table);
        let err = |message: String| Error::Mapping {
            table: src.table.clone(),
            message,
        };
        let app_place = place(schema, &src.app);
        let actor_place = place(schema, &src.actor);
        for (what, name, p) in [
            ("app", &src.app, &app_place),
            ("actor", &src.actor, &actor_place),
        ] {
            if *p == Place::Missing && !key_names {
                // Without a schema the key columns are only `pk0…`, `ck0…`: the name may well be one.
                return Err(Error::KeyNamesUnknown {
                    table: src.table.clone(),
                    column: name.clone(),
                });
            }
            if *p == Place::Missing {
                return Err(err(format!(
                    "the {what} column {name:?} is not a column of the table"
                )));
            }
        }
        let time = place(schema, &src.time);
        if !matches!(
            time,
            Place::Clustering(_, Kind::Int) | Place::Regular(_, Kind::Int)
        ) {
            return Err(err(format!(
                "the time column {:?} is not a timestamp clustering or regular column",
                src.time
            )));
        }
        let places: Vec<Place> = set
            .columns(table)
            .iter()
            .map(|n| place(schema, n))
            .collect();
        let mut n_rendered = 0;
        let rendered_at = places
            .iter()
            .map(|p| {
                matches!(kind(p), Some(Kind::Rendered(_))).then(|| {
                    n_rendered += 1;
                    n_rendered - 1
                })
            })
            .collect();
        Ok(TableMap {
            table,
            places,
            time,
            key_len: schema.partition_key.len(),
            projection: scan_columns(set, table, schema),
            rendered_at,
            n_rendered,
            app_place,
            actor_place,
        })
    }

    /// The app or the actor is not a partition-key column: the table's rows cannot be streamed actor by
    /// actor in ring order and go through [`crate::shuffle`].
    pub(crate) fn shuffled(&self) -> bool {
        !matches!(
            (&self.app_place, &self.actor_place),
            (Place::Key(..), Place::Key(..))
        )
    }

    #[inline]
    fn key_part<'a>(&self, key: &'a [u8], i: usize) -> Option<&'a [u8]> {
        if self.key_len == 1 {
            Some(key)
        } else {
            split_composite(key, i)
        }
    }

    /// The row's time in ms (the time column is a [`Kind::Int`]).
    #[inline(always)]
    fn time_ms(&self, key: &[u8], row: &MergedRow<'_>) -> Option<i64> {
        int(self.bytes(&self.time, key, row)?)
    }

    #[inline(always)]
    pub(crate) fn bytes<'a>(
        &self,
        p: &Place,
        key: &'a [u8],
        row: &MergedRow<'a>,
    ) -> Option<&'a [u8]> {
        match p {
            Place::Missing => None,
            Place::Key(i, _) => self.key_part(key, *i),
            Place::Clustering(i, _) => row.clustering(*i),
            Place::Regular(i, _) => row.value(*i),
        }
    }
}

/// The regular columns a scan of `table` reads for the funnels of `set`: those the definitions read,
/// and the time, app and actor columns when they are regular columns.
pub(crate) fn scan_columns(set: &FunnelSet, table: Table, schema: &TableSchema) -> Columns {
    let src = set.source.of(table);
    let mut proj: Vec<String> = Vec::new();
    for name in set
        .columns(table)
        .iter()
        .chain([&src.time, &src.app, &src.actor])
    {
        if schema.regulars.iter().any(|c| &c.name == name) && !proj.contains(name) {
            proj.push(name.clone());
        }
    }
    Columns::Named(proj)
}

pub(crate) fn kind(p: &Place) -> Option<&Kind> {
    match p {
        Place::Missing => None,
        Place::Key(_, k) | Place::Clustering(_, k) | Place::Regular(_, k) => Some(k),
    }
}

/// A big-endian integer of 1, 2, 4 or 8 bytes ([`Kind::Int`] and 8-byte counters).
#[inline(always)]
fn int(b: &[u8]) -> Option<i64> {
    Some(match b.len() {
        8 => i64::from_be_bytes(b.try_into().ok()?),
        4 => i32::from_be_bytes(b.try_into().ok()?) as i64,
        2 => i16::from_be_bytes([b[0], b[1]]) as i64,
        1 => b[0] as i8 as i64,
        _ => return None,
    })
}

#[inline]
pub(crate) fn decode<'a>(k: &Kind, b: &'a [u8]) -> Value<'a> {
    match k {
        Kind::Text => std::str::from_utf8(b).map_or(Value::Null, Value::Str),
        Kind::Int => int(b).map_or(Value::Null, Value::Int),
        Kind::Float => match b.len() {
            4 => b
                .try_into()
                .map_or(Value::Null, |x| Value::Float(f32::from_be_bytes(x) as f64)),
            8 => b
                .try_into()
                .map_or(Value::Null, |x| Value::Float(f64::from_be_bytes(x))),
            _ => Value::Null,
        },
        Kind::Bool => match b.first() {
            Some(0) => Value::Str("false"),
            Some(_) => Value::Str("true"),
            None => Value::Null,
        },
        Kind::Counter => match b.len() {
            8 => int(b).map_or(Value::Null, Value::Int),
            _ => counter_total(b).map_or(Value::Null, Value::Int),
        },
        Kind::Rendered(_) | Kind::Map => Value::Null,
    }
}

/// Renders a value of a type without a native [`Value`] as text (JSON strings lose their quotes).
pub(crate) fn render(ty: &CqlType, b: &[u8], out: &mut String) {
    match CqlValue::decode(ty, b) {
        Ok(v) => {
            let start = out.len();
            write_value(out, &v, ty);
            if out.len() >= start + 2 && out[start..].starts_with('"') && out.ends_with('"') {
                out.pop();
                out.remove(start);
            }
        }
        Err(_) => {
            let _ = write!(out, "");
        }
    }
}

/// One row of an actor's timeline: its columns are decoded when a predicate asks for them (most
/// rows are only asked for their event name, and that only as bytes: see [`RowView::column_bytes`]).
pub struct SourceRow<'a> {
    ts_ms: i64,
    key: &'a [u8],
    row: MergedRow<'a>,
    map: &'a TableMap,
    /// The renderings of the row's [`Kind::Rendered`] columns, in `map.places` order (empty when the
    /// table has none).
    rendered: &'a [(u32, u32)],
    text: &'a str,
}

impl SourceRow<'_> {
    fn place(&self, col: &ColumnRef) -> Option<&Place> {
        self.map.places.get(col.id as usize)
    }
}

impl RowView for SourceRow<'_> {
    fn table(&self) -> Table {
        self.map.table
    }

    fn ts_ms(&self) -> i64 {
        self.ts_ms
    }

    fn column(&self, col: &ColumnRef) -> Value<'_> {
        let Some(place) = self.place(col) else {
            return Value::Null;
        };
        match kind(place) {
            None => Value::Null,
            Some(Kind::Rendered(_)) => {
                let nth = self.map.rendered_at[col.id as usize].unwrap_or(usize::MAX);
                match self.rendered.get(nth) {
                    Some(&(s, e)) if e > s => Value::Str(&self.text[s as usize..e as usize]),
                    _ => Value::Null,
                }
            }
            Some(k) => self
                .map
                .bytes(place, self.key, &self.row)
                .map_or(Value::Null, |b| decode(k, b)),
        }
    }

    fn column_bytes(&self, col: &ColumnRef) -> Option<&[u8]> {
        match self.place(col) {
            Some(
                place @ (Place::Key(_, Kind::Text)
                | Place::Clustering(_, Kind::Text)
                | Place::Regular(_, Kind::Text)),
            ) => self.map.bytes(place, self.key, &self.row),
            _ => match self.column(col) {
                Value::Str(s) => Some(s.as_bytes()),
                _ => None,
            },
        }
    }

    fn property(&self, map: &ColumnRef, key: &str) -> Option<&str> {
        let Some(Place::Regular(i, Kind::Map)) = self.place(map) else {
            return None;
        };
        self.row
            .cells()
            .find(|c| c.column == *i && c.path == Some(key.as_bytes()))
            .and_then(|c| std::str::from_utf8(c.value).ok())
    }
}

/// Reuses a vector's allocation for a new lifetime (it is emptied first, so nothing of the old one is kept).
pub(crate) fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector was emptied"))
        .collect()
}

/// Per-worker reused buffers.
#[derive(Default)]
pub struct Buffers {
    rows: Vec<SourceRow<'static>>,
    text: String,
    spans: Vec<(u32, u32)>,
}

/// The events and conversions tables of a funnel set, ready to scan.
pub struct SstableSource {
    pub(crate) events: MergeTable,
    pub(crate) conversions: Option<MergeTable>,
    pub(crate) maps: [Option<TableMap>; 2],
    pub(crate) now_s: i64,
    /// Per table (events, conversions): the cache entries built while the ranges are scanned.
    pub(crate) cold: [Option<ColdBuild>; 2],
}

impl SstableSource {
    /// `conversions` may be absent when no funnel reads it. `now_s` judges TTLs (seconds). `key_names`:
    /// whether each table's key column names come from a schema (events, conversions).
    pub fn new(
        set: &FunnelSet,
        events: MergeTable,
        conversions: Option<MergeTable>,
        now_s: i64,
        key_names: [bool; 2],
    ) -> Result<SstableSource, Error> {
        let uses_conv = set.funnels.iter().any(|f| f.uses(Table::Conversions));
        if uses_conv && conversions.is_none() {
            return Err(Error::Mapping {
                table: set.source.conversions.table.clone(),
                message:
                    "a funnel uses hits (conversions) but no SSTables of this table were found"
                        .into(),
            });
        }
        // A table no funnel reads is not scanned at all.
        let conversions = conversions.filter(|_| uses_conv);
        let maps = [
            Some(TableMap::new(
                set,
                Table::Events,
                events.schema(),
                key_names[0],
            )?),
            match &conversions {
                Some(c) => Some(TableMap::new(
                    set,
                    Table::Conversions,
                    c.schema(),
                    key_names[1],
                )?),
                None => None,
            },
        ];
        Ok(SstableSource {
            events,
            conversions,
            maps,
            now_s,
            cold: [None, None],
        })
    }

    /// Whether a table is not partitioned by (app, actor), so the run must go through
    /// [`crate::shuffle::run`] instead of [`SstableSource::scan_range`] (then both tables are shuffled).
    pub fn needs_shuffle(&self) -> bool {
        self.maps.iter().flatten().any(TableMap::shuffled)
    }

    pub(crate) fn tables(&self) -> Vec<&MergeTable> {
        std::iter::once(&self.events)
            .chain(self.conversions.as_ref())
            .collect()
    }

    /// Total uncompressed Data.db bytes and on-disk bytes of all SSTables.
    pub fn sizes(&self) -> (u64, u64) {
        self.tables()
            .iter()
            .flat_map(|t| t.sstables())
            .fold((0, 0), |(u, d), s| {
                (u + s.data.len(), d + s.data.file_len())
            })
    }

    /// SSTables per table (events, conversions).
    pub fn sstable_counts(&self) -> (usize, usize) {
        (
            self.events.sstables().len(),
            self.conversions.as_ref().map_or(0, |c| c.sstables().len()),
        )
    }

    /// Ranges of the ring for parallel evaluation (about `target`).
    pub fn plan(&self, target: usize) -> Result<Vec<TokenRange>, Error> {
        Ok(plan_ranges(&self.tables(), target)?)
    }

    /// Streams every actor of `range` into `worker`; adds progress to `counters`. SSTables whose cache
    /// entry the run builds ([`SstableSource::cold`]) feed it as they are read.
    pub fn scan_range<'a>(
        &'a self,
        range: &TokenRange,
        worker: &mut Worker<'_>,
        bufs: &mut Buffers,
        counters: Option<&'a ScanCounters>,
    ) -> Result<(), Error> {
        let mut taps: [Vec<Tapped>; 2] = [0, 1].map(|t| {
            self.cold[t]
                .as_ref()
                .map_or_else(Vec::new, ColdBuild::chunks)
        });
        self.scan_merged(range, worker, bufs, counters, &mut taps)?;
        // The range was read whole: its chunks are part of the entries.
        for (t, tapped) in taps.into_iter().enumerate() {
            if let (Some(build), Some(spans)) = (&self.cold[t], range.spans.get(t)) {
                build.submit(range.index, spans, tapped);
            }
        }
        Ok(())
    }

    fn scan_merged<'a>(
        &'a self,
        range: &TokenRange,
        worker: &mut Worker<'_>,
        bufs: &mut Buffers,
        counters: Option<&'a ScanCounters>,
        taps: &mut [Vec<Tapped>; 2],
    ) -> Result<(), Error> {
        let empty = Vec::new();
        let [Some(emap), cmap] = &self.maps else {
            return Err(Error::Mapping {
                table: "events".into(),
                message: "no mapping".into(),
            });
        };
        let with = |s: MergedScan<'a>| match counters {
            Some(k) => s.report_to(k),
            None => s,
        };
        let [ev_taps, cv_taps] = taps;
        let mut ev: MergedScan<'_> = with(self.events.scan_spans(
            &emap.projection,
            self.now_s,
            range.spans.first().unwrap_or(&empty),
        )?);
        tap(&mut ev, ev_taps);
        let mut cv: Option<MergedScan<'_>> = match (&self.conversions, cmap) {
            (Some(t), Some(m)) => Some(with(t.scan_spans(
                &m.projection,
                self.now_s,
                range.spans.get(1).unwrap_or(&empty),
            )?)),
            _ => None,
        };
        if let Some(cv) = cv.as_mut() {
            tap(cv, cv_taps);
        }
        let mut e = ev.next_partition()?;
        let mut c = match cv.as_mut() {
            Some(s) => s.next_partition()?,
            None => None,
        };
        loop {
            let ord = match (e, c) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(a), Some(b)) => (a.token(), a.key()).cmp(&(b.token(), b.key())),
            };
            match ord {
                std::cmp::Ordering::Less => {
                    observe(emap, cmap.as_ref(), e, None, worker, bufs);
                    e = ev.next_partition()?;
                }
                std::cmp::Ordering::Greater => {
                    observe(emap, cmap.as_ref(), None, c, worker, bufs);
                    c = match cv.as_mut() {
                        Some(s) => s.next_partition()?,
                        None => None,
                    };
                }
                std::cmp::Ordering::Equal => {
                    observe(emap, cmap.as_ref(), e, c, worker, bufs);
                    e = ev.next_partition()?;
                    c = match cv.as_mut() {
                        Some(s) => s.next_partition()?,
                        None => None,
                    };
                }
            }
        }
        Ok(())
    }
}

/// Attaches each chunk to the scan of its SSTable (marking those the scan reads).
fn tap<'s>(scan: &mut MergedScan<'s>, taps: &'s mut [Tapped]) {
    for (sst, chunk, attached) in taps.iter_mut() {
        *attached = scan.tap(*sst, Box::new(chunk)).is_ok();
    }
}

/// Builds one actor's rows from its merged partitions and evaluates every funnel on them.
fn observe(
    emap: &TableMap,
    cmap: Option<&TableMap>,
    e: Option<&MergedPartition>,
    c: Option<&MergedPartition>,
    worker: &mut Worker<'_>,
    bufs: &mut Buffers,
) {
    let parts: [(Option<&MergedPartition>, Option<&TableMap>); 2] = [(e, Some(emap)), (c, cmap)];
    let Some((key, map)) = parts
        .iter()
        .find_map(|(p, m)| Some((p.as_ref()?.key(), (*m)?)))
    else {
        return;
    };
    // Streamed tables have the app in the partition key (`TableMap::shuffled` is false).
    let Some(app) = (match map.app_place {
        Place::Key(i, _) => map.key_part(key, i),
        _ => None,
    })
    .and_then(|b| std::str::from_utf8(b).ok()) else {
        return;
    };
    // Pass 1: text renderings of values without a native form (rare: uuid, inet … columns in predicates).
    bufs.text.clear();
    bufs.spans.clear();
    for (p, m) in &parts {
        let (Some(p), Some(m)) = (p, m) else { continue };
        if m.n_rendered == 0 {
            continue;
        }
        for row in p.rows() {
            for place in &m.places {
                if let Some(Kind::Rendered(ty)) = kind(place) {
                    let start = bufs.text.len() as u32;
                    if let Some(b) = m.bytes(place, p.key(), &row) {
                        render(ty, b, &mut bufs.text);
                    }
                    bufs.spans.push((start, bufs.text.len() as u32));
                }
            }
        }
    }
    // Pass 2: the rows (borrowing the partitions and the renderings).
    let text = bufs.text.as_str();
    let mut spans = bufs.spans.as_slice();
    let mut rows: Vec<SourceRow<'_>> = recycle(std::mem::take(&mut bufs.rows));
    let mut offered = 0u64;
    worker.begin_actor();
    for (p, m) in &parts {
        let (Some(p), Some(m)) = (p, m) else { continue };
        for row in p.rows() {
            let (rendered, rest) = spans.split_at(m.n_rendered.min(spans.len()));
            spans = rest;
            // A row without a time is not part of the timeline.
            let Some(ts_ms) = m.time_ms(p.key(), &row) else {
                continue;
            };
            let row = SourceRow {
                ts_ms,
                key: p.key(),
                row,
                map: m,
                rendered,
                text,
            };
            offered += 1;
            // Only the rows some funnel can use are kept (most events are named by no step).
            if worker.offer(&row) {
                rows.push(row);
            }
        }
    }
    if offered > 0 {
        worker.observe_offered(app, &rows, offered);
    }
    bufs.rows = recycle(rows);
}
