//! `funnel facts`: manage the fact store — create its tables (`init`) and load deterministic demo data
//! (`demo`) to try `funnel query` or a dashboard without a cluster.

use std::process::ExitCode;

use anyhow::Context;

use crate::common::FactsArg;
use crate::demo::{demo, DemoArgs};

/// Manage the fact store shared by batch runs, the stream and the dashboard.
///
/// Examples:
///
///   funnel facts init --facts sqlite:facts.db
///
///   funnel facts init --facts 'cql://10.0.0.5:9042,10.0.0.6:9042/funnel?user=funnel&password=secret&tls=true&rf=3'
///
///   funnel facts demo --facts sqlite:facts.db --app demo --days 30 && funnel query --facts sqlite:facts.db --app demo --funnel signup
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: FactsCommand,
}

/// What `funnel facts` does.
#[derive(Debug, clap::Subcommand)]
pub enum FactsCommand {
    /// Create the fact tables (for CQL also the keyspace) if missing. Safe to run again.
    Init(InitArgs),
    /// Write deterministic demo data: one published batch run (funnel steps, hits and events counts) and a few
    /// speed-layer batches past its watermark. Run it again with another --seed to publish a new run.
    ///
    /// The batch covers the --days days before --batch-until; the speed layer covers from the day before
    /// --batch-until (that day is below the watermark, so readers ignore it) to --speed-days after it.
    Demo(DemoArgs),
}

/// `funnel facts init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub facts: FactsArg,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        FactsCommand::Init(a) => init(a),
        FactsCommand::Demo(a) => demo(a),
    }
}

fn init(a: InitArgs) -> anyhow::Result<ExitCode> {
    let store = a.facts.open()?;
    store.init().context("creating the fact tables")?;
    println!("fact tables ready in {}", facts::url::redact(&a.facts.url));
    Ok(ExitCode::SUCCESS)
}
