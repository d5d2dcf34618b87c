//! Small helpers shared by subcommands: time arguments, closed pipes, opening the fact store.

use anyhow::{Context, Result};

/// Parses `--now` (RFC 3339, a date or seconds since the epoch) into seconds; `None` is the current time.
pub fn parse_now(s: Option<&str>) -> Result<i64> {
    match s {
        None => Ok(chrono::Utc::now().timestamp()),
        Some(s) => Ok(funnelizer::parse_time(s)?),
    }
}

/// Treats a closed stdout (`funnel dump … | head`) as a normal end instead of an error.
pub fn write_or_quit(r: std::io::Result<()>) -> Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
}

/// Opens the fact store at `url`; the error names it (password redacted).
pub fn open_store(url: &str) -> Result<facts::Store> {
    facts::open_store(url)
        .with_context(|| format!("opening fact store {}", facts::url::redact(url)))
}

/// `--snapshot`, shared by the commands that read SSTables.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArg {
    /// Which copy of each table directory: a tag under snapshots/, `newest` (the newest tag every
    /// table directory has, by manifest.json's created_at, else mtime) or `live` (default).
    #[arg(
        long,
        value_name = "TAG|newest",
        default_value = "live",
        hide_default_value = true
    )]
    pub snapshot: sstable_reader::Snapshot,
}
