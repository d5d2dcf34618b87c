//! `funnel schema`: the `CREATE TYPE` / `CREATE TABLE` statements a node's own `system_schema` holds,
//! recovered with the reader (a live table directory has no `schema.cql`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sstable_reader::{find_data_dir, NodeSchema};

use crate::common::write_or_quit;

/// Print the schema of a node's tables, read from its `system_schema` SSTables.
///
/// PATH is a node's data directory (the one holding `system_schema/`), the node directory above it, or
/// any directory or file under it. Prints `CREATE TYPE` and `CREATE TABLE` statements (key columns,
/// clustering order, user types) of every keyspace but the system ones, or of `--keyspace`/`--table`.
/// `funnel dump` and `funnel run` use the same schema when a table has no `schema.cql` and no
/// `--schema` is given.
///
/// Examples:
///   funnel schema /var/lib/cassandra/data
///   funnel schema /var/lib/scylla/data --keyspace tracking --table events > schema.cql
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A node's data directory (or a directory or file under it, or the node directory above it).
    path: PathBuf,
    /// Only this keyspace (system keyspaces included when named).
    #[arg(long, value_name = "K")]
    keyspace: Option<String>,
    /// Only this table (and the keyspace's types).
    #[arg(long, value_name = "T")]
    table: Option<String>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let data_dir = find_data_dir(&args.path).with_context(|| {
        format!(
            "{}: no system_schema directory in or above it (not a node's data directory)",
            args.path.display()
        )
    })?;
    let node = NodeSchema::read(&data_dir)?;
    let text = node.statements(args.keyspace.as_deref(), args.table.as_deref());
    if text.is_empty() {
        anyhow::bail!(
            "{}: no table{} in system_schema",
            data_dir.display(),
            match (&args.keyspace, &args.table) {
                (Some(k), Some(t)) => format!(" {k}.{t}"),
                (Some(k), None) => format!(" in keyspace {k}"),
                (None, Some(t)) => format!(" named {t}"),
                (None, None) => String::new(),
            }
        );
    }
    write_or_quit(std::io::Write::write_all(
        &mut std::io::stdout(),
        text.as_bytes(),
    ))?;
    Ok(ExitCode::SUCCESS)
}
