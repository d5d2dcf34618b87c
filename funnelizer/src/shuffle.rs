//! The hash shuffle for source tables not partitioned by actor (e.g. `PRIMARY KEY ((app_id, day), ts,
//! event_id)` with `actor_id` a regular column): such a table's ring order does not bring one actor's rows
//! together, so [`crate::source`] cannot stream timelines. Instead:
//!
//! 1. **Partition** (parallel over the ring ranges of [`SstableSource::plan`], same merge, deletions and
//!    `--now` TTL judgement as the streaming path): every live merged row is reduced to what the funnels
//!    read — app, actor, time, the columns of [`FunnelSet::columns`] and only the map keys that predicates
//!    and breakdowns name — serialized as one length-prefixed record and appended to one of `B` buckets
//!    chosen by a hash of (app, actor). When the records held in memory exceed the memory budget, the
//!    biggest buckets are appended to per-bucket files in a temporary spill directory (deleted at the end,
//!    also on error).
//! 2. **Evaluate** (parallel over buckets with [`crate::batch::evaluate_chunks`]): a bucket (its spill
//!    file, then its in-memory rest) is read whole, its records sorted by (app, actor, table, time, ring
//!    position) and each actor's rows handed to [`Worker::observe_actor`] as [`RowView`]s borrowing the
//!    bucket's bytes.
//!
//! The result equals the streaming path's for the same rows: the kernel orders a timeline by
//! `(ts, step, row position)` itself, and the row position only breaks ties between rows of the same
//! timestamp and step (it picks the first-touch breakdown row); the sort above puts events before
//! conversions and same-time rows in ring (i.e. clustering) order, as the streaming path does.
//!
//! When one table is keyed by actor and the other is not, both are shuffled (a timeline needs both).
//!
//! Memory: at most about the budget in buckets during phase 1 (plus one record per thread); in phase 2
//! the in-memory rests (≤ budget) plus one bucket per thread. `B` is chosen so that a bucket is about
//! `budget / (2 × threads)` of uncompressed input, far more than its records take.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use sstable_reader::bytes::{put_uvint, Cursor};
use sstable_reader::{MergedPartition, MergedRow, ScanCounters, TokenRange};

use crate::batch::{evaluate_chunks, Evaluation, Worker};
use crate::definition::FunnelSet;
use crate::error::Error;
use crate::predicate::Field;
use crate::row::{ColumnRef, RowView, Table, Value};
use crate::source::{decode, kind, recycle, render, Kind, Place, SstableSource, TableMap};

/// How to shuffle.
#[derive(Debug, Clone)]
pub struct ShuffleOptions {
    /// Bytes of records kept in memory before the biggest buckets are spilled to disk.
    pub memory_budget: u64,
    /// Where the temporary spill directory is created (`None`: the system temp dir).
    pub spill_dir: Option<PathBuf>,
    /// Worker threads (both phases).
    pub threads: usize,
    /// Ring ranges to partition in parallel (about).
    pub ranges: usize,
}

/// What a shuffle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShuffleStats {
    /// Rows (records) shuffled, both tables.
    pub rows: u64,
    /// Serialized bytes of those records.
    pub bytes: u64,
    /// Buckets.
    pub buckets: usize,
    /// Bytes written to spill files.
    pub spilled_bytes: u64,
    /// Spill writes (one bucket appended to its file).
    pub spill_writes: u64,
    /// Buckets with a spill file.
    pub spilled_buckets: usize,
    /// Ring ranges partitioned.
    pub ranges: usize,
    /// Time of phase 1 (scan + partition).
    pub partition_time: Duration,
    /// Time of phase 2 (sort + funnels).
    pub evaluate_time: Duration,
}

/// Number of buckets: at least 4 per thread, and enough that one bucket's share of the uncompressed input
/// is at most `budget / (2 × threads)` (threads evaluate one bucket each at a time); a power of two.
pub fn bucket_count(threads: usize, uncompressed_bytes: u64, memory_budget: u64) -> usize {
    let threads = threads.max(1) as u64;
    let by_size = (2 * threads)
        .saturating_mul(uncompressed_bytes)
        .div_ceil(memory_budget.max(1));
    by_size
        .max(threads * 4)
        .min(1 << 16)
        .next_power_of_two()
        .min(1 << 16) as usize
}

/// How far phase 2 (sort each bucket, evaluate its actors) has come, for a progress display: buckets
/// done of `total` (0 until phase 2 starts).
#[derive(Debug, Default)]
pub struct BucketProgress {
    total: AtomicU64,
    done: AtomicU64,
}

impl BucketProgress {
    /// (buckets evaluated, buckets in all); `(0, 0)` during phase 1.
    pub fn get(&self) -> (u64, u64) {
        (
            self.done.load(AtomicOrdering::Relaxed),
            self.total.load(AtomicOrdering::Relaxed),
        )
    }
}

/// Shuffles both tables of `source` and evaluates every funnel of `set` over the actors' timelines, both
/// phases on `pool`. `counters` receives the scan progress of phase 1, `buckets_done` that of phase 2.
pub fn run(
    set: &FunnelSet,
    source: &SstableSource,
    opts: &ShuffleOptions,
    pool: &rayon::ThreadPool,
    counters: Option<&ScanCounters>,
    buckets_done: Option<&BucketProgress>,
) -> Result<(Evaluation, ShuffleStats), Error> {
    let threads = opts.threads.max(1);
    let ranges = source.plan(opts.ranges.max(1))?;
    let (uncompressed, _) = source.sizes();
    let buckets = bucket_count(threads, uncompressed, opts.memory_budget);
    let spill = Spill::new(opts.spill_dir.as_deref(), buckets, opts.memory_budget)?;
    let keys = property_keys(set);

    let started = Instant::now();
    pool.install(|| {
        ranges
            .par_iter()
            .try_for_each_init(Encoder::default, |enc, range| {
                partition_range(source, &keys, range, enc, &spill, counters)
            })
    })?;
    let partition_time = started.elapsed();

    let started = Instant::now();
    let maps = &source.maps;
    if let Some(p) = buckets_done {
        p.total.store(buckets as u64, AtomicOrdering::Relaxed);
    }
    let eval = evaluate_chunks(set, (0..buckets).collect(), pool, |b, worker| {
        let out = spill.evaluate_bucket(b, maps, worker);
        if let Some(p) = buckets_done {
            p.done.fetch_add(1, AtomicOrdering::Relaxed);
        }
        out
    })?;
    let stats = ShuffleStats {
        rows: spill.rows.load(AtomicOrdering::Relaxed),
        bytes: spill.bytes.load(AtomicOrdering::Relaxed),
        buckets,
        spilled_bytes: spill.spilled.load(AtomicOrdering::Relaxed),
        spill_writes: spill.spill_writes.load(AtomicOrdering::Relaxed),
        spilled_buckets: spill.spilled_buckets(),
        ranges: ranges.len(),
        partition_time,
        evaluate_time: started.elapsed(),
    };
    Ok((eval, stats))
}

/// Per table, per column id ([`FunnelSet::columns`]): the map keys definitions read from it.
fn property_keys(set: &FunnelSet) -> [Vec<Vec<String>>; 2] {
    fn field(f: &Field, keys: &mut Vec<Vec<String>>) {
        if let Field::Property { map, key } = f {
            let id = map.id as usize;
            if keys.len() <= id {
                keys.resize(id + 1, Vec::new());
            }
            if !keys[id].contains(key) {
                keys[id].push(key.clone());
            }
        }
    }
    let mut out: [Vec<Vec<String>>; 2] = Default::default();
    for f in &set.funnels {
        for m in f
            .steps
            .iter()
            .map(|s| &s.matcher)
            .chain(f.exclusions.iter().map(|e| &e.matcher))
        {
            let keys = &mut out[m.table.index()];
            m.predicate.for_each_field(&mut |f| field(f, keys));
        }
        if let Some(fields) = &f.breakdown {
            for t in Table::ALL {
                field(&fields[t.index()], &mut out[t.index()]);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// Records
//
// record  = vint(len) payload                       (vint: Cassandra's unsigned vint, `sstable_reader::bytes`)
// payload = table:u8 ts:i64 seq:u64 vint(len) app vint(len) actor col*   (one col per place; big-endian)
// col     = 0 (null) | 1 vint(len) utf8 | 2 i64 | 3 f64 | 4 vint(n) (vint(len) key vint(len) value)*

const NULL: u8 = 0;
const STR: u8 = 1;
const INT: u8 = 2;
const FLOAT: u8 = 3;
const MAP: u8 = 4;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A length-prefixed byte string (`None` past the end of the buffer, never a panic).
fn take_bytes<'a>(c: &mut Cursor<'a>) -> Option<&'a [u8]> {
    let n = c.uvint_len().ok()?;
    c.take(n).ok()
}

/// One decoded record header; `cols` is the encoded columns.
#[derive(Debug, Clone, Copy)]
struct Rec<'a> {
    app: &'a [u8],
    actor: &'a [u8],
    table: u8,
    ts: i64,
    seq: u64,
    cols: &'a [u8],
}

impl<'a> Rec<'a> {
    fn parse(payload: &'a [u8]) -> Option<Rec<'a>> {
        let mut r = Cursor::new(payload);
        let table = r.u8().ok()?;
        let ts = r.i64().ok()?;
        let seq = r.u64().ok()?;
        let app = take_bytes(&mut r)?;
        let actor = take_bytes(&mut r)?;
        Some(Rec {
            app,
            actor,
            table,
            ts,
            seq,
            cols: payload.get(r.pos()..)?,
        })
    }
}

/// Splits a bucket's bytes into records (`Err(offset)` at the first that does not parse).
fn records<'a>(buf: &'a [u8], out: &mut Vec<Rec<'a>>) -> Result<(), usize> {
    let mut r = Cursor::new(buf);
    while !r.is_empty() {
        let at = r.pos();
        let rec = take_bytes(&mut r).and_then(Rec::parse).ok_or(at)?;
        out.push(rec);
    }
    Ok(())
}

/// A column of a shuffled row.
#[derive(Debug, Clone, Copy)]
enum Col<'a> {
    Val(Value<'a>),
    /// Encoded `(key, value)` entries of a `map<text,text>`.
    Map(&'a [u8]),
}

/// Decodes `n` columns of `rec` into `out`.
fn decode_cols<'a>(rec: &Rec<'a>, n: usize, out: &mut Vec<Col<'a>>) -> Option<()> {
    let mut r = Cursor::new(rec.cols);
    for _ in 0..n {
        let col = match r.u8().ok()? {
            NULL => Col::Val(Value::Null),
            STR => Col::Val(Value::Str(std::str::from_utf8(take_bytes(&mut r)?).ok()?)),
            INT => Col::Val(Value::Int(r.i64().ok()?)),
            FLOAT => Col::Val(Value::Float(r.f64().ok()?)),
            MAP => {
                let start = r.pos();
                let entries = r.uvint().ok()?;
                for _ in 0..entries {
                    take_bytes(&mut r)?;
                    take_bytes(&mut r)?;
                }
                Col::Map(rec.cols.get(start..r.pos())?)
            }
            _ => return None,
        };
        out.push(col);
    }
    r.is_empty().then_some(())
}

/// One row of a shuffled timeline, borrowing its bucket's bytes.
#[derive(Debug, Clone, Copy)]
pub struct ShuffledRow<'a> {
    table: Table,
    ts_ms: i64,
    cols: &'a [Col<'a>],
}

impl RowView for ShuffledRow<'_> {
    fn table(&self) -> Table {
        self.table
    }

    fn ts_ms(&self) -> i64 {
        self.ts_ms
    }

    fn column(&self, col: &ColumnRef) -> Value<'_> {
        match self.cols.get(col.id as usize) {
            Some(Col::Val(v)) => *v,
            _ => Value::Null,
        }
    }

    fn property(&self, map: &ColumnRef, key: &str) -> Option<&str> {
        let Some(Col::Map(b)) = self.cols.get(map.id as usize) else {
            return None;
        };
        let mut r = Cursor::new(b);
        for _ in 0..r.uvint().ok()? {
            let (k, v) = (take_bytes(&mut r)?, take_bytes(&mut r)?);
            if k == key.as_bytes() {
                return std::str::from_utf8(v).ok();
            }
        }
        None
    }
}

/// Per-thread reused buffers of phase 1.
#[derive(Default)]
struct Encoder {
    /// The record being built (payload).
    payload: Vec<u8>,
    /// The record with its length prefix.
    record: Vec<u8>,
    text: String,
}

impl Encoder {
    /// Encodes one merged row of `map`'s table into `self.record`; `None` when the row has no time, app
    /// or actor (it is not part of any timeline). Returns the bucket hash.
    fn encode(
        &mut self,
        map: &TableMap,
        keys: &[Vec<String>],
        key: &[u8],
        row: &MergedRow<'_>,
        seq: u64,
    ) -> Option<u64> {
        let Some(Value::Int(ts)) = map
            .bytes(&map.time, key, row)
            .map(|b| decode(&Kind::Int, b))
        else {
            return None;
        };
        let app = map.bytes(&map.app_place, key, row)?;
        std::str::from_utf8(app).ok()?;
        let actor = map.bytes(&map.actor_place, key, row)?;
        let p = &mut self.payload;
        p.clear();
        p.push(map.table.index() as u8);
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        put_bytes(p, app);
        put_bytes(p, actor);
        for (ci, place) in map.places.iter().enumerate() {
            match (place, kind(place)) {
                (_, None) => p.push(NULL),
                (Place::Regular(i, _), Some(Kind::Map)) => {
                    p.push(MAP);
                    let wanted = keys.get(ci).map_or(&[][..], Vec::as_slice);
                    let n_at = p.len();
                    p.push(0);
                    let mut n = 0u8;
                    // Only keys a definition reads; at most one entry per key (the first, as `find` would).
                    for w in wanted {
                        let hit = row
                            .cells()
                            .find(|c| c.column == *i && c.path == Some(w.as_bytes()));
                        if let Some(c) = hit.filter(|c| std::str::from_utf8(c.value).is_ok()) {
                            put_bytes(p, w.as_bytes());
                            put_bytes(p, c.value);
                            n += 1;
                        }
                    }
                    // Fewer than 128 keys per map are read in practice; fall back to null past that.
                    if n >= 0x80 {
                        p.truncate(n_at);
                        p.push(NULL);
                    } else {
                        p[n_at] = n;
                    }
                }
                (_, Some(Kind::Map)) => p.push(NULL),
                (_, Some(Kind::Rendered(ty))) => {
                    self.text.clear();
                    if let Some(b) = map.bytes(place, key, row) {
                        render(ty, b, &mut self.text);
                    }
                    if self.text.is_empty() {
                        p.push(NULL);
                    } else {
                        p.push(STR);
                        put_bytes(p, self.text.as_bytes());
                    }
                }
                (_, Some(k)) => match map.bytes(place, key, row).map(|b| decode(k, b)) {
                    None | Some(Value::Null) => p.push(NULL),
                    Some(Value::Str(s)) => {
                        p.push(STR);
                        put_bytes(p, s.as_bytes());
                    }
                    Some(Value::Int(i)) => {
                        p.push(INT);
                        p.extend_from_slice(&i.to_be_bytes());
                    }
                    Some(Value::Float(x)) => {
                        p.push(FLOAT);
                        p.extend_from_slice(&x.to_bits().to_be_bytes());
                    }
                },
            }
        }
        self.record.clear();
        put_bytes(&mut self.record, &self.payload);
        Some(actor_hash(app, actor))
    }
}

/// FNV-1a over app, a separator and actor, then a 64-bit finalizer (splitmix) so low bits are mixed.
fn actor_hash(app: &[u8], actor: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in app.iter().chain(&[0xff]).chain(actor) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Scans one ring range of both tables into the buckets.
fn partition_range(
    source: &SstableSource,
    keys: &[Vec<Vec<String>>; 2],
    range: &TokenRange,
    enc: &mut Encoder,
    spill: &Spill,
    counters: Option<&ScanCounters>,
) -> Result<(), Error> {
    let empty = Vec::new();
    let tables = [Some(&source.events), source.conversions.as_ref()];
    for (t, (table, map)) in tables.iter().zip(&source.maps).enumerate() {
        let (Some(table), Some(map)) = (table, map) else {
            continue;
        };
        let mut scan = table.scan_spans(
            &map.projection,
            source.now_s,
            range.spans.get(t).unwrap_or(&empty),
        )?;
        if let Some(k) = counters {
            scan = scan.report_to(k);
        }
        let mut ordinal = 0u64;
        let base = (range.index as u64) << 40;
        while let Some(p) = scan.next_partition()? {
            partition_rows(p, map, &keys[t], base, &mut ordinal, enc, spill)?;
        }
    }
    Ok(())
}

fn partition_rows(
    p: &MergedPartition,
    map: &TableMap,
    keys: &[Vec<String>],
    base: u64,
    ordinal: &mut u64,
    enc: &mut Encoder,
    spill: &Spill,
) -> Result<(), Error> {
    for row in p.rows() {
        *ordinal += 1;
        if let Some(h) = enc.encode(map, keys, p.key(), &row, base | *ordinal) {
            spill.push(h, &enc.record)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Buckets and spilling

#[derive(Default)]
struct Bucket {
    mem: Vec<u8>,
    /// Bytes in the bucket's spill file.
    on_disk: u64,
}

/// The buckets, their spill directory and the memory accounting.
struct Spill {
    dir: tempfile::TempDir,
    buckets: Vec<Mutex<Bucket>>,
    /// In-memory bytes per bucket (a lock-free copy for choosing what to spill).
    sizes: Vec<AtomicU64>,
    mem: AtomicU64,
    budget: u64,
    spilling: Mutex<()>,
    rows: AtomicU64,
    bytes: AtomicU64,
    spilled: AtomicU64,
    spill_writes: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Spill {
    fn new(parent: Option<&Path>, buckets: usize, budget: u64) -> Result<Spill, Error> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let dir = tempfile::Builder::new()
            .prefix("funnel-shuffle-")
            .tempdir_in(&parent)
            .map_err(|source| Error::Spill {
                path: parent.clone(),
                source,
            })?;
        Ok(Spill {
            dir,
            buckets: (0..buckets).map(|_| Mutex::default()).collect(),
            sizes: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            mem: AtomicU64::new(0),
            budget: budget.max(1),
            spilling: Mutex::new(()),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            spilled: AtomicU64::new(0),
            spill_writes: AtomicU64::new(0),
        })
    }

    fn bucket_of(&self, hash: u64) -> usize {
        // The bucket count is a power of two.
        (hash as usize) & (self.buckets.len() - 1)
    }

    fn path(&self, b: usize) -> PathBuf {
        self.dir.path().join(format!("bucket-{b:05}.bin"))
    }

    /// Appends one encoded record (with its length prefix); spills when past the budget.
    fn push(&self, hash: u64, record: &[u8]) -> Result<(), Error> {
        let b = self.bucket_of(hash);
        let n = record.len() as u64;
        {
            let mut bucket = lock(&self.buckets[b]);
            bucket.mem.extend_from_slice(record);
            self.sizes[b].fetch_add(n, AtomicOrdering::Relaxed);
        }
        self.rows.fetch_add(1, AtomicOrdering::Relaxed);
        self.bytes.fetch_add(n, AtomicOrdering::Relaxed);
        let total = self.mem.fetch_add(n, AtomicOrdering::Relaxed) + n;
        if total > self.budget {
            self.spill()?;
        }
        Ok(())
    }

    /// Appends the biggest in-memory buckets to their files until half the budget is free. One thread
    /// spills at a time; the others keep partitioning meanwhile.
    fn spill(&self) -> Result<(), Error> {
        let Ok(_one) = self.spilling.try_lock() else {
            return Ok(());
        };
        let mut order: Vec<(u64, usize)> = self
            .sizes
            .iter()
            .enumerate()
            .map(|(i, s)| (s.load(AtomicOrdering::Relaxed), i))
            .filter(|&(s, _)| s > 0)
            .collect();
        order.sort_unstable_by(|a, b| b.cmp(a));
        for (_, b) in order {
            if self.mem.load(AtomicOrdering::Relaxed) <= self.budget / 2 {
                break;
            }
            let data = {
                let mut bucket = lock(&self.buckets[b]);
                let data = std::mem::take(&mut bucket.mem);
                bucket.on_disk += data.len() as u64;
                self.sizes[b].fetch_sub(data.len() as u64, AtomicOrdering::Relaxed);
                data
            };
            if data.is_empty() {
                continue;
            }
            let path = self.path(b);
            let io = |source| Error::Spill {
                path: path.clone(),
                source,
            };
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(&data))
                .map_err(io)?;
            let n = data.len() as u64;
            self.mem.fetch_sub(n, AtomicOrdering::Relaxed);
            self.spilled.fetch_add(n, AtomicOrdering::Relaxed);
            self.spill_writes.fetch_add(1, AtomicOrdering::Relaxed);
        }
        Ok(())
    }

    fn spilled_buckets(&self) -> usize {
        self.buckets.iter().filter(|b| lock(b).on_disk > 0).count()
    }

    /// A bucket's bytes: its spill file, then its in-memory rest (taken out of the bucket).
    fn take_bucket(&self, b: usize) -> Result<Vec<u8>, Error> {
        let (mem, on_disk) = {
            let mut bucket = lock(&self.buckets[b]);
            (std::mem::take(&mut bucket.mem), bucket.on_disk)
        };
        self.mem
            .fetch_sub(mem.len() as u64, AtomicOrdering::Relaxed);
        if on_disk == 0 {
            return Ok(mem);
        }
        let path = self.path(b);
        let mut data = std::fs::read(&path).map_err(|source| Error::Spill {
            path: path.clone(),
            source,
        })?;
        if data.len() as u64 != on_disk {
            return Err(Error::CorruptBucket {
                bucket: b,
                offset: data.len(),
            });
        }
        data.extend_from_slice(&mem);
        Ok(data)
    }

    /// Phase 2 for one bucket: sort its records by actor and evaluate each actor's timeline.
    fn evaluate_bucket(
        &self,
        b: usize,
        maps: &[Option<TableMap>; 2],
        worker: &mut Worker<'_>,
    ) -> Result<(), Error> {
        let data = self.take_bucket(b)?;
        if data.is_empty() {
            return Ok(());
        }
        let mut recs = Vec::new();
        records(&data, &mut recs).map_err(|offset| Error::CorruptBucket { bucket: b, offset })?;
        observe_records(&mut recs, maps, worker)
            .map_err(|offset| Error::CorruptBucket { bucket: b, offset })
    }
}

/// Sorts records by (app, actor, table, ts, seq) and evaluates each actor's rows (`Err`: a record whose
/// columns do not decode; its index).
fn observe_records<'a>(
    recs: &mut [Rec<'a>],
    maps: &[Option<TableMap>; 2],
    worker: &mut Worker<'_>,
) -> Result<(), usize> {
    recs.sort_unstable_by(|a, b| {
        (a.app, a.actor, a.table, a.ts, a.seq).cmp(&(b.app, b.actor, b.table, b.ts, b.seq))
    });
    let width = |t: u8| {
        maps.get(t as usize)
            .and_then(Option::as_ref)
            .map(|m| (m.table, m.places.len()))
    };
    let mut cols: Vec<Col<'a>> = Vec::new();
    let mut meta: Vec<(Table, i64, usize, usize)> = Vec::new();
    // The rows of one actor borrow `cols`; their allocation is reused across actors.
    let mut spare: Vec<ShuffledRow<'static>> = Vec::new();
    let mut start = 0;
    while start < recs.len() {
        let first = recs[start];
        let end = recs[start..]
            .iter()
            .position(|r| (r.app, r.actor) != (first.app, first.actor))
            .map_or(recs.len(), |n| start + n);
        cols.clear();
        meta.clear();
        for (i, r) in recs[start..end].iter().enumerate() {
            let (table, n) = width(r.table).ok_or(start + i)?;
            let base = cols.len();
            decode_cols(r, n, &mut cols).ok_or(start + i)?;
            meta.push((table, r.ts, base, n));
        }
        let mut rows: Vec<ShuffledRow<'_>> = recycle(std::mem::take(&mut spare));
        rows.extend(meta.iter().map(|&(table, ts_ms, base, n)| ShuffledRow {
            table,
            ts_ms,
            cols: &cols[base..base + n],
        }));
        let app = std::str::from_utf8(first.app).map_err(|_| start)?;
        worker.observe_actor(app, &rows);
        spare = recycle(rows);
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(table: u8, ts: i64, seq: u64, app: &str, actor: &str, name: &str) -> Vec<u8> {
        let mut p = vec![table];
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        put_bytes(&mut p, app.as_bytes());
        put_bytes(&mut p, actor.as_bytes());
        p.push(STR);
        put_bytes(&mut p, name.as_bytes());
        p.push(MAP);
        put_uvint(&mut p, 1);
        put_bytes(&mut p, b"os");
        put_bytes(&mut p, b"ios");
        let mut r = Vec::new();
        put_bytes(&mut r, &p);
        r
    }

    #[test]
    fn byte_strings_round_trip_and_truncation_is_an_error() {
        for n in [0usize, 1, 127, 128, 300, 70_000] {
            let v = vec![7u8; n];
            let mut b = Vec::new();
            put_bytes(&mut b, &v);
            let mut r = Cursor::new(&b);
            assert_eq!(take_bytes(&mut r), Some(&v[..]));
            assert!(r.is_empty());
            let mut r = Cursor::new(&b[..b.len() - 1]);
            assert_eq!(take_bytes(&mut r), None, "{n}");
        }
    }

    #[test]
    fn bucket_count_fits_a_bucket_in_the_budget() {
        assert_eq!(bucket_count(2, 0, 1 << 30), 8);
        assert_eq!(bucket_count(3, 0, 1 << 30), 16);
        // 10 GB over a 1 GiB budget on 4 threads: a bucket holds at most budget / 8 of the input.
        let b = bucket_count(4, 10_000_000_000, 1 << 30);
        assert!(
            b.is_power_of_two() && 10_000_000_000 / b as u64 <= (1 << 30) / 8,
            "{b}"
        );
        assert_eq!(bucket_count(1, u64::MAX, 1), 1 << 16);
    }

    #[test]
    fn buckets_round_trip_in_memory_without_spilling() {
        let spill = Spill::new(None, 4, 1 << 20).unwrap();
        for i in 0..100u64 {
            let r = record(0, i as i64, i, "a", &format!("u{i}"), "open");
            spill.push(i, &r).unwrap();
        }
        assert_eq!(spill.spilled.load(AtomicOrdering::Relaxed), 0);
        assert_eq!(spill.spilled_buckets(), 0);
        let mut n = 0;
        for b in 0..4 {
            let data = spill.take_bucket(b).unwrap();
            let mut recs = Vec::new();
            records(&data, &mut recs).unwrap();
            for r in &recs {
                assert_eq!(r.seq as usize % 4, b);
            }
            n += recs.len();
        }
        assert_eq!(n, 100);
        assert_eq!(spill.mem.load(AtomicOrdering::Relaxed), 0);
    }

    #[test]
    fn a_tiny_budget_spills_and_every_record_comes_back_once() {
        let spill = Spill::new(None, 8, 200).unwrap();
        let dir = spill.dir.path().to_path_buf();
        let mut want: Vec<(String, i64)> = Vec::new();
        for i in 0..500i64 {
            let actor = format!("u{}", i % 37);
            let r = record((i % 2) as u8, i, i as u64, "app", &actor, "x");
            spill
                .push(actor_hash(b"app", actor.as_bytes()), &r)
                .unwrap();
            want.push((actor, i));
        }
        assert!(spill.spilled.load(AtomicOrdering::Relaxed) > 0);
        assert!(spill.spilled_buckets() > 0);
        // Memory stays near the budget (at most one record past it).
        assert!(spill.mem.load(AtomicOrdering::Relaxed) <= 200 + 64);
        assert!(std::fs::read_dir(&dir).unwrap().count() > 0);
        let mut got = Vec::new();
        for b in 0..8 {
            let data = spill.take_bucket(b).unwrap();
            let mut recs = Vec::new();
            records(&data, &mut recs).unwrap();
            for r in recs {
                let actor = std::str::from_utf8(r.actor).unwrap().to_string();
                assert_eq!(spill.bucket_of(actor_hash(r.app, r.actor)), b);
                let mut cols = Vec::new();
                decode_cols(&r, 2, &mut cols).unwrap();
                let row = ShuffledRow {
                    table: Table::Events,
                    ts_ms: r.ts,
                    cols: &cols,
                };
                let c = |id| ColumnRef {
                    id,
                    name: String::new(),
                };
                assert_eq!(row.column(&c(0)), Value::Str("x"));
                assert_eq!(row.column(&c(1)), Value::Null);
                assert_eq!(row.property(&c(1), "os"), Some("ios"));
                assert_eq!(row.property(&c(1), "country"), None);
                assert_eq!(row.property(&c(0), "os"), None);
                got.push((actor, r.ts));
            }
        }
        got.sort();
        want.sort();
        assert_eq!(got, want);
        drop(spill);
        assert!(!dir.exists(), "the spill directory is deleted");
    }

    #[test]
    fn truncated_buckets_are_corrupt_not_a_panic() {
        let r = record(0, 1, 1, "a", "u", "open");
        for cut in 1..r.len() {
            let mut recs = Vec::new();
            assert!(records(&r[..cut], &mut recs).is_err(), "{cut}");
        }
        let mut recs = Vec::new();
        records(&r, &mut recs).unwrap();
        let mut cols = Vec::new();
        assert!(
            decode_cols(&recs[0], 3, &mut cols).is_none(),
            "a missing column"
        );
        cols.clear();
        assert!(
            decode_cols(&recs[0], 1, &mut cols).is_none(),
            "a column left over"
        );
    }

    #[test]
    fn property_keys_are_collected_from_steps_exclusions_and_breakdowns() {
        let set = FunnelSet::parse(
            r#"
[[funnel]]
id = "f"
window = "1d"
breakdown = "props.os"
steps = [ { event = "install", where = { "props.country" = "de" } }, { event = "buy" } ]
"#,
            "t",
        )
        .unwrap();
        let keys = property_keys(&set);
        let cols = set.columns(Table::Events);
        let props = cols.iter().position(|c| c == "props").unwrap();
        let mut k = keys[0][props].clone();
        k.sort();
        assert_eq!(k, ["country", "os"]);
    }
}
