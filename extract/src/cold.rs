//! Entries built by a run's own scan (a cold run: one pass over each SSTable). The run scans the ring
//! in ranges, in parallel; for every SSTable lacking an entry, each range's scan feeds a [`Chunk`]
//! through a tap ([`sstable_reader::MergedScan::tap`]: the SSTable's unfiltered stream before the
//! merge), and the chunks are written into the entry's temporary file in ring order — whichever worker
//! completes the next range writes it, later ranges wait in memory.
//!
//! An entry is renamed into place only when the chunks written cover its SSTable's whole Data.db, one
//! span after the other (a run reading part of the ring — a shard — builds none), and nothing failed:
//! a cache that cannot be written leaves the run as it is (it read the Data.db anyway), a column that
//! does not fit its storage ([`Error::Replan`]) has its entry built apart afterwards
//! ([`Cache::attach_columns`]'s pass, which stores it plain).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use sstable_reader::{MergeTable, TableSchema};

use crate::builders::WriteOptions;
use crate::cache::{AttachReport, Cache, Missing};
use crate::chunk::Chunk;
use crate::entry::EntryFile;
use crate::error::{Error, Result};
use crate::summary::Identity;

/// One range's chunk of one SSTable: `(SSTable index, chunk, attached)`; `attached` says that the
/// range's scan fed it (it read that SSTable's Data.db in the range).
pub type Tapped = (usize, Chunk, bool);

/// A range's span of an SSTable's Data.db (`None`: nothing of it) and its chunk, if the scan fed one.
type Piece = (Option<(u64, u64)>, Option<Chunk>);

/// The entries a run builds while it scans (see the module doc).
pub struct ColdBuild {
    cache: Cache,
    entries: Vec<Entry>,
}

/// One entry being built.
struct Entry {
    sst: usize,
    id: Identity,
    columns: Option<Vec<String>>,
    options: WriteOptions,
    schema: TableSchema,
    arrow: SchemaRef,
    /// The entry's final path, and the temporary file it is written to.
    path: PathBuf,
    temp: PathBuf,
    /// Uncompressed Data.db bytes: the chunks written must cover them.
    data_len: u64,
    /// Completed ranges not written yet, by range index.
    pending: Mutex<BTreeMap<usize, Piece>>,
    file: Mutex<Writing>,
}

/// The written part of an entry.
#[derive(Default)]
struct Writing {
    /// The range to write next.
    next: usize,
    /// Data.db bytes covered by the chunks written.
    covered: u64,
    out: Option<EntryFile<BufWriter<File>>>,
    failed: Option<Error>,
    time: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked left the state as it was between two writes: still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ColdBuild {
    /// Builds the entries `missing` (of [`Cache::plan_columns`]) of the SSTables of `table` during its scan.
    pub fn new(cache: &Cache, table: &MergeTable, missing: Missing) -> ColdBuild {
        let entries = missing
            .entries
            .into_iter()
            .filter_map(|(sst, id, columns)| {
                let s = table.sstables().get(sst)?;
                let options = cache.options().clone().holding(columns.clone());
                let (path, temp) = cache.temp_path(&id);
                Some(Entry {
                    sst,
                    arrow: Chunk::arrow_schema(&s.schema, &options),
                    schema: s.schema.clone(),
                    options,
                    id,
                    columns,
                    path,
                    temp,
                    data_len: s.data.len(),
                    pending: Mutex::new(BTreeMap::new()),
                    file: Mutex::new(Writing::default()),
                })
            })
            .collect();
        ColdBuild {
            cache: cache.clone(),
            entries,
        }
    }

    /// Whether no entry is built.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Empty chunks for one range's scan, one per entry still being built (attach them with
    /// [`sstable_reader::MergedScan::tap`], give them back with [`ColdBuild::submit`]).
    pub fn chunks(&self) -> Vec<Tapped> {
        self.entries
            .iter()
            .filter(|e| lock(&e.file).failed.is_none())
            .map(|e| {
                let chunk = Chunk::new(&e.path, &e.schema, &e.arrow, &e.options);
                (e.sst, chunk, false)
            })
            .collect()
    }

    /// The scan of range `range` (index in the plan) completed, reading `spans` (per SSTable of the
    /// table) into `chunks`: writes every range of the entries that is next in ring order.
    pub fn submit(&self, range: usize, spans: &[Option<(u64, u64)>], chunks: Vec<Tapped>) {
        let mut chunks = chunks;
        for e in &self.entries {
            let chunk = chunks
                .iter()
                .position(|(sst, ..)| *sst == e.sst)
                .map(|i| chunks.swap_remove(i))
                .and_then(|(_, c, attached)| attached.then_some(c));
            let span = spans.get(e.sst).copied().flatten();
            lock(&e.pending).insert(range, (span, chunk));
            e.drain();
        }
    }

    /// After the scan: finishes, syncs and renames the entries whose chunks cover their SSTable; builds
    /// apart those a column did not fit. Returns what was built and skipped.
    pub fn finish(self, table: &MergeTable) -> Result<AttachReport> {
        let started = Instant::now();
        let mut report = AttachReport::default();
        for e in &self.entries {
            e.drain();
            let mut w = lock(&e.file);
            report.build_time += w.time;
            let written = e.close(&mut w);
            match written {
                Ok(bytes) => {
                    report.built += 1;
                    report.bytes_written += bytes;
                }
                Err(Error::Replan { .. }) => {
                    let Some(sst) = table.sstables().get(e.sst) else {
                        continue;
                    };
                    match self.cache.build(sst, &e.id, e.columns.clone()) {
                        Ok((_, bytes)) => {
                            report.built += 1;
                            report.bytes_written += bytes;
                        }
                        Err(Error::Reader(r)) => return Err(Error::Reader(r)),
                        Err(err) => report.skipped.push(err.to_string()),
                    }
                }
                Err(err) => {
                    tracing::warn!("not caching: {err}");
                    report.skipped.push(err.to_string());
                }
            }
        }
        report.build_time += started.elapsed();
        Ok(report)
    }
}

impl Entry {
    /// Writes the pending ranges that are next in ring order, unless another worker is at it (it looks
    /// again before it leaves, so nothing waits past the next submit or [`ColdBuild::finish`]).
    fn drain(&self) {
        loop {
            let Ok(mut w) = self.file.try_lock() else {
                return;
            };
            loop {
                let piece = lock(&self.pending).remove(&w.next);
                let Some(piece) = piece else { break };
                let started = Instant::now();
                if w.failed.is_none() {
                    if let Err(e) = self.write(&mut w, piece) {
                        tracing::debug!("not caching {}: {e}", self.path.display());
                        w.failed = Some(e);
                        w.out = None;
                        let _ = std::fs::remove_file(&self.temp);
                    }
                }
                w.next += 1;
                w.time += started.elapsed();
            }
            let next = w.next;
            drop(w);
            if !lock(&self.pending).contains_key(&next) {
                return;
            }
        }
    }

    /// Writes one range's piece after those before it.
    fn write(&self, w: &mut Writing, piece: Piece) -> Result<()> {
        let (Some((start, end)), chunk) = piece else {
            return Ok(()); // nothing of the SSTable in the range
        };
        if start >= end {
            return Ok(());
        }
        if start != w.covered {
            return Err(self.partial(format!(
                "the run read bytes {start}..{end} of Data.db after {}",
                w.covered
            )));
        }
        let mut chunk =
            chunk.ok_or_else(|| self.partial(format!("bytes {start}..{end} were not read")))?;
        chunk.close()?;
        let out = match &mut w.out {
            Some(out) => out,
            None => w.out.insert(self.create()?),
        };
        out.write(&mut chunk)?;
        out.count(&chunk);
        w.covered = end;
        Ok(())
    }

    /// Creates the temporary file.
    fn create(&self) -> Result<EntryFile<BufWriter<File>>> {
        if let Some(dir) = self.temp.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = File::create(&self.temp).map_err(|e| Error::io(&self.temp, e))?;
        let out = BufWriter::with_capacity(1 << 20, file);
        EntryFile::new(out, &self.temp, &self.schema, &self.arrow, &self.options)
    }

    fn partial(&self, what: String) -> Error {
        Error::Unsupported {
            path: self.path.clone(),
            what: format!("only part of the SSTable was read ({what})"),
        }
    }

    /// Ends the entry once every range was written: the footer, sync, rename. Returns its bytes.
    fn close(&self, w: &mut Writing) -> Result<u64> {
        if let Some(e) = w.failed.take() {
            return Err(e);
        }
        let pending = lock(&self.pending).len();
        if pending > 0 || w.covered != self.data_len {
            w.out = None;
            let _ = std::fs::remove_file(&self.temp);
            return Err(self.partial(format!(
                "{} of {} bytes of Data.db, {pending} ranges not in order",
                w.covered, self.data_len
            )));
        }
        let out = match w.out.take() {
            Some(out) => out,
            // An SSTable without partitions: an entry of none.
            None => self.create()?,
        };
        let written = out.finish(self.id.clone()).and_then(|(buf, _)| {
            let file = buf
                .into_inner()
                .map_err(|e| Error::io(&self.temp, e.into_error()))?;
            file.sync_all().map_err(|e| Error::io(&self.temp, e))?;
            std::fs::rename(&self.temp, &self.path).map_err(|e| Error::io(&self.path, e))
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&self.temp);
            return Err(e);
        }
        Ok(std::fs::metadata(&self.path).map_or(0, |m| m.len()))
    }
}

impl Drop for Entry {
    /// A run that failed leaves no temporary file behind.
    fn drop(&mut self) {
        let w = self.file.get_mut().unwrap_or_else(|p| p.into_inner());
        if w.out.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
