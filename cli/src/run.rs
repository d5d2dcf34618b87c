//! `funnel run`: the batch job. Finds the events and conversions tables under `--data` (any mix of
//! snapshot, table, keyspace, data or node directories), merges each across all its SSTables and replicas,
//! joins them per actor in ring order, evaluates every funnel over all history on disk in parallel over
//! ranges of the ring, and publishes the `funnel_steps` facts atomically with the watermarks. Tables not
//! partitioned by (app, actor) go through the hash shuffle of `funnelizer::shuffle` instead (bounded by
//! `--memory-budget`, spilling to `--spill-dir`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use funnelizer::schedule::config::parse_bytes;
use funnelizer::schedule::Outcome;
use funnelizer::source::{Buffers, SstableSource};
use funnelizer::FunnelSet;
use funnelizer::{ShuffleError, ShuffleOptions, ShuffleStats};
use sstable_reader::{discover, CqlSchema, ReadOptions, ScanCounters, Selection, Snapshot};

use crate::common::parse_now;
use crate::progress::with_progress;

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
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    pub data: Vec<PathBuf>,
    /// Funnel definitions (TOML, see FUNNELS.md).
    #[arg(long, value_name = "FILE")]
    pub funnels: PathBuf,
    /// Fact store URL.
    #[arg(
        long,
        env = "FUNNEL_FACTS",
        value_name = "URL",
        default_value = "sqlite:facts.db"
    )]
    pub facts: String,
    /// Judge TTLs at this time and set the watermark to its day (RFC 3339, date or seconds; default: now).
    #[arg(long, value_name = "TS")]
    pub now: Option<String>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Only this snapshot tag of each table directory.
    #[arg(long, value_name = "TAG")]
    pub snapshot: Option<String>,
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

/// The exit codes of `funnel run`: those of `funnel schedule` (`funnelizer::schedule::Outcome`) that a run
/// can end with, so the scheduler can classify a failed child by its code (kept equal by a test).
const EXIT_CODES: &str = "\
Exit codes:
   0  ran and published
   5  config or funnel definition error
   6  input (SSTable) error
   7  fact store (or scheduler state) error
   9  run failed with another error (see funnel status)
   2  usage error (bad command line)";

/// A failed run: what kind of failure (its exit code) and the error.
struct Failure(Outcome, anyhow::Error);

/// Tags errors of one phase of the run with its outcome.
trait Kind<T> {
    fn kind(self, outcome: Outcome) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> Kind<T> for Result<T, E> {
    fn kind(self, outcome: Outcome) -> Result<T, Failure> {
        self.map_err(|e| Failure(outcome, e.into()))
    }
}

/// Runs, and on failure prints the error and exits with the code of its kind (see [`EXIT_CODES`]).
pub fn run(args: Args) -> Result<ExitCode> {
    match run_inner(args) {
        Ok(code) => Ok(code),
        Err(Failure(outcome, err)) => {
            eprintln!("error: {err:#}");
            Ok(ExitCode::from(outcome.exit_code()))
        }
    }
}

fn run_inner(args: Args) -> Result<ExitCode, Failure> {
    use Outcome::{ConfigError, Failed, InputError, StoreError};
    let started = Instant::now();
    let set = FunnelSet::load(&args.funnels)
        .map_err(anyhow::Error::from)
        .kind(ConfigError)?;
    let now_s = parse_now(args.now.as_deref()).kind(ConfigError)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let schema = match &args.schema {
        Some(p) => Some(CqlSchema::read(p).kind(ConfigError)?),
        None => None,
    };
    let found = discover(
        &args.data,
        &Selection {
            tables: vec![
                set.source.events.table.clone(),
                set.source.conversions.table.clone(),
            ],
            snapshot: Snapshot::from_tag(args.snapshot.clone()),
        },
    )
    .kind(InputError)?;
    let Some(events) = found.table(&set.source.events.table) else {
        let err = anyhow!(
            "no SSTables of {} under {} (found: {})",
            set.source.events.table,
            args.data
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            found
                .tables
                .iter()
                .map(|t| t.qualified())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Err(Failure(InputError, err));
    };
    let conversions = found.table(&set.source.conversions.table);
    let options = ReadOptions::default();
    let ev = events
        .open(schema.as_ref(), options)
        .with_context(|| format!("opening {}", events.qualified()))
        .kind(InputError)?;
    let cv = match conversions {
        Some(c) => Some(
            c.open(schema.as_ref(), options)
                .with_context(|| format!("opening {}", c.qualified()))
                .kind(InputError)?,
        ),
        None => None,
    };
    let source = SstableSource::new(&set, ev, cv, now_s).kind(InputError)?;
    let target_ranges = threads * args.ranges_per_thread.max(1);
    let (uncompressed, on_disk) = source.sizes();
    let (n_ev, n_cv) = source.sstable_counts();
    let opened = started.elapsed();

    let counters = ScanCounters::default();
    let scan_started = Instant::now();
    let (eval, n_ranges, shuffled) = if source.needs_shuffle() {
        let opts = ShuffleOptions {
            memory_budget: args.memory_budget,
            spill_dir: args.spill_dir.clone(),
            threads,
            ranges: target_ranges,
        };
        let buckets = funnelizer::BucketProgress::default();
        let (eval, stats) = with_progress(on_disk, &counters, Some(&buckets), args.quiet, || {
            funnelizer::shuffle::run(&set, &source, &opts, Some(&counters), Some(&buckets))
        })
        .map_err(|e| {
            // Unreadable SSTables are input errors; the spill directory or the thread pool are not.
            let outcome = match e {
                ShuffleError::Source(_) => InputError,
                _ => Failed,
            };
            Failure(outcome, e.into())
        })?;
        (eval, stats.ranges, Some(stats))
    } else {
        let ranges = source.plan(target_ranges).kind(InputError)?;
        let eval = with_progress(on_disk, &counters, None, args.quiet, || {
            funnelizer::evaluate_chunks(&set, ranges.clone(), Some(threads), |range, worker| {
                let mut bufs = Buffers::default();
                source.scan_range(&range, worker, &mut bufs, Some(&counters))
            })
        })
        .map_err(|e| {
            // A failing range is an SSTable that could not be read; anything else (the thread pool) is not.
            let outcome = match e {
                funnelizer::BatchError::Source(_) => InputError,
                _ => Failed,
            };
            Failure(outcome, e.into())
        })?;
        (eval, ranges.len(), None)
    };
    let scanned = scan_started.elapsed();

    let store = facts::open_store(&args.facts)
        .with_context(|| format!("opening {}", args.facts))
        .kind(StoreError)?;
    let apps = eval.aggregate.apps();
    let inputs = serde_json::json!({
        "data": args.data,
        "events": events.files,
        "conversions": conversions.map(|c| c.files.clone()).unwrap_or_default(),
        "now_s": now_s,
        "apps": apps,
    });
    let published = funnelizer::publish(&store, &set, &eval.aggregate, now_s * 1000, inputs)
        .map_err(|e| {
            let outcome = match e {
                funnelizer::BatchError::Store(_) => StoreError,
                _ => Failed,
            };
            Failure(outcome, e.into())
        })?;
    let (disk, rows_read, partitions) = counters.get();

    print_summary(&set, &published.facts);
    let secs = scanned.as_secs_f64().max(1e-9);
    eprintln!(
        "run {}: {} actors, {} timeline rows ({} row versions read, {} partitions) from {} + {} SSTables, {:.1} MB on disk / {:.1} MB uncompressed, {} ranges on {} threads: open {:.2}s, scan+funnels {:.2}s ({:.2} M rows/s, {:.1} MB/s on disk), total {:.2}s",
        published.run,
        eval.actors,
        eval.rows,
        rows_read,
        partitions,
        n_ev,
        n_cv,
        on_disk as f64 / 1e6,
        uncompressed as f64 / 1e6,
        n_ranges,
        threads,
        opened.as_secs_f64(),
        secs,
        rows_read as f64 / secs / 1e6,
        disk as f64 / secs / 1e6,
        started.elapsed().as_secs_f64()
    );
    eprintln!("{}", shuffle_summary(shuffled.as_ref(), args.memory_budget));
    if let Some(path) = &args.report {
        let html = funnelizer::report::render(&published.facts, Some(&set), "Funnels");
        std::fs::write(path, html)
            .with_context(|| format!("writing {}", path.display()))
            .kind(Failed)?;
        eprintln!("report: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `--memory-budget`: [`funnelizer::schedule::config::parse_bytes`] (the schedule config's sizes), with an
/// error message that names the value.
fn parse_size(s: &str) -> Result<u64, String> {
    parse_bytes(s).ok_or_else(|| {
        format!(
            "invalid size {s:?}: use bytes (more than 0) or a number with a unit, e.g. 512MiB, 2GiB or 500MB"
        )
    })
}

/// The summary line that says whether the run streamed or shuffled (and whether the shuffle spilled).
fn shuffle_summary(stats: Option<&ShuffleStats>, budget: u64) -> String {
    let Some(s) = stats else {
        return "streamed: both tables are partitioned by (app, actor), no shuffle".into();
    };
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

/// Actors per step of each funnel (all apps, days and breakdowns), with the conversion from step 1.
fn print_summary(set: &FunnelSet, facts: &[facts::FunnelStepFact]) {
    println!(
        "{:<24} {:>4}  {:<28} {:>12} {:>8}",
        "funnel", "step", "name", "actors", "of step 1"
    );
    for f in &set.funnels {
        let mut per_step = vec![0u64; f.steps.len()];
        for x in facts
            .iter()
            .filter(|x| x.funnel_id == f.id && x.funnel_version == f.version)
        {
            if let Some(s) = (x.step as usize)
                .checked_sub(1)
                .and_then(|i| per_step.get_mut(i))
            {
                *s += x.actors;
            }
        }
        for (i, (step, n)) in f.steps.iter().zip(&per_step).enumerate() {
            let pct = if per_step[0] > 0 {
                format!("{:.1}%", *n as f64 * 100.0 / per_step[0] as f64)
            } else {
                "–".into()
            };
            let id = if i == 0 { f.id.as_str() } else { "" };
            println!(
                "{:<24} {:>4}  {:<28} {:>12} {:>8}",
                id,
                i + 1,
                step.name,
                n,
                pct
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outcomes `funnel run` exits with (besides usage errors).
    const RUN_OUTCOMES: [Outcome; 5] = [
        Outcome::Published,
        Outcome::ConfigError,
        Outcome::InputError,
        Outcome::StoreError,
        Outcome::Failed,
    ];

    #[test]
    fn sizes_take_bytes_and_binary_or_decimal_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2gib"), Ok(2 << 30));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2G"), Ok(2_000_000_000));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("10 KB"), Ok(10_000));
        assert_eq!(parse_size("100B"), Ok(100));
    }

    #[test]
    fn bad_sizes_name_the_value() {
        for bad in ["", "GiB", "12XB", "1.2.3M", "-5M", "99999999999TiB", "1e3"] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        assert!(parse_size("0").unwrap_err().contains("more than 0"));
    }

    #[test]
    fn the_summary_says_whether_the_run_shuffled_and_spilled() {
        assert!(shuffle_summary(None, 1 << 30).starts_with("streamed"));
        let mut s = ShuffleStats {
            rows: 10,
            buckets: 8,
            ..Default::default()
        };
        let line = shuffle_summary(Some(&s), 1 << 30);
        assert!(
            line.starts_with("shuffled: 10 rows") && line.contains("no spill"),
            "{line}"
        );
        s.spilled_bytes = 2_000_000;
        s.spill_writes = 3;
        s.spilled_buckets = 2;
        let line = shuffle_summary(Some(&s), 1 << 30);
        assert!(
            line.contains("spilled 2.0 MB in 3 writes to 2 bucket files"),
            "{line}"
        );
    }

    #[test]
    fn help_lists_the_scheduler_codes_a_run_exits_with() {
        let lib = funnelizer::schedule::exit_code_help();
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
