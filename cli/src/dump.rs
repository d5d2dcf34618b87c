//! `funnel dump`: one JSON object per live CQL row. By default every table's SSTables (all generations,
//! all nodes) are merged as Cassandra would answer `SELECT *`, partitions in ring order; `--no-merge`
//! prints each SSTable on its own, in on-disk order.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sstable_reader::{
    discover, Columns, CqlSchema, DeletionTime, MetaItem, OwnedRow, Projection, ReadOptions,
    RowRenderer, SSTable, Selection, Unfiltered,
};

use crate::common::{parse_now, write_or_quit, SnapshotArg};
use crate::expired::Expired;

/// Print the live rows of SSTables as JSON lines (one object per CQL row).
///
/// Each line maps column names to values: text as strings, integers and decimals as numbers, blobs
/// as "0x…", uuids and inet addresses as strings, timestamps as ISO-8601 UTC, collections as
/// arrays/objects, tuples as arrays and UDTs as objects. Deletions and TTLs are applied as
/// Cassandra would answer at `--now`. Columns come in `SELECT *` order. All SSTables of a table —
/// generations, and the copies of several nodes — are merged into one row per primary key
/// (`--no-merge`: each SSTable on its own). `--with-meta` shows the deletions of the view: merged,
/// those the merged rows still hold (a newer deletion purges an older one); with --no-merge, every
/// one of each SSTable.
///
/// Damage: every chunk is checked against its checksum (CompressionInfo's per-chunk CRC32, CRC.db; an
/// uncompressed file without CRC.db is checked whole against Digest.crc32) before any row of it is
/// printed. Rows printed before a checksum (or any other) error came from verified chunks only; the
/// exit code (non-zero) tells that the output stopped there.
///
/// Examples:
///   funnel dump data/tracking/events-1b2c…/snapshots/nightly/ --limit 5
///   funnel dump nb-1-big-Data.db --columns actor_id,name,ts
///   funnel dump table_dir --schema schema.cql --with-meta | jq .
///   funnel dump /backups/node1 /backups/node2 --table tracking.events --snapshot nightly
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Data.db files, table, snapshot, keyspace, data or node directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print each SSTable on its own instead of merging all SSTables of a table.
    #[arg(long)]
    no_merge: bool,
    /// Only this table (`keyspace.table` or `table`).
    #[arg(long, value_name = "KS.TABLE")]
    table: Option<String>,
    #[command(flatten)]
    snapshot: SnapshotArg,
    #[command(flatten)]
    cache: crate::cache::CacheArg,
    /// CREATE TABLE / CREATE TYPE statements naming the key columns (default: schema.cql next to the
    /// files, else the node's own system_schema; without either, key columns are pk0…, ck0…).
    #[arg(long, value_name = "FILE")]
    schema: Option<PathBuf>,
    /// Only these columns, comma-separated (the scan decodes only them).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    columns: Vec<String>,
    /// Stop after N rows.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Add write times, TTLs and expiry per row and cell (`_meta`; a collection's elements as an array
    /// naming each element), and every deletion: row, shadowable and collection deletions and cell
    /// tombstones in `_meta`; rows with nothing live, partition deletions and range tombstones as
    /// `_tombstone` lines (in the merged view, the ranges of all SSTables merged: the newest deletion
    /// at each point, as a read returns them).
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
    if !args.no_merge {
        return run_merged(&args, schema.as_ref(), options, now);
    }
    // Each file with its table's schema: --schema, else schema.cql (found by the reader), else the
    // node's own system_schema.
    let mut files: Vec<(PathBuf, Option<CqlSchema>)> = Vec::new();
    for t in discover(&args.paths, &selection(&args))?.tables {
        let node = if schema.is_none() {
            t.node_schema()?
        } else {
            None
        };
        files.extend(t.files.into_iter().map(|f| (f, node.clone())));
    }
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut printed = 0u64;
    let limit = args.limit.unwrap_or(u64::MAX);
    let mut lines = Vec::new();
    let mut expired = Expired::default();
    'files: for (file, node) in files {
        let sst = SSTable::open(&file, schema.as_ref().or(node.as_ref()), options)?;
        let projection = if args.columns.is_empty() {
            Projection::all(&sst.schema)
        } else {
            Projection::columns(&sst.schema, &args.columns)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
        };
        expired.see(&sst);
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
        expired.rows += renderer.rows_expired;
        if renderer.duplicates_merged > 0 {
            eprintln!(
                "warning: {}: {} duplicate version(s) of rows inside one partition were merged (the file has duplicate rows; nodetool scrub removes them)",
                file.display(),
                renderer.duplicates_merged
            );
        }
    }
    write_or_quit(out.flush())?;
    expired.note(printed, now, args.now.is_some());
    Ok(ExitCode::SUCCESS)
}

/// The merged view: one row per primary key per table, partitions in ring order.
fn run_merged(
    args: &Args,
    schema: Option<&CqlSchema>,
    options: ReadOptions,
    now: i64,
) -> Result<ExitCode> {
    let tables = discover(&args.paths, &selection(args))?.tables;
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut printed = 0u64;
    let limit = args.limit.unwrap_or(u64::MAX);
    let mut lines = Vec::new();
    let columns = if args.columns.is_empty() {
        Columns::All
    } else {
        Columns::Named(args.columns.clone())
    };
    let mut expired = Expired::default();
    for t in tables {
        let mut table = t
            .open(schema, options)
            .with_context(|| format!("opening {}", t.qualified()))?;
        args.cache.attach(&mut table, &args.paths, 1)?;
        for sst in table.sstables() {
            expired.see(sst);
        }
        let mut renderer = RowRenderer::new(table.schema(), &args.columns, now, args.with_meta);
        let mut scan = table.scan(&columns, now)?;
        if args.with_meta {
            scan = scan.keeping_deletions();
        }
        while let Some(p) = scan.next_partition()? {
            // The merge applied the deletions: only --with-meta shows them.
            let (deletion, rows) = if args.with_meta {
                (p.deletion(), p.rows_with_deletions(table.schema()))
            } else {
                let live = p.static_row().into_iter().chain(p.rows());
                let rows = live.map(|r| MetaItem::Row(r.to_owned_row())).collect();
                (DeletionTime::LIVE, rows)
            };
            let at = || format!("{}: partition {:02x?}", t.qualified(), p.key());
            renderer
                .start_partition(p.key(), deletion, &mut lines)
                .with_context(at)?;
            for item in rows {
                match item {
                    MetaItem::Row(row) => renderer.row(row, &mut lines),
                    MetaItem::Marker(m) => renderer.owned_marker(&m, &mut lines),
                }
                .with_context(at)?;
            }
            renderer.end_partition(&mut lines)?;
            if emit(&mut out, &mut lines, &mut printed, limit)? {
                break;
            }
        }
        expired.rows += scan.stats().rows_expired;
        if printed >= limit {
            break;
        }
    }
    write_or_quit(out.flush())?;
    expired.note(printed, now, args.now.is_some());
    Ok(ExitCode::SUCCESS)
}

fn selection(args: &Args) -> Selection {
    Selection {
        tables: args.table.iter().cloned().collect(),
        snapshot: args.snapshot.snapshot.clone(),
    }
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
