//! One export of a table, timed: what `bench/export.sh` runs with 1 and 2 threads (a release build of
//! this crate alone compiles far faster than the whole `funnel` binary).
//!
//! usage: export_bench DATA KS.TABLE parquet|arrow OUT THREADS NOW_SECONDS

use std::path::PathBuf;
use std::time::Instant;

use export::{export_table, ExportOptions, Format};
use sstable_reader::{discover, ReadOptions, Selection};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, table, format, out, threads, now] = args.as_slice() else {
        return Err(
            "usage: export_bench DATA KS.TABLE parquet|arrow OUT THREADS NOW_SECONDS".into(),
        );
    };
    let data = vec![PathBuf::from(data)];
    let selection = Selection {
        tables: vec![table.clone()],
        ..Selection::default()
    };
    let found = discover(&data, &selection)?.tables;
    let [found] = found.as_slice() else {
        return Err(format!("{} tables match {table}", found.len()).into());
    };
    let table = found.open(None, ReadOptions::default())?;
    let format = if format == "arrow" {
        Format::Arrow
    } else {
        Format::Parquet
    };
    let mut options = ExportOptions::new(format, PathBuf::from(out), data, now.parse()?);
    options.threads = threads.parse()?;
    options.overwrite = true;
    let started = Instant::now();
    let report = export_table(&table, &found.qualified(), &options, None)?;
    println!(
        "{{\"threads\":{},\"rows\":{},\"files\":{},\"bytes\":{},\"ranges\":{},\"seconds\":{:.3}}}",
        options.threads,
        report.rows,
        report.files.len(),
        report.bytes,
        report.ranges,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
