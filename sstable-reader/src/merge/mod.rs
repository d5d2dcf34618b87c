//! The merged view of a table: what Cassandra answers to `SELECT *`, computed from every SSTable of the
//! table (all generations, all nodes' replicas) in one streaming k-way merge.
//!
//! ```no_run
//! use sstable_reader::{Columns, MergeTable, ReadOptions, SSTable};
//! # let paths: Vec<std::path::PathBuf> = vec![];
//! let ssts = paths.iter().map(|p| SSTable::open(p, None, ReadOptions::default())).collect::<Result<Vec<_>, _>>()?;
//! let table = MergeTable::new(ssts)?;
//! let now = 1_700_000_000; // seconds: TTLs are judged at this one instant
//! let mut scan = table.scan(&Columns::Named(vec!["name".into()]), now)?;
//! while let Some(p) = scan.next_partition()? {
//!     for row in p.rows() {
//!         let _ = (p.key(), row.clustering(0), row.cells().count()); // borrowed, live cells only
//!     }
//! }
//! # Ok::<(), sstable_reader::Error>(())
//! ```
//!
//! How it works:
//! - [`MergeTable::new`] checks that the SSTables agree on partitioner, partition key and clustering
//!   (errors name the disagreeing files), and builds one column list for them all (columns added over
//!   time line up by name).
//! - [`MergedScan::next_partition`] advances every SSTable's scanner to its next partition, takes the
//!   smallest by ring position ([`crate::partitioner`]: token, then key), and copies that partition's
//!   unfiltereds from each SSTable holding it into a reused arena ([`stage`]).
//! - The copies are merged in clustering order ([`order`]), with Cassandra's reconciliation: the partition
//!   deletion, open range tombstones (of any SSTable), row deletions and complex (collection) deletions
//!   shadow data written at or before them; versions of a cell are resolved by `Cells.resolveRegular`
//!   ([`crate::reconcile::resolve`]), counters by their shards ([`counter`]); TTLs expire at the fixed
//!   `now`. Identical replicas and duplicate rows collapse into one row.
//! - A partition held by one SSTable, without a partition deletion and with plain rows only (the usual
//!   partition of an events table) skips the staging and the merge pass (`direct.rs`).
//! - The result, [`MergedPartition`], holds only live rows and their live cells, borrowed from the arena.
//!
//! Row liveness is judged from the primary-key liveness and the *projected* cells: a row kept alive only by
//! a column outside the projection (an `UPDATE` of that column alone) is not returned. Ranges of the ring
//! for parallel scans come from [`crate::plan_ranges`].

pub(crate) mod counter;
mod deletions;
mod direct;
pub mod feed;
pub(crate) mod order;
mod stage;
mod tap;

pub use deletions::MetaItem;
pub use tap::ScanTap;

use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::partitioner::Partitioner;
use crate::progress::ScanCounters;
use crate::reconcile::{resolve, OwnedCell, OwnedRow};
use crate::row::{row_deletion, BoundKind, Cell, DeletionTime, LivenessInfo};
use crate::scanner::{Decoded, Projection, Scanner};
use crate::schema::{Column, TableSchema};
use crate::sstable::SSTable;
use crate::statistics::NO_DELETION_TIME;
use crate::types::CqlType;

use counter::CounterMerger;
use feed::{DirectOut, FeedCursor, FeedStage, PartitionFeed};
use order::compare_prefixes;
use stage::{Arena, CellRec, Item, Slot, Stager};

/// Which static and regular columns a merged scan decodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Columns {
    All,
    /// By name; key and clustering columns are accepted (always decoded).
    Named(Vec<String>),
}

/// The SSTables of one table, ready to be merged.
#[derive(Debug)]
pub struct MergeTable {
    sstables: Vec<SSTable>,
    schema: TableSchema,
    partitioner: Partitioner,
    clustering_types: Vec<CqlType>,
    /// Whether equal clustering values are always equal bytes (every type but varint and decimal), so
    /// duplicate rows can be found by comparing bytes.
    bytewise_eq: bool,
    /// Per SSTable: its static and regular column indexes → the merged schema's (with
    /// [`stage::DROPPED_BEFORE`] where the SSTable may hold cells older than the column's drop).
    maps: Vec<(Vec<u32>, Vec<u32>)>,
    /// The drop times (µs) of the merged static and regular columns that were dropped and added
    /// again (`i64::MIN`: the others).
    dropped: (Vec<i64>, Vec<i64>),
    /// Per SSTable: the feed read instead of its Data.db ([`MergeTable::attach_feed`]).
    feeds: Vec<Option<Arc<dyn PartitionFeed>>>,
}

fn schema_error(a: &Path, b: &Path, message: String) -> Error {
    Error::Schema {
        origin: format!("{} and {}", a.display(), b.display()),
        line: 0,
        column: 0,
        message,
    }
}

fn same_key_columns(a: &[Column], b: &[Column]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.name == y.name && x.ty == y.ty)
}

/// Orders columns as Data.db does (`ColumnMetadata.compareTo`: simple before complex, then name bytes).
fn data_order(cols: &mut [Column]) {
    cols.sort_by(|a, b| {
        (a.ty.is_multi_cell(), a.name.as_bytes()).cmp(&(b.ty.is_multi_cell(), b.name.as_bytes()))
    });
    for (i, c) in cols.iter_mut().enumerate() {
        c.index = i;
    }
}

impl MergeTable {
    /// Checks that `sstables` are one table (partitioner, key and clustering columns, column types) and
    /// prepares the merged column list.
    pub fn new(sstables: Vec<SSTable>) -> Result<MergeTable> {
        MergeTable::without_columns(sstables, &[])
    }

    /// [`MergeTable::new`] without the static and regular columns named in `dropped`: columns the
    /// table's schema dropped (`system_schema.dropped_columns`), whose cells older SSTables still hold.
    /// Their cells are decoded but belong to no column of the merged table, so they never appear and
    /// keep no row alive.
    pub fn without_columns(sstables: Vec<SSTable>, dropped: &[&str]) -> Result<MergeTable> {
        let Some(first) = sstables.first() else {
            return Err(Error::NotFound {
                path: Default::default(),
                message: "no SSTables to merge".into(),
            });
        };
        let class = first
            .partitioner()
            .unwrap_or("org.apache.cassandra.dht.Murmur3Partitioner");
        let partitioner = Partitioner::from_class(class).ok_or_else(|| {
            Error::unsupported(
                first.data_path(),
                format!("merging SSTables of partitioner {class}"),
            )
        })?;
        let mut schema = first.schema.clone();
        for s in &sstables[1..] {
            let theirs = s
                .partitioner()
                .unwrap_or("org.apache.cassandra.dht.Murmur3Partitioner");
            if Partitioner::from_class(theirs) != Some(partitioner) {
                return Err(schema_error(
                    first.data_path(),
                    s.data_path(),
                    format!("different partitioners: {class} and {theirs}"),
                ));
            }
            if !same_key_columns(&schema.partition_key, &s.schema.partition_key)
                || !same_key_columns(&schema.clustering, &s.schema.clustering)
            {
                return Err(schema_error(
                    first.data_path(),
                    s.data_path(),
                    "different partition key or clustering columns (names or types)".into(),
                ));
            }
            for (mine, theirs) in [
                (&mut schema.statics, &s.schema.statics),
                (&mut schema.regulars, &s.schema.regulars),
            ] {
                for c in theirs {
                    match mine.iter().find(|m| m.name == c.name) {
                        Some(m) if m.ty != c.ty => {
                            return Err(schema_error(
                                first.data_path(),
                                s.data_path(),
                                format!(
                                    "column {} is {} in one and {} in the other",
                                    c.name, m.ty, c.ty
                                ),
                            ))
                        }
                        Some(_) => {}
                        None => mine.push(c.clone()),
                    }
                }
            }
        }
        schema
            .statics
            .retain(|c| !dropped.contains(&c.name.as_str()));
        schema
            .regulars
            .retain(|c| !dropped.contains(&c.name.as_str()));
        data_order(&mut schema.statics);
        data_order(&mut schema.regulars);
        let index = |cols: &[Column], name: &str| {
            cols.iter()
                .position(|c| c.name == name)
                .map_or(u32::MAX, |i| i as u32)
        };
        let maps = sstables
            .iter()
            .map(|s| {
                (
                    s.schema
                        .statics
                        .iter()
                        .map(|c| index(&schema.statics, &c.name))
                        .collect(),
                    s.schema
                        .regulars
                        .iter()
                        .map(|c| index(&schema.regulars, &c.name))
                        .collect(),
                )
            })
            .collect();
        Ok(MergeTable {
            dropped: (
                vec![i64::MIN; schema.statics.len()],
                vec![i64::MIN; schema.regulars.len()],
            ),
            feeds: sstables.iter().map(|_| None).collect(),
            clustering_types: schema.clustering.iter().map(|c| c.ty.clone()).collect(),
            bytewise_eq: schema
                .clustering
                .iter()
                .all(|c| !matches!(c.ty.base(), CqlType::Varint | CqlType::Decimal)),
            sstables,
            schema,
            partitioner,
            maps,
        })
    }

    /// Hides the cells of columns that were dropped and added again under the same name (`(name, drop
    /// time in µs)`, `system_schema.dropped_columns` of a column the table has again) written at or
    /// before the drop, as Cassandra does (`DroppedColumn`): they belonged to the dropped column. Only
    /// SSTables whose oldest timestamp is not after the drop check their cells' timestamps.
    pub fn hiding_cells_dropped_before(mut self, dropped: &[(&str, i64)]) -> MergeTable {
        for &(name, at) in dropped {
            for is_static in [true, false] {
                let (merged, times) = if is_static {
                    (&self.schema.statics, &mut self.dropped.0)
                } else {
                    (&self.schema.regulars, &mut self.dropped.1)
                };
                let Some(m) = merged.iter().position(|c| c.name == name) else {
                    continue;
                };
                times[m] = times[m].max(at);
                for (sst, (statics, regulars)) in self.sstables.iter().zip(&mut self.maps) {
                    let oldest = sst.statistics.stats.as_ref().map(|s| s.min_timestamp);
                    if oldest.is_some_and(|t| t > at) {
                        continue;
                    }
                    let map = if is_static { statics } else { regulars };
                    for v in map.iter_mut().filter(|v| **v == m as u32) {
                        *v |= stage::DROPPED_BEFORE;
                    }
                }
            }
        }
        self
    }

    /// The merged schema (column indexes of merged cells refer to it).
    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }

    pub fn partitioner(&self) -> Partitioner {
        self.partitioner
    }

    pub fn sstables(&self) -> &[SSTable] {
        &self.sstables
    }

    /// Reads the partitions of SSTable `index` (of [`MergeTable::sstables`]) from `feed` instead of its
    /// Data.db (the merge is unchanged: see [`feed`]). The feed must hold exactly that SSTable's
    /// unfiltereds, every column included.
    pub fn attach_feed(&mut self, index: usize, feed: Arc<dyn PartitionFeed>) -> Result<()> {
        let slot = self.feeds.get_mut(index).ok_or_else(|| Error::NotFound {
            path: feed.origin().to_path_buf(),
            message: format!("no SSTable {index} to attach a feed to"),
        })?;
        *slot = Some(feed);
        Ok(())
    }

    /// Drops the feed of SSTable `index`: its Data.db is read again.
    pub fn detach_feed(&mut self, index: usize) {
        if let Some(f) = self.feeds.get_mut(index) {
            *f = None;
        }
    }

    /// The feed attached to SSTable `index`, if any.
    pub fn feed(&self, index: usize) -> Option<&Arc<dyn PartitionFeed>> {
        self.feeds.get(index).and_then(Option::as_ref)
    }

    fn projection(&self, sst: &SSTable, columns: &Columns) -> Result<Projection> {
        match columns {
            Columns::All => Ok(Projection::all(&sst.schema)),
            Columns::Named(names) => {
                if let Some(bad) = names.iter().find(|n| self.schema.column(n).is_none()) {
                    let known: Vec<&str> = self
                        .schema
                        .select_order()
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect();
                    return Err(Error::Schema {
                        origin: sst.data_path().display().to_string(),
                        line: 0,
                        column: 0,
                        message: format!("no column {bad:?}; columns are: {}", known.join(", ")),
                    });
                }
                let here: Vec<&String> = names
                    .iter()
                    .filter(|n| sst.schema.column(n).is_some())
                    .collect();
                Projection::columns(&sst.schema, &here).map_err(|message| Error::Schema {
                    origin: sst.data_path().display().to_string(),
                    line: 0,
                    column: 0,
                    message,
                })
            }
        }
    }

    /// A merged scan of the whole table.
    pub fn scan(&self, columns: &Columns, now: i64) -> Result<MergedScan<'_>> {
        let spans: Vec<Option<(u64, u64)>> = self
            .sstables
            .iter()
            .map(|s| Some((0, s.data.len())))
            .collect();
        self.scan_spans(columns, now, &spans)
    }

    /// A merged scan of one span `[start, end)` of uncompressed Data.db per SSTable (`None`: skip it); the
    /// spans must cover the same range of the ring, starting at partition boundaries
    /// ([`crate::plan_ranges`]).
    pub fn scan_spans(
        &self,
        columns: &Columns,
        now: i64,
        spans: &[Option<(u64, u64)>],
    ) -> Result<MergedScan<'_>> {
        let mut sources = Vec::new();
        for (i, sst) in self.sstables.iter().enumerate() {
            let Some(&Some((start, end))) = spans.get(i) else {
                continue;
            };
            if start >= end {
                continue;
            }
            let projection = self.projection(sst, columns)?;
            // A feed lacking a projected column is passed over: the SSTable's Data.db has them all.
            let feed = self.feed(i).filter(|f| f.holds(&projection));
            let input = match feed {
                Some(feed) => Input::Feed {
                    cursor: feed.cursor(start, end, &projection)?,
                    projection,
                },
                None => {
                    let mut scan = sst.scanner(projection);
                    if start != 0 || end != sst.data.len() {
                        scan.set_range(start, end);
                    }
                    Input::Sst(scan)
                }
            };
            sources.push(Source {
                input,
                tap: None,
                sst: i,
                has: false,
                done: false,
                token: 0,
                deletion: DeletionTime::LIVE,
                position: 0,
            });
        }
        Ok(MergedScan {
            table: self,
            sources,
            part: MergedPartition::default(),
            scratch: Scratch::default(),
            feed_clustering: Vec::new(),
            tap_bufs: tap::TapBuffers::default(),
            now,
            contributing: Vec::new(),
            stats: MergeStats::default(),
            counters: None,
            reported: (0, 0, 0),
            keep_deletions: false,
        })
    }
}

/// Where a source's partitions come from: its Data.db, or a feed attached to it.
// The scanner stays inline: it is the hot variant, and a scan has only a handful of sources.
#[allow(clippy::large_enum_variant)]
enum Input<'t> {
    Sst(Scanner<'t>),
    Feed {
        cursor: Box<dyn FeedCursor + 't>,
        projection: Projection,
    },
}

impl Input<'_> {
    fn next_partition(&mut self) -> Result<Option<crate::scanner::PartitionHeader>> {
        match self {
            Input::Sst(s) => s.next_partition(),
            Input::Feed { cursor, .. } => cursor.next_partition(),
        }
    }

    #[inline]
    fn key(&self) -> &[u8] {
        match self {
            Input::Sst(s) => s.key(),
            Input::Feed { cursor, .. } => cursor.key(),
        }
    }

    fn token(&self) -> Option<u128> {
        match self {
            Input::Sst(_) => None,
            Input::Feed { cursor, .. } => cursor.token(),
        }
    }

    fn bytes_read(&self) -> u64 {
        match self {
            Input::Sst(s) => s.counters().2,
            Input::Feed { cursor, .. } => cursor.bytes_read(),
        }
    }
}

struct Source<'t> {
    input: Input<'t>,
    /// Sees every partition of the SSTable before the merge ([`MergedScan::tap`]).
    tap: Option<Box<dyn ScanTap + 't>>,
    sst: usize,
    has: bool,
    done: bool,
    token: u128,
    deletion: DeletionTime,
    /// The current partition's Data.db position.
    position: u64,
}

/// What a merged scan has seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Merged partitions returned.
    pub partitions: u64,
    /// Partition versions read (one per SSTable holding the partition).
    pub partition_versions: u64,
    /// Rows read from all SSTables (every version).
    pub rows_read: u64,
    /// Live rows returned.
    pub rows_live: u64,
    /// Partitions that took the one-version fast path (no staging, no merge pass).
    pub direct_partitions: u64,
    /// Rows not returned because a TTL had expired at the scan's `now`: their primary-key liveness or
    /// a cell expired, and nothing of them was left live (rows deleted outright do not count).
    pub rows_expired: u64,
}

impl MergeStats {
    /// Counts a partition returned by the one-version fast path, which read `rows_read` rows.
    #[inline]
    fn direct(&mut self, rows_read: u64, part: &MergedPartition) {
        self.rows_read += rows_read;
        self.partitions += 1;
        self.direct_partitions += 1;
        self.partition_versions += 1;
        self.rows_live += part.rows.len() as u64;
        self.rows_expired += part.expired;
    }
}

impl std::ops::AddAssign for MergeStats {
    /// Sums the stats of scans of several ranges.
    fn add_assign(&mut self, o: MergeStats) {
        self.partitions += o.partitions;
        self.partition_versions += o.partition_versions;
        self.rows_read += o.rows_read;
        self.rows_live += o.rows_live;
        self.direct_partitions += o.direct_partitions;
        self.rows_expired += o.rows_expired;
    }
}

#[derive(Debug, Default)]
struct Scratch {
    heads: Vec<(usize, usize)>,
    open: Vec<Option<DeletionTime>>,
    group: Vec<usize>,
    cand: Vec<u32>,
    complex: Vec<(u32, DeletionTime)>,
    counters: CounterMerger,
    counter_out: Vec<u8>,
}

/// A merged scan: partitions in ring order, each the reconciliation of every SSTable's version.
pub struct MergedScan<'t> {
    table: &'t MergeTable,
    sources: Vec<Source<'t>>,
    part: MergedPartition,
    scratch: Scratch,
    /// Reused clustering slots of partitions staged from feeds.
    feed_clustering: Vec<stage::Slot>,
    tap_bufs: tap::TapBuffers,
    now: i64,
    contributing: Vec<usize>,
    stats: MergeStats,
    counters: Option<&'t ScanCounters>,
    reported: (u64, u64, u64),
    /// Every partition is staged, also one held by one SSTable ([`MergedScan::keeping_deletions`]).
    keep_deletions: bool,
}

impl<'t> MergedScan<'t> {
    /// Stages every SSTable's version of each partition, also where one SSTable holds it alone (no
    /// one-version fast path), so that [`MergedPartition::rows_with_deletions`] can tell the
    /// deletions the merge applied (`dump --with-meta`).
    pub fn keeping_deletions(mut self) -> Self {
        self.keep_deletions = true;
        self
    }

    /// Publishes progress (disk bytes, rows read, partitions) to shared counters every 256 partitions
    /// and at the end of the scan.
    pub fn report_to(mut self, counters: &'t ScanCounters) -> Self {
        self.counters = Some(counters);
        self
    }

    fn report(&mut self) {
        if let Some(k) = self.counters {
            let now = (
                self.disk_bytes_read(),
                self.stats.rows_read,
                self.stats.partitions,
            );
            k.add(
                now.0.saturating_sub(self.reported.0),
                now.1.saturating_sub(self.reported.1),
                now.2.saturating_sub(self.reported.2),
            );
            self.reported = now;
        }
    }

    pub fn table(&self) -> &'t MergeTable {
        self.table
    }

    /// Gives every partition this scan reads of SSTable `sst` (of [`MergeTable::sstables`]) from its
    /// Data.db to `tap`, whole and unfiltered, before the merge (see [`ScanTap`]). Returns `tap` back
    /// when the scan does not read that Data.db (the SSTable has no data in the scan's spans, or a
    /// feed is read instead).
    pub fn tap(
        &mut self,
        sst: usize,
        tap: Box<dyn ScanTap + 't>,
    ) -> std::result::Result<(), Box<dyn ScanTap + 't>> {
        match self
            .sources
            .iter_mut()
            .find(|s| s.sst == sst && matches!(s.input, Input::Sst(_)))
        {
            Some(s) => {
                s.tap = Some(tap);
                Ok(())
            }
            None => Err(tap),
        }
    }

    /// Leaves every row to the general decoder and every partition to the general merge (what the lean
    /// decoder and the fast path are checked against).
    #[cfg(any(test, feature = "test_common"))]
    #[doc(hidden)]
    pub fn without_plain_rows(&mut self) {
        for s in &mut self.sources {
            if let Input::Sst(scan) = &mut s.input {
                scan.without_plain_rows();
            }
        }
    }

    pub fn stats(&self) -> MergeStats {
        self.stats
    }

    /// Uncompressed bytes, on-disk bytes read so far, summed over the SSTables (for progress).
    pub fn disk_bytes_read(&self) -> u64 {
        self.sources.iter().map(|s| s.input.bytes_read()).sum()
    }

    /// The next merged partition (it may have no live row: a deleted or expired partition is still
    /// returned, with its deletion, so callers can count it), or `None` at the end.
    pub fn next_partition(&mut self) -> Result<Option<&MergedPartition>> {
        let p = self.table.partitioner;
        // The sources usually move on to the same key: its token is hashed once.
        let mut hashed: Option<usize> = None;
        for i in 0..self.sources.len() {
            let s = &mut self.sources[i];
            if !s.has && !s.done {
                match s.input.next_partition()? {
                    None => s.done = true,
                    Some(h) => {
                        s.has = true;
                        s.deletion = h.deletion;
                        s.position = h.position;
                        let token = match (hashed, s.input.token()) {
                            (_, Some(t)) => t,
                            (Some(j), None)
                                if self.sources[j].input.key() == self.sources[i].input.key() =>
                            {
                                self.sources[j].token
                            }
                            _ => {
                                hashed = Some(i);
                                p.token(self.sources[i].input.key())
                            }
                        };
                        self.sources[i].token = token;
                        let s = &mut self.sources[i];
                        if let (Some(tap), Input::Sst(scan)) = (&mut s.tap, &mut s.input) {
                            tap::read(scan, token, h, tap.as_mut(), &mut self.tap_bufs)?;
                        }
                    }
                }
            }
        }
        let mut best: Option<usize> = None;
        for (i, s) in self.sources.iter().enumerate() {
            if !s.has {
                continue;
            }
            best = match best {
                Some(b)
                    if (self.sources[b].token, self.sources[b].input.key())
                        <= (s.token, s.input.key()) =>
                {
                    Some(b)
                }
                _ => Some(i),
            };
        }
        let Some(b) = best else {
            self.report();
            return Ok(None);
        };
        if self.stats.partitions.is_multiple_of(256) {
            self.report();
        }
        self.contributing.clear();
        let (token, key) = (self.sources[b].token, self.sources[b].input.key());
        for (i, s) in self.sources.iter().enumerate() {
            if s.has && s.token == token && s.input.key() == key {
                self.contributing.push(i);
            }
        }
        let part = &mut self.part;
        part.arena.clear();
        part.key.clear();
        part.key.extend_from_slice(key);
        part.token = token;
        part.deletion = DeletionTime::LIVE;
        part.versions = self.contributing.len() as u32;
        self.scratch.heads.clear();
        part.rows.clear();
        part.out_cells.clear();
        part.static_row = None;
        part.expired = 0;
        if let [i] = self.contributing[..] {
            let s = &mut self.sources[i];
            if let (true, Input::Sst(scan)) =
                (s.deletion.is_live() && !self.keep_deletions, &mut s.input)
            {
                let maps = &self.table.maps[s.sst];
                let dropped = &self.table.dropped;
                if let Some(rows) = direct::read(scan, part, maps, dropped, self.now)? {
                    s.has = false;
                    self.stats.direct(rows, part);
                    return Ok(Some(&self.part));
                }
            }
            // The same for a feed's partition of plain rows (see `feed.rs`).
            if let (true, Input::Feed { cursor, projection }) =
                (s.deletion.is_live() && !self.keep_deletions, &mut s.input)
            {
                if cursor.plain_rows() {
                    let (statics_map, regulars_map) = &self.table.maps[s.sst];
                    let MergedPartition {
                        arena,
                        rows,
                        out_cells,
                        expired,
                        static_row,
                        ..
                    } = &mut *part;
                    let path = self.table.sstables[s.sst].data_path();
                    let stager = Stager::new(arena, statics_map, regulars_map, &self.table.dropped)
                        .map_err(|_| {
                            Error::unsupported(
                                path,
                                "a partition wider than 4 GiB of projected data",
                            )
                        })?;
                    let out = DirectOut {
                        rows,
                        static_row,
                        out_cells,
                        expired,
                        now: self.now,
                    };
                    let mut stage =
                        FeedStage::new(stager, &mut self.feed_clustering, projection, Some(out));
                    cursor.stage(&mut stage)?;
                    let read = stage.rows();
                    stage.finish()?;
                    s.has = false;
                    self.stats.direct(read, part);
                    return Ok(Some(&self.part));
                }
            }
        }
        for &i in &self.contributing {
            let s = &mut self.sources[i];
            part.deletion = part.deletion.max(s.deletion);
            let (statics_map, regulars_map) = &self.table.maps[s.sst];
            let start = part.arena.items.len();
            let path = self.table.sstables[s.sst].data_path();
            let too_wide =
                || Error::unsupported(path, "a partition wider than 4 GiB of projected data");
            let mut stager = Stager::new(
                &mut part.arena,
                statics_map,
                regulars_map,
                &self.table.dropped,
            )
            .map_err(|_| too_wide())?;
            let scan = match &mut s.input {
                Input::Sst(scan) => scan,
                Input::Feed { cursor, projection } => {
                    let mut stage =
                        FeedStage::new(stager, &mut self.feed_clustering, projection, None);
                    cursor.stage(&mut stage)?;
                    self.stats.rows_read += stage.rows();
                    stage.finish()?;
                    self.scratch.heads.push((start, part.arena.items.len()));
                    s.has = false;
                    continue;
                }
            };
            loop {
                // Plain rows (most) take the lean decoder; whatever else, the general one.
                self.stats.rows_read +=
                    scan.next_plain_rows(&mut stager).map_err(|_| too_wide())?;
                let Some(d) = scan.next_into(&mut stager)? else {
                    break;
                };
                let clustering = scan.clustering();
                let staged = match d {
                    Decoded::Row {
                        is_static,
                        liveness,
                        deletion,
                        shadowable,
                    } => {
                        self.stats.rows_read += 1;
                        stager.finish_row(clustering, liveness, (deletion, shadowable), is_static)
                    }
                    Decoded::Marker { kind, start, .. } => stager.marker(clustering, kind, start),
                };
                staged.map_err(|_| too_wide())?;
            }
            stager
                .finish(scan.partition_bytes())
                .map_err(|_| too_wide())?;
            self.scratch.heads.push((start, part.arena.items.len()));
            s.has = false;
        }
        self.stats.partitions += 1;
        self.stats.partition_versions += self.contributing.len() as u64;
        if let Err(fault) = merge_partition(
            part,
            &self.table.schema,
            &self.table.clustering_types,
            self.table.bytewise_eq,
            self.now,
            &mut self.scratch,
        ) {
            return Err(self.fault_error(fault));
        }
        self.stats.rows_live += part.rows.len() as u64;
        self.stats.rows_expired += part.expired;
        Ok(Some(&self.part))
    }
}

impl MergedScan<'_> {
    /// The error of a merge fault, naming the SSTable and uncompressed Data.db offset of the bad bytes.
    #[cold]
    fn fault_error(&self, fault: Fault) -> Error {
        let first = &self.sources[self.contributing[0]];
        let path = |s: &Source<'_>| match (&s.input, self.table.feed(s.sst)) {
            (Input::Feed { .. }, Some(feed)) => feed.origin().to_path_buf(),
            _ => self.table.sstables[s.sst].data_path().to_path_buf(),
        };
        match fault {
            Fault::TooWide => Error::unsupported(
                &path(first),
                format!(
                    "the partition at offset {} is wider than 4 GiB of projected data",
                    first.position
                ),
            ),
            Fault::Corrupt { at, expected } => {
                // The contributing sources' partitions were copied into the arena one after the other
                // ([`Stager::finish`]), each from its scanner's window, which has not moved since.
                let mut base = 0u64;
                for &i in &self.contributing {
                    let Input::Sst(scan) = &self.sources[i].input else {
                        // A feed's bytes are gone: name the partition it came from.
                        return Error::corrupt(
                            &path(&self.sources[i]),
                            self.sources[i].position,
                            format!(
                                "{expected} (in a version of the partition at this Data.db offset)"
                            ),
                        );
                    };
                    let len = scan.partition_bytes().len() as u64;
                    if u64::from(at) < base + len {
                        return Error::corrupt(
                            scan.sstable().data_path(),
                            scan.window_start() + (u64::from(at) - base),
                            expected,
                        );
                    }
                    base += len;
                }
                Error::corrupt(
                    &path(first),
                    first.position,
                    format!("{expected} (in the partition at this offset)"),
                )
            }
        }
    }
}

/// Why merging a staged partition failed.
#[derive(Debug)]
enum Fault {
    /// The arena outgrew 32-bit offsets.
    TooWide,
    /// The bytes at arena offset `at` are not what the format requires.
    Corrupt { at: u32, expected: String },
}

#[derive(Debug, Clone, Copy)]
struct OutRow {
    clust: (u32, u32),
    liveness: LivenessInfo,
    /// Range in `MergedPartition::out_cells`, or (`direct`) straight in the arena's cells.
    cells: (u32, u32),
    direct: bool,
    is_static: bool,
}

/// One merged partition: its key, merged deletion and live rows (borrowed from the scan until its next
/// call).
#[derive(Debug)]
pub struct MergedPartition {
    key: Vec<u8>,
    token: u128,
    deletion: DeletionTime,
    versions: u32,
    arena: Arena,
    rows: Vec<OutRow>,
    static_row: Option<OutRow>,
    out_cells: Vec<u32>,
    /// Rows of this partition dropped because a TTL expired ([`MergeStats::rows_expired`]).
    expired: u64,
}

impl Default for MergedPartition {
    fn default() -> Self {
        MergedPartition {
            key: Vec::new(),
            token: 0,
            deletion: DeletionTime::LIVE,
            versions: 0,
            arena: Arena::default(),
            rows: Vec::new(),
            static_row: None,
            out_cells: Vec::new(),
            expired: 0,
        }
    }
}

impl MergedPartition {
    /// The serialized partition key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The token as an order-preserving number ([`crate::partitioner::Partitioner::token`]).
    pub fn token(&self) -> u128 {
        self.token
    }

    /// The merged partition deletion (LIVE when none).
    pub fn deletion(&self) -> DeletionTime {
        self.deletion
    }

    /// How many SSTables held a version of this partition.
    pub fn versions(&self) -> u32 {
        self.versions
    }

    /// Live regular rows in clustering order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = MergedRow<'_>> + '_ {
        self.rows
            .iter()
            .map(move |r| MergedRow { part: self, row: r })
    }

    pub fn row_count(&self) -> usize {
        self.rows.len()
    }

    pub fn row(&self, i: usize) -> Option<MergedRow<'_>> {
        self.rows.get(i).map(|r| MergedRow { part: self, row: r })
    }

    /// The static row, when it has live cells.
    pub fn static_row(&self) -> Option<MergedRow<'_>> {
        self.static_row
            .as_ref()
            .map(|r| MergedRow { part: self, row: r })
    }
}

/// A live merged row: clustering, liveness and its live cells (merged column indexes).
#[derive(Debug, Clone, Copy)]
pub struct MergedRow<'p> {
    part: &'p MergedPartition,
    row: &'p OutRow,
}

impl<'p> MergedRow<'p> {
    pub fn is_static(&self) -> bool {
        self.row.is_static
    }

    pub fn liveness(&self) -> LivenessInfo {
        self.row.liveness
    }

    pub fn clustering_len(&self) -> usize {
        (self.row.clust.1 - self.row.clust.0) as usize
    }

    /// The i-th clustering value (`None` when null or out of range).
    #[inline]
    pub fn clustering(&self, i: usize) -> Option<&'p [u8]> {
        let a = &self.part.arena;
        let idx = self.row.clust.0 as usize + i;
        if idx >= self.row.clust.1 as usize {
            return None;
        }
        a.slot(a.slots[idx])
    }

    /// The row's live cells in the arena.
    #[inline]
    fn cell_recs(&self) -> impl Iterator<Item = &'p CellRec> + 'p {
        let (part, (s, e), direct) = (self.part, self.row.cells, self.row.direct);
        (s..e).map(move |k| {
            let i = if direct {
                k
            } else {
                part.out_cells[k as usize]
            };
            &part.arena.cells[i as usize]
        })
    }

    /// Live cells in (column, path) order; `column` indexes the merged schema's statics or regulars.
    pub fn cells(&self) -> impl Iterator<Item = Cell<'p>> + 'p {
        let a = &self.part.arena;
        self.cell_recs().map(move |c| cell_view(a, c))
    }

    /// The first live cell of `column` (the value of a simple column).
    #[inline]
    pub fn cell(&self, column: usize) -> Option<Cell<'p>> {
        self.cell_rec(column)
            .map(|c| cell_view(&self.part.arena, c))
    }

    /// The value of the first live cell of `column` (a simple column's value: what [`MergedRow::cell`]
    /// gives, without the rest of the cell).
    #[inline]
    pub fn value(&self, column: usize) -> Option<&'p [u8]> {
        self.cell_rec(column).map(|c| self.part.arena.get(c.value))
    }

    #[inline(always)]
    fn cell_rec(&self, column: usize) -> Option<&'p CellRec> {
        self.cell_recs().find(|c| c.column as usize == column)
    }

    /// An owned copy (e.g. for [`crate::cql::RowRenderer`], with no deletion left to apply).
    pub fn to_owned_row(&self) -> OwnedRow {
        OwnedRow {
            is_static: self.row.is_static,
            clustering: (0..self.clustering_len())
                .map(|i| self.clustering(i).map(<[u8]>::to_vec))
                .collect(),
            liveness: self.row.liveness,
            deletion: DeletionTime::LIVE,
            shadowable: DeletionTime::LIVE,
            cells: self.cells().map(|c| OwnedCell::from_cell(&c)).collect(),
            complex_deletions: Vec::new(),
        }
    }
}

#[inline]
fn cell_view<'a>(a: &'a Arena, c: &CellRec) -> Cell<'a> {
    Cell {
        column: c.column as usize,
        timestamp: c.timestamp,
        ttl: c.ttl,
        local_deletion_time: c.ldt,
        tombstone: c.tombstone,
        path: a.slot(c.path),
        value: a.get(c.value),
    }
}

/// `LivenessInfo.supersedes`: later timestamp; on a tie expiring beats not expiring, then later expiry.
fn liveness_supersedes(a: &LivenessInfo, b: &LivenessInfo) -> bool {
    if a.timestamp != b.timestamp {
        return a.timestamp > b.timestamp;
    }
    if a.is_expiring() != b.is_expiring() {
        return a.is_expiring();
    }
    a.local_expiration_time > b.local_expiration_time
}

fn cmp_items(a: &Arena, types: &[CqlType], x: &Item, y: &Item) -> Ordering {
    compare_prefixes(types, x.kind, a.clustering(x), y.kind, a.clustering(y))
}

/// The first clustering value of an item (`None`: none, or null).
#[inline]
fn first_value<'a>(a: &'a Arena, x: &Item) -> Option<&'a [u8]> {
    a.slot(first_slot(a, x))
}

/// Where the first clustering value of an item is (`None`: none, or null).
#[inline]
fn first_slot(a: &Arena, x: &Item) -> Slot {
    a.slots[x.clust.0 as usize..x.clust.1 as usize]
        .first()
        .copied()
        .flatten()
}

/// Whether two staged rows (kind `Clustering`) have equal clusterings.
#[inline(always)]
fn same_row(a: &Arena, types: &[CqlType], bytewise: bool, x: &Item, y: &Item) -> bool {
    if bytewise {
        let (xs, ys) = (
            &a.slots[x.clust.0 as usize..x.clust.1 as usize],
            &a.slots[y.clust.0 as usize..y.clust.1 as usize],
        );
        if xs.len() != ys.len() {
            return false;
        }
        // Rows of a partition usually differ in their first value already.
        if let (Some(p), Some(q)) = (first_value(a, x), first_value(a, y)) {
            if !short_eq(p, q) {
                return false;
            }
        }
        return xs
            .iter()
            .zip(ys)
            .all(|(p, q)| match (a.slot(*p), a.slot(*q)) {
                (Some(p), Some(q)) => short_eq(p, q),
                (p, q) => p.is_none() && q.is_none(),
            });
    }
    cmp_items(a, types, x, y) == Ordering::Equal
}

/// Byte equality of clustering values, which are mostly 8 or 16 bytes long: compared as integers
/// rather than through a `memcmp` call.
#[inline]
fn short_eq(p: &[u8], q: &[u8]) -> bool {
    if p.len() != q.len() {
        return false;
    }
    let word = |b: &[u8]| b.try_into().map(u64::from_ne_bytes).ok();
    match p.len() {
        8 => word(p) == word(q),
        16 => word(&p[..8]) == word(&q[..8]) && word(&p[8..]) == word(&q[8..]),
        _ => p == q,
    }
}

/// `cmp_cells(a, x, y) == Equal`, without ordering the paths.
#[inline]
fn same_cell(a: &Arena, x: u32, y: u32) -> bool {
    let (cx, cy) = (&a.cells[x as usize], &a.cells[y as usize]);
    cx.column == cy.column && a.slot(cx.path) == a.slot(cy.path)
}

fn cmp_cells(a: &Arena, x: u32, y: u32) -> Ordering {
    let (cx, cy) = (&a.cells[x as usize], &a.cells[y as usize]);
    cx.column
        .cmp(&cy.column)
        .then_with(|| a.slot(cx.path).cmp(&a.slot(cy.path)))
}

/// Reconciles the staged versions (`scratch.heads`: each source's item range) into live rows.
fn merge_partition(
    part: &mut MergedPartition,
    schema: &TableSchema,
    ctys: &[CqlType],
    bytewise: bool,
    now: i64,
    sc: &mut Scratch,
) -> std::result::Result<(), Fault> {
    let pdel = part.deletion;

    // The static row: versions of it, shadowed only by the partition deletion.
    if !part.arena.statics.is_empty() {
        let mut group = std::mem::take(&mut sc.group);
        group.clear();
        group.extend(0..part.arena.statics.len());
        let statics = std::mem::take(&mut part.arena.statics);
        let out = merge_group(part, &statics, &group, pdel, &schema.statics, now, sc, true);
        part.arena.statics = statics;
        sc.group = group;
        part.static_row = out?;
    }

    let items = std::mem::take(&mut part.arena.items);
    let cx = MergeCtx {
        columns: &schema.regulars,
        ctys,
        bytewise,
        now,
    };
    let result = merge_rows(part, &items, &cx, sc);
    part.arena.items = items;
    result
}

/// Whether the sources' rows follow one another without overlapping (SSTables holding successive slices
/// of time, the common case): `heads` is sorted by first row, and each source's last row must come
/// before the next source's first.
fn runs_in_order(
    a: &Arena,
    types: &[CqlType],
    items: &[Item],
    heads: &mut [(usize, usize)],
) -> bool {
    heads.sort_by(|x, y| cmp_items(a, types, &items[x.0], &items[y.0]));
    heads
        .windows(2)
        .all(|w| cmp_items(a, types, &items[w[0].1 - 1], &items[w[1].0]) == Ordering::Less)
}

/// Merges the rows and markers of `items` (see [`merge_partition`]).
fn merge_rows(
    part: &mut MergedPartition,
    items: &[Item],
    cx: &MergeCtx<'_>,
    sc: &mut Scratch,
) -> std::result::Result<(), Fault> {
    let pdel = part.deletion;
    let (ctys, bytewise) = (cx.ctys, cx.bytewise);
    sc.heads.retain(|&(h, e)| h < e);
    let n = sc.heads.len();
    if n <= 1 || (part.arena.markers == 0 && runs_in_order(&part.arena, ctys, items, &mut sc.heads))
    {
        // One source at a time: its items are in order, and only its own range tombstones apply.
        for s in 0..n {
            let mut range = sc.heads[s];
            merge_run(part, items, &mut range, None, pdel, cx, sc)?;
        }
        return Ok(());
    }
    sc.open.clear();
    sc.open.resize(n, None);
    loop {
        let mut best: Option<usize> = None;
        for s in 0..n {
            let (h, e) = sc.heads[s];
            if h >= e {
                continue;
            }
            best = match best {
                Some(b)
                    if cmp_items(&part.arena, ctys, &items[sc.heads[b].0], &items[h])
                        != Ordering::Greater =>
                {
                    Some(b)
                }
                _ => Some(s),
            };
        }
        let Some(b) = best else { break };
        if part.arena.markers == 0 {
            // Without range tombstones, the rows of the leading source before every other source's
            // head are in no other source: they merge as one run.
            let mut bound: Option<usize> = None;
            for s in (0..n).filter(|&s| s != b && sc.heads[s].0 < sc.heads[s].1) {
                let h = sc.heads[s].0;
                bound = match bound {
                    Some(x)
                        if cmp_items(&part.arena, ctys, &items[x], &items[h])
                            != Ordering::Greater =>
                    {
                        Some(x)
                    }
                    _ => Some(h),
                };
            }
            let mut range = sc.heads[b];
            merge_run(part, items, &mut range, bound, pdel, cx, sc)?;
            let moved = range.0 > sc.heads[b].0;
            sc.heads[b] = range;
            if moved {
                continue;
            }
        }
        let at = sc.heads[b].0;
        let it = &items[at];
        sc.heads[b].0 += 1;
        if it.kind != BoundKind::Clustering {
            sc.open[b] = it.opens();
            continue;
        }
        sc.group.clear();
        sc.group.push(at);
        loop {
            let mut found = false;
            for s in 0..n {
                while sc.heads[s].0 < sc.heads[s].1 {
                    let h = sc.heads[s].0;
                    let cand = &items[h];
                    if cand.kind != BoundKind::Clustering
                        || !same_row(&part.arena, ctys, bytewise, cand, it)
                    {
                        break;
                    }
                    sc.group.push(h);
                    sc.heads[s].0 += 1;
                    found = true;
                }
            }
            if !found {
                break;
            }
        }
        let mut del = pdel;
        for d in sc.open.iter().flatten() {
            del = del.max(*d);
        }
        if let Some(row) = merge_collected(part, items, del, cx, sc)? {
            part.rows.push(row);
        }
    }
    Ok(())
}

/// What merging rows needs besides the arena.
struct MergeCtx<'a> {
    columns: &'a [Column],
    ctys: &'a [CqlType],
    bytewise: bool,
    now: i64,
}

/// Merges the items of one source, `range`, up to (not including) the first row at or after the item
/// `until` (`None`: to the end), under the partition deletion and the source's own range tombstones.
/// Only that source's duplicates of a row (a file from a 2.x upgrade) are reconciled with it, so the
/// rows must be in no other source.
fn merge_run(
    part: &mut MergedPartition,
    items: &[Item],
    range: &mut (usize, usize),
    until: Option<usize>,
    pdel: DeletionTime,
    cx: &MergeCtx<'_>,
    sc: &mut Scratch,
) -> std::result::Result<(), Fault> {
    let (mut h, e) = *range;
    let mut open = None;
    let ty0 = cx.ctys.first().unwrap_or(&CqlType::Blob);
    // With the slot of its first clustering value (the loop changes the partition's rows, not its arena).
    let until = until.map(|u| (u, first_slot(&part.arena, &items[u])));
    while h < e {
        let it = &items[h];
        if let Some((u, uf)) = until {
            // Most rows differ from `until` in their first clustering value already.
            let a = &part.arena;
            let quick = match (first_value(a, it), a.slot(uf)) {
                (Some(x), Some(y)) => order::compare_values(ty0, x, y),
                _ => Ordering::Equal,
            };
            let before = match quick {
                Ordering::Equal => cmp_items(a, cx.ctys, it, &items[u]) == Ordering::Less,
                o => o == Ordering::Less,
            };
            if !before {
                break;
            }
        }
        let at = h;
        h += 1;
        if it.kind != BoundKind::Clustering {
            open = it.opens();
            continue;
        }
        let del = match open {
            Some(d) => pdel.max(d),
            None => pdel,
        };
        let duplicated = h < e
            && items[h].kind == BoundKind::Clustering
            && same_row(&part.arena, cx.ctys, cx.bytewise, &items[h], it);
        let out = if duplicated {
            merge_duplicates(part, items, at, &mut h, e, del, cx, sc)?
        } else {
            merge_single(part, it, at, del, cx.now, false)
        };
        if let Some(row) = out {
            part.rows.push(row);
        }
    }
    range.0 = h;
    Ok(())
}

/// [`merge_run`]'s rare case: the row at `at` and the next ones of the same source that repeat its
/// clustering (moving `h` past them) merge as one group.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn merge_duplicates(
    part: &mut MergedPartition,
    items: &[Item],
    at: usize,
    h: &mut usize,
    e: usize,
    del: DeletionTime,
    cx: &MergeCtx<'_>,
    sc: &mut Scratch,
) -> std::result::Result<Option<OutRow>, Fault> {
    let it = &items[at];
    sc.group.clear();
    sc.group.push(at);
    while *h < e
        && items[*h].kind == BoundKind::Clustering
        && same_row(&part.arena, cx.ctys, cx.bytewise, &items[*h], it)
    {
        sc.group.push(*h);
        *h += 1;
    }
    merge_collected(part, items, del, cx, sc)
}

/// [`merge_group`] of the versions of one regular row collected in `sc.group`.
fn merge_collected(
    part: &mut MergedPartition,
    items: &[Item],
    del: DeletionTime,
    cx: &MergeCtx<'_>,
    sc: &mut Scratch,
) -> std::result::Result<Option<OutRow>, Fault> {
    let group = std::mem::take(&mut sc.group);
    let out = merge_group(part, items, &group, del, cx.columns, cx.now, sc, false);
    sc.group = group;
    out
}

/// Merges the versions `group` (indexes into `items`) of one row under the deletion `del`.
#[allow(clippy::too_many_arguments)]
fn merge_group(
    part: &mut MergedPartition,
    items: &[Item],
    group: &[usize],
    del: DeletionTime,
    columns: &[Column],
    now: i64,
    sc: &mut Scratch,
    is_static: bool,
) -> std::result::Result<Option<OutRow>, Fault> {
    let first = &items[group[0]];
    if group.len() == 1 {
        return Ok(merge_single(part, first, group[0], del, now, is_static));
    }
    let mut liveness = first.liveness;
    let mut del = del.max(first.deletion);
    let mut shadowable = DeletionTime::LIVE;
    sc.complex.clear();
    for &g in group {
        let it = &items[g];
        if liveness_supersedes(&it.liveness, &liveness) {
            liveness = it.liveness;
        }
        del = del.max(it.deletion);
        shadowable = shadowable.max(part.arena.shadowable(g, is_static));
        for &(col, d) in &part.arena.complex[it.complex.0 as usize..it.complex.1 as usize] {
            match sc.complex.iter_mut().find(|(c, _)| *c == col) {
                Some((_, m)) => *m = m.max(d),
                None => sc.complex.push((col, d)),
            }
        }
    }
    // A shadowable deletion is judged against the merged liveness (a newer one shadows it).
    let del = row_deletion(del, shadowable, &liveness);
    let row_live = liveness.is_live(now) && !del.deletes(liveness.timestamp);
    let cells_start = part.out_cells.len();
    sc.cand.clear();
    for &g in group {
        let it = &items[g];
        sc.cand.extend(it.cells.0..it.cells.1);
    }
    let arena = &part.arena;
    sc.cand.sort_by(|&x, &y| cmp_cells(arena, x, y));
    let mut i = 0;
    while i < sc.cand.len() {
        let mut j = i + 1;
        while j < sc.cand.len() && same_cell(&part.arena, sc.cand[i], sc.cand[j]) {
            j += 1;
        }
        let col = part.arena.cells[sc.cand[i] as usize].column;
        let mut winner = sc.cand[i];
        if j - i > 1 && columns.get(col as usize).is_some_and(|c| c.ty.is_counter()) {
            winner = merge_counter(part, &sc.cand[i..j], &mut sc.counters, &mut sc.counter_out)?;
        } else {
            for &k in &sc.cand[i + 1..j] {
                let a = &part.arena;
                if resolve(
                    &cell_view(a, &a.cells[k as usize]),
                    &cell_view(a, &a.cells[winner as usize]),
                ) == Ordering::Greater
                {
                    winner = k;
                }
            }
        }
        if cell_visible(&part.arena.cells[winner as usize], del, &sc.complex, now) {
            part.out_cells.push(winner);
        }
        i = j;
    }
    let cells_end = part.out_cells.len();
    if (is_static || !row_live) && cells_end == cells_start {
        part.out_cells.truncate(cells_start);
        let a = &part.arena;
        if !is_static
            && expired(
                &liveness,
                sc.cand.iter().map(|&k| &a.cells[k as usize]),
                del,
                now,
            )
        {
            part.expired += 1;
        }
        return Ok(None);
    }
    Ok(Some(OutRow {
        clust: first.clust,
        liveness: if row_live {
            liveness
        } else {
            LivenessInfo::EMPTY
        },
        cells: (cells_start as u32, cells_end as u32),
        direct: false,
        is_static,
    }))
}

/// [`merge_group`] of a row with one version: its cells are distinct (column, path) pairs, each its
/// own winner, and its complex deletions name distinct columns.
#[inline(always)]
fn merge_single(
    part: &mut MergedPartition,
    it: &Item,
    index: usize,
    del: DeletionTime,
    now: i64,
    is_static: bool,
) -> Option<OutRow> {
    let version = Version {
        clust: it.clust,
        liveness: it.liveness,
        cells: it.cells,
        complex: it.complex,
    };
    single_row(
        &part.arena,
        &mut part.out_cells,
        &mut part.expired,
        &version,
        row_deletion(
            del.max(it.deletion),
            part.arena.shadowable(index, is_static),
            &it.liveness,
        ),
        now,
        is_static,
    )
}

/// The parts of a staged row version that [`single_row`] reads (arena ranges).
struct Version {
    clust: (u32, u32),
    liveness: LivenessInfo,
    cells: (u32, u32),
    complex: (u32, u32),
}

/// A row with one version under the deletion `del` (the partition's, an open range tombstone's and the
/// row's own): its live cells (those not all visible listed in `out_cells`), or `None` when nothing of
/// it is live (counted in `expired` when a TTL expiry dropped it).
#[inline(always)]
fn single_row(
    arena: &Arena,
    out_cells: &mut Vec<u32>,
    expired_rows: &mut u64,
    v: &Version,
    del: DeletionTime,
    now: i64,
    is_static: bool,
) -> Option<OutRow> {
    let row_live = v.liveness.is_live(now) && !del.deletes(v.liveness.timestamp);
    let complex = &arena.complex[v.complex.0 as usize..v.complex.1 as usize];
    let recs = &arena.cells[v.cells.0 as usize..v.cells.1 as usize];
    // Usually every cell is visible: the row then refers to the item's cells directly.
    let hidden = recs
        .iter()
        .position(|c| !cell_visible(c, del, complex, now));
    let (cells, direct) = match hidden {
        None => (v.cells, true),
        Some(first) => {
            let start = out_cells.len();
            out_cells.extend(v.cells.0..v.cells.0 + first as u32);
            for (k, c) in (v.cells.0..v.cells.1).zip(recs).skip(first + 1) {
                if cell_visible(c, del, complex, now) {
                    out_cells.push(k);
                }
            }
            ((start as u32, out_cells.len() as u32), false)
        }
    };
    if (is_static || !row_live) && cells.0 == cells.1 {
        if !is_static && expired(&v.liveness, recs.iter(), del, now) {
            *expired_rows += 1;
        }
        return None;
    }
    Some(OutRow {
        clust: v.clust,
        liveness: if row_live {
            v.liveness
        } else {
            LivenessInfo::EMPTY
        },
        cells,
        direct,
        is_static,
    })
}

/// Whether a row that nothing of is left live was dropped by a TTL: its primary-key liveness or one of
/// its cells expired at `now` and is not shadowed by the deletion `del` (only called for dropped rows).
#[cold]
fn expired<'a>(
    liveness: &LivenessInfo,
    mut cells: impl Iterator<Item = &'a CellRec>,
    del: DeletionTime,
    now: i64,
) -> bool {
    let ttl_over = |ttl: i32, ldt: i64, timestamp: i64| {
        ttl != 0 && ldt != NO_DELETION_TIME && now >= ldt && !del.deletes(timestamp)
    };
    ttl_over(
        liveness.ttl,
        liveness.local_expiration_time,
        liveness.timestamp,
    ) || cells.any(|c| !c.tombstone && ttl_over(c.ttl, c.ldt, c.timestamp))
}

/// Whether a reconciled cell is returned: a column of the merged table, not a tombstone, not expired at
/// `now`, and not shadowed by the row's deletion or its column's complex deletion.
#[inline]
fn cell_visible(c: &CellRec, del: DeletionTime, complex: &[(u32, DeletionTime)], now: i64) -> bool {
    c.column != u32::MAX
        && !c.tombstone
        && (c.ttl == 0 || c.ldt == NO_DELETION_TIME || now < c.ldt)
        && !del.deletes(c.timestamp)
        && !complex
            .iter()
            .any(|(col, d)| *col == c.column && d.deletes(c.timestamp))
}

/// `Cells.resolveCounter`: a tombstone wins whatever its timestamp; otherwise the contexts merge.
fn merge_counter(
    part: &mut MergedPartition,
    versions: &[u32],
    counters: &mut CounterMerger,
    out: &mut Vec<u8>,
) -> std::result::Result<u32, Fault> {
    let a = &part.arena;
    if let Some(&t) = versions.iter().find(|&&k| a.cells[k as usize].tombstone) {
        return Ok(t);
    }
    let nonempty: Vec<u32> = versions
        .iter()
        .copied()
        .filter(|&k| a.cells[k as usize].value.1 > a.cells[k as usize].value.0)
        .collect();
    if nonempty.len() <= 1 {
        return Ok(nonempty.first().copied().unwrap_or(versions[0]));
    }
    counters
        .merge(
            nonempty.iter().map(|&k| a.get(a.cells[k as usize].value)),
            out,
        )
        .map_err(|(i, expected)| Fault::Corrupt {
            at: a.cells[nonempty[i] as usize].value.0,
            expected,
        })?;
    let timestamp = nonempty
        .iter()
        .map(|&k| a.cells[k as usize].timestamp)
        .max()
        .unwrap_or(i64::MIN);
    let base = a.cells[nonempty[0] as usize];
    let value = part.arena.push_bytes(out).map_err(|_| Fault::TooWide)?;
    part.arena.cells.push(CellRec {
        timestamp,
        ttl: 0,
        ldt: NO_DELETION_TIME,
        tombstone: false,
        value,
        ..base
    });
    Ok((part.arena.cells.len() - 1) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::{writer_version, Compression};
    use crate::ReadOptions;

    /// A malformed counter context met while merging two versions of a counter cell is reported with
    /// the SSTable holding it and the offset of its bytes in that Data.db (uncompressed: the file's own).
    #[test]
    fn a_malformed_counter_names_its_sstable_and_offset() {
        use crate::writer::{
            schema_from_cql_text, Cell, ColumnContent, ColumnData, Partition, Row, SSTableWriter,
            Unfiltered, WriterOptions,
        };
        let dir = tempfile::tempdir().unwrap();
        let cql = "CREATE TABLE ks.c (k text, c int, n counter, PRIMARY KEY (k, c));";
        let schema = schema_from_cql_text(cql, "c").unwrap();
        let bad = vec![0u8, 1, 0xAB];
        let mut paths = Vec::new();
        for (generation, value) in [(1, counter::global_context(&[(1, 1, 5)])), (2, bad.clone())] {
            let mut r = Row::new(vec![Some(7i32.to_be_bytes().to_vec())]);
            r.columns = vec![ColumnData {
                column: 0,
                content: ColumnContent::Simple(Cell::live(1_600_000_000_000_000, value)),
            }];
            let mut p = Partition::new(b"key".to_vec());
            p.unfiltereds = vec![Unfiltered::Row(r)];
            let opts = WriterOptions::new(writer_version("nb").unwrap(), Compression::None);
            let mut w = SSTableWriter::create(dir.path(), generation, &schema, opts).unwrap();
            w.append(&p).unwrap();
            paths.push(w.finish().unwrap().data_path);
        }
        let ssts = paths
            .iter()
            .map(|p| SSTable::open(p, None, ReadOptions::default()).unwrap())
            .collect();
        let t = MergeTable::new(ssts).unwrap();
        let err = t
            .scan(&Columns::All, 1_700_000_000)
            .unwrap()
            .next_partition()
            .map(|_| ())
            .unwrap_err();
        let Error::Corrupt {
            path,
            offset,
            expected,
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(path, &paths[1], "{err}");
        assert!(expected.contains("counter context"), "{err}");
        let bytes = std::fs::read(&paths[1]).unwrap();
        let at = *offset as usize;
        assert_eq!(bytes.get(at..at + bad.len()), Some(&bad[..]), "{err}");
    }
}
