//! One `funnel run` as a job, with or without the extract cache, for timing a cold cache run against a
//! run without cache with the same binary (`/usr/bin/time` around alternating invocations):
//!
//! ```text
//! cargo build --release -p funnelizer --example cold_cache
//! target/release/examples/cold_cache FUNNELS.toml DATA NOW_S THREADS [CACHE_DIR]
//! ```
//!
//! Prints the run's wall time, rows read and what the cache did.

use std::path::PathBuf;
use std::time::Instant;

use funnelizer::{FunnelSet, Job, JobOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [funnels, data, now, threads, rest @ ..] = args.as_slice() else {
        return Err("usage: cold_cache FUNNELS.toml DATA NOW_S THREADS [CACHE_DIR]".into());
    };
    let set = FunnelSet::load(funnels.as_ref())?;
    let mut options = JobOptions::new(vec![PathBuf::from(data)], now.parse()?);
    options.threads = Some(threads.parse()?);
    options.cache = rest.first().map(PathBuf::from);
    let facts = tempfile::tempdir()?;
    let store = facts::open_store(&format!(
        "sqlite:{}",
        facts.path().join("facts.db").display()
    ))?;
    let started = Instant::now();
    let report = Job::new(set, options).run(&store)?;
    println!(
        "wall {:.2} s, {} rows read, {} facts, cache {:?}",
        started.elapsed().as_secs_f64(),
        report.rows_read,
        report.published.facts.len(),
        report.cache
    );
    Ok(())
}
