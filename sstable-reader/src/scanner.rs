//! Sequential scan of one SSTable's Data.db: partition by partition, unfiltered by unfiltered, decoding
//! only the projected columns. Each unfiltered is decoded in one pass from the data window: its header
//! (flags, clustering, size) is read first; when it or the body it announces runs past the window, more
//! chunks are loaded and the decode starts again. Cells go to a `CellSink`: the scanner's own reused
//! buffers ([`Scanner::next_unfiltered`]) or a merge arena. Cells of columns outside the projection are
//! not kept, but they are still read (flags and lengths, not values): a damaged one is an error, as it
//! would be without the projection, and every row must end where its size says.

use crate::bytes::{Cursor, Short, ShortResult};
use crate::data::DataReader;
use crate::error::{Error, Result};
use crate::row::*;
use crate::schema::TableSchema;
use crate::sstable::SSTable;
use crate::statistics::NO_DELETION_TIME;

impl SSTable {
    /// A sequential scanner over all partitions, decoding only the `projection` columns.
    pub fn scanner(&self, projection: Projection) -> Scanner<'_> {
        Scanner::new(self, projection)
    }
}

/// A sink ran out of 32-bit offsets (a partition of more than 4 GiB of projected data).
#[derive(Debug)]
pub(crate) struct TooWide;

/// Which static and regular columns a scan decodes (key and clustering columns are always decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    statics: Vec<bool>,
    regulars: Vec<bool>,
}

impl Projection {
    /// Every column.
    pub fn all(schema: &TableSchema) -> Projection {
        Projection {
            statics: vec![true; schema.statics.len()],
            regulars: vec![true; schema.regulars.len()],
        }
    }

    /// No static or regular column (keys, clustering, liveness and deletions only).
    pub fn none(schema: &TableSchema) -> Projection {
        Projection {
            statics: vec![false; schema.statics.len()],
            regulars: vec![false; schema.regulars.len()],
        }
    }

    /// The named columns; key and clustering column names are accepted (they are always decoded).
    pub fn columns<S: AsRef<str>>(
        schema: &TableSchema,
        names: &[S],
    ) -> std::result::Result<Projection, String> {
        let mut p = Projection::none(schema);
        for n in names {
            let n = n.as_ref();
            if let Some(i) = schema.statics.iter().position(|c| c.name == n) {
                p.statics[i] = true;
            } else if let Some(i) = schema.regulars.iter().position(|c| c.name == n) {
                p.regulars[i] = true;
            } else if schema.column(n).is_none() {
                let known: Vec<&str> = schema
                    .select_order()
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                return Err(format!(
                    "no column {n:?}; columns are: {}",
                    known.join(", ")
                ));
            }
        }
        Ok(p)
    }

    pub fn includes_static(&self, i: usize) -> bool {
        self.statics.get(i).copied().unwrap_or(false)
    }

    pub fn includes_regular(&self, i: usize) -> bool {
        self.regulars.get(i).copied().unwrap_or(false)
    }
}

/// What the decoder needs of a static or regular column, computed once per scan.
#[derive(Debug, Clone, Copy)]
struct ColInfo {
    multi_cell: bool,
    /// Fixed value length (`None`: variable).
    fixed: Option<usize>,
    /// In the projection.
    want: bool,
}

fn col_info(cols: &[crate::schema::Column], wanted: &[bool]) -> Vec<ColInfo> {
    cols.iter()
        .zip(wanted)
        .map(|(c, &want)| ColInfo {
            multi_cell: c.ty.is_multi_cell(),
            fixed: c.ty.fixed_length(),
            want,
        })
        .collect()
}

/// What [`Scanner::next_plain_rows`] needs: the clustering's fixed lengths (all fixed, under one
/// presence header) and the regular columns, those up to the last projected one all simple.
#[derive(Debug, Clone)]
struct Plain {
    clustering: Vec<u32>,
    clustering_len: usize,
    /// Every regular column (after the last projected one, complex ones too: read only to check them).
    columns: Vec<ColInfo>,
}

impl Plain {
    fn new(
        fixed: &[Option<usize>],
        all_fixed: Option<usize>,
        regulars: &[ColInfo],
        last: Option<usize>,
    ) -> Option<Plain> {
        let decoded = match last {
            Some(l) => regulars.get(..=l)?,
            None => &[],
        };
        if decoded.iter().any(|c| c.multi_cell) {
            return None;
        }
        Some(Plain {
            clustering: fixed
                .iter()
                .map(|n| n.map(|n| n as u32))
                .collect::<Option<_>>()?,
            clustering_len: all_fixed?,
            columns: regulars.to_vec(),
        })
    }
}

/// The header of the current partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionHeader {
    /// Position of the partition in the uncompressed Data.db.
    pub position: u64,
    pub deletion: DeletionTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    BetweenPartitions,
    InPartition,
}

/// What [`Scanner::next_into`] decoded (its cells went to the sink).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Decoded {
    Row {
        is_static: bool,
        liveness: LivenessInfo,
        deletion: DeletionTime,
        /// A shadowable row deletion (LIVE: none), see [`RowRef::shadowable_deletion`].
        shadowable: DeletionTime,
    },
    Marker {
        kind: BoundKind,
        end: Option<DeletionTime>,
        start: Option<DeletionTime>,
    },
}

/// A sequential scanner (see the module docs). Lending-iterator style: each returned row borrows the
/// scanner until the next call.
pub struct Scanner<'s> {
    sst: &'s SSTable,
    reader: DataReader<'s>,
    pos: u64,
    end: u64,
    state: State,
    key: Vec<u8>,
    partition: PartitionHeader,
    clustering: Vec<Slot>,
    cells: Vec<RawCell>,
    complex: Vec<RawComplexDeletion>,
    present: Vec<u32>,
    /// Fixed lengths of the header's clustering types (`None`: variable), computed once.
    clustering_fixed: Vec<Option<usize>>,
    /// Their sum when all are fixed (and at most 32: one presence header), for [`read_clustering_row`].
    clustering_all_fixed: Option<usize>,
    /// Per static / regular column.
    static_info: Vec<ColInfo>,
    regular_info: Vec<ColInfo>,
    /// The format stores local deletion times unsigned.
    uint_ldt: bool,
    /// Extended flag 0x80 announces ScyllaDB's shadowable deletion (Scylla.db says so).
    scylla_shadowable: bool,
    /// Set when [`Scanner::next_plain_rows`] can decode this SSTable's rows under the projection.
    plain: Option<Plain>,
    unfiltered_pos: u64,
    /// Where the current partition's first unfiltered starts, and the rows read before the partition
    /// (what [`Scanner::rewind_partition`] goes back to).
    partition_body: u64,
    rows_before_partition: u64,
    partitions: u64,
    rows: u64,
}

impl<'s> Scanner<'s> {
    pub(crate) fn new(sst: &'s SSTable, projection: Projection) -> Scanner<'s> {
        let last_regular = projection.regulars.iter().rposition(|&b| b);
        let static_info = col_info(&sst.schema.statics, &projection.statics);
        let regular_info = col_info(&sst.schema.regulars, &projection.regulars);
        let clustering_fixed: Vec<Option<usize>> = sst
            .header
            .clustering_types
            .iter()
            .map(|t| t.fixed_length())
            .collect();
        let clustering_all_fixed = (!clustering_fixed.is_empty() && clustering_fixed.len() <= 32)
            .then(|| clustering_fixed.iter().copied().sum::<Option<usize>>())
            .flatten();
        let plain = Plain::new(
            &clustering_fixed,
            clustering_all_fixed,
            &regular_info,
            last_regular,
        );
        Scanner {
            sst,
            reader: sst.data.reader(),
            pos: 0,
            end: sst.data.len(),
            state: State::BetweenPartitions,
            key: Vec::new(),
            partition: PartitionHeader {
                position: 0,
                deletion: DeletionTime::LIVE,
            },
            clustering: Vec::new(),
            cells: Vec::new(),
            complex: Vec::new(),
            present: Vec::new(),
            clustering_fixed,
            clustering_all_fixed,
            static_info,
            regular_info,
            uint_ldt: sst.descriptor.version.has_uint_deletion_time(),
            scylla_shadowable: sst
                .scylla
                .as_ref()
                .is_some_and(|m| m.has_shadowable_tombstones()),
            plain,
            unfiltered_pos: 0,
            partition_body: 0,
            rows_before_partition: 0,
            partitions: 0,
            rows: 0,
        }
    }

    pub fn sstable(&self) -> &'s SSTable {
        self.sst
    }

    /// Restricts the scan to partitions starting in `[start, end)` of the uncompressed data; `start` must
    /// be a partition boundary (from Index.db / Summary.db).
    pub fn set_range(&mut self, start: u64, end: u64) {
        self.pos = start;
        self.end = end.min(self.sst.data.len());
        self.state = State::BetweenPartitions;
        self.reader.seek(start);
    }

    /// Key of the current partition (raw bytes; composite keys in their composite encoding).
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn partition(&self) -> PartitionHeader {
        self.partition
    }

    /// Partitions and rows read so far, and on-disk bytes consumed (for progress).
    pub fn counters(&self) -> (u64, u64, u64) {
        (self.partitions, self.rows, self.reader.disk_bytes_read())
    }

    fn corrupt(&self, at: u64, what: impl Into<String>) -> Error {
        Error::corrupt(self.sst.data_path(), at, what)
    }

    fn short_to_error(&self, base: u64, s: Short, what: &str) -> Error {
        if s.needed == usize::MAX {
            self.corrupt(base + s.at as u64, format!("valid flags for {what}"))
        } else {
            self.corrupt(
                base + s.at as u64,
                format!("{} bytes for {what} (the data ends first)", s.needed),
            )
        }
    }

    /// Makes bytes available until `measure` succeeds on the window from `at`; returns its result.
    fn measured<T>(
        &mut self,
        at: u64,
        what: &str,
        measure: impl Fn(&mut Cursor<'_>) -> Result<T, Short>,
    ) -> Result<T> {
        loop {
            let ws = self.reader.window_start();
            let w = self.reader.window();
            let off = (at - ws) as usize;
            let mut c = Cursor::at(w, off);
            match measure(&mut c) {
                Ok(v) => return Ok(v),
                Err(s) => self.load_for(s, what)?,
            }
        }
    }

    /// Loads the bytes a read ran short of (`s`: relative to the window start). Corruption when they
    /// were there already (a read that fails on bytes it has: never spin), when the data ends first, or
    /// when the read was invalid rather than short.
    fn load_for(&mut self, s: Short, what: &str) -> Result<()> {
        let ws = self.reader.window_start();
        let have = ws + self.reader.window().len() as u64;
        let need = ws
            .saturating_add(s.at as u64)
            .saturating_add(s.needed as u64);
        if s.needed == usize::MAX || need <= have || need > self.sst.data.len() {
            return Err(self.short_to_error(ws, s, what));
        }
        self.reader.ensure(need)
    }

    /// Advances to the next partition (skipping what is left of the current one).
    pub fn next_partition(&mut self) -> Result<Option<PartitionHeader>> {
        while self.state == State::InPartition {
            self.skip_unfiltered()?;
        }
        if self.pos >= self.end {
            return Ok(None);
        }
        let at = self.pos;
        self.reader.release(at);
        let uint = self.sst.descriptor.version.has_uint_deletion_time();
        let (klen, deletion, len) = self.measured(at, "a partition header", |c| {
            let start = c.pos();
            let klen = c.u16()? as usize;
            c.skip(klen)?;
            let d = read_partition_deletion(c, uint)?;
            Ok((klen, d, c.pos() - start))
        })?;
        let ws = self.reader.window_start();
        let off = (at - ws) as usize + 2;
        self.key.clear();
        self.key
            .extend_from_slice(&self.reader.window()[off..off + klen]);
        if !uint && deletion.local_deletion_time < 0 {
            return Err(self.corrupt(
                at + 2 + klen as u64,
                format!(
                    "a non-negative local deletion time in the partition deletion, found {} (invalid tombstone; run nodetool scrub)",
                    deletion.local_deletion_time
                ),
            ));
        }
        self.pos = at + len as u64;
        self.partition = PartitionHeader {
            position: at,
            deletion,
        };
        self.state = State::InPartition;
        self.partition_body = self.pos;
        self.rows_before_partition = self.rows;
        self.partitions += 1;
        Ok(Some(self.partition))
    }

    /// Goes back to the first unfiltered of the current partition, to decode it again (its bytes are
    /// still in the window: nothing of a partition is released while it is read by [`Scanner::next_into`]
    /// and [`Scanner::next_plain_rows`]).
    pub(crate) fn rewind_partition(&mut self) {
        self.pos = self.partition_body;
        self.rows = self.rows_before_partition;
        self.state = State::InPartition;
    }

    #[inline]
    /// Encoded length of the unfiltered at `at`, checked to end inside the data (a damaged size field
    /// is corruption, not an overflow).
    fn extent(&mut self, at: u64) -> Result<usize> {
        let n = self.extent_unchecked(at)?;
        let len = self.sst.data.len();
        if (n as u64).checked_add(at).is_none_or(|end| end > len) {
            return Err(self.corrupt(at, format!("a row or marker that ends inside the data ({len} bytes); its size field says {n}")));
        }
        Ok(n)
    }

    fn extent_unchecked(&mut self, at: u64) -> Result<usize> {
        // Fast path: the whole header is in the window (the common case).
        let ws = self.reader.window_start();
        let w = self.reader.window();
        if at >= ws {
            let mut c = Cursor::at(w, (at - ws) as usize);
            if let Ok(n) = unfiltered_extent_fixed(&mut c, &self.clustering_fixed) {
                return Ok(n);
            }
        }
        let fixed = std::mem::take(&mut self.clustering_fixed);
        let r = self.measured(at, "a row or marker", |c| {
            unfiltered_extent_fixed(c, &fixed)
        });
        self.clustering_fixed = fixed;
        r
    }

    fn skip_unfiltered(&mut self) -> Result<()> {
        let at = self.pos;
        let n = self.extent(at)?;
        let ws = self.reader.window_start();
        if self.reader.window()[(at - ws) as usize] & END_OF_PARTITION != 0 {
            self.state = State::BetweenPartitions;
        }
        self.pos = at + n as u64;
        Ok(())
    }

    /// The next row or range tombstone marker of the current partition; `None` at its end.
    pub fn next_unfiltered(&mut self) -> Result<Option<Unfiltered<'_>>> {
        self.reader.release(self.pos);
        self.next_unfiltered_kept()
    }

    /// [`Scanner::next_unfiltered`] without releasing what was read of the partition, so that
    /// [`Scanner::rewind_partition`] can decode it again (a merge's tap reads a partition first).
    pub(crate) fn next_unfiltered_kept(&mut self) -> Result<Option<Unfiltered<'_>>> {
        let mut own = Buffers {
            cells: std::mem::take(&mut self.cells),
            complex: std::mem::take(&mut self.complex),
        };
        own.cells.clear();
        own.complex.clear();
        let decoded = self.next_into(&mut own);
        self.cells = own.cells;
        self.complex = own.complex;
        let Some(decoded) = decoded? else {
            return Ok(None);
        };
        let window = self.reader.window();
        let position = self.unfiltered_pos;
        Ok(Some(match decoded {
            Decoded::Row {
                is_static,
                liveness,
                deletion,
                shadowable,
            } => Unfiltered::Row(RowRef {
                window,
                is_static,
                liveness,
                deletion,
                shadowable,
                clustering: &self.clustering,
                cells: &self.cells,
                complex_deletions: &self.complex,
                position,
            }),
            Decoded::Marker { kind, end, start } => Unfiltered::Marker(MarkerRef {
                window,
                kind,
                clustering: &self.clustering,
                end_deletion: end,
                start_deletion: start,
                position,
            }),
        }))
    }

    /// Decodes the next unfiltered of the current partition, its cells into `sink` (`None` at the end of
    /// the partition). Afterwards [`Scanner::clustering`] holds its clustering. Nothing of the
    /// partition is released: its window offsets stay valid until the next partition (see
    /// [`Scanner::partition_bytes`]). The row is decoded in one pass: when its header or body runs past
    /// the window, more bytes are loaded and the decode starts again.
    #[inline(always)]
    pub(crate) fn next_into<S: CellSink>(&mut self, sink: &mut S) -> Result<Option<Decoded>> {
        if self.state != State::InPartition {
            return Ok(None);
        }
        let at = self.pos;
        loop {
            match self.decode(at, sink)? {
                Step::Unfiltered(d, n) => {
                    self.pos = at + n as u64;
                    self.unfiltered_pos = at;
                    if matches!(d, Decoded::Row { .. }) {
                        self.rows += 1;
                    }
                    return Ok(Some(d));
                }
                Step::EndOfPartition => {
                    self.pos = at + 1;
                    self.state = State::BetweenPartitions;
                    return Ok(None);
                }
                Step::Need(s) => self.load_for(s, "a row or marker")?,
            }
        }
    }

    /// Decodes the current partition's *plain* rows into `sink`, as many as follow one another: regular
    /// rows without a row deletion, every column present and an all-fixed clustering, when every column
    /// up to the last projected one is simple — the rows of a typical events table. A row that runs
    /// past the window (across chunks) has the rest of it loaded. It stops at the first unfiltered
    /// that is not such a row, repeats the previous row's clustering (for [`RowSink::DISTINCT`] sinks),
    /// or fails a check (the end of the partition, a marker, a suspicious field, a damaged chunk):
    /// [`Scanner::next_into`] takes that one, so the rows and errors are those of decoding everything
    /// with it. Returns the rows decoded.
    #[inline(always)]
    pub(crate) fn next_plain_rows<S: RowSink>(
        &mut self,
        sink: &mut S,
    ) -> std::result::Result<u64, TooWide> {
        let Some(plain) = self.plain.as_ref() else {
            return Ok(0);
        };
        if self.state != State::InPartition {
            return Ok(0);
        }
        let (d, uint, data_len) = (self.sst.deltas, self.uint_ldt, self.sst.data.len());
        let ws = self.reader.window_start();
        let mut window = self.reader.window();
        let mut pos = self.pos;
        let mut rows = 0u64;
        // Window offset of the previous row's clustering, for sinks that take distinct rows only.
        let mut previous: Option<usize> = None;
        loop {
            let off = (pos - ws) as usize;
            let (clustering_at, body, end) =
                match plain_row_extent(window, off, plain.clustering_len) {
                    Ok(x) => x,
                    Err(PlainStop::Other) => break,
                    Err(PlainStop::Short(need)) => {
                        // The row runs past the window (it crosses a chunk): load up to its end and go
                        // on, unless that is past the data or far away (the general decoder then judges).
                        let need = ws + need as u64;
                        if need > data_len
                            || need - pos > MAX_PLAIN_ROW
                            || self.reader.ensure(need).is_err()
                        {
                            break;
                        }
                        window = self.reader.window();
                        continue;
                    }
                };
            let n = end - off;
            if end > u32::MAX as usize || pos + n as u64 > data_len {
                break;
            }
            let clen = plain.clustering_len;
            if S::DISTINCT
                && previous.is_some_and(|p| {
                    same_clustering(
                        &window[p..p + clen],
                        &window[clustering_at..clustering_at + clen],
                    )
                })
            {
                break; // (a repeated clustering: the general path merges the two)
            }
            let flags = window[off];
            let mut c = Cursor::at(&window[..end], body);
            if c.skip_uvint().is_err() {
                break; // (previous unfiltered size)
            }
            let Ok(liveness) = read_liveness(&mut c, &d, flags) else {
                break;
            };
            if flags & (HAS_TIMESTAMP | HAS_TTL) == HAS_TIMESTAMP | HAS_TTL
                && !ldt_plausible(liveness.local_expiration_time, uint)
            {
                break;
            }
            sink.begin(false);
            let mut whole = true;
            for (ci, col) in plain.columns.iter().enumerate() {
                if col.multi_cell {
                    // (after the last projected column: read to check it, not kept)
                    if skip_complex(&mut c, &d, &liveness, ci, col.fixed, flags).is_err() {
                        whole = false;
                        break;
                    }
                    continue;
                }
                match read_cell(&mut c, &d, &liveness, ci, col.fixed, false) {
                    Ok(cell) if col.want => {
                        if cell.ttl < 0 || !cell_ldt_plausible(&cell, uint) {
                            whole = false;
                            break;
                        }
                        sink.cell(cell);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        whole = false;
                        break;
                    }
                }
            }
            // A row with bytes after its last column is left to the general decoder, which reports it.
            if !whole || !c.is_empty() {
                sink.abandon();
                break;
            }
            sink.row(clustering_at as u32, &plain.clustering, liveness)?;
            previous = Some(clustering_at);
            self.unfiltered_pos = pos;
            pos += n as u64;
            rows += 1;
        }
        self.pos = pos;
        self.rows += rows;
        Ok(rows)
    }

    /// Leaves every row to [`Scanner::next_into`] (what [`Scanner::next_plain_rows`] is checked against).
    #[cfg(any(test, feature = "test_common"))]
    pub(crate) fn without_plain_rows(&mut self) {
        self.plain = None;
    }

    /// The position in the uncompressed Data.db the scan has read to.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    /// The window from the start of the current partition to what has been read of it: the bytes the
    /// window offsets of [`Scanner::next_into`] refer to.
    pub(crate) fn partition_bytes(&self) -> &[u8] {
        let read = (self.pos - self.reader.window_start()) as usize;
        &self.reader.window()[..read]
    }

    /// Where [`Scanner::partition_bytes`] starts in the uncompressed Data.db.
    pub(crate) fn window_start(&self) -> u64 {
        self.reader.window_start()
    }

    /// Clustering of the last decoded unfiltered (window offsets).
    pub(crate) fn clustering(&self) -> &[Slot] {
        &self.clustering
    }

    /// Whether `check_ldt` would accept `ldt` unchanged (the fast path: no message is built).
    #[inline]
    fn ldt_plausible(&self, ldt: i64) -> bool {
        ldt_plausible(ldt, self.uint_ldt)
    }

    /// [`Scanner::ldt_plausible`] for a cell's own expiry or deletion time.
    #[inline]
    fn cell_ldt_plausible(&self, cell: &RawCell) -> bool {
        cell_ldt_plausible(cell, self.uint_ldt)
    }

    fn check_ldt(&self, ldt: i64, expiring: bool, at: u64, what: &str) -> Result<i64> {
        if self.sst.descriptor.version.has_uint_deletion_time()
            || ldt >= 0
            || ldt == NO_DELETION_TIME
        {
            return Ok(ldt);
        }
        if expiring && self.sst.options.recover_overflowed_ttl {
            return Ok(i32::MAX as i64 - 1);
        }
        let hint = if expiring {
            "TTL expiry overflowed past 2038 (CASSANDRA-14092); read with --recover-overflowed-ttl, or run nodetool scrub --reinsert-overflowed-ttl"
        } else {
            "invalid tombstone; nodetool scrub repairs it"
        };
        Err(self.corrupt(
            at,
            format!("a non-negative local deletion time for {what}, found {ldt} ({hint})"),
        ))
    }

    /// The error for bytes left in an unfiltered after everything its flags announce was read (`c`: on
    /// the unfiltered's bytes, which start at window offset `off`).
    #[cold]
    #[inline(never)]
    fn left_over(&self, at: u64, off: usize, c: &Cursor<'_>, what: &str) -> Error {
        self.corrupt(
            at + (c.pos() - off) as u64,
            format!(
                "the {what} to end after its last field (as its size says), found {} byte(s) left over",
                c.remaining()
            ),
        )
    }

    /// The error for flags with bits this reader does not know (cold: built only on damaged data).
    #[cold]
    #[inline(never)]
    fn unknown_flags(&self, at: u64, flags: u8, ext: u8) -> Error {
        if flags & IS_MARKER != 0 {
            self.corrupt(
                at,
                format!(
                    "range tombstone marker flags 0x02 without extended flags, found {flags:#04x} and extended flags {ext:#04x}"
                ),
            )
        } else {
            self.corrupt(
                at + 1,
                format!(
                    "extended row flags with known bits only (0x01 static, 0x02 and 0x80 shadowable deletion), found {ext:#04x}"
                ),
            )
        }
    }

    /// The error for ScyllaDB's shadowable-deletion flag in a file whose Scylla.db does not declare it.
    #[cold]
    #[inline(never)]
    fn undeclared_shadowable(&self, at: u64, ext: u8) -> Error {
        self.corrupt(
            at + 1,
            format!("extended flags without 0x80 (ScyllaDB's shadowable deletion, which this file's Scylla.db does not declare: no ShadowableTombstones feature), found {ext:#04x}"),
        )
    }

    /// One decode attempt of the unfiltered at `at` (see [`Scanner::next_into`]).
    #[inline(always)]
    fn decode<S: CellSink>(&mut self, at: u64, sink: &mut S) -> Result<Step> {
        let ws = self.reader.window_start();
        let window = self.reader.window();
        let off = (at - ws) as usize;
        let sst = self.sst;
        let types = &sst.header.clustering_types;
        let d = sst.deltas;
        // The header (flags through the size vint) is read from the whole window: running out of it
        // asks for more bytes.
        let mut c = Cursor::at(window, off);
        macro_rules! head {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(s) => return Ok(Step::Need(s)),
                }
            };
        }
        let flags = head!(c.u8());
        if flags & END_OF_PARTITION != 0 {
            return Ok(Step::EndOfPartition);
        }
        let ext = if flags & EXTENSION_FLAG != 0 {
            head!(c.u8())
        } else {
            0
        };
        let is_marker = flags & IS_MARKER != 0;
        // Bits this reader does not know would change what follows: refused, never skipped. A marker
        // carries no other flag (`serializeMarker` writes IS_MARKER alone).
        if (is_marker && (flags & !(IS_MARKER | EXTENSION_FLAG) != 0 || ext != 0))
            || ext & !KNOWN_EXTENDED_FLAGS != 0
        {
            return Err(self.unknown_flags(at, flags, ext));
        }
        if ext & HAS_SCYLLA_SHADOWABLE_DELETION != 0 && !self.scylla_shadowable {
            // As ScyllaDB itself: the flag means a shadowable deletion only in files that say so.
            return Err(self.undeclared_shadowable(at, ext));
        }
        let mut marker_kind = BoundKind::Clustering;
        let is_static = !is_marker && ext & IS_STATIC != 0;
        if is_marker {
            let ko = head!(c.u8());
            marker_kind = BoundKind::from_ordinal(ko)
                .filter(|k| !matches!(k, BoundKind::Clustering | BoundKind::StaticClustering))
                .ok_or_else(|| {
                    self.corrupt(
                        at + 1,
                        format!("a range tombstone bound kind (0-7, not 3 or 4), found {ko}"),
                    )
                })?;
            let size = head!(c.u16()) as usize;
            if size > types.len() {
                return Err(self.corrupt(
                    at + 2,
                    format!("a bound of at most {} values, found {size}", types.len()),
                ));
            }
            head!(read_clustering_fixed(
                &mut c,
                &self.clustering_fixed,
                size,
                0,
                &mut self.clustering,
            ));
        } else if is_static {
            self.clustering.clear();
        } else {
            head!(read_clustering_row(
                &mut c,
                &self.clustering_fixed,
                self.clustering_all_fixed,
                &mut self.clustering,
            ));
        }
        let row_size = head!(c.uvint_len());
        let n = (c.pos() - off).checked_add(row_size);
        let len = sst.data.len();
        let Some(n) = n.filter(|&n| (n as u64).checked_add(at).is_some_and(|end| end <= len))
        else {
            return Err(self.corrupt(
                at,
                format!("a row or marker that ends inside the data ({len} bytes); its size field says {row_size} bytes after its header"),
            ));
        };
        if off + n > window.len() {
            return Ok(Step::Need(Short { at: off, needed: n }));
        }
        if off + n > u32::MAX as usize {
            // Window offsets are 32-bit (the window holds the partition read so far).
            return Err(Error::unsupported(
                sst.data_path(),
                "a partition wider than 4 GiB",
            ));
        }
        // The body is read from the unfiltered's own bytes: running out of them is corruption.
        let mut c = Cursor::at(&window[..off + n], c.pos());
        let short = |s: Short| body_error(sst.data_path(), at, off, window, s);
        if is_marker {
            c.skip_uvint().map_err(short)?; // previous unfiltered size
            let first = d.deletion(&mut c).map_err(short)?;
            let kind = marker_kind;
            let (end, start) = if kind.is_boundary() {
                let second = d.deletion(&mut c).map_err(short)?;
                (Some(first), Some(second))
            } else if kind.is_start() {
                (None, Some(first))
            } else {
                (Some(first), None)
            };
            for dt in end.iter().chain(start.iter()) {
                self.check_ldt(dt.local_deletion_time, false, at, "a range tombstone")?;
            }
            if !c.is_empty() {
                return Err(self.left_over(at, off, &c, "range tombstone marker"));
            }
            return Ok(Step::Unfiltered(Decoded::Marker { kind, end, start }, n));
        }
        sink.begin(is_static);
        c.skip_uvint().map_err(short)?; // previous unfiltered size
        let mut liveness = read_liveness(&mut c, &d, flags).map_err(short)?;
        if flags & (HAS_TIMESTAMP | HAS_TTL) == HAS_TIMESTAMP | HAS_TTL
            && !self.ldt_plausible(liveness.local_expiration_time)
        {
            liveness.local_expiration_time =
                self.check_ldt(liveness.local_expiration_time, true, at, "the row liveness")?;
        }
        let mut deletion = if flags & HAS_DELETION != 0 {
            let dt = d.deletion(&mut c).map_err(short)?;
            self.check_ldt(dt.local_deletion_time, false, at, "the row deletion")?;
            dt
        } else {
            DeletionTime::LIVE
        };
        let mut shadowable = DeletionTime::LIVE;
        if ext & (HAS_SHADOWABLE_DELETION | HAS_SCYLLA_SHADOWABLE_DELETION) != 0 {
            if ext & HAS_SHADOWABLE_DELETION != 0 {
                // Cassandra's: the row deletion itself is shadowable.
                shadowable = std::mem::replace(&mut deletion, DeletionTime::LIVE);
            }
            if ext & HAS_SCYLLA_SHADOWABLE_DELETION != 0 {
                // ScyllaDB's: a second deletion follows the regular one.
                let dt = d.deletion(&mut c).map_err(short)?;
                self.check_ldt(dt.local_deletion_time, false, at, "the shadowable deletion")?;
                shadowable = shadowable.max(dt);
            }
        }
        // Every column's cells are read, those outside the projection only to check them (their
        // flags and lengths): a damaged cell is an error whatever the projection.
        let (columns, info) = if is_static {
            (&sst.schema.statics, &self.static_info)
        } else {
            (&sst.schema.regulars, &self.regular_info)
        };
        // Which columns are present: all, or a subset encoded against the header's columns.
        self.present.clear();
        let total = columns.len();
        let mut all = flags & HAS_ALL_COLUMNS != 0;
        if !all {
            let encoded = c.uvint().map_err(short)?;
            if encoded == 0 {
                all = true;
            } else if total < 64 {
                for i in 0..total {
                    if encoded & (1u64 << i) == 0 {
                        self.present.push(i as u32);
                    }
                }
            } else {
                let delta = encoded as usize;
                let count = total.saturating_sub(delta);
                if count < total / 2 {
                    for _ in 0..count {
                        let i = c.uvint().map_err(short)? as u32;
                        self.present.push(i);
                    }
                } else {
                    let mut idx = 0u32;
                    let mut skipped = 0;
                    loop {
                        let next_missing = if skipped < delta {
                            c.uvint().map_err(short)? as u32
                        } else {
                            total as u32
                        };
                        while idx < next_missing && (idx as usize) < total {
                            self.present.push(idx);
                            idx += 1;
                        }
                        if idx as usize >= total {
                            break;
                        }
                        idx += 1;
                        skipped += 1;
                    }
                }
            }
        }
        let complex_deletion = flags & HAS_COMPLEX_DELETION != 0;
        let present = if all { total } else { self.present.len() };
        for k in 0..present {
            let ci = if all { k } else { self.present[k] as usize };
            let Some(&ColInfo {
                multi_cell: complex,
                fixed,
                want,
            }) = info.get(ci)
            else {
                return Err(Error::corrupt(
                    sst.data_path(),
                    at,
                    format!("a column index below {total}, found {ci}"),
                ));
            };
            let mut cell_count = 1usize;
            if complex {
                if complex_deletion {
                    let dt = d.deletion(&mut c).map_err(short)?;
                    if want && !dt.is_live() {
                        sink.complex_deletion(RawComplexDeletion {
                            column: ci as u32,
                            deletion: dt,
                        });
                    }
                }
                cell_count = c.uvint_len().map_err(short)?;
            }
            for _ in 0..cell_count {
                let mut cell =
                    read_cell(&mut c, &d, &liveness, ci, fixed, complex).map_err(short)?;
                if want {
                    if cell.ttl < 0 {
                        return Err(self.corrupt(
                            at,
                            format!(
                                "a non-negative TTL for column {}, found {}",
                                columns[ci].name, cell.ttl
                            ),
                        ));
                    }
                    if !self.cell_ldt_plausible(&cell) {
                        cell.ldt = self.check_ldt(
                            cell.ldt,
                            cell.flags & CELL_IS_EXPIRING != 0 && cell.flags & CELL_IS_DELETED == 0,
                            at,
                            &format!("column {}", columns[ci].name),
                        )?;
                    }
                    sink.cell(cell);
                }
            }
        }
        // Every column was read: the row must end where its size says.
        if !c.is_empty() {
            return Err(self.left_over(at, off, &c, "row"));
        }
        Ok(Step::Unfiltered(
            Decoded::Row {
                is_static,
                liveness,
                deletion,
                shadowable,
            },
            n,
        ))
    }
}

/// The error for a read inside an unfiltered's body (which starts at window offset `off`, at `at` in
/// the data) that failed: bytes past its declared size, or cell flags with unknown bits. Cold and
/// out of line, so that the decoder's many `map_err` sites stay small.
#[cold]
#[inline(never)]
fn body_error(path: &std::path::Path, at: u64, off: usize, window: &[u8], s: Short) -> Error {
    let offset = at + (s.at - off) as u64;
    if s.needed == UNKNOWN_CELL_FLAGS {
        let found = window.get(s.at).copied().unwrap_or_default();
        return Error::corrupt(
            path,
            offset,
            format!("cell flags with known bits only (0x01-0x10), found {found:#04x}"),
        );
    }
    Error::corrupt(path, offset, "a row no longer than its declared size")
}

/// Whether a local deletion time can be taken as stored: non-negative, "none", or from a format
/// storing it unsigned (`uint`).
#[inline(always)]
fn ldt_plausible(ldt: i64, uint: bool) -> bool {
    ldt >= 0 || ldt == NO_DELETION_TIME || uint
}

/// [`ldt_plausible`] for a cell's own expiry or deletion time (a cell using the row's TTL has the
/// row's expiry, checked with the row).
#[inline(always)]
fn cell_ldt_plausible(cell: &RawCell, uint: bool) -> bool {
    let own = cell.flags & CELL_USE_ROW_TTL == 0
        && cell.flags & (CELL_IS_DELETED | CELL_IS_EXPIRING) != 0;
    !own || ldt_plausible(cell.ldt, uint)
}

/// Whether two fixed clusterings of one table are the same bytes. Successive rows usually differ in
/// their first 8 bytes already (a time): those are compared as one word, before any `memcmp` call.
#[inline(always)]
fn same_clustering(a: &[u8], b: &[u8]) -> bool {
    let word = |x: &[u8]| {
        x.get(..8)
            .and_then(|w| w.try_into().ok())
            .map(u64::from_ne_bytes)
    };
    match (word(a), word(b)) {
        (Some(x), Some(y)) if x != y => false,
        _ => a == b,
    }
}

/// Why [`plain_row_extent`] found no plain row at an offset.
enum PlainStop {
    /// The window ends first: it needs bytes up to this window offset (at least).
    Short(usize),
    /// Not a plain row (or not a valid one): the general decoder takes it.
    Other,
}

/// The longest plain row [`Scanner::next_plain_rows`] loads more of the window for.
const MAX_PLAIN_ROW: u64 = 1 << 20;

/// Where the plain row at window offset `off` has its clustering, its body (after the size) and its
/// end: its flags say a regular row without deletion with all its columns, and its clustering has one
/// presence header (0: every value present and non-empty) before `clustering_len` fixed bytes.
#[inline(always)]
fn plain_row_extent(
    window: &[u8],
    off: usize,
    clustering_len: usize,
) -> std::result::Result<(usize, usize, usize), PlainStop> {
    let short = |s: Short| match s.needed {
        usize::MAX => PlainStop::Other,
        n => PlainStop::Short(s.at.saturating_add(n)),
    };
    let Some(&flags) = window.get(off) else {
        return Err(PlainStop::Short(off + 1));
    };
    if flags & (END_OF_PARTITION | EXTENSION_FLAG | IS_MARKER | HAS_DELETION) != 0
        || flags & HAS_ALL_COLUMNS == 0
    {
        return Err(PlainStop::Other);
    }
    let mut c = Cursor::at(window, off + 1);
    if c.u8().map_err(short)? != 0 {
        return Err(PlainStop::Other);
    }
    let clustering_at = c.pos();
    c.skip(clustering_len).map_err(short)?;
    let size = c.uvint_len().map_err(short)?;
    let body = c.pos();
    let end = body.checked_add(size).ok_or(PlainStop::Other)?;
    if end > window.len() {
        return Err(PlainStop::Short(end));
    }
    Ok((clustering_at, body, end))
}

/// A row's primary-key liveness (`flags`: the row's), its expiry as stored (unchecked).
#[inline(always)]
fn read_liveness(c: &mut Cursor<'_>, d: &Deltas, flags: u8) -> ShortResult<LivenessInfo> {
    let mut liveness = LivenessInfo::EMPTY;
    if flags & HAS_TIMESTAMP != 0 {
        liveness.timestamp = d.timestamp(c)?;
        if flags & HAS_TTL != 0 {
            liveness.ttl = d.ttl(c)?;
            liveness.local_expiration_time = d.ldt(c)?;
        }
    }
    Ok(liveness)
}

/// One cell of column `column` (`Cell.Serializer.deserialize`): its flags, then what they do not
/// take from the row (timestamp, expiry, TTL), the path of a complex column's cell, and the value
/// (`fixed`: the type's length; `None`: vint-prefixed). Window offsets; its TTL and expiry unchecked.
#[inline(always)]
fn read_cell(
    c: &mut Cursor<'_>,
    d: &Deltas,
    row: &LivenessInfo,
    column: usize,
    fixed: Option<usize>,
    complex: bool,
) -> ShortResult<RawCell> {
    let cf = c.u8()?;
    if cf & !KNOWN_CELL_FLAGS != 0 {
        return Err(Short {
            at: c.pos() - 1,
            needed: UNKNOWN_CELL_FLAGS,
        });
    }
    let deleted = cf & CELL_IS_DELETED != 0;
    let expiring = cf & CELL_IS_EXPIRING != 0;
    let use_row_ttl = cf & CELL_USE_ROW_TTL != 0;
    let timestamp = if cf & CELL_USE_ROW_TIMESTAMP != 0 {
        row.timestamp
    } else {
        d.timestamp(c)?
    };
    let ldt = if use_row_ttl {
        row.local_expiration_time
    } else if deleted || expiring {
        d.ldt(c)?
    } else {
        NO_DELETION_TIME
    };
    let ttl = if use_row_ttl {
        row.ttl
    } else if expiring {
        d.ttl(c)?
    } else {
        0
    };
    let path = if complex {
        let len = c.uvint_len()?;
        let p = c.pos() as u32;
        c.skip(len)?;
        Some((p, p + len as u32))
    } else {
        None
    };
    let value = if cf & CELL_HAS_EMPTY_VALUE == 0 {
        let len = match fixed {
            Some(n) => n,
            None => c.uvint_len()?,
        };
        let p = c.pos() as u32;
        c.skip(len)?;
        (p, p + len as u32)
    } else {
        let p = c.pos() as u32;
        (p, p)
    };
    Ok(RawCell {
        column: column as u32,
        flags: cf,
        timestamp,
        ttl,
        ldt,
        path,
        value,
    })
}

/// Reads a complex column's cells (`Row.Serializer`: its deletion when the row's `flags` say complex
/// deletions are present, the cell count, the cells) only to check them, keeping none: a column
/// after the last projected one of a plain row.
#[inline(always)]
fn skip_complex(
    c: &mut Cursor<'_>,
    d: &Deltas,
    row: &LivenessInfo,
    column: usize,
    fixed: Option<usize>,
    flags: u8,
) -> ShortResult<()> {
    if flags & HAS_COMPLEX_DELETION != 0 {
        d.deletion(c)?;
    }
    for _ in 0..c.uvint_len()? {
        read_cell(c, d, row, column, fixed, true)?;
    }
    Ok(())
}

/// Where a decoded row's cells go: the scanner's own buffers ([`Scanner::next_unfiltered`]), or straight
/// into a merge arena, so that a merged scan copies each cell once.
pub(crate) trait CellSink {
    /// A row starts; called before its cells.
    fn begin(&mut self, is_static: bool);
    /// A projected cell (window offsets).
    fn cell(&mut self, cell: RawCell);
    /// A projected complex column's deletion (not LIVE).
    fn complex_deletion(&mut self, deletion: RawComplexDeletion);
}

/// Where [`Scanner::next_plain_rows`] puts the rows it decodes (besides their cells).
pub(crate) trait RowSink: CellSink {
    /// The sink takes rows of distinct clusterings only: a row repeating the previous one's (a file
    /// from a 2.x upgrade) is left to [`Scanner::next_into`].
    const DISTINCT: bool;
    /// The regular row whose cells were just given ends: its clustering (`lens`: the fixed lengths
    /// of its values, which follow one another from window offset `at`) and liveness; it has no
    /// deletion.
    fn row(
        &mut self,
        at: u32,
        lens: &[u32],
        liveness: LivenessInfo,
    ) -> std::result::Result<(), TooWide>;
    /// Drops the cells given since [`CellSink::begin`]: the row is left to [`Scanner::next_into`].
    fn abandon(&mut self);
}

/// The scanner's own cell buffers, lent to [`Scanner::next_into`] by [`Scanner::next_unfiltered`].
struct Buffers {
    cells: Vec<RawCell>,
    complex: Vec<RawComplexDeletion>,
}

impl CellSink for Buffers {
    #[inline]
    fn begin(&mut self, _: bool) {}

    #[inline]
    fn cell(&mut self, cell: RawCell) {
        self.cells.push(cell);
    }

    #[inline]
    fn complex_deletion(&mut self, deletion: RawComplexDeletion) {
        self.complex.push(deletion);
    }
}

/// One decode attempt: an unfiltered and its encoded length, the end of the partition, or a request for
/// more bytes (relative to the window start).
enum Step {
    Unfiltered(Decoded, usize),
    EndOfPartition,
    Need(Short),
}
