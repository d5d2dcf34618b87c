//! Which buffer compression the cache should write: the entries of one table holding COLUMNS (what a
//! `funnel run` builds: its funnels' columns) written with ZSTD (arrow-ipc's default level), LZ4_FRAME
//! and no compression, their size against the SSTables' Data.db, and the CPU time of a warm merged scan
//! over each set of entries, best of REPS rounds taking turns with the scan of the SSTables themselves
//! (the ratio's baseline, in the same run). Every scan must see the same live rows.
//!
//! CPU time is the process's user + system time (`/proc/self/stat`), so the numbers stand on a machine
//! shared with other work, where wall time does not.
//!
//! usage: compression DATA KS.TABLE DIR COLUMNS(a,b|all) NOW_S THREADS [REPS]
//! (`CODECS=zstd,lz4`: only those; entries already in DIR are read as they are, not written again —
//! e.g. to profile the scans alone.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow_ipc::CompressionType;
use rayon::prelude::*;
use sstable_reader::{discover, Columns, ReadOptions, Selection};

mod common;

use common::{scan, Res};

/// The process's CPU time (user + system) in seconds.
fn cpu_seconds() -> Res<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().ok_or("no ) in /proc/self/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here; Linux counts 100 ticks a second.
    let utime: f64 = f.get(11).ok_or("no utime")?.parse()?;
    let stime: f64 = f.get(12).ok_or("no stime")?.parse()?;
    Ok((utime + stime) / 100.0)
}

struct Codec {
    name: &'static str,
    compression: Option<CompressionType>,
    bytes: u64,
    write_cpu: f64,
    scan_cpu: f64,
    scan_wall: f64,
}

fn entry(dir: &Path, codec: &str, i: usize) -> PathBuf {
    dir.join(codec).join(format!("{i}.arrow"))
}

fn main() -> Res<()> {
    let a: Vec<String> = std::env::args().collect();
    let usage = "usage: compression DATA KS.TABLE DIR COLUMNS NOW_S THREADS [REPS]";
    let arg = |i: usize| a.get(i).cloned().ok_or(usage);
    let data = PathBuf::from(arg(1)?);
    let name = arg(2)?;
    let dir = PathBuf::from(arg(3)?);
    let (columns, held) = match arg(4)?.as_str() {
        "all" => (Columns::All, None),
        c => {
            let names: Vec<String> = c.split(',').map(str::to_string).collect();
            (Columns::Named(names.clone()), Some(names))
        }
    };
    let now: i64 = arg(5)?.parse()?;
    let threads: usize = arg(6)?.parse()?;
    let reps: usize = a.get(7).map_or(Ok(3), |r| r.parse())?;
    let found = discover(std::slice::from_ref(&data), &Selection::default())?;
    let t = found.table(&name).ok_or("no such table")?;
    let open = || t.open(None, ReadOptions::default());
    let base = open()?;
    let data_bytes: u64 = base.sstables().iter().map(|s| s.data.file_len()).sum();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let mut codecs = vec![
        Codec {
            name: "zstd",
            compression: Some(CompressionType::ZSTD),
            bytes: 0,
            write_cpu: 0.0,
            scan_cpu: f64::MAX,
            scan_wall: f64::MAX,
        },
        Codec {
            name: "lz4",
            compression: Some(CompressionType::LZ4_FRAME),
            bytes: 0,
            write_cpu: 0.0,
            scan_cpu: f64::MAX,
            scan_wall: f64::MAX,
        },
        Codec {
            name: "none",
            compression: None,
            bytes: 0,
            write_cpu: 0.0,
            scan_cpu: f64::MAX,
            scan_wall: f64::MAX,
        },
    ];
    if let Ok(only) = std::env::var("CODECS") {
        codecs.retain(|c| only.split(',').any(|o| o == c.name));
    }
    for c in &mut codecs {
        let n = base.sstables().len();
        if (0..n).all(|i| entry(&dir, c.name, i).exists()) {
            c.bytes = (0..n)
                .map(|i| std::fs::metadata(entry(&dir, c.name, i)).map(|m| m.len()))
                .sum::<std::io::Result<u64>>()?;
            continue;
        }
        std::fs::create_dir_all(dir.join(c.name))?;
        let options = extract::WriteOptions {
            compression: c.compression,
            plain: Vec::new(),
            columns: held.clone(),
        };
        let cpu = cpu_seconds()?;
        let sizes: Vec<u64> = pool.install(|| {
            base.sstables()
                .par_iter()
                .enumerate()
                .map(|(i, sst)| -> Res<u64> {
                    let path = entry(&dir, c.name, i);
                    extract::write_extract_file(sst, &path, extract::identity(sst)?, &options)?;
                    Ok(std::fs::metadata(&path)?.len())
                })
                .collect::<Res<_>>()
        })?;
        c.write_cpu = cpu_seconds()? - cpu;
        c.bytes = sizes.iter().sum();
    }
    let (mut plain_cpu, mut plain_wall) = (f64::MAX, f64::MAX);
    let mut answers = Vec::new();
    for _ in 0..reps {
        let table = open()?;
        let (cpu, t0) = (cpu_seconds()?, Instant::now());
        answers.push(scan(&table, &columns, now, threads)?);
        plain_wall = plain_wall.min(t0.elapsed().as_secs_f64());
        plain_cpu = plain_cpu.min(cpu_seconds()? - cpu);
        for c in &mut codecs {
            let (cpu, t0) = (cpu_seconds()?, Instant::now());
            let mut table = open()?;
            for i in 0..table.sstables().len() {
                let sst = &table.sstables()[i];
                let ext = extract::Extract::open(&entry(&dir, c.name, i), sst, None)?;
                table.attach_feed(i, Arc::new(ext))?;
            }
            answers.push(scan(&table, &columns, now, threads)?);
            c.scan_wall = c.scan_wall.min(t0.elapsed().as_secs_f64());
            c.scan_cpu = c.scan_cpu.min(cpu_seconds()? - cpu);
        }
    }
    println!(
        "{name} at {now}, entries holding {columns:?}, {threads} threads, best of {reps} rounds taking turns"
    );
    println!(
        "live rows {} (checksum {:x}); every scan saw the same: {}",
        answers[0].0,
        answers[0].1,
        answers.windows(2).all(|w| w[0] == w[1])
    );
    println!(
        "scan of the SSTables (no cache): CPU {plain_cpu:.2} s, wall {plain_wall:.2} s; Data.db {:.0} MB",
        data_bytes as f64 / 1e6
    );
    println!("| codec | MB | % of Data.db | write CPU s | warm scan CPU s | warm / no cache (CPU) | wall s |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for c in &codecs {
        println!(
            "| {} | {:.1} | {:.1} % | {:.2} | {:.2} | {:.2} | {:.2} |",
            c.name,
            c.bytes as f64 / 1e6,
            100.0 * c.bytes as f64 / data_bytes as f64,
            c.write_cpu,
            c.scan_cpu,
            c.scan_cpu / plain_cpu,
            c.scan_wall
        );
    }
    Ok(())
}
