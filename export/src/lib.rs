//! `funnel export`: the merged live rows of one table — what `funnel dump` prints, as Cassandra answers
//! `SELECT *` at a fixed `now` — written as Parquet or Arrow IPC files that DuckDB, ClickHouse, pandas
//! and Spark read (docs/EXPORT.md).
//!
//! Layers, bottom up: [`mapping`] (CQL type → Arrow field) → `builder` (decoded values → Arrow arrays)
//! → `rows` (merged partitions → record batches) → `part` (one output file, written under a temporary
//! name) and `outdir` (the checks on the output directory) → `job` (token ranges on a thread pool,
//! files published once all succeeded).
//!
//! A crate of its own rather than a module of `extract`: only this command needs the Parquet writer,
//! and keeping it here keeps it out of the build of everything `funnel run` links (`funnelizer`,
//! `scheduler`, `serve` depend on `extract`).

mod builder;
mod error;
mod job;
pub mod mapping;
mod outdir;
mod part;
mod rows;

pub use error::{Error, Result};
pub use job::{export_table, ExportOptions, ExportReport, ExportState};
pub use part::Format;
