//! `funnel status`: what the scheduler and the batch runs did, how far the batch results reach
//! (`scheduler::Status`), and whether the stream's conversion records agree with its counts
//! (`stream::check_conversions`), as tables or one JSON document.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use scheduler::{sstables_read, Status};

/// Show the last scheduled attempts, batch runs and watermarks of a fact store.
///
/// The scheduler's state is found next to a SQLite store (`facts.db.schedule.json`) or given with
/// --state (the `state_dir` of the schedule config + `/schedule.json`). Watermarks are listed for
/// every app named by a run's inputs and every --app.
///
/// The stream section checks that the stream's conversion records and its counted conversions agree
/// (per app, day and tracker); on a mismatch it lists the differences and the command exits 1.
///
/// Examples:
///   funnel status --facts sqlite:/var/lib/funnel/facts.db
///   funnel status --facts sqlite:facts.db --json | jq .runs[0]
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    pub facts: crate::common::DefaultFactsArg,
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
    if let Ok(facts::StoreUrl::Sqlite(path)) = args.facts.url.parse::<facts::StoreUrl>() {
        // Opening would create an empty store; a typo should say so instead.
        anyhow::ensure!(path.exists(), "no fact store at {}", path.display());
    }
    let store = args.facts.open()?;
    let status = Status::read(
        &store,
        &args.facts.url,
        args.state.as_deref(),
        &args.app,
        args.limit,
    )?;
    let check = ::stream::check_conversions(&store, &args.app)
        .context("checking the stream's conversion records")?;
    let code = if check.is_consistent() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if args.json {
        let mut doc = status.to_json(args.limit);
        doc["stream"] = serde_json::to_value(&check)?;
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(code);
    }
    let Status {
        state,
        lock_holder: holder,
        runs,
        watermarks,
        ..
    } = &status;
    match (state, status.state_file()) {
        (Some(s), Some(file)) => {
            println!("scheduler ({})", file.display());
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
    for r in runs {
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
            sstables_read(r).len(),
            detail
        );
    }
    println!("watermarks (batch complete for days before batch_until)");
    println!(
        "  {:<16} {:<24} {:<18} batch_until",
        "app", "funnel", "version"
    );
    for w in watermarks {
        println!(
            "  {:<16} {:<24} {:<18} {}",
            w.app_id, w.funnel_id, w.funnel_version, w.batch_until
        );
    }
    println!(
        "stream: {} conversion records, {} conversions counted ({})",
        check.records,
        check.counted,
        if check.is_consistent() {
            "consistent"
        } else {
            "MISMATCH"
        }
    );
    for m in &check.mismatches {
        println!(
            "  mismatch {} {} tracker {:?}: {} records, {} counted",
            m.app_id, m.day, m.tracker, m.records, m.counted
        );
    }
    Ok(code)
}
