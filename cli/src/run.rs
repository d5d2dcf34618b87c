//! `funnel run`: the batch job. Finds the events and conversions tables under `--data` (any mix of
//! snapshot, table, keyspace, data or node directories), merges each across all its SSTables and replicas,
//! joins them per actor in ring order, evaluates every funnel over all history on disk in parallel over
//! ranges of the ring, and publishes the `funnel_steps` facts atomically with the watermarks.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use funnelizer::schedule::Outcome;
use funnelizer::source::{Buffers, SstableSource};
use funnelizer::FunnelSet;
use sstable_reader::discovery::{discover, DiscoveredTable, Selection};
use sstable_reader::parallel::ScanCounters;
use sstable_reader::{CqlSchema, ReadOptions};

use crate::common::parse_now;
use crate::progress::with_progress;

/// Compute every funnel over all history in SSTable snapshots and publish the facts.
///
/// Reads the tables named by the `[source]` of the funnels file (default tracking.events and
/// tracking.conversions) under every --data path — all nodes' copies are merged, replicas collapse, and
/// deletions and TTLs apply as Cassandra would answer at --now. Publishes one run atomically: readers see
/// the previous results until the new ones are complete.
///
/// Examples:
///   funnel run --data /backups/node1 /backups/node2 --snapshot nightly --funnels funnels.toml --facts sqlite:facts.db
///   funnel run --data data/tracking --funnels funnels.toml --facts sqlite:facts.db --threads 8 --report report.html
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXIT_CODES)]
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

fn find<'a>(tables: &'a [DiscoveredTable], qualified: &str) -> Option<&'a DiscoveredTable> {
    tables
        .iter()
        .find(|t| t.qualified() == qualified || (!qualified.contains('.') && t.name == qualified))
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
    let tables = discover(
        &args.data,
        &Selection {
            table: None,
            snapshot: args.snapshot.clone(),
        },
    )
    .kind(InputError)?;
    let Some(events) = find(&tables, &set.source.events.table) else {
        let err = anyhow!(
            "no SSTables of {} under {} (found: {})",
            set.source.events.table,
            args.data
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            tables
                .iter()
                .map(|t| t.qualified())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Err(Failure(InputError, err));
    };
    let conversions = find(&tables, &set.source.conversions.table);
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
    let ranges = source
        .plan(threads * args.ranges_per_thread.max(1))
        .kind(InputError)?;
    let (uncompressed, on_disk) = source.sizes();
    let (n_ev, n_cv) = source.sstable_counts();
    let opened = started.elapsed();

    let counters = ScanCounters::default();
    let scan_started = Instant::now();
    let eval = with_progress(on_disk, &counters, args.quiet, || {
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
    let published =
        funnelizer::publish(store.as_ref(), &set, &eval.aggregate, now_s * 1000, inputs).map_err(
            |e| {
                let outcome = match e {
                    funnelizer::BatchError::Store(_) => StoreError,
                    _ => Failed,
                };
                Failure(outcome, e.into())
            },
        )?;
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
        ranges.len(),
        threads,
        opened.as_secs_f64(),
        secs,
        rows_read as f64 / secs / 1e6,
        disk as f64 / secs / 1e6,
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.report {
        let html = funnelizer::report::render(&published.facts, Some(&set), "Funnels");
        std::fs::write(path, html)
            .with_context(|| format!("writing {}", path.display()))
            .kind(Failed)?;
        eprintln!("report: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
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
