//! `funnel status`: what the scheduler and the batch runs did, and how far the batch results reach. Reads
//! the scheduler's state file next to the store (attempts, including skipped and crashed ones, and who
//! holds the lock), the fact store's runs (start, end, inputs, rows, funnels, outcome, error) and the
//! watermarks of every app the runs saw.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use facts::{FactReader, RunRecord};
use funnelizer::schedule::{RunLock, ScheduleState, StatePaths};
use serde_json::{json, Value};

use crate::schedule::sstables_read;

/// Show the last scheduled attempts, batch runs and watermarks of a fact store.
///
/// The scheduler's state is found next to a SQLite store (`facts.db.schedule.json`) or given with
/// --state (the `state_dir` of the schedule config + `/schedule.json`). Watermarks are listed for
/// every app named by a run's inputs and every --app.
///
/// Examples:
///   funnel status --facts sqlite:/var/lib/funnel/facts.db
///   funnel status --facts sqlite:facts.db --json | jq .runs[0]
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Fact store URL.
    #[arg(
        long,
        env = "FUNNEL_FACTS",
        value_name = "URL",
        default_value = "sqlite:facts.db"
    )]
    pub facts: String,
    /// The scheduler's state file (default: next to a SQLite store).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Also show the watermarks of this app (repeatable).
    #[arg(long, value_name = "APP")]
    pub app: Vec<String>,
    /// How many runs and attempts to show.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub limit: usize,
    /// One JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
}

fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

fn one_line(s: &str, max: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}

pub fn run(args: Args) -> Result<ExitCode> {
    if let Ok(facts::StoreUrl::Sqlite(path)) = args.facts.parse::<facts::StoreUrl>() {
        // Opening would create an empty store; a typo should say so instead.
        anyhow::ensure!(path.exists(), "no fact store at {}", path.display());
    }
    let store = facts::open_store(&args.facts)
        .with_context(|| format!("opening {}", facts::url::redact(&args.facts)))?;
    let runs = store.runs(args.limit.max(1)).context("reading runs")?;
    let mut apps: BTreeSet<String> = args.app.iter().cloned().collect();
    for r in &runs {
        if let Some(a) = r.inputs.get("apps").and_then(Value::as_array) {
            apps.extend(a.iter().filter_map(|v| v.as_str().map(str::to_string)));
        }
    }
    let mut watermarks = Vec::new();
    for app in &apps {
        watermarks.extend(store.watermarks(app).context("reading watermarks")?);
    }
    let paths = match &args.state {
        Some(p) => Some(StatePaths {
            lock: p.with_file_name(
                p.file_name()
                    .map(|n| n.to_string_lossy().replace(".json", ".lock"))
                    .unwrap_or_else(|| "schedule.lock".into()),
            ),
            state: p.clone(),
        }),
        None => StatePaths::for_store(&args.facts, None).ok(),
    };
    let state = match &paths {
        Some(p) if p.state.exists() => Some(ScheduleState::load(&p.state)?),
        _ => None,
    };
    let holder = paths.as_ref().and_then(|p| RunLock::holder(&p.lock));

    if args.json {
        let doc = json!({
            "scheduler": state.as_ref().map(|s| json!({
                "state_file": paths.as_ref().map(|p| p.state.display().to_string()),
                "lock_holder": holder,
                "attempts": s.attempts.iter().take(args.limit).collect::<Vec<_>>(),
                "last_success": s.last_success.as_ref().map(|l| json!({
                    "run_id": l.run_id,
                    "finished_at_ms": l.finished_at_ms,
                    "sstables": l.fingerprint.sstable_count(),
                    "funnels": l.fingerprint.funnels,
                    "fingerprint": l.fingerprint.key(),
                })),
            })),
            "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
            "watermarks": watermarks,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }

    match (&state, &paths) {
        (Some(s), Some(p)) => {
            println!("scheduler ({})", p.state.display());
            println!(
                "  lock: {}",
                holder
                    .as_deref()
                    .map_or("free".to_string(), |h| format!("held by {h}"))
            );
            if let Some(l) = &s.last_success {
                println!(
                    "  last published: run {} at {}, {} SSTables, {} funnels",
                    l.run_id.map_or_else(|| "?".into(), |r| r.to_string()),
                    time(Some(l.finished_at_ms)),
                    l.fingerprint.sstable_count(),
                    l.fingerprint.funnels.len()
                );
            }
            println!(
                "  {:<19}  {:<19}  {:<12} {:>4} {:>5} {:>8}  detail",
                "started", "finished", "outcome", "exit", "run", "sstables"
            );
            for a in s.attempts.iter().take(args.limit) {
                let detail = a.error.as_deref().or(a.reason.as_deref()).unwrap_or("");
                println!(
                    "  {:<19}  {:<19}  {:<12} {:>4} {:>5} {:>8}  {}",
                    time(Some(a.started_at_ms)),
                    time(a.finished_at_ms),
                    a.outcome.as_str(),
                    a.exit_code,
                    a.run_id.map_or_else(|| "-".into(), |r| r.to_string()),
                    a.sstables,
                    one_line(detail, 160)
                );
            }
        }
        _ => println!("scheduler: no state file (not scheduled, or --state not given)"),
    }
    println!("runs");
    println!(
        "  {:>5}  {:<19}  {:<19}  {:<10} {:>9} {:>8}  funnels / error",
        "run", "started", "finished", "status", "rows", "sstables"
    );
    for r in &runs {
        let funnels = r
            .funnels
            .iter()
            .map(|(id, v)| format!("{id}@{v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let detail = match &r.error {
            Some(e) => format!("error: {}", one_line(e, 160)),
            None => funnels,
        };
        println!(
            "  {:>5}  {:<19}  {:<19}  {:<10} {:>9} {:>8}  {}",
            r.run_id.0,
            time(Some(r.started_at_ms)),
            time(r.finished_at_ms),
            r.status.as_str(),
            r.rows,
            sstables_read(&r.inputs).len(),
            detail
        );
    }
    println!("watermarks (batch complete for days before batch_until)");
    println!(
        "  {:<16} {:<24} {:<18} batch_until",
        "app", "funnel", "version"
    );
    for w in &watermarks {
        println!(
            "  {:<16} {:<24} {:<18} {}",
            w.app_id, w.funnel_id, w.funnel_version, w.batch_until
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_json(r: &RunRecord) -> Value {
    json!({
        "run_id": r.run_id.0,
        "started_at_ms": r.started_at_ms,
        "finished_at_ms": r.finished_at_ms,
        "status": r.status,
        "rows": r.rows,
        "funnels": r.funnels,
        "error": r.error,
        "sstables_read": sstables_read(&r.inputs),
        "inputs": r.inputs,
    })
}
