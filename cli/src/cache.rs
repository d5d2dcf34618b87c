//! The extract cache from the command line: `--cache DIR` (shared by `run`, `scan` and `dump`), the line
//! a run prints about it, and `funnel cache stats|gc`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use extract::{AttachReport, Cache};
use sstable_reader::MergeTable;

/// `--cache DIR`, shared by the commands that read SSTables.
#[derive(Debug, Clone, clap::Args)]
pub struct CacheArg {
    /// Keep columnar extracts of the SSTables in DIR (outside the data directories): SSTables already
    /// extracted are read from it, the others are extracted first, so reruns decode only new SSTables.
    /// Results are the same with and without it.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
}

impl CacheArg {
    /// Reads `table`'s SSTables from the cache (building what is missing), when `--cache` is given.
    pub fn attach(&self, table: &mut MergeTable, data: &[PathBuf], threads: usize) -> Result<()> {
        if let Some(dir) = &self.cache {
            let report = Cache::open(dir, data)?.attach(table, threads, None)?;
            eprintln!("{}", attach_line(&report));
        }
        Ok(())
    }
}

/// What the cache did in a run.
pub fn attach_line(r: &AttachReport) -> String {
    let mut line = format!(
        "cache: {} SSTables read from extracts, {} extracted ({:.1} MB in {:.2}s)",
        r.hits,
        r.built,
        r.bytes_written as f64 / 1e6,
        r.build_time.as_secs_f64()
    );
    if r.dropped > 0 {
        line.push_str(&format!(
            ", {} damaged extracts dropped and rebuilt",
            r.dropped
        ));
    }
    if r.widened > 0 {
        line.push_str(&format!(
            ", {} extracts rebuilt to hold more columns",
            r.widened
        ));
    }
    for s in &r.skipped {
        line.push_str(&format!("; read from Data.db instead: {s}"));
    }
    line
}

/// Prints the cache line of a run that used one.
pub fn print_attach(r: Option<&AttachReport>) {
    if let Some(r) = r {
        eprintln!("{}", attach_line(r));
    }
}

/// Look after an extract cache directory (`--cache` of run, scan and dump).
///
/// Examples:
///   funnel cache stats --cache ~/.cache/funnel
///   funnel cache gc --cache ~/.cache/funnel --data /var/lib/cassandra/data --max-size 20GiB
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Entries and bytes, in all and per table.
    Stats {
        #[arg(long, value_name = "DIR", required = true)]
        cache: PathBuf,
    },
    /// Remove entries of SSTables no longer under --data (every copy: live, snapshots, backups),
    /// temporary files of crashed writers, then the least recently used entries beyond --max-size.
    Gc {
        #[arg(long, value_name = "DIR", required = true)]
        cache: PathBuf,
        /// Where the SSTables still in use are (without it, only --max-size and stale temporary
        /// files apply).
        #[arg(long, num_args = 1.., value_name = "PATH")]
        data: Vec<PathBuf>,
        /// Size cap: bytes or a number with a unit (512MiB, 20GiB).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
    },
}

fn parse_size(s: &str) -> Result<u64, String> {
    funnelizer::parse_bytes(s).map_err(|e| e.to_string())
}

/// Every Data.db under `paths` (recursively: snapshots and backups included).
fn data_files(paths: &[PathBuf], out: &mut Vec<PathBuf>) -> Result<()> {
    for p in paths {
        if p.is_dir() {
            let mut children = Vec::new();
            for e in std::fs::read_dir(p).with_context(|| format!("listing {}", p.display()))? {
                children.push(
                    e.with_context(|| format!("listing {}", p.display()))?
                        .path(),
                );
            }
            data_files(&children, out)?;
        } else if p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with("-Data.db"))
        {
            out.push(p.clone());
        }
    }
    Ok(())
}

pub fn run(args: Args) -> Result<ExitCode> {
    match args.command {
        Command::Stats { cache } => {
            let s = Cache::open(&cache, &[])?.stats()?;
            println!(
                "{}: {} entries, {:.1} MB ({} temporary files)",
                cache.display(),
                s.entries,
                s.bytes as f64 / 1e6,
                s.temporary
            );
            for (table, n, bytes) in &s.tables {
                println!("  {table}: {n} entries, {:.1} MB", *bytes as f64 / 1e6);
            }
        }
        Command::Gc {
            cache,
            data,
            max_size,
        } => {
            let c = Cache::open(&cache, &data)?;
            let keep = if data.is_empty() {
                None
            } else {
                let mut files = Vec::new();
                data_files(&data, &mut files)?;
                Some(identities(&files)?)
            };
            let r = c.gc(keep.as_deref(), max_size)?;
            println!(
                "{}: removed {} entries of SSTables gone, {} beyond the size cap, {} stale temporary files ({:.1} MB); {:.1} MB left",
                cache.display(), r.gone, r.evicted, r.temporary, r.bytes_freed as f64 / 1e6, r.bytes_left as f64 / 1e6
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn identities(files: &[PathBuf]) -> Result<Vec<extract::Identity>> {
    files
        .iter()
        .map(|f: &PathBuf| {
            extract::identity_at(Path::new(f)).with_context(|| format!("{}", f.display()))
        })
        .collect()
}
