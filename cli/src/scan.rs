//! `funnel scan`: time a merged scan of one table (or a decompress-only pass over the same chunks) on N
//! threads and print one JSON line — what the benchmarks in `bench/scan.sh` compare.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Result};
use sstable_reader::{
    discover, for_each_ordered, plan_ranges, Columns, MergeStats, ReadOptions, Selection,
};

use crate::common::{parse_now, SnapshotArg};

/// Scan one table merged (every SSTable and node) and report rows/s — or only decompress its
/// chunks.
///
/// Example:
///   funnel scan /data/node1 /data/node2 --table tracking.events --columns name,props --threads 2
///
/// Prints one JSON object: mode, threads, sstables, ranges, live_rows, row_versions_read,
/// partitions, fast_path_partitions (held by one SSTable, plain rows only: merged without
/// staging), uncompressed_bytes, seconds, rows_per_s, uncompressed_mb_per_s and checksum
/// (of the live cells' value lengths).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Data.db files, table, snapshot, keyspace, data or node directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The table (`keyspace.table`).
    #[arg(long, value_name = "KS.TABLE")]
    table: String,
    #[command(flatten)]
    snapshot: SnapshotArg,
    #[command(flatten)]
    cache: crate::cache::CacheArg,
    /// Decode only these columns (default: all).
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Judge TTLs at this time (default: now).
    #[arg(long, value_name = "TS")]
    now: Option<String>,
    /// Only read, verify and decompress the chunks of the same ranges (the floor of any scan).
    #[arg(long)]
    decompress_only: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let now = parse_now(args.now.as_deref())?;
    let tables = discover(
        &args.paths,
        &Selection {
            tables: vec![args.table.clone()],
            snapshot: args.snapshot.snapshot.clone(),
        },
    )?
    .tables;
    if tables.len() != 1 {
        bail!("{} tables match {}", tables.len(), args.table);
    }
    let mut table = tables[0].open(None, ReadOptions::default())?;
    args.cache.attach(&mut table, &args.paths, args.threads)?;
    let ranges = plan_ranges(&[&table], args.threads.max(1) * 8)?;
    let columns = if args.columns.is_empty() {
        Columns::All
    } else {
        Columns::Named(args.columns.clone())
    };
    let uncompressed: u64 = table.sstables().iter().map(|s| s.data.len()).sum();
    let started = Instant::now();
    let (mut stats, mut checksum) = (MergeStats::default(), 0u64);
    for_each_ordered(
        &ranges,
        args.threads,
        |r| {
            if args.decompress_only {
                for (sst, span) in table.sstables().iter().zip(&r.spans[0]) {
                    let Some((start, end)) = *span else { continue };
                    let mut reader = sst.data.reader();
                    reader.seek(start);
                    let chunk = sst
                        .data
                        .compression()
                        .map_or(1 << 16, |c| c.chunk_length as u64);
                    let mut pos = start;
                    while pos < end {
                        let next = (pos + chunk).min(end);
                        reader.ensure(next)?;
                        pos = next;
                        reader.release(pos);
                    }
                }
                return Ok((MergeStats::default(), 0));
            }
            let mut scan = table.scan_spans(&columns, now, &r.spans[0])?;
            let mut sum = 0u64;
            while let Some(p) = scan.next_partition()? {
                for row in p.rows() {
                    for c in row.cells() {
                        sum = sum.wrapping_add(c.value.len() as u64);
                    }
                }
            }
            Ok((scan.stats(), sum))
        },
        |_, (s, sum)| {
            stats += s;
            checksum = checksum.wrapping_add(sum);
            Ok(true)
        },
    )?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "mode": if args.decompress_only { "decompress" } else if args.columns.is_empty() { "merged_full" } else { "merged_projection" },
            "threads": args.threads,
            "sstables": table.sstables().len(),
            "ranges": ranges.len(),
            "live_rows": stats.rows_live,
            "row_versions_read": stats.rows_read,
            "partitions": stats.partitions,
            "fast_path_partitions": stats.direct_partitions,
            "uncompressed_bytes": uncompressed,
            "seconds": secs,
            "rows_per_s": stats.rows_read as f64 / secs,
            "uncompressed_mb_per_s": uncompressed as f64 / 1e6 / secs,
            "checksum": checksum,
        })
    );
    Ok(ExitCode::SUCCESS)
}
