//! One export: the table's ring cut into token ranges, each range's merged scan written to its own
//! files by a worker of a rayon pool (`part-RRRRR-FFFF.<ext>`, range then file number, so file names sort
//! in ring order), in record batches of bounded rows and bytes; files are published (renamed) only once
//! every range succeeded, replacing the parts of an earlier export.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use sstable_reader::{plan_ranges, MergeTable, ScanCounters, TokenRange};

use crate::error::{Error, Result};
use crate::mapping::Uuids;
use crate::outdir::OutDir;
use crate::part::{ClosedPart, Format, PartFile};
use crate::rows::{Batch, Plan};

/// A batch is written once it holds this many value bytes, whatever its row count.
const BATCH_BYTES: usize = 64 << 20;

/// What to export and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExportOptions {
    pub format: Format,
    pub out: PathBuf,
    /// The paths the table was read from (the output directory must be outside them).
    pub data: Vec<PathBuf>,
    /// Only these columns (all when empty), in `SELECT *` order.
    pub columns: Vec<String>,
    /// TTLs are judged at this time (seconds since the epoch).
    pub now: i64,
    pub threads: usize,
    /// A range's file ends at the first partition boundary at or past this many rows, and another begins.
    pub rows_per_file: u64,
    /// Rows per record batch (and Parquet page flush); a Parquet row group holds four batches.
    pub batch_rows: usize,
    /// Replace the files of an earlier export in `out`.
    pub overwrite: bool,
    /// Uuids as text (default) or 16 bytes.
    pub uuids: Uuids,
}

impl ExportOptions {
    pub fn new(format: Format, out: PathBuf, data: Vec<PathBuf>, now: i64) -> ExportOptions {
        ExportOptions {
            format,
            out,
            data,
            columns: Vec::new(),
            now,
            threads: 1,
            rows_per_file: 10_000_000,
            batch_rows: 65_536,
            overwrite: false,
            uuids: Uuids::Text,
        }
    }
}

/// Where an export is, for progress displays.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportState {
    pub disk_bytes_read: u64,
    pub disk_bytes_total: u64,
    pub rows_written: u64,
    pub elapsed: Duration,
}

/// What an export wrote.
#[derive(Debug, Default)]
pub struct ExportReport {
    /// The files, in ring order.
    pub files: Vec<PathBuf>,
    pub rows: u64,
    pub bytes: u64,
    pub ranges: usize,
    /// Rows not exported because a TTL had expired at `now`.
    pub rows_expired: u64,
    /// Zero-length values of non-text types, exported as null.
    pub empty_values: u64,
    /// Files of an earlier export removed.
    pub replaced: usize,
}

struct RangeDone {
    parts: Vec<ClosedPart>,
    rows_expired: u64,
    empties: u64,
}

/// Exports the merged live rows of `table` (named `name` in errors); `progress` is called about five
/// times a second from another thread while the workers run.
pub fn export_table(
    table: &MergeTable,
    name: &str,
    options: &ExportOptions,
    progress: Option<&(dyn Fn(&ExportState) + Sync)>,
) -> Result<ExportReport> {
    let plan = Plan::new(table.schema(), name, &options.columns, options.uuids)?;
    let out = OutDir::prepare(
        &options.out,
        &options.data,
        options.format,
        options.overwrite,
    )?;
    let threads = options.threads.max(1);
    // One range per thread would leave a thread idle behind the biggest range; four balance well.
    let target = if threads == 1 { 1 } else { threads * 4 };
    let ranges = plan_ranges(&[table], target)?;
    let disk_bytes_total = table
        .sstables()
        .iter()
        .map(|s| std::fs::metadata(s.data_path()).map_or(0, |m| m.len()))
        .sum();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Threads {
            threads,
            what: e.to_string(),
        })?;
    let counters = ScanCounters::default();
    let rows_written = AtomicU64::new(0);
    let (failed, finished) = (AtomicBool::new(false), AtomicBool::new(false));
    let started = Instant::now();
    let work = |r: &TokenRange| {
        let done = export_range(
            table,
            &plan,
            &out,
            options,
            r,
            &counters,
            &rows_written,
            &failed,
        );
        if done.is_err() {
            failed.store(true, Ordering::Relaxed);
        }
        done
    };
    let results: Vec<Result<RangeDone>> = std::thread::scope(|s| {
        if let Some(progress) = progress {
            let state = || ExportState {
                disk_bytes_read: counters.get().0,
                disk_bytes_total,
                rows_written: rows_written.load(Ordering::Relaxed),
                elapsed: started.elapsed(),
            };
            let finished = &finished;
            s.spawn(move || {
                while !finished.load(Ordering::Relaxed) {
                    progress(&state());
                    std::thread::sleep(Duration::from_millis(200));
                }
                progress(&state());
            });
        }
        let results = pool.install(|| ranges.par_iter().map(work).collect());
        finished.store(true, Ordering::Relaxed);
        results
    });
    let mut report = ExportReport {
        ranges: ranges.len(),
        ..ExportReport::default()
    };
    let mut parts = Vec::new();
    for r in results {
        let r = r?;
        report.rows_expired += r.rows_expired;
        report.empty_values += r.empties;
        parts.extend(r.parts);
    }
    if parts.is_empty() {
        // An empty table still gets one (empty) file, so readers see its schema.
        let empty = PartFile::create(
            &out.dir,
            &part_name(0, 0, options.format),
            options.format,
            plan.schema(),
            1,
        )?;
        parts.push(empty.close()?);
    }
    for old in &out.replaced {
        std::fs::remove_file(old).map_err(|e| Error::io(old, e))?;
    }
    report.replaced = out.replaced.len();
    for p in parts {
        report.rows += p.rows;
        report.bytes += p.bytes;
        report.files.push(p.publish()?);
    }
    Ok(report)
}

fn part_name(range: usize, file: usize, format: Format) -> String {
    format!("part-{range:05}-{file:04}.{}", format.extension())
}

/// Scans one token range into its files (left under their temporary names).
#[allow(clippy::too_many_arguments)]
fn export_range(
    table: &MergeTable,
    plan: &Plan,
    out: &OutDir,
    options: &ExportOptions,
    range: &TokenRange,
    counters: &ScanCounters,
    rows_written: &AtomicU64,
    failed: &AtomicBool,
) -> Result<RangeDone> {
    let spans = range.spans.first().map(Vec::as_slice).unwrap_or(&[]);
    let mut scan = table
        .scan_spans(&plan.scan_columns(), options.now, spans)?
        .report_to(counters);
    let mut batch = plan.batch();
    let mut file: Option<PartFile> = None;
    let mut done = RangeDone {
        parts: Vec::new(),
        rows_expired: 0,
        empties: 0,
    };
    let batch_rows = options.batch_rows.max(1);
    let flush = |batch: &mut Batch<'_>,
                 file: &mut Option<PartFile>,
                 parts: &mut Vec<ClosedPart>|
     -> Result<()> {
        if batch.rows() == 0 {
            return Ok(());
        }
        let n = batch.rows() as u64;
        let records = batch.finish().map_err(|source| Error::Arrow {
            path: out.dir.clone(),
            source,
        })?;
        let part = match file {
            Some(f) => f,
            None => {
                let name = part_name(range.index, parts.len(), options.format);
                file.insert(PartFile::create(
                    &out.dir,
                    &name,
                    options.format,
                    plan.schema(),
                    batch_rows * 4,
                )?)
            }
        };
        part.write(&records)?;
        rows_written.fetch_add(n, Ordering::Relaxed);
        if part.rows() >= options.rows_per_file {
            if let Some(f) = file.take() {
                parts.push(f.close()?);
            }
        }
        Ok(())
    };
    while let Some(p) = scan.next_partition()? {
        batch.add_partition(p)?;
        // A file ends at the first partition boundary at or past `rows_per_file` rows.
        let in_file = file.as_ref().map_or(0, PartFile::rows);
        let room = options.rows_per_file.saturating_sub(in_file).max(1);
        if batch.rows() as u64 >= room.min(batch_rows as u64) || batch.bytes() >= BATCH_BYTES {
            if failed.load(Ordering::Relaxed) {
                // Another range failed: the export is lost, stop early.
                return Ok(done);
            }
            flush(&mut batch, &mut file, &mut done.parts)?;
        }
    }
    flush(&mut batch, &mut file, &mut done.parts)?;
    if let Some(f) = file.take() {
        done.parts.push(f.close()?);
    }
    done.rows_expired = scan.stats().rows_expired;
    done.empties = batch.empties;
    Ok(done)
}
