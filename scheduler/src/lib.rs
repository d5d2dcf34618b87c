//! scheduler: `funnel schedule` recomputes every funnel on a timer (or once, for cron and systemd timers),
//! boringly and safely on a live node, by running `funnel run` (the same binary) as a child process per
//! attempt: a crash or a memory blow-up of the run cannot take the scheduler down, and the child's exit
//! code says what failed. Also what `funnel status` shows.
//!
//! ```no_run
//! use scheduler::Scheduler;
//! let funnel = std::env::current_exe()?;
//! let outcome = Scheduler::new("/etc/funnel/schedule.toml".into(), funnel).once();
//! std::process::exit(outcome.exit_code().into());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! The parts: the operator's TOML ([`Config`]: inputs, snapshot choice, funnels file, facts URL, interval
//! or cron, threads, memory budget, timeout, retries) and where the lock and state live
//! ([`StatePaths`]); the [`Fingerprint`] of what a run would read (equal fingerprints: skip); the
//! [`RunLock`] that keeps two schedulers off one store; the [`ScheduleState`] file of attempts;
//! [`supervise`], which runs the child under its limits; `attempt`, the state machine of one attempt;
//! [`Outcome`], what an attempt came to and its exit code; [`Status`], what `funnel status` reads.

mod attempt;
mod child;
mod config;
mod error;
mod fingerprint;
mod lock;
mod log;
mod outcome;
mod state;
mod status;
mod supervise;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

pub use child::run_command;
pub use config::{Config, StatePaths, Trigger};
pub use error::Error;
pub use fingerprint::{
    collect, collect_with, funnel_versions, resolve_snapshot, source_tables, Fingerprint, RunKey,
    SstableFile, RELIST_ATTEMPTS,
};
pub use lock::RunLock;
pub use log::LogFormat;
pub use outcome::{exit_code_help, Outcome, RUN_OUTCOMES};
pub use state::{Attempt, LastSuccess, ScheduleState, KEEP_ATTEMPTS};
pub use status::{sstables_read, Status};
pub use supervise::{rss_anon, supervise, ChildEnd, Echo, Limits, Supervised, TAIL_LINES};

use crate::log::Log;

/// `funnel schedule` over one config file.
#[derive(Debug, Clone)]
pub struct Scheduler {
    config: PathBuf,
    program: PathBuf,
    force: bool,
    log: Option<LogFormat>,
}

impl Scheduler {
    /// A scheduler reading `config` (reread between attempts) whose attempts run `program run …` (the
    /// `funnel` binary).
    pub fn new(config: PathBuf, program: PathBuf) -> Scheduler {
        Scheduler {
            config,
            program,
            force: false,
            log: None,
        }
    }

    /// Runs the (first) attempt even when nothing changed.
    pub fn force(mut self, force: bool) -> Scheduler {
        self.force = force;
        self
    }

    /// Logs in this format whatever the config's `log` says.
    pub fn log_format(mut self, format: Option<LogFormat>) -> Scheduler {
        self.log = format;
        self
    }

    fn log_for(&self, cfg: Option<&Config>) -> Log {
        Log {
            format: self.log.or(cfg.map(|c| c.log)).unwrap_or(LogFormat::Text),
        }
    }

    fn load(&self) -> Result<Config, Outcome> {
        Config::load(&self.config).map_err(|e| {
            let log = self.log_for(None);
            log.event("error", "config_error", &funnelizer::chain(&e), json!({}));
            e.outcome()
        })
    }

    /// One attempt now; its outcome.
    pub fn once(&self) -> Outcome {
        match self.load() {
            Ok(cfg) => attempt::attempt(&cfg, &self.program, self.force, self.log_for(Some(&cfg))),
            Err(o) => o,
        }
    }

    /// Attempts at every time the config's `every` or `cron` names, for ever. Returns only when the
    /// config cannot be used at the start (or names no time), with [`Outcome::ConfigError`]; an edit that
    /// breaks it later keeps the previous config running.
    pub fn run(&self) -> Outcome {
        let mut cfg = match self.load() {
            Ok(c) => c,
            Err(o) => return o,
        };
        let mut previous: Option<i64> = None;
        let mut force = self.force;
        loop {
            let log = self.log_for(Some(&cfg));
            let Some(trigger) = cfg.trigger.clone() else {
                log.event(
                    "error",
                    "config_error",
                    &format!(
                        "{}: no `every` or `cron`: set one, or use --once from cron or a systemd timer",
                        cfg.origin.display()
                    ),
                    json!({}),
                );
                return Outcome::ConfigError;
            };
            let now = chrono::Utc::now().timestamp_millis();
            let Some(next) = trigger.next_after(now, previous) else {
                log.event(
                    "error",
                    "no_next_run",
                    "the cron expression has no future time",
                    json!({}),
                );
                return Outcome::ConfigError;
            };
            let wait = next.saturating_sub(now);
            if wait > 0 {
                let d = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
                log.event(
                    "info",
                    "waiting",
                    &format!(
                        "next run in {}",
                        humantime::format_duration(Duration::from_secs(d.as_secs()))
                    ),
                    json!({ "next_run_ms": next }),
                );
                std::thread::sleep(d);
            }
            previous = Some(next);
            attempt::attempt(&cfg, &self.program, force, log);
            force = false;
            // The config is reread between attempts; a broken edit keeps the previous one running.
            match Config::load(&self.config) {
                Ok(c) => cfg = c,
                Err(e) => log.event(
                    "error",
                    "config_error",
                    &format!("{}; keeping the previous config", funnelizer::chain(&e)),
                    json!({}),
                ),
            }
        }
    }
}
