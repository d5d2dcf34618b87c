//! Small helpers shared by subcommands: time arguments, closed pipes.

use anyhow::{Context, Result};

/// Parses `--now` (RFC 3339 or seconds since the epoch) into seconds; `None` is the current time.
pub fn parse_now(s: Option<&str>) -> Result<i64> {
    match s {
        None => Ok(chrono::Utc::now().timestamp()),
        Some(s) => parse_time_seconds(s),
    }
}

/// RFC 3339 (`2026-11-20T00:00:00Z`), a date (`2026-11-20`, midnight UTC) or seconds since the epoch.
pub fn parse_time_seconds(s: &str) -> Result<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("{s:?} is not a time: use RFC 3339 (2026-11-20T00:00:00Z), a date (2026-11-20) or seconds since the epoch"))?;
    Ok(d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp())
        .unwrap_or(0))
}

/// Treats a closed stdout (`funnel dump … | head`) as a normal end instead of an error.
pub fn write_or_quit(r: std::io::Result<()>) -> Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
}
