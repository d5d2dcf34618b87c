//! `funnel schedule`: recomputes every funnel on a timer (or once, for cron and systemd timers) by running
//! `funnel run` (this same binary) as a child process per attempt: a crash or a memory blow-up of the run
//! cannot take the scheduler down, and the child's exit is read back and classified.
//!
//! One attempt: take the lock next to the store (busy → exit 4) → reread the funnels file → open the store
//! → pick the snapshot → fingerprint the SSTables and funnel versions → skip when equal to the last
//! published run's (exit 3) → run the child under the timeout and memory budget → on success remember the
//! fingerprint; on a failure during which the inputs changed (compaction), re-list and rerun (up to
//! `retries`); otherwise classify the failure. Every attempt is recorded in the state file that
//! `funnel status` reads.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use facts::{FactReader, RunStatus};
use funnelizer::schedule::config::{parse_now_seconds, LogFormat};
use funnelizer::schedule::fingerprint::{
    collect, funnel_versions, resolve_snapshot, source_tables, RunKey,
};
use funnelizer::schedule::supervise::Echo;
use funnelizer::schedule::{
    supervise, Attempt, Config, Fingerprint, LastSuccess, Limits, Outcome, RunLock, ScheduleError,
    ScheduleState,
};
use funnelizer::FunnelSet;
use serde_json::{json, Value};

/// The `--once` exit codes (kept equal to `funnelizer::schedule::exit_code_help()` by a test).
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

/// Structured or plain log lines on stderr.
#[derive(Clone, Copy)]
struct Log {
    json: bool,
}

impl Log {
    fn event(&self, level: &str, event: &str, msg: &str, fields: Value) {
        if self.json {
            let mut obj = json!({
                "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "level": level,
                "event": event,
                "msg": msg,
            });
            if let (Some(o), Value::Object(extra)) = (obj.as_object_mut(), fields) {
                o.extend(extra);
            }
            eprintln!("{obj}");
        } else {
            eprintln!("funnel schedule: {level}: {msg}");
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An attempt that ended before publishing: its outcome and message.
struct Stop(Outcome, String);

impl From<ScheduleError> for Stop {
    fn from(e: ScheduleError) -> Stop {
        Stop(e.outcome(), e.to_string())
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    let forced_json = args.log.as_deref().map(|l| l == "json");
    let mut log = Log {
        json: forced_json.unwrap_or(false),
    };
    let mut cfg = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            log.event("error", "config_error", &e.to_string(), json!({}));
            return Ok(ExitCode::from(Outcome::ConfigError.exit_code()));
        }
    };
    log.json = forced_json.unwrap_or(cfg.log == LogFormat::Json);
    if args.once {
        let outcome = attempt(&cfg, args.force, log);
        return Ok(ExitCode::from(outcome.exit_code()));
    }
    if cfg.trigger.is_none() {
        log.event(
            "error",
            "config_error",
            &format!(
                "{}: no `every` or `cron`: set one, or use --once from cron or a systemd timer",
                cfg.origin.display()
            ),
            json!({}),
        );
        return Ok(ExitCode::from(Outcome::ConfigError.exit_code()));
    }
    let mut previous: Option<i64> = None;
    let mut force = args.force;
    loop {
        let Some(trigger) = cfg.trigger.clone() else {
            return Ok(ExitCode::from(Outcome::ConfigError.exit_code()));
        };
        let Some(next) = trigger.next_after(now_ms(), previous) else {
            log.event(
                "error",
                "no_next_run",
                "the cron expression has no future time",
                json!({}),
            );
            return Ok(ExitCode::from(Outcome::ConfigError.exit_code()));
        };
        let wait = next.saturating_sub(now_ms());
        if wait > 0 {
            log.event(
                "info",
                "waiting",
                &format!("next run in {}", humanize_ms(wait)),
                json!({ "next_run_ms": next }),
            );
            std::thread::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0)));
        }
        previous = Some(next);
        attempt(&cfg, force, log);
        force = false;
        // The config is reread between attempts; a broken edit keeps the previous one running.
        match Config::load(&args.config) {
            Ok(c) => {
                cfg = c;
                log.json = forced_json.unwrap_or(cfg.log == LogFormat::Json);
            }
            Err(e) => log.event(
                "error",
                "config_error",
                &format!("{e}; keeping the previous config"),
                json!({}),
            ),
        }
    }
}

fn humanize_ms(ms: i64) -> String {
    let d = Duration::from_secs(u64::try_from(ms / 1000).unwrap_or(0));
    humantime::format_duration(d).to_string()
}

/// One attempt under the lock; records it in the state file and logs its end.
fn attempt(cfg: &Config, force: bool, log: Log) -> Outcome {
    let lock = match RunLock::try_acquire(&cfg.paths.lock) {
        Ok(Some(l)) => l,
        Ok(None) => {
            let holder = RunLock::holder(&cfg.paths.lock).unwrap_or_default();
            log.event(
                "warn",
                "busy",
                &format!(
                    "another scheduler holds {} ({holder}); not running",
                    cfg.paths.lock.display()
                ),
                json!({ "outcome": Outcome::Busy, "exit_code": Outcome::Busy.exit_code(), "holder": holder }),
            );
            return Outcome::Busy;
        }
        Err(e) => {
            let o = e.outcome();
            log.event(
                "error",
                o.as_str(),
                &e.to_string(),
                json!({ "outcome": o, "exit_code": o.exit_code() }),
            );
            return o;
        }
    };
    let mut state = match ScheduleState::load(&cfg.paths.state) {
        Ok(s) => s,
        Err(e) => {
            log.event(
                "error",
                "store_error",
                &format!("{e} (move it away to start afresh)"),
                json!({ "outcome": Outcome::StoreError, "exit_code": Outcome::StoreError.exit_code() }),
            );
            return Outcome::StoreError;
        }
    };
    // A run whose scheduler was killed goes on as an orphan, without the lock: wait for it.
    if let Some(pid) = state
        .attempts
        .iter()
        .filter(|a| a.outcome == Outcome::Running)
        .filter_map(|a| a.child_pid)
        .find(|pid| orphan_run_alive(*pid, &cfg.facts))
    {
        log.event(
            "warn",
            "busy",
            &format!(
                "the run (pid {pid}) of a scheduler that was stopped is still going; not running"
            ),
            json!({ "outcome": Outcome::Busy, "exit_code": Outcome::Busy.exit_code(), "orphan_pid": pid }),
        );
        return Outcome::Busy;
    }
    // Attempts still marked running were cut short (the scheduler was stopped or killed with its run):
    // nobody else can be running them, since we hold the lock.
    for stale in state
        .attempts
        .iter_mut()
        .filter(|a| a.outcome == Outcome::Running)
    {
        let at = stale.finished_at_ms.unwrap_or(stale.started_at_ms);
        stale.finish(
            at,
            Outcome::Crashed,
            Some("interrupted: the scheduler stopped during this attempt".into()),
        );
    }
    let mut att = Attempt::start(now_ms());
    let result = locked(cfg, force, log, &mut state, &mut att);
    let (outcome, error) = match result {
        Ok(o) => (o, None),
        Err(Stop(o, msg)) => (o, Some(msg)),
    };
    att.finish(now_ms(), outcome, error.clone());
    state.record(&att);
    let mut outcome = outcome;
    if let Err(e) = state.save(&cfg.paths.state) {
        log.event("error", "store_error", &e.to_string(), json!({}));
        if outcome.is_ok() {
            outcome = Outcome::StoreError;
        }
    }
    let level = if outcome.is_ok() { "info" } else { "error" };
    let msg = match (&error, outcome) {
        (Some(e), _) => format!("{outcome}: {e}"),
        (None, Outcome::Skipped) => format!(
            "skipped: {}",
            att.reason.as_deref().unwrap_or("nothing changed")
        ),
        (None, _) => format!(
            "{outcome}: run {} over {} SSTables{}",
            att.run_id.map_or_else(|| "?".into(), |r| r.to_string()),
            att.sstables,
            att.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    };
    log.event(
        level,
        "attempt_end",
        &msg,
        json!({
            "outcome": outcome,
            "exit_code": outcome.exit_code(),
            "run_id": att.run_id,
            "sstables": att.sstables,
            "bytes": att.bytes,
            "retries": att.retries,
            "reason": att.reason,
            "error": error,
            "peak_rss_anon": att.peak_rss_anon,
            "started_at_ms": att.started_at_ms,
            "finished_at_ms": att.finished_at_ms,
            "fingerprint": att.fingerprint,
        }),
    );
    drop(lock);
    outcome
}

fn store_stop(e: impl std::fmt::Display) -> Stop {
    Stop(Outcome::StoreError, e.to_string())
}

/// Whether run `id` is still a published run of the store (the store may have been replaced).
fn still_published(store: &dyn FactReader, id: i64) -> Result<bool, Stop> {
    Ok(store
        .runs(500)
        .map_err(store_stop)?
        .iter()
        .any(|r| r.run_id.0 == id && r.status == RunStatus::Published))
}

fn locked(
    cfg: &Config,
    force: bool,
    log: Log,
    state: &mut ScheduleState,
    att: &mut Attempt,
) -> Result<Outcome, Stop> {
    let set = FunnelSet::load(&cfg.funnels).map_err(ScheduleError::from)?;
    let store = facts::open_store(&cfg.facts).map_err(|e| {
        Stop(
            Outcome::StoreError,
            format!("opening {}: {e}", facts::url::redact(&cfg.facts)),
        )
    })?;
    store.init().map_err(store_stop)?;
    let snapshot = resolve_snapshot(&cfg.data, &source_tables(&set), &cfg.snapshot)?;
    let now_s = match &cfg.now {
        Some(n) => parse_now_seconds(n)
            .ok_or_else(|| Stop(Outcome::ConfigError, format!("now = {n:?} is not a time")))?,
        None => att.started_at_ms.div_euclid(1000),
    };
    let key = RunKey {
        tables: source_tables(&set),
        funnels: funnel_versions(&set),
        snapshot: snapshot.clone(),
        now_day: now_s.div_euclid(86_400),
        schema: cfg.schema.clone(),
    };
    let (mut fp, relisted) = collect(&cfg.data, &key)?;
    if relisted > 0 {
        log.event(
            "warn",
            "relisted",
            &format!(
                "SSTables vanished while listing (compaction); listed {} times",
                relisted + 1
            ),
            json!({ "relisted": relisted }),
        );
    }
    note_fingerprint(att, &fp);
    let previous = state.last_success.clone();
    if let Some(prev) = &previous {
        if !force && prev.fingerprint.key() == fp.key() {
            let published = match prev.run_id {
                Some(id) => still_published(&store, id)?,
                None => false,
            };
            if published {
                att.run_id = prev.run_id;
                att.reason = Some(format!(
                    "inputs ({} SSTables) and funnel versions ({}) unchanged since run {}",
                    fp.sstable_count(),
                    fp.funnels.len(),
                    prev.run_id.map_or_else(|| "?".into(), |r| r.to_string())
                ));
                return Ok(Outcome::Skipped);
            }
        }
    }
    att.reason = Some(match (&previous, force) {
        (_, true) => "forced".to_string(),
        (None, _) => "no published run yet".to_string(),
        (Some(p), _) => {
            let d = fp.diff(&p.fingerprint);
            if d.is_empty() {
                "the last published run is gone from the store".to_string()
            } else {
                d.join("; ")
            }
        }
    });
    log.event(
        "info",
        "run_start",
        &format!(
            "running over {} SSTables ({:.1} MB), {} funnels{}: {}",
            fp.sstable_count(),
            fp.bytes() as f64 / 1e6,
            fp.funnels.len(),
            snapshot.as_deref().map(|s| format!(", snapshot {s}")).unwrap_or_default(),
            att.reason.as_deref().unwrap_or_default()
        ),
        json!({ "sstables": fp.sstable_count(), "bytes": fp.bytes(), "funnels": fp.funnels, "snapshot": snapshot }),
    );
    loop {
        let before = store
            .runs(1)
            .map_err(store_stop)?
            .first()
            .map_or(0, |r| r.run_id.0);
        let cmd =
            child_command(cfg, snapshot.as_deref(), now_s).map_err(|e| Stop(Outcome::Failed, e))?;
        let echo: Echo = Arc::new(move |line: &str| {
            if log.json {
                log.event("info", "run_output", line, json!({}));
            } else {
                eprintln!("  run| {line}");
            }
        });
        let state_path = cfg.paths.state.clone();
        let mut running = state.clone();
        let report = supervise(
            cmd,
            Limits {
                timeout: cfg.timeout,
                memory_budget: cfg.memory_budget,
            },
            Some(echo),
            |pid| {
                // Visible to `funnel status` while the child runs.
                att.child_pid = Some(pid);
                running.record(att);
                let _ = running.save(&state_path);
            },
        )
        .map_err(|e| Stop(Outcome::Failed, format!("starting `funnel run`: {e}")))?;
        att.child_pid = Some(report.pid);
        att.peak_rss_anon = report.peak_rss_anon;
        if report.end.success() {
            let runs = store.runs(20).map_err(store_stop)?;
            let ours = runs
                .iter()
                .filter(|r| r.run_id.0 > before && r.status == RunStatus::Published)
                .min_by_key(|r| r.run_id);
            let Some(ours) = ours else {
                return Err(Stop(
                    Outcome::Failed,
                    "`funnel run` exited 0 but published no run".into(),
                ));
            };
            att.run_id = Some(ours.run_id.0);
            let read = sstables_read(&ours.inputs);
            log.event(
                "info",
                "run_published",
                &format!(
                    "run {} published {} rows; it read {} SSTables",
                    ours.run_id,
                    ours.rows,
                    read.len()
                ),
                json!({ "run_id": ours.run_id.0, "rows": ours.rows, "sstables_read": read }),
            );
            state.last_success = Some(LastSuccess {
                run_id: Some(ours.run_id.0),
                finished_at_ms: now_ms(),
                fingerprint: fp,
            });
            return Ok(Outcome::Published);
        }
        let err_line = report.error_line().unwrap_or_default();
        let what = format!(
            "`funnel run` (pid {}) {}{}",
            report.pid,
            report.end.describe(),
            if err_line.is_empty() {
                String::new()
            } else {
                format!(": {err_line}")
            }
        );
        // Runs of a dead child are marked abandoned by the store (its rows dropped); reading the runs
        // triggers that in SQLite. The previous results stay published.
        let _ = store.runs(1);
        if report.end.killed() {
            return Err(Stop(Outcome::Crashed, what));
        }
        // Did the inputs change under the run (compaction deleted SSTables it was about to open)?
        let (now_fp, _) = collect(&cfg.data, &key)?;
        if now_fp.key() != fp.key() && att.retries < cfg.retries {
            att.retries += 1;
            log.event(
                "warn",
                "retry",
                &format!(
                    "{what}; the inputs changed during the run ({}), re-listing and rerunning ({}/{})",
                    now_fp.diff(&fp).join("; "),
                    att.retries,
                    cfg.retries
                ),
                json!({ "retry": att.retries }),
            );
            fp = now_fp;
            note_fingerprint(att, &fp);
            continue;
        }
        // `funnel run` says what failed through its exit code; inferring from its error line is the
        // fallback for a child killed by a signal or an older binary.
        let outcome = report
            .end
            .run_outcome()
            .unwrap_or_else(|| classify(cfg, &err_line));
        return Err(Stop(outcome, what));
    }
}

/// Whether `pid` is a `funnel run` on this store (`/proc/PID/cmdline`; elsewhere: never).
fn orphan_run_alive(pid: u32, facts_url: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.get(1) == Some(&b"run".as_slice())
        && args
            .windows(2)
            .any(|w| w[0] == b"--facts" && w[1] == facts_url.as_bytes())
}

fn note_fingerprint(att: &mut Attempt, fp: &Fingerprint) {
    att.sstables = fp.sstable_count();
    att.bytes = fp.bytes();
    att.fingerprint = Some(fp.key());
}

/// The `funnel run` command line of an attempt.
fn child_command(cfg: &Config, snapshot: Option<&str>, now_s: i64) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding the funnel binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("run").arg("--data").args(&cfg.data);
    cmd.arg("--funnels").arg(&cfg.funnels);
    cmd.arg("--facts").arg(&cfg.facts);
    cmd.arg("--now").arg(now_s.to_string());
    cmd.arg("--quiet");
    if let Some(t) = cfg.threads {
        cmd.arg("--threads").arg(t.to_string());
    }
    if let Some(s) = snapshot {
        cmd.arg("--snapshot").arg(s);
    }
    if let Some(s) = &cfg.schema {
        cmd.arg("--schema").arg(s);
    }
    if let Some(b) = cfg.memory_budget {
        // The shuffle's budget (tables not keyed by actor): half of what the run is killed at, so it
        // spills to disk well before.
        cmd.arg("--memory-budget").arg((b / 2).max(1).to_string());
    }
    if let Some(d) = &cfg.spill_dir {
        cmd.arg("--spill-dir").arg(d);
    }
    Ok(cmd)
}

/// The SSTables a published run says it read (`inputs.events` and `inputs.conversions` of `funnel run`).
pub fn sstables_read(inputs: &Value) -> Vec<String> {
    ["events", "conversions"]
        .iter()
        .filter_map(|k| inputs.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The kind of a failed run: a funnels file that no longer parses is a config error, else its error line
/// decides.
fn classify(cfg: &Config, err_line: &str) -> Outcome {
    if FunnelSet::load(&cfg.funnels).is_err() {
        return Outcome::ConfigError;
    }
    classify_error_line(err_line)
}

/// The kind of a `funnel run` error line (`error: …`): its store errors name the store (`fact store:`,
/// `sqlite:`, `cql:`), its input errors the SSTables (`reading actor timelines:`, a `Data.db` path, the
/// reader's corrupt/checksum/unsupported/schema errors).
fn classify_error_line(err_line: &str) -> Outcome {
    let l = err_line.to_ascii_lowercase();
    if ["fact store", "sqlite", "cql:", "opening cql"]
        .iter()
        .any(|k| l.contains(k))
    {
        return Outcome::StoreError;
    }
    if [
        "reading actor timelines",
        "sstable",
        "data.db",
        "corrupt",
        "checksum",
        "unsupported",
        "schema error",
    ]
    .iter()
    .any(|k| l.contains(k))
    {
        return Outcome::InputError;
    }
    Outcome::Failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_exactly_the_library_exit_codes() {
        let lib = funnelizer::schedule::exit_code_help();
        for line in lib.lines() {
            assert!(
                EXIT_CODES.contains(line.trim_start()),
                "--help is missing {line:?}"
            );
        }
        assert_eq!(
            EXIT_CODES.lines().filter(|l| l.starts_with("   ")).count(),
            Outcome::ALL.len()
        );
    }

    #[test]
    fn child_errors_are_classified_by_what_failed() {
        for (line, want) in [
            ("error: fact store: sqlite: database is locked", Outcome::StoreError),
            ("error: opening sqlite:/x/facts.db: i/o: Permission denied", Outcome::StoreError),
            ("error: reading actor timelines: /d/nb-1-big-Data.db: corrupt at offset 10: expected x", Outcome::InputError),
            ("error: opening tracking.events: /d/nb-2-big-Data.db: No such file or directory (os error 2)", Outcome::InputError),
            ("error: no SSTables of tracking.events under /d (found: tracking.hits)", Outcome::InputError),
            ("error: thread pool: cannot spawn", Outcome::Failed),
            ("", Outcome::Failed),
        ] {
            assert_eq!(classify_error_line(line), want, "{line}");
        }
    }

    #[test]
    fn the_child_run_gets_half_the_memory_budget_to_shuffle_in_and_the_spill_dir() {
        let cfg = Config::parse(
            "facts = 'sqlite:f.db'\nfunnels = 'f.toml'\ndata = ['d']\nmemory_budget = '8GiB'\nspill_dir = '/scratch'",
            std::path::Path::new("/etc/funnel/schedule.toml"),
        )
        .unwrap();
        let cmd = child_command(&cfg, Some("nightly"), 7).unwrap();
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let after = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        assert_eq!(after("--memory-budget"), Some((4u64 << 30).to_string()));
        assert_eq!(after("--spill-dir"), Some("/scratch".to_string()));
        assert_eq!(after("--snapshot"), Some("nightly".to_string()));
        assert_eq!(after("--now"), Some("7".to_string()));
    }

    #[test]
    fn sstables_read_come_from_the_run_inputs() {
        let v =
            json!({"events": ["a-Data.db", "b-Data.db"], "conversions": ["c-Data.db"], "now_s": 1});
        assert_eq!(sstables_read(&v), ["a-Data.db", "b-Data.db", "c-Data.db"]);
        assert!(sstables_read(&json!({})).is_empty());
    }
}
