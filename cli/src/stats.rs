//! `funnel stats`: what `sstablemetadata` prints, per SSTable, as text or JSON.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;
use sstable_reader::{
    discover, format_seconds, format_timestamp_us, CqlSchema, Projection, ReadOptions, SSTable,
    Selection, Unfiltered, NO_DELETION_TIME,
};

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

#[derive(Debug, Serialize)]
struct Stats {
    path: String,
    version: String,
    format: String,
    partitioner: Option<String>,
    compression: Option<String>,
    chunk_length: Option<u32>,
    compression_ratio: Option<f64>,
    data_bytes_on_disk: u64,
    data_bytes_uncompressed: u64,
    partitions: u64,
    rows: u64,
    static_rows: u64,
    range_tombstone_markers: u64,
    row_tombstones: u64,
    partition_tombstones: u64,
    estimated_partitions: Option<i64>,
    total_rows_in_statistics: Option<i64>,
    min_timestamp: Option<i64>,
    max_timestamp: Option<i64>,
    min_timestamp_utc: Option<String>,
    max_timestamp_utc: Option<String>,
    min_ttl: Option<i64>,
    max_ttl: Option<i64>,
    min_local_deletion_time_utc: Option<String>,
    max_local_deletion_time_utc: Option<String>,
    droppable_tombstones: Option<i64>,
    keyspace: Option<String>,
    table: Option<String>,
    columns: Vec<ColumnInfo>,
}

#[derive(Debug, Serialize)]
struct ColumnInfo {
    name: String,
    kind: sstable_reader::ColumnKind,
    #[serde(rename = "type")]
    ty: String,
}

fn describe(sst: &SSTable, now: i64) -> Result<Stats> {
    let mut scan = sst.scanner(Projection::none(&sst.schema));
    let (
        mut partitions,
        mut rows,
        mut statics,
        mut markers,
        mut row_tombstones,
        mut partition_tombstones,
    ) = (0, 0, 0, 0, 0, 0);
    while let Some(p) = scan.next_partition()? {
        partitions += 1;
        if !p.deletion.is_live() {
            partition_tombstones += 1;
        }
        while let Some(u) = scan.next_unfiltered()? {
            match u {
                Unfiltered::Row(r) if r.is_static() => statics += 1,
                Unfiltered::Row(r) => {
                    rows += 1;
                    if !r.deletion().is_live() {
                        row_tombstones += 1;
                    }
                }
                Unfiltered::Marker(_) => markers += 1,
            }
        }
    }
    let st = sst.statistics.stats.as_ref();
    let ci = sst.data.compression();
    let ldt = |v: i64| (v != NO_DELETION_TIME).then(|| format_seconds(v)).flatten();
    Ok(Stats {
        path: sst.data_path().display().to_string(),
        version: sst.descriptor.version.to_string(),
        format: sst.descriptor.kind.to_string(),
        partitioner: sst.partitioner().map(str::to_string),
        compression: ci.map(|c| format!("{:?}", c.algorithm).to_lowercase()),
        chunk_length: ci.map(|c| c.chunk_length),
        compression_ratio: st.map(|s| s.compression_ratio).filter(|r| *r >= 0.0),
        data_bytes_on_disk: sst.data.file_len(),
        data_bytes_uncompressed: sst.data.len(),
        partitions,
        rows,
        static_rows: statics,
        range_tombstone_markers: markers,
        row_tombstones,
        partition_tombstones,
        estimated_partitions: st.map(|s| s.estimated_partitions()),
        total_rows_in_statistics: st.map(|s| s.total_rows),
        min_timestamp: st.map(|s| s.min_timestamp),
        max_timestamp: st.map(|s| s.max_timestamp),
        min_timestamp_utc: st.and_then(|s| format_timestamp_us(s.min_timestamp)),
        max_timestamp_utc: st.and_then(|s| format_timestamp_us(s.max_timestamp)),
        min_ttl: st.map(|s| s.min_ttl),
        max_ttl: st.map(|s| s.max_ttl),
        min_local_deletion_time_utc: st.and_then(|s| ldt(s.min_local_deletion_time)),
        max_local_deletion_time_utc: st.and_then(|s| ldt(s.max_local_deletion_time)),
        droppable_tombstones: st.map(|s| s.droppable_tombstones(now)),
        keyspace: sst.schema.keyspace.clone(),
        table: sst.schema.table.clone(),
        columns: sst
            .schema
            .select_order()
            .into_iter()
            .map(|c| ColumnInfo {
                name: c.name.clone(),
                kind: c.kind,
                ty: c.ty.to_string(),
            })
            .collect(),
    })
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
        all.push(describe(&sst, now)?);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        write_or_quit(writeln!(out, "{}", serde_json::to_string_pretty(&all)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    for s in &all {
        let mut t = String::new();
        use std::fmt::Write as _;
        let _ = writeln!(t, "SSTable: {}", s.path);
        let _ = writeln!(
            t,
            "  table:              {}.{}",
            s.keyspace.as_deref().unwrap_or("?"),
            s.table.as_deref().unwrap_or("?")
        );
        let _ = writeln!(t, "  version:            {} ({})", s.version, s.format);
        let _ = writeln!(
            t,
            "  partitioner:        {}",
            s.partitioner.as_deref().unwrap_or("?")
        );
        match (&s.compression, s.chunk_length) {
            (Some(c), Some(l)) => {
                let _ = writeln!(
                    t,
                    "  compression:        {c}, {} KiB chunks, ratio {:.3}",
                    l / 1024,
                    s.compression_ratio.unwrap_or(-1.0)
                );
            }
            _ => {
                let _ = writeln!(t, "  compression:        none");
            }
        }
        let _ = writeln!(
            t,
            "  data size:          {} bytes on disk, {} uncompressed",
            s.data_bytes_on_disk, s.data_bytes_uncompressed
        );
        let _ = writeln!(
            t,
            "  partitions:         {} (estimated {})",
            s.partitions,
            s.estimated_partitions.unwrap_or(-1)
        );
        let _ = writeln!(
            t,
            "  rows:               {} (+{} static; statistics say {})",
            s.rows,
            s.static_rows,
            s.total_rows_in_statistics.unwrap_or(-1)
        );
        let _ = writeln!(
            t,
            "  tombstones:         {} partition, {} row, {} range markers",
            s.partition_tombstones, s.row_tombstones, s.range_tombstone_markers
        );
        let _ = writeln!(
            t,
            "  timestamps:         {} .. {}",
            s.min_timestamp_utc.as_deref().unwrap_or("?"),
            s.max_timestamp_utc.as_deref().unwrap_or("?")
        );
        let _ = writeln!(
            t,
            "  TTL:                {} .. {} s",
            s.min_ttl.unwrap_or(0),
            s.max_ttl.unwrap_or(0)
        );
        let _ = writeln!(
            t,
            "  deletion times:     {} .. {}",
            s.min_local_deletion_time_utc.as_deref().unwrap_or("none"),
            s.max_local_deletion_time_utc.as_deref().unwrap_or("none")
        );
        let _ = writeln!(
            t,
            "  droppable tombstones (estimate at --now): {}",
            s.droppable_tombstones.unwrap_or(0)
        );
        let _ = writeln!(t, "  columns:");
        for c in &s.columns {
            let _ = writeln!(
                t,
                "    {:<24} {:<14} {}",
                c.name,
                format!("{:?}", c.kind),
                c.ty
            );
        }
        write_or_quit(writeln!(out, "{t}"))?;
    }
    Ok(ExitCode::SUCCESS)
}
