//! `funnel dump`: one JSON object per live CQL row, partitions in on-disk order.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sstable_reader::reconcile::OwnedRow;
use sstable_reader::{
    cql::RowRenderer, find_data_files, CqlSchema, Projection, ReadOptions, SSTable, Unfiltered,
};

use crate::common::{parse_now, write_or_quit};

/// Print the live rows of SSTables as JSON lines (one object per CQL row).
///
/// Each line maps column names to values: text as strings, integers and decimals as numbers, blobs as
/// "0x…", uuids and inet addresses as strings, timestamps as ISO-8601 UTC, collections as arrays/objects,
/// tuples as arrays and UDTs as objects. Deletions and TTLs are applied as Cassandra would answer at
/// `--now`. Columns come in `SELECT *` order.
///
/// Examples:
///   funnel dump data/tracking/events-1b2c…/snapshots/nightly/ --limit 5
///   funnel dump nb-1-big-Data.db --columns actor_id,name,ts
///   funnel dump table_dir --schema schema.cql --with-meta | jq .
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data.db files, table directories or snapshot directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// CREATE TABLE / CREATE TYPE statements naming the key columns (default: schema.cql next to the
    /// files; without one, key columns are pk0…, ck0…).
    #[arg(long, value_name = "FILE")]
    schema: Option<PathBuf>,
    /// Only these columns, comma-separated (the scan decodes only them).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    columns: Vec<String>,
    /// Stop after N rows.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Add write times, TTLs and expiry per row and cell (`_meta`), and print tombstones as lines with a
    /// `_tombstone` field.
    #[arg(long)]
    with_meta: bool,
    /// Judge TTL expiry at this time (RFC 3339 or seconds since the epoch; default: now).
    #[arg(long, value_name = "TS")]
    now: Option<String>,
    /// Read cells whose TTL expiry overflowed 2038 (negative expiry, CASSANDRA-14092) as
    /// `nodetool scrub --reinsert-overflowed-ttl` would, instead of failing.
    #[arg(long)]
    recover_overflowed_ttl: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let now = parse_now(args.now.as_deref())?;
    let schema = match &args.schema {
        Some(p) => Some(CqlSchema::read(p)?),
        None => None,
    };
    let options = ReadOptions {
        recover_overflowed_ttl: args.recover_overflowed_ttl,
    };
    let mut files = Vec::new();
    for p in &args.paths {
        files.extend(find_data_files(p)?);
    }
    if files.is_empty() {
        anyhow::bail!(
            "no SSTables (…-Data.db) found under {}",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut printed = 0u64;
    let limit = args.limit.unwrap_or(u64::MAX);
    let mut lines = Vec::new();
    'files: for file in files {
        let sst = SSTable::open(&file, schema.as_ref(), options)?;
        let projection = if args.columns.is_empty() {
            Projection::all(&sst.schema)
        } else {
            Projection::columns(&sst.schema, &args.columns)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
        };
        let mut renderer = RowRenderer::new(&sst.schema, &args.columns, now, args.with_meta);
        let mut scan = sst.scanner(projection);
        while let Some(p) = scan.next_partition()? {
            renderer
                .start_partition(scan.key(), p.deletion, &mut lines)
                .with_context(|| format!("{}: partition at {}", file.display(), p.position))?;
            loop {
                let u = scan.next_unfiltered()?;
                let result = match u {
                    None => break,
                    Some(Unfiltered::Row(r)) => {
                        let pos = r.position();
                        renderer
                            .row(OwnedRow::from_row(&r), &mut lines)
                            .map_err(|e| (e, pos))
                    }
                    Some(Unfiltered::Marker(m)) => {
                        let pos = m.position();
                        renderer.marker(&m, &mut lines).map_err(|e| (e, pos))
                    }
                };
                result.map_err(|(e, pos)| {
                    anyhow::anyhow!("{}: row at offset {pos}: {e}", file.display())
                })?;
                if emit(&mut out, &mut lines, &mut printed, limit)? {
                    break 'files;
                }
            }
            renderer.end_partition(&mut lines)?;
            if emit(&mut out, &mut lines, &mut printed, limit)? {
                break 'files;
            }
        }
        if renderer.duplicates_merged > 0 {
            eprintln!(
                "warning: {}: {} duplicate version(s) of rows inside one partition were merged (the file has duplicate rows; nodetool scrub removes them)",
                file.display(),
                renderer.duplicates_merged
            );
        }
    }
    write_or_quit(out.flush())?;
    Ok(ExitCode::SUCCESS)
}

/// Writes buffered lines; returns true when the limit is reached.
fn emit(
    out: &mut impl Write,
    lines: &mut Vec<String>,
    printed: &mut u64,
    limit: u64,
) -> Result<bool> {
    for line in lines.drain(..) {
        if *printed >= limit {
            return Ok(true);
        }
        write_or_quit(writeln!(out, "{line}"))?;
        *printed += 1;
    }
    Ok(*printed >= limit)
}
