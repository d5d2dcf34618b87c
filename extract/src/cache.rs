//! The cache: a directory of extracts, one file per SSTable, named after its [`Identity`] and the
//! extract format version (`<keyspace>.<table>-<id>/<version>-<generation>-<size>-<digest>.v<N>.arrow`),
//! so the hard links of one SSTable in snapshots and backups share one entry, and a compaction's output
//! or a Data.db rewritten in place (its mtime) gets a new one.
//!
//! - Entries are written to a temporary name in the same directory, synced and renamed into place:
//!   readers see a whole entry or none, and two runs building one entry at once both succeed (the last
//!   rename wins; both files are complete).
//! - Every open verifies the trailer, the checksum, the footer's identity and format version and the
//!   columns ([`Extract::open`]); a truncated, damaged or foreign entry is deleted and rebuilt. An entry
//!   that cannot be written (read-only or full disk) is skipped: that SSTable is read from its Data.db,
//!   so results never depend on the cache.
//! - The cache directory must not be inside a data directory (nor hold one): [`Cache::open`] refuses it.
//! - [`Cache::gc`] drops entries of SSTables that are gone, temporary files of crashed writers, and the
//!   least recently used entries beyond a size cap.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rayon::prelude::*;
use sstable_reader::{Columns, MergeTable, Projection, SSTable};

use crate::builders::WriteOptions;
use crate::error::{Error, Result};
use crate::identity::identity;
use crate::layout::{self, FORMAT_VERSION};
use crate::reader::Extract;
use crate::summary::Identity;
use crate::write_extract_file;

/// Temporary files of writers that died are removed by [`Cache::gc`] after this long.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// A cache directory of extracts.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    options: WriteOptions,
}

/// What [`Cache::attach`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttachReport {
    /// SSTables read from a valid entry.
    pub hits: usize,
    /// Entries built (one pass over the SSTable each).
    pub built: usize,
    /// Entries found damaged, truncated or foreign, deleted and rebuilt (counted in `built` too).
    pub dropped: usize,
    /// Entries rebuilt to hold columns they lacked (counted in `built` too).
    pub widened: usize,
    /// SSTables read from their Data.db because their entry could not be written or read, with why.
    pub skipped: Vec<String>,
    /// Bytes of the entries built.
    pub bytes_written: u64,
    /// Time spent building entries.
    pub build_time: Duration,
}

impl std::ops::AddAssign for AttachReport {
    fn add_assign(&mut self, o: AttachReport) {
        self.hits += o.hits;
        self.built += o.built;
        self.dropped += o.dropped;
        self.widened += o.widened;
        self.skipped.extend(o.skipped);
        self.bytes_written += o.bytes_written;
        self.build_time += o.build_time;
    }
}

/// How far [`Cache::attach`] has come building entries (for progress).
#[derive(Debug, Default)]
pub struct BuildProgress {
    /// SSTables to extract, and extracted so far.
    pub total: AtomicUsize,
    pub done: AtomicUsize,
    /// On-disk Data.db bytes of the SSTables to extract, and of those extracted so far.
    pub bytes_total: AtomicU64,
    pub bytes_done: AtomicU64,
}

/// The entries of a table's SSTables to build ([`Cache::plan_columns`]).
#[derive(Debug, Default)]
pub struct Missing {
    /// (SSTable index in the table, its identity, the columns to hold: `None` all).
    pub(crate) entries: Vec<(usize, Identity, Option<Vec<String>>)>,
}

impl Missing {
    /// How many entries are to be built.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What a cache directory holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    pub entries: usize,
    pub bytes: u64,
    /// Temporary files (writers at work, or dead).
    pub temporary: usize,
    /// Per table directory (`keyspace.table-id`): entries and bytes.
    pub tables: Vec<(String, usize, u64)>,
}

/// What [`Cache::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Entries of SSTables not among those kept.
    pub gone: usize,
    /// Least recently used entries removed to fit the size cap.
    pub evicted: usize,
    /// Stale temporary files.
    pub temporary: usize,
    pub bytes_freed: u64,
    /// Bytes left.
    pub bytes_left: u64,
}

/// A file under the cache: (table directory name, path, bytes, mtime, is temporary).
type CacheFile = (String, PathBuf, u64, SystemTime, bool);

/// A path made absolute with symlinks resolved, also when (its tail) does not exist yet.
fn resolved(p: &Path) -> Result<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(p, e))?
            .join(p)
    };
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return Ok(out);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return Ok(abs),
        }
    }
}

/// A file-name-safe form of an identity's part.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn is_temp(name: &str) -> bool {
    name.starts_with(".tmp-")
}

impl Cache {
    /// Opens the cache directory `dir` (created if needed) for runs over `data`; refuses a directory
    /// inside one of the data paths, or holding one.
    pub fn open(dir: &Path, data: &[PathBuf]) -> Result<Cache> {
        let mine = resolved(dir)?;
        for d in data {
            let theirs = resolved(d)?;
            let theirs_dir = if theirs.is_file() {
                theirs.parent().map(Path::to_path_buf).unwrap_or(theirs)
            } else {
                theirs
            };
            if mine.starts_with(&theirs_dir) || theirs_dir.starts_with(&mine) {
                return Err(Error::Cache {
                    path: dir.to_path_buf(),
                    what: format!(
                        "a cache directory must be outside the data directories, and this one {} {}",
                        if mine.starts_with(&theirs_dir) { "is inside" } else { "holds" },
                        theirs_dir.display()
                    ),
                });
            }
        }
        std::fs::create_dir_all(&mine).map_err(|e| Error::io(&mine, e))?;
        Ok(Cache {
            dir: mine,
            options: WriteOptions::zstd(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry of the SSTable `id` lives.
    pub fn entry_path(&self, id: &Identity) -> PathBuf {
        let table = format!(
            "{}.{}-{}",
            safe(&id.keyspace),
            safe(&id.table),
            safe(&id.table_id)
        );
        let digest = id.digest.map_or("nodigest".into(), |d| format!("{d:08x}"));
        let mtime = id.mtime_ns.map_or(String::new(), |m| format!("-m{m}"));
        let check = format!("{digest}{mtime}");
        self.dir.join(table).join(format!(
            "{}-{}-{}-{check}.v{FORMAT_VERSION}.arrow",
            safe(&id.version),
            safe(&id.generation),
            id.data_size
        ))
    }

    /// The valid entry of `sst`, or `None` after deleting a damaged or foreign one (`dropped` counts it).
    fn lookup(&self, sst: &SSTable, id: &Identity, dropped: &mut bool) -> Option<Extract> {
        let path = self.entry_path(id);
        match Extract::open(&path, sst, Some(id)) {
            Ok(e) => {
                // The entry's mtime says when it was last used ([`Cache::gc`] evicts the oldest).
                if let Ok(f) = std::fs::File::options().append(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                Some(e)
            }
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!("dropping cache entry: {e}");
                *dropped = std::fs::remove_file(&path).is_ok();
                None
            }
        }
    }

    /// The options entries are written with.
    pub(crate) fn options(&self) -> &WriteOptions {
        &self.options
    }

    /// Where the entry of `id` goes, and a temporary name in the same directory to write it first.
    pub(crate) fn temp_path(&self, id: &Identity) -> (PathBuf, PathBuf) {
        let path = self.entry_path(id);
        let parent = path.parent().unwrap_or(&self.dir);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let temp = parent.join(format!(".tmp-{}-{nanos}-{name}", std::process::id()));
        (path, temp)
    }

    /// Builds the entry of `sst` holding the static and regular columns `columns` (`None`: all) — a
    /// temporary file renamed into place — and opens it.
    pub(crate) fn build(
        &self,
        sst: &SSTable,
        id: &Identity,
        columns: Option<Vec<String>>,
    ) -> Result<(Extract, u64)> {
        let (path, temp) = self.temp_path(id);
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let options = self.options.clone().holding(columns);
        let written = write_extract_file(sst, &temp, id.clone(), &options)
            .and_then(|_| std::fs::rename(&temp, &path).map_err(|e| Error::io(&path, e)));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        Ok((Extract::open(&path, sst, Some(id))?, bytes))
    }

    /// [`Cache::attach_columns`] with every column: entries hold all of their SSTable's columns.
    pub fn attach(
        &self,
        table: &mut MergeTable,
        threads: usize,
        progress: Option<&BuildProgress>,
    ) -> Result<AttachReport> {
        self.attach_columns(table, &Columns::All, threads, progress)
    }

    /// Attaches an extract to every SSTable of `table` for scans of `columns`: valid entries holding
    /// those columns are read as they are; missing or damaged ones are built first with just those
    /// static and regular columns (keys, clustering, liveness and deletions always), and entries
    /// lacking some are rebuilt holding what they held and what is asked (one pass over each such
    /// SSTable, `threads` at a time). Errors of the SSTables themselves are returned; a cache that
    /// cannot be written or read only leaves the SSTable to be read from its Data.db
    /// ([`AttachReport::skipped`]).
    pub fn attach_columns(
        &self,
        table: &mut MergeTable,
        columns: &Columns,
        threads: usize,
        progress: Option<&BuildProgress>,
    ) -> Result<AttachReport> {
        let (mut report, missing) = self.plan_columns(table, columns)?;
        report += self.build_missing(table, missing, threads, progress)?;
        Ok(report)
    }

    /// Attaches the valid entries of the SSTables of `table` that hold `columns` (deleting damaged
    /// ones) and returns, with what it found, the entries to build: missing ones with just those
    /// static and regular columns, and entries lacking some widened to what they held and what is
    /// asked. Build them apart ([`Cache::build_missing`]) or during a scan ([`crate::ColdBuild`]).
    pub fn plan_columns(
        &self,
        table: &mut MergeTable,
        columns: &Columns,
    ) -> Result<(AttachReport, Missing)> {
        let mut report = AttachReport::default();
        let mut found: Vec<(usize, Extract)> = Vec::new();
        let mut missing = Missing::default();
        for (i, sst) in table.sstables().iter().enumerate() {
            let id = identity(sst)?;
            let wanted = match columns {
                Columns::All => Projection::all(&sst.schema),
                Columns::Named(names) => layout::held_projection(&sst.schema, names),
            };
            let mut dropped = false;
            let mut hit = self.lookup(sst, &id, &mut dropped);
            report.dropped += usize::from(dropped);
            // An entry lacking a column is widened: rebuilt with what it held and what is wanted.
            let mut names = layout::held_names(&sst.schema, &wanted);
            if let Some(e) = hit.take_if(|e| !e.covers(&wanted)) {
                report.widened += 1;
                names = layout::held_names(
                    &sst.schema,
                    &layout::held_projection(
                        &sst.schema,
                        &[e.summary().columns.clone(), names].concat(),
                    ),
                );
            }
            let all = layout::held_names(&sst.schema, &Projection::all(&sst.schema));
            match hit {
                Some(e) => {
                    report.hits += 1;
                    found.push((i, e));
                }
                None => missing
                    .entries
                    .push((i, id, (names != all).then_some(names))),
            }
        }
        for (i, e) in found {
            table.attach_feed(i, Arc::new(e))?;
        }
        Ok((report, missing))
    }

    /// Builds the entries `missing` of [`Cache::plan_columns`] (one pass over each SSTable, `threads`
    /// at a time, before any scan) and attaches them.
    pub fn build_missing(
        &self,
        table: &mut MergeTable,
        missing: Missing,
        threads: usize,
        progress: Option<&BuildProgress>,
    ) -> Result<AttachReport> {
        let started = Instant::now();
        let mut report = AttachReport::default();
        let missing = missing.entries;
        if missing.is_empty() {
            return Ok(report);
        }
        if let Some(p) = progress {
            p.total.fetch_add(missing.len(), Ordering::Relaxed);
            let bytes: u64 = missing
                .iter()
                .map(|(i, ..)| table.sstables()[*i].data.file_len())
                .sum();
            p.bytes_total.fetch_add(bytes, Ordering::Relaxed);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(|e| Error::Cache {
                path: self.dir.clone(),
                what: format!("no threads to build extracts with: {e}"),
            })?;
        let results = Mutex::new(Vec::new());
        pool.install(|| {
            missing.par_iter().for_each(|(i, id, columns)| {
                let sst = &table.sstables()[*i];
                let r = self.build(sst, id, columns.clone());
                if let Some(p) = progress {
                    p.done.fetch_add(1, Ordering::Relaxed);
                    p.bytes_done
                        .fetch_add(sst.data.file_len(), Ordering::Relaxed);
                }
                if let Ok(mut v) = results.lock() {
                    v.push((*i, r));
                }
            })
        });
        let results = results.into_inner().unwrap_or_default();
        let mut built = Vec::new();
        for (i, r) in results {
            match r {
                Ok((e, bytes)) => {
                    report.built += 1;
                    report.bytes_written += bytes;
                    built.push((i, e));
                }
                // The SSTable itself is damaged: the run must fail as it would without the cache.
                Err(Error::Reader(e)) => return Err(Error::Reader(e)),
                Err(e) => {
                    tracing::warn!("not caching: {e}");
                    report.skipped.push(e.to_string());
                }
            }
        }
        report.build_time = started.elapsed();
        for (i, e) in built {
            table.attach_feed(i, Arc::new(e))?;
        }
        Ok(report)
    }

    /// Every file under the cache: (table directory name, path, bytes, mtime, is temporary).
    fn files(&self) -> Result<Vec<CacheFile>> {
        let mut out = Vec::new();
        let rd = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        for table in rd.flatten() {
            let tpath = table.path();
            if !tpath.is_dir() {
                continue;
            }
            let tname = table.file_name().to_string_lossy().into_owned();
            let Ok(entries) = std::fs::read_dir(&tpath) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let temp = is_temp(&name);
                if !temp && !name.ends_with(".arrow") {
                    continue;
                }
                let Ok(meta) = e.metadata() else { continue };
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((tname.clone(), e.path(), meta.len(), mtime, temp));
            }
        }
        Ok(out)
    }

    /// Entries and bytes, in all and per table.
    pub fn stats(&self) -> Result<CacheStats> {
        let mut s = CacheStats::default();
        for (table, _, bytes, _, temp) in self.files()? {
            if temp {
                s.temporary += 1;
                continue;
            }
            s.entries += 1;
            s.bytes += bytes;
            match s.tables.iter_mut().find(|t| t.0 == table) {
                Some(t) => {
                    t.1 += 1;
                    t.2 += bytes;
                }
                None => s.tables.push((table, 1, bytes)),
            }
        }
        s.tables.sort();
        Ok(s)
    }

    /// Removes the entries of SSTables not in `keep` (when given: every SSTable still on disk, e.g.
    /// found under the data directories), temporary files older than an hour, and then the least recently
    /// used entries until at most `max_bytes` are left.
    pub fn gc(&self, keep: Option<&[Identity]>, max_bytes: Option<u64>) -> Result<GcReport> {
        let kept: Option<Vec<PathBuf>> =
            keep.map(|ids| ids.iter().map(|i| self.entry_path(i)).collect());
        let mut report = GcReport::default();
        let now = SystemTime::now();
        let mut live = Vec::new();
        for (_, path, bytes, mtime, temp) in self.files()? {
            let remove = if temp {
                now.duration_since(mtime).is_ok_and(|age| age > STALE_TEMP)
            } else {
                kept.as_ref().is_some_and(|k| !k.contains(&path))
            };
            if !remove {
                if !temp {
                    live.push((mtime, path, bytes));
                }
                continue;
            }
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            report.bytes_freed += bytes;
            if temp {
                report.temporary += 1;
            } else {
                report.gone += 1;
            }
        }
        live.sort();
        let mut total: u64 = live.iter().map(|l| l.2).sum();
        if let Some(cap) = max_bytes {
            for (_, path, bytes) in &live {
                if total <= cap {
                    break;
                }
                std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
                total -= bytes;
                report.evicted += 1;
                report.bytes_freed += bytes;
            }
        }
        report.bytes_left = total;
        // Table directories left empty go too.
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for t in rd.flatten() {
                let _ = std::fs::remove_dir(t.path());
            }
        }
        Ok(report)
    }
}
