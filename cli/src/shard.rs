//! Sharded runs from the command line: `--shard I/N --run-name R [--token-ranges FILE]` on `funnel run`
//! (one shard: its token ranges only, partial facts stored; the shard completing the set publishes the
//! merged run), `--finalize R` (publish the merged partials explicitly), and the lines a shard prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use funnelizer::{Finalize, FunnelSet, ShardOutcome, ShardSpec};

/// The shard flags of `funnel run`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShardArg {
    /// Run as shard I of N of the sharded run --run-name: read only the I-th of N equal parts of the
    /// partitioner's token ring (or the ranges of --token-ranges) and store this shard's partial facts
    /// (a rerun replaces them). The shard completing the set publishes the merged run, whose facts equal
    /// one run over everything (docs/SCALE.md).
    #[arg(long, value_name = "I/N", requires = "run_name")]
    pub shard: Option<String>,
    /// The sharded run's name: the same for all its shards.
    #[arg(long, value_name = "NAME", requires = "shard")]
    pub run_name: Option<String>,
    /// Read the token ranges FILE lists instead of an equal part: one Cassandra range `(START, END]` a
    /// line, as `START END` or a `TokenRange(start_token:…, end_token:…)` line of `nodetool
    /// describering` (docs/SCALE.md).
    #[arg(long, value_name = "FILE", requires = "shard")]
    pub token_ranges: Option<PathBuf>,
    /// Publish the merged partial facts of the sharded run NAME (every shard must have stored its
    /// partial) and exit; reads no SSTables. Publishing the same partials again is a no-op.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["shard", "data"])]
    pub finalize: Option<String>,
}

impl ShardArg {
    /// The shard to run (`None`: an ordinary run).
    pub fn spec(&self) -> Result<Option<ShardSpec>, funnelizer::Error> {
        let (Some(position), Some(name)) = (&self.shard, &self.run_name) else {
            return Ok(None);
        };
        let spec = ShardSpec::parse(name, position)?;
        Ok(Some(match &self.token_ranges {
            Some(file) => spec.with_token_ranges(file),
            None => spec,
        }))
    }
}

/// `funnel run --finalize NAME`.
pub fn finalize(funnels: &Path, facts_url: &str, name: &str) -> Result<ExitCode> {
    let set = FunnelSet::load(funnels).map_err(funnelizer::Error::from)?;
    funnelizer::shard::check_run_name(name)?;
    let store = crate::common::open_store(facts_url)?;
    let outcome = funnelizer::finalize(&store, &set, name)?;
    if let Finalize::Incomplete { missing } = &outcome {
        return Err(funnelizer::Error::Partial {
            run_name: name.to_string(),
            message: format!("shards {} have stored no partial yet", list(missing)),
        }
        .into());
    }
    eprintln!("{}", finalize_line(name, &outcome));
    Ok(ExitCode::SUCCESS)
}

fn list(shards: &[u32]) -> String {
    shards
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn finalize_line(name: &str, f: &Finalize) -> String {
    match f {
        Finalize::Incomplete { missing } => {
            format!("run {name:?}: waiting for shards {}", list(missing))
        }
        Finalize::Published(p) => format!(
            "run {name:?}: all shards present, merged and published as run {} ({} facts, {} totals)",
            p.run,
            p.facts.len(),
            p.totals.len()
        ),
        Finalize::AlreadyPublished(run) => {
            format!("run {name:?}: these partials were already published as run {run}")
        }
        Finalize::Superseded { run, current } => format!(
            "run {name:?}: merged as run {run}, not published: run {current} is newer (another shard finalized at the same time?)"
        ),
        Finalize::Overtaken { shard } => format!(
            "run {name:?}: not published here: a retry of shard {shard} replaced its partial meanwhile and finalizes with it"
        ),
        _ => format!("run {name:?}: {f:?}"),
    }
}

/// The line a shard prints about its partial and the run.
pub fn print(outcome: Option<&ShardOutcome>) {
    let Some(o) = outcome else { return };
    eprintln!(
        "shard {}/{} of {:?}: {} token span(s), partial facts {:.1} kB stored",
        o.shard,
        o.shards,
        o.run_name,
        o.spans.len(),
        o.partial_bytes as f64 / 1e3
    );
    eprintln!("{}", finalize_line(&o.run_name, &o.finalize));
}

/// Whether a report holds published facts to summarize (a shard that did not finalize holds none).
pub fn published(outcome: Option<&ShardOutcome>) -> bool {
    outcome.is_none_or(|o| matches!(o.finalize, Finalize::Published(_)))
}
