//! `funnel stats`: what `sstablemetadata` prints, per SSTable, as text or JSON.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use sstable_reader::{discover, CqlSchema, ReadOptions, SSTable, Selection, Stats};

use crate::common::{parse_now, write_or_quit};

/// Describe SSTables: version, partitioner, compression, sizes, partitions, rows, timestamps, TTLs,
/// droppable tombstones and column types.
///
/// Partitions, rows and tombstones are counted exactly by scanning Data.db (keys and row headers
/// only); the rest comes from Statistics.db and CompressionInfo.db.
///
/// Examples:
///   funnel stats data/tracking/events-1b2c…/snapshots/nightly/
///   funnel stats nb-1-big-Data.db --json | jq '.[0].rows'
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Data.db files, table directories or snapshot directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print a JSON array (one object per SSTable) instead of text.
    #[arg(long)]
    json: bool,
    /// CREATE TABLE statements naming key columns (default: schema.cql next to the files).
    #[arg(long, value_name = "FILE")]
    schema: Option<PathBuf>,
    /// Judge droppable tombstones and expired TTLs at this time (default: now).
    #[arg(long, value_name = "TS")]
    now: Option<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let now = parse_now(args.now.as_deref())?;
    let schema = match &args.schema {
        Some(p) => Some(CqlSchema::read(p)?),
        None => None,
    };
    let found = discover(&args.paths, &Selection::default())?;
    let files: Vec<_> = found.files().collect();
    let mut all = Vec::new();
    for f in &files {
        let sst = SSTable::open(
            f,
            schema.as_ref(),
            ReadOptions {
                recover_overflowed_ttl: true,
            },
        )?;
        all.push(Stats::describe(&sst, now)?);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        write_or_quit(writeln!(out, "{}", serde_json::to_string_pretty(&all)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    for s in &all {
        write_or_quit(writeln!(out, "{}", text(s)))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One SSTable's statistics for people: `label: value` lines, then its columns.
fn text(s: &Stats) -> String {
    let or = |v: &Option<String>, none: &str| v.clone().unwrap_or_else(|| none.to_string());
    let compression = match (&s.compression, s.chunk_length) {
        (Some(c), Some(l)) => format!(
            "{c}, {} KiB chunks, ratio {:.3}",
            l / 1024,
            s.compression_ratio.unwrap_or(-1.0)
        ),
        _ => "none".into(),
    };
    let lines = [
        (
            "table",
            format!("{}.{}", or(&s.keyspace, "?"), or(&s.table, "?")),
        ),
        ("version", format!("{} ({})", s.version, s.format)),
        ("partitioner", or(&s.partitioner, "?")),
        ("compression", compression),
        (
            "data size",
            format!(
                "{} bytes on disk, {} uncompressed",
                s.data_bytes_on_disk, s.data_bytes_uncompressed
            ),
        ),
        (
            "partitions",
            format!(
                "{} (estimated {})",
                s.partitions,
                s.estimated_partitions.unwrap_or(-1)
            ),
        ),
        (
            "rows",
            format!(
                "{} (+{} static; statistics say {})",
                s.rows,
                s.static_rows,
                s.total_rows_in_statistics.unwrap_or(-1)
            ),
        ),
        (
            "tombstones",
            format!(
                "{} partition, {} row, {} range markers",
                s.partition_tombstones, s.row_tombstones, s.range_tombstone_markers
            ),
        ),
        (
            "timestamps",
            format!(
                "{} .. {}",
                or(&s.min_timestamp_utc, "?"),
                or(&s.max_timestamp_utc, "?")
            ),
        ),
        (
            "TTL",
            format!("{} .. {} s", s.min_ttl.unwrap_or(0), s.max_ttl.unwrap_or(0)),
        ),
        (
            "deletion times",
            format!(
                "{} .. {}",
                or(&s.min_local_deletion_time_utc, "none"),
                or(&s.max_local_deletion_time_utc, "none")
            ),
        ),
    ];
    let mut t = format!("SSTable: {}\n", s.path);
    for (label, value) in lines {
        t.push_str(&format!("  {:<20}{value}\n", format!("{label}:")));
    }
    t.push_str(&format!(
        "  droppable tombstones (estimate at --now): {}\n  columns:\n",
        s.droppable_tombstones.unwrap_or(0)
    ));
    for c in &s.columns {
        let kind = format!("{:?}", c.kind);
        t.push_str(&format!("    {:<24} {kind:<14} {}\n", c.name, c.ty));
    }
    t
}
