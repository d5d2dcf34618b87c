//! `funnel schedule`: the `scheduler` crate from the command line. Each attempt runs this same binary's
//! `funnel run` as a child process.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use scheduler::{LogFormat, Scheduler};

/// The `--once` exit codes (kept equal to `scheduler::exit_code_help()` by a test).
const EXIT_CODES: &str = "\
Exit codes of --once (long-running mode exits only on a config error, with 5):
   0  ran and published
   3  skipped: inputs and funnel versions unchanged since the last published run
   4  another scheduler (or the run of a killed one) holds this store
   5  config or funnel definition error
   6  input (SSTable) error
   7  fact store (or scheduler state) error
   8  run crashed or was killed (signal, timeout, memory budget)
   9  run failed with another error (see funnel status)
With systemd, put `SuccessExitStatus=3 4` in the service so skipped and busy runs are not failures.";

/// Recompute every funnel on a schedule, safely on a live node.
///
/// Each attempt runs `funnel run` as a child process over the configured data paths and snapshot,
/// with the funnels file reread (a new or changed funnel is computed over all history), under a
/// timeout and a memory budget. A file lock next to the store prevents overlapping runs. When
/// neither the SSTables (path, size, mtime, digest) nor the funnel versions changed since the last
/// published run, the attempt is skipped. `funnel status` shows the attempts, runs and watermarks.
///
/// Config (TOML; relative paths are relative to the config file):
///   facts = "sqlite:/var/lib/funnel/facts.db"
///   funnels = "/etc/funnel/funnels.toml"
///   data = ["/var/lib/cassandra/data/tracking"]
///   snapshot = "newest"          # "newest" | a tag | omit for the live SSTables
///   every = "1h"                 # or cron = "0 15 * * * *" (sec min hour dom mon dow, UTC)
///   threads = 4
///   memory_budget = "8GiB"       # anonymous memory; mmapped SSTables do not count
///   spill_dir = "/scratch"       # where a shuffled run spills (its --memory-budget: half the above)
///   timeout = "2h"
///   retries = 2                  # reruns when SSTables changed under a failed run
///   log = "json"                 # or "text"
///   # state_dir = "/var/lib/funnel"  (required for cql:// stores)
///   # schema = "schema.cql"; now = "2026-11-20" (fixed --now, for replays)
///
/// Examples:
///   funnel schedule --config /etc/funnel/schedule.toml
///   funnel schedule --config schedule.toml --once
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, after_long_help = EXIT_CODES)]
pub struct Args {
    /// The schedule config (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Run one attempt now and exit with its code (for cron and systemd timers).
    #[arg(long)]
    pub once: bool,
    /// Run even when nothing changed.
    #[arg(long)]
    pub force: bool,
    /// Log format, overriding the config's `log`.
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log: Option<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let program = std::env::current_exe().context("finding the funnel binary")?;
    let format = args.log.as_deref().map(|l| match l {
        "json" => LogFormat::Json,
        _ => LogFormat::Text,
    });
    let scheduler = Scheduler::new(args.config, program)
        .force(args.force)
        .log_format(format);
    let outcome = if args.once {
        scheduler.once()
    } else {
        scheduler.run()
    };
    Ok(ExitCode::from(outcome.exit_code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_exactly_the_library_exit_codes() {
        let lib = scheduler::exit_code_help();
        for line in lib.lines() {
            assert!(
                EXIT_CODES.contains(line.trim_start()),
                "--help is missing {line:?}"
            );
        }
        assert_eq!(
            EXIT_CODES.lines().filter(|l| l.starts_with("   ")).count(),
            scheduler::Outcome::ALL.len()
        );
    }
}
