//! `funnel`: retroactive conversion funnels straight from Cassandra SSTable snapshots, real-time counts and
//! conversions from Kafka, and the fact tables a dashboard reads. This binary only parses arguments and
//! prints what the library crates do: each subcommand lives in its own module with its `Args` and a `run`
//! function; [`exit_code`] decides how a failed command exits.

mod cache;
mod common;
mod cpu;
mod demo;
mod dump;
mod expired;
mod export;
mod facts_cmd;
mod gen;
mod levels;
mod progress;
mod query;
mod report;
mod run;
mod scan;
mod schedule;
mod schema;
mod serve;
mod shard;
mod stats;
mod status;
mod stream;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Retroactive conversion funnels over Cassandra SSTable snapshots, with a real-time Kafka companion.
///
/// Typical use: `funnel stats SNAPSHOT_DIR` to see what is on disk, `funnel dump SNAPSHOT_DIR --limit 5`
/// to look at rows, `funnel run --data SNAPSHOT_DIR --funnels funnels.toml --facts sqlite:facts.db` to
/// compute every funnel over all history, `funnel query` to read the results.
#[derive(Debug, Parser)]
#[command(name = "funnel", version, about, long_about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Cache(cache::Args),
    Dump(dump::Args),
    Export(export::Args),
    Gen(gen::Args),
    Stats(stats::Args),
    Query(query::Args),
    Facts(facts_cmd::Args),
    Stream(stream::Args),
    Run(run::Args),
    Report(report::Args),
    Scan(scan::Args),
    Schedule(schedule::Args),
    Schema(schema::Args),
    Serve(serve::Args),
    Status(status::Args),
    Verify(verify::Args),
}

fn main() -> ExitCode {
    if let Err(message) = cpu::check() {
        eprintln!("error: {message}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let is_run = matches!(cli.command, Command::Run(_));
    let result = match cli.command {
        Command::Cache(args) => cache::run(args),
        Command::Dump(args) => dump::run(args),
        Command::Export(args) => export::run(args),
        Command::Gen(args) => gen::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Query(args) => query::run(args),
        Command::Facts(args) => facts_cmd::run(args),
        Command::Stream(args) => stream::run(args),
        Command::Run(args) => run::run(args),
        Command::Report(args) => report::run(args),
        Command::Scan(args) => scan::run(args),
        Command::Schedule(args) => schedule::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Status(args) => status::run(args),
        Command::Verify(args) => verify::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", funnelizer::chain(err.as_ref()));
            ExitCode::from(exit_code(&err, is_run))
        }
    }
}

/// How a failed command exits, decided here only, from the type of its error. `funnel run` exits with
/// the code of its error's kind (those of `funnel schedule --once`, `scheduler::Outcome`: 5 config, 6
/// input, 7 fact store, 9 anything else), so the scheduler can tell what failed in its child; every other
/// command exits 1. (`funnel schedule` ends with the code of its attempt's outcome; usage errors exit 2.)
fn exit_code(err: &anyhow::Error, is_run: bool) -> u8 {
    use scheduler::Outcome;
    if !is_run {
        return 1;
    }
    err.chain()
        .find_map(|e| match e.downcast_ref::<funnelizer::Error>() {
            Some(e) => Some(Outcome::of_error(e.kind())),
            None => e
                .downcast_ref::<facts::FactsError>()
                .map(|_| Outcome::StoreError),
        })
        .unwrap_or(Outcome::Failed)
        .exit_code()
}
