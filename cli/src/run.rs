//! `funnel run`: the batch job (`funnelizer::Job`) from the command line — its arguments in, its
//! summary out (actors per level of each funnel on stdout; what was read, how and how fast on stderr).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use funnelizer::{FunnelSet, Job, JobOptions, RunReport, ShuffleStats, Timelines};

use crate::cache::CacheArg;
use crate::common::{parse_now, SnapshotArg};
use crate::progress::Bars;

/// Compute every funnel over all history in SSTable snapshots and publish the facts.
///
/// Reads the tables named by the `[source]` of the funnels file (default tracking.events and
/// tracking.conversions) under every --data path — all nodes' copies are merged, replicas collapse,
/// and deletions and TTLs apply as Cassandra would answer at --now. Publishes one run atomically:
/// readers see the previous results until the new ones are complete.
///
/// Tables whose partition key holds the app and actor columns (like tracking.events) are streamed
/// one actor at a time in ring order. Any other layout (e.g. partitioned by day, the actor a
/// regular column) is shuffled: rows are hash-partitioned by (app, actor) into buckets, spilled to
/// --spill-dir once the buckets outgrow --memory-budget, then each bucket is sorted and evaluated.
/// The run picks the path itself and its summary says which one it took.
///
/// Examples:
///   funnel run --data /backups/node1 /backups/node2 --snapshot nightly --funnels funnels.toml \
///       --facts sqlite:facts.db
///   funnel run --data data/tracking --funnels funnels.toml --facts sqlite:facts.db \
///       --threads 8 --report report.html
///   funnel run --data data --funnels by_day.toml --memory-budget 2GiB --spill-dir /scratch
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, after_long_help = EXIT_CODES)]
pub struct Args {
    /// Data.db files, table, snapshot, keyspace, data or node directories.
    #[arg(long, required_unless_present = "finalize", num_args = 1.., value_name = "PATH")]
    pub data: Vec<PathBuf>,
    /// Funnel definitions (TOML; the format and semantics: docs/FUNNELS.md).
    #[arg(long, value_name = "FILE")]
    pub funnels: PathBuf,
    #[command(flatten)]
    pub facts: crate::common::DefaultFactsArg,
    /// Judge TTLs at this time and set the watermark to its day (RFC 3339, date or seconds; default: now).
    #[arg(long, value_name = "TS")]
    pub now: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub snapshot: SnapshotArg,
    #[command(flatten)]
    pub cache: CacheArg,
    #[command(flatten)]
    pub shard: crate::shard::ShardArg,
    /// CREATE TABLE statements (default: schema.cql next to the files).
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Also write the HTML report of this run.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Ring ranges per thread (more: better balance and progress, more seeks).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub ranges_per_thread: usize,
    /// Memory for shuffled rows before buckets spill to disk (tables not partitioned by actor only):
    /// bytes or a number with a unit, e.g. 512MiB, 2GiB, 500MB.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub memory_budget: u64,
    /// Where the shuffle's temporary spill directory is created (deleted after the run; default: the
    /// system temp dir, $TMPDIR).
    #[arg(long, value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The exit codes of `funnel run`: those of `funnel schedule` (`scheduler::Outcome`) that a run can end
/// with, so the scheduler can classify a failed child by its code (kept equal by a test).
const EXIT_CODES: &str = "\
Exit codes:
   0  ran and published
   5  config or funnel definition error
   6  input (SSTable) error
   7  fact store (or scheduler state) error
   9  run failed with another error (see funnel status)
   2  usage error (bad command line)";

/// Runs the job and prints its summary. Its errors decide the exit code (`main::exit_code`).
pub fn run(args: Args) -> Result<ExitCode> {
    if let Some(name) = &args.shard.finalize {
        return crate::shard::finalize(&args.funnels, &args.facts.url, name);
    }
    let set = FunnelSet::load(&args.funnels).map_err(funnelizer::Error::from)?;
    let mut options = JobOptions::new(args.data.clone(), parse_now(args.now.as_deref())?);
    options.snapshot = args.snapshot.snapshot.clone();
    options.schema = args.schema.clone();
    options.threads = args.threads;
    options.ranges_per_thread = args.ranges_per_thread;
    options.memory_budget = args.memory_budget;
    options.spill_dir = args.spill_dir.clone();
    options.cache = args.cache.cache.clone();
    options.shard = args.shard.spec()?;
    let store = args.facts.open()?;
    let mut job = Job::new(set, options);
    if let Some(bars) = Bars::for_stderr(args.quiet) {
        job = job.with_progress(bars);
    }
    let report = job.run(&store)?;
    if crate::shard::published(report.shard.as_ref()) {
        crate::levels::print_summary(job.funnels(), &report);
    }
    crate::shard::print(report.shard.as_ref());
    eprintln!("{}", run_line(&report));
    eprintln!("{}", timelines_line(&report));
    crate::cache::print_attach(report.cache.as_ref());
    if let Some(path) = &args.report {
        let html =
            funnelizer::report::render(&report.published.facts, &report.inputs.levels, "Funnels");
        std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `--memory-budget`: bytes or a number with a unit.
fn parse_size(s: &str) -> Result<u64, String> {
    funnelizer::parse_bytes(s).map_err(|e| e.to_string())
}

/// What was read, how much and how fast.
fn run_line(r: &RunReport) -> String {
    let secs = r.timings.scan.as_secs_f64().max(1e-9);
    format!(
        "run {}: {} actors, {} timeline rows ({} row versions read, {} partitions) from {} + {} SSTables, {:.1} MB on disk / {:.1} MB uncompressed, {} ranges on {} threads: open {:.2}s, scan+funnels {:.2}s ({:.2} M rows/s, {:.1} MB/s on disk), total {:.2}s",
        r.run,
        r.actors,
        r.timeline_rows,
        r.rows_read,
        r.partitions,
        r.events_sstables,
        r.conversions_sstables,
        r.bytes_on_disk as f64 / 1e6,
        r.bytes_uncompressed as f64 / 1e6,
        r.ranges,
        r.threads,
        r.timings.open.as_secs_f64(),
        secs,
        r.rows_read as f64 / secs / 1e6,
        r.disk_bytes_read as f64 / secs / 1e6,
        r.timings.total.as_secs_f64()
    )
}

/// The summary line that says whether the run streamed or shuffled (and whether the shuffle spilled).
fn timelines_line(r: &RunReport) -> String {
    match &r.timelines {
        Timelines::Shuffled(s) => shuffle_summary(s, r.memory_budget),
        _ => "streamed: both tables are partitioned by (app, actor), no shuffle".into(),
    }
}

fn shuffle_summary(s: &ShuffleStats, budget: u64) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    let spill = if s.spilled_bytes > 0 {
        format!(
            "spilled {:.1} MB in {} writes to {} bucket files",
            mb(s.spilled_bytes),
            s.spill_writes,
            s.spilled_buckets
        )
    } else {
        "no spill".into()
    };
    format!(
        "shuffled: {} rows ({:.1} MB) by (app, actor) into {} buckets, memory budget {:.1} MB, {spill}; partition {:.2}s ({:.2} M rows/s), sort+funnels {:.2}s",
        s.rows,
        mb(s.bytes),
        s.buckets,
        mb(budget),
        s.partition_time.as_secs_f64(),
        s.rows as f64 / s.partition_time.as_secs_f64().max(1e-9) / 1e6,
        s.evaluate_time.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use scheduler::{Outcome, RUN_OUTCOMES};

    #[test]
    fn the_summary_says_whether_the_run_shuffled_and_spilled() {
        let mut s = ShuffleStats {
            rows: 10,
            buckets: 8,
            ..Default::default()
        };
        let line = shuffle_summary(&s, 1 << 30);
        assert!(
            line.starts_with("shuffled: 10 rows") && line.contains("no spill"),
            "{line}"
        );
        s.spilled_bytes = 2_000_000;
        s.spill_writes = 3;
        s.spilled_buckets = 2;
        let line = shuffle_summary(&s, 1 << 30);
        assert!(
            line.contains("spilled 2.0 MB in 3 writes to 2 bucket files"),
            "{line}"
        );
    }

    #[test]
    fn help_lists_the_scheduler_codes_a_run_exits_with() {
        let lib = scheduler::exit_code_help();
        for o in RUN_OUTCOMES {
            let line = lib
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{} ", o.exit_code())))
                .unwrap();
            assert!(EXIT_CODES.contains(line.trim_start()), "missing {line:?}");
            assert_eq!(Outcome::from_run_exit_code(o.exit_code().into()), Some(o));
        }
        assert_eq!(
            EXIT_CODES.lines().filter(|l| l.starts_with("   ")).count(),
            RUN_OUTCOMES.len() + 1
        );
    }
}
