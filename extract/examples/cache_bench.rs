//! A merged scan of one table with and without the extract cache, best of REPS rounds taking turns:
//! from the SSTables (no cache), cold (an empty cache: every extract built, then read), warm (every
//! extract read); prints the ratios, the cache's bytes against Data.db and checks that every scan saw
//! the same live rows (count and a checksum of the projected cells' values).
//!
//! usage: cache_bench DATA KS.TABLE CACHE_DIR COLUMNS(a,b|all) NOW_S THREADS [REPS]

use std::path::PathBuf;
use std::time::Instant;

use sstable_reader::{discover, Columns, ReadOptions, Selection};

mod common;

use common::{scan, Res};

fn main() -> Res<()> {
    let a: Vec<String> = std::env::args().collect();
    let usage = "usage: cache_bench DATA KS.TABLE CACHE_DIR COLUMNS NOW_S THREADS [REPS]";
    let arg = |i: usize| a.get(i).cloned().ok_or(usage);
    let data = PathBuf::from(arg(1)?);
    let name = arg(2)?;
    let cache_dir = PathBuf::from(arg(3)?);
    let columns = match arg(4)?.as_str() {
        "all" => Columns::All,
        c => Columns::Named(c.split(',').map(str::to_string).collect()),
    };
    let now: i64 = arg(5)?.parse()?;
    let threads: usize = arg(6)?.parse()?;
    let reps: usize = a.get(7).map_or(Ok(3), |r| r.parse())?;
    let found = discover(std::slice::from_ref(&data), &Selection::default())?;
    let t = found.table(&name).ok_or("no such table")?;
    let open = || t.open(None, ReadOptions::default());
    let data_bytes: u64 = open()?.sstables().iter().map(|s| s.data.file_len()).sum();
    let (mut plain, mut cold, mut warm, mut build) = (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    let mut answers = Vec::new();
    for _ in 0..reps {
        let table = open()?;
        let t0 = Instant::now();
        answers.push(scan(&table, &columns, now, threads)?);
        plain = plain.min(t0.elapsed().as_secs_f64());

        let _ = std::fs::remove_dir_all(&cache_dir);
        let cache = extract::Cache::open(&cache_dir, std::slice::from_ref(&data))?;
        let t0 = Instant::now();
        let mut table = open()?;
        let r = cache.attach(&mut table, threads, None)?;
        build = build.min(r.build_time.as_secs_f64());
        answers.push(scan(&table, &columns, now, threads)?);
        cold = cold.min(t0.elapsed().as_secs_f64());

        let t0 = Instant::now();
        let mut table = open()?;
        let r = cache.attach(&mut table, threads, None)?;
        assert_eq!(r.built, 0);
        answers.push(scan(&table, &columns, now, threads)?);
        warm = warm.min(t0.elapsed().as_secs_f64());
    }
    let cache_bytes = extract::Cache::open(&cache_dir, std::slice::from_ref(&data))?
        .stats()?
        .bytes;
    println!("{name} at {now}, columns {columns:?}, {threads} threads, best of {reps} rounds taking turns");
    println!(
        "live rows {} (checksum {:x}); every scan saw the same: {}",
        answers[0].0,
        answers[0].1,
        answers.windows(2).all(|w| w[0] == w[1])
    );
    println!("scan from the SSTables (no cache): {plain:.2} s");
    println!("cold --cache (extract every SSTable, then scan the extracts): {cold:.2} s (extraction {build:.2} s); ratio cold / no cache {:.2}", cold / plain);
    println!(
        "warm (scan the extracts): {warm:.2} s; ratio warm / no cache {:.2}",
        warm / plain
    );
    println!(
        "cache {:.0} MB = {:.1} % of Data.db {:.0} MB",
        cache_bytes as f64 / 1e6,
        100.0 * cache_bytes as f64 / data_bytes as f64,
        data_bytes as f64 / 1e6
    );
    Ok(())
}
