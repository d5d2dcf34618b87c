//! `funnel export`: one table's merged live rows as Parquet or Arrow IPC files (the `export` crate), with
//! a progress bar on stderr and the written files listed on stdout.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use export::{export_table, ExportOptions, ExportState, Format};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sstable_reader::{discover, CqlSchema, ReadOptions, Selection};

use crate::common::{parse_now, write_or_quit, SnapshotArg};

/// Write a table's live rows as Parquet or Arrow IPC files that DuckDB, ClickHouse, pandas and Spark read.
///
/// The rows are those `funnel dump` prints: every SSTable of the table (all generations, all nodes)
/// merged as Cassandra answers `SELECT *` at `--now` (deletions and TTLs applied), columns in
/// `SELECT *` order, CQL types mapped to Arrow types (docs/EXPORT.md has the table). The ring is cut
/// into token ranges scanned in parallel; each range writes its own files, `part-RRRRR-FFFF.parquet`
/// (or `.arrow`), in ring order by name, a new file at the first partition boundary past --rows-per-file. Files are written under
/// hidden temporary names and renamed when the whole export succeeded: a failed export leaves no file.
/// The written files are listed on stdout.
///
/// Examples:
///   funnel export --table tracking.events --data /var/lib/cassandra/data --format parquet --out /exports/events
///   funnel export --table tracking.hits --data node1/ node2/ --format arrow --out hits/ --columns app_id,ts,props
///   duckdb -c "SELECT name, count(*) FROM '/exports/events/*.parquet' GROUP BY name"
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The table (`keyspace.table` or `table`).
    #[arg(long, value_name = "KS.TABLE")]
    table: String,
    /// Data.db files, table, snapshot, keyspace, data or node directories.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    data: Vec<PathBuf>,
    /// Output format: `parquet` (zstd) or `arrow` (Arrow IPC file, uncompressed).
    #[arg(long, value_parser = ["parquet", "arrow"])]
    format: String,
    /// The directory to write into (created if missing; must be outside the data directories).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Only these columns, comma-separated (kept in `SELECT *` order; the scan decodes only them).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    columns: Vec<String>,
    /// Judge TTL expiry at this time (RFC 3339 or seconds since the epoch; default: now).
    #[arg(long, value_name = "TS")]
    now: Option<String>,
    #[command(flatten)]
    snapshot: SnapshotArg,
    #[command(flatten)]
    cache: crate::cache::CacheArg,
    /// CREATE TABLE / CREATE TYPE statements naming the key columns (default: schema.cql next to the
    /// files, else the node's own system_schema).
    #[arg(long, value_name = "FILE")]
    schema: Option<PathBuf>,
    /// Worker threads (default: the available cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Start another file at the first partition boundary at or past this many rows.
    #[arg(long, value_name = "N", default_value_t = 10_000_000)]
    rows_per_file: u64,
    /// Uuid and timeuuid columns as `text` (the canonical form; every engine reads it, Spark 4 too) or
    /// `binary` (16 bytes, Parquet's UUID type: DuckDB and ClickHouse read UUIDs; Spark 4 refuses it).
    #[arg(long, value_parser = ["text", "binary"], default_value = "text")]
    uuid: String,
    /// Replace the `part-*` files an earlier export left in --out (refused otherwise).
    #[arg(long)]
    overwrite: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let now = parse_now(args.now.as_deref())?;
    let schema = match &args.schema {
        Some(p) => Some(CqlSchema::read(p)?),
        None => None,
    };
    let selection = Selection {
        tables: vec![args.table.clone()],
        snapshot: args.snapshot.snapshot.clone(),
    };
    let tables = discover(&args.data, &selection)?.tables;
    let found = match tables.as_slice() {
        [one] => one,
        [] => bail!(
            "no table {} under {}",
            args.table,
            args.data
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        many => bail!(
            "{} tables match {}: {}; name it as keyspace.table",
            many.len(),
            args.table,
            many.iter()
                .map(|t| t.qualified())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let name = found.qualified();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut table = found
        .open(schema.as_ref(), ReadOptions::default())
        .with_context(|| format!("opening {name}"))?;
    args.cache.attach(&mut table, &args.data, threads)?;
    let format = match args.format.as_str() {
        "arrow" => Format::Arrow,
        _ => Format::Parquet,
    };
    let mut options = ExportOptions::new(format, args.out.clone(), args.data.clone(), now);
    options.columns = args.columns.clone();
    options.threads = threads;
    options.rows_per_file = args.rows_per_file.max(1);
    options.overwrite = args.overwrite;
    if args.uuid == "binary" {
        options.uuids = export::mapping::Uuids::Binary;
    }
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| Mutex::new(None));
    let draw = |s: &ExportState| draw(bar.as_ref(), s);
    let report = export_table(&table, &name, &options, bar.as_ref().map(|_| &draw as _))
        .with_context(|| format!("exporting {name} to {}", args.out.display()))?;
    if let Some(Ok(Some(b))) = bar.as_ref().map(Mutex::lock).map(|g| g.map(|b| b.clone())) {
        b.finish_and_clear();
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for f in &report.files {
        write_or_quit(writeln!(out, "{}", f.display()))?;
    }
    write_or_quit(out.flush())?;
    eprintln!(
        "exported {} rows of {name} to {} {} files ({:.1} MB, {} token ranges){}{}{}",
        report.rows,
        report.files.len(),
        format.extension(),
        report.bytes as f64 / 1e6,
        report.ranges,
        if report.replaced > 0 {
            format!("; replaced {} earlier files", report.replaced)
        } else {
            String::new()
        },
        if report.rows_expired > 0 {
            format!("; {} rows had expired (TTL) at --now", report.rows_expired)
        } else {
            String::new()
        },
        if report.empty_values > 0 {
            format!(
                "; {} empty values of non-text types written as null",
                report.empty_values
            )
        } else {
            String::new()
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// Draws the progress bar (on-disk bytes read, rows written), created on the first report.
fn draw(bar: Option<&Mutex<Option<ProgressBar>>>, s: &ExportState) {
    let Some(Ok(mut bar)) = bar.map(Mutex::lock) else {
        return;
    };
    let b = bar.get_or_insert_with(|| {
        let style = ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} on disk · {binary_bytes_per_sec} · {msg} · ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        ProgressBar::with_draw_target(Some(s.disk_bytes_total), ProgressDrawTarget::stderr())
            .with_style(style)
    });
    b.set_position(s.disk_bytes_read.min(s.disk_bytes_total));
    let secs = s.elapsed.as_secs_f64().max(1e-3);
    b.set_message(format!(
        "{} rows written ({:.2} M rows/s)",
        s.rows_written,
        s.rows_written as f64 / secs / 1e6
    ));
}
