//! `funnel query`: read a funnel or a daily-count metric from the fact store, batch and speed layers
//! merged at the watermark, showing which layer answered each day.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use facts::{CountsQuery, Day, FactReader, FunnelQuery};
use funnelizer::text::{counts_csv, counts_table, funnel_csv, funnel_table};
use funnelizer::RunInputs;

/// Read a funnel or a daily count from the fact tables.
///
/// Days before the batch watermark come from the last published batch run (authoritative); later days
/// from the real-time speed layer, its partial aggregates summed. Every day says which layer answered,
/// and the header says how fresh each layer is. A day with no values had no rows in its layer (zero actors,
/// or the stream has not covered it yet).
///
/// Time-to-convert (median, p90) is exact on batch days and empty on speed days (medians of partial
/// aggregates cannot be merged).
///
/// In the table, a funnel's columns are its levels, named as the run that computed them recorded:
/// the step (its name or what it matches), or `≥ k steps` in unordered funnels, whose level k counts the
/// actors with at least k distinct steps (docs/FUNNELS.md).
///
/// Formats: `table` (default, for people); `json` (one JSON document: the answer with `freshness` and one
/// entry per day — stable field names, machine-readable); `csv` (long format, one line per
/// day/breakdown/step or day/dimension/value; a day with no values is one line with empty value columns).
///
/// Examples:
///
///   funnel query --facts sqlite:facts.db --app shop --funnel signup
///
///   funnel query --facts sqlite:facts.db --app shop --funnel signup --from 2024-05-01 --to 2024-05-31 --breakdown
///
///   funnel query --facts sqlite:facts.db --app shop --counts hits --breakdown --format csv
///
///   funnel query --facts cql://10.0.0.5:9042/funnel --app shop --counts conversions --format json
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["funnel", "counts"])))]
pub struct Args {
    #[command(flatten)]
    pub facts: crate::common::FactsArg,
    /// Application id.
    #[arg(long, value_name = "APP")]
    pub app: String,
    /// Funnel id to read.
    #[arg(long, value_name = "FUNNEL")]
    pub funnel: Option<String>,
    /// Funnel version (default: the most recently published one).
    #[arg(long, value_name = "VERSION", requires = "funnel")]
    pub funnel_version: Option<String>,
    /// Daily-count metric to read: hits, events or conversions.
    #[arg(long, value_name = "METRIC")]
    pub counts: Option<String>,
    /// Only this dimension of the metric (tracker, name).
    #[arg(long, value_name = "DIMENSION", requires = "counts")]
    pub dimension: Option<String>,
    /// First day (YYYY-MM-DD, UTC); default: the first day with data.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    pub from: Option<Day>,
    /// Last day, included (YYYY-MM-DD, UTC); default: the last day with data.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    pub to: Option<Day>,
    /// One line per breakdown value (funnels) or per dimension value (counts) instead of totals.
    #[arg(long)]
    pub breakdown: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// How `funnel query` prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

fn parse_day(s: &str) -> Result<Day, String> {
    s.parse::<Day>().map_err(|e| e.to_string())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = args.facts.open()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if let Some(funnel) = &args.funnel {
        let q = FunnelQuery {
            app_id: args.app.clone(),
            funnel_id: funnel.clone(),
            funnel_version: args.funnel_version.clone(),
            from: args.from,
            to: args.to,
            breakdown: args.breakdown,
        };
        let answer = store.read_funnel(&q).context("reading the funnel")?;
        match args.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, &answer)?;
                writeln!(out)?;
            }
            Format::Csv => funnel_csv(&mut out, &answer)?,
            Format::Table => {
                // Levels are named as the run that computed this version recorded them.
                let runs = store.runs(100).context("reading the runs")?;
                let labels = RunInputs::labels_in(&runs, &answer.funnel_id, &answer.funnel_version);
                funnel_table(&mut out, &answer, args.breakdown, labels.as_deref())?
            }
        }
    } else if let Some(metric) = &args.counts {
        let q = CountsQuery {
            app_id: args.app.clone(),
            metric: metric.clone(),
            dimension: args.dimension.clone(),
            from: args.from,
            to: args.to,
            breakdown: args.breakdown,
        };
        let answer = store.read_counts(&q).context("reading the counts")?;
        match args.format {
            Format::Json => {
                serde_json::to_writer_pretty(&mut out, &answer)?;
                writeln!(out)?;
            }
            Format::Csv => counts_csv(&mut out, &answer)?,
            Format::Table => counts_table(&mut out, &answer)?,
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
