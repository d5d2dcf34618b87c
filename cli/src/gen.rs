//! `funnel gen`: writes a realistic `tracking` keyspace (events, hits, conversions) as Cassandra snapshot
//! directories, for benchmarks and end-to-end tests.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use datagen::{estimate_bytes, generate, GenOptions};
use indicatif::{ProgressBar, ProgressStyle};
use sstable_reader::writer::{writer_version, Compression};

/// Generate Cassandra SSTables (big format `nb` or `oa`) of the canonical `tracking.events`,
/// `tracking.hits` and `tracking.conversions` tables, laid out as snapshots:
/// `OUT/[nodeN/]tracking/<table>-<id>/snapshots/<tag>/` with `manifest.json` and `schema.cql`.
///
/// The data is realistic: Zipf-distributed activity per actor, a funnel-like event vocabulary
/// (install, open, signup, purchase, uninstall…), clicks with trackers/referrers/campaigns
/// attributed to installs, fingerprints shared by some actors, TTLs (some already expired), rows
/// overwritten and deleted in later SSTables, erased actors (partition tombstones). Output is
/// deterministic for a seed and end date and is streamed: it needs memory for one partition plus
/// ~50 bytes per actor, at any size.
///
/// Examples:
///   funnel gen --out /tmp/snap --actors 10000 --days 14 --seed 7
///   funnel gen --out bench-data --actors 2000000 --events-per-actor 40 --sstables 8 \
///       --compression zstd
///   funnel gen --out /tmp/cluster --nodes 3 --rf 2 --format oa
/// At the end it prints a JSON tally per table (rows written, live rows, deletions, expiries,
/// bytes).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Output directory (created).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Number of actors (app users).
    #[arg(long, default_value_t = 1000)]
    actors: u64,
    /// Days of history, ending at --end-date.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Mean events per actor (the distribution is Zipf, s = 2).
    #[arg(long, default_value_t = 20.0)]
    events_per_actor: f64,
    /// SSTables per table (each holds one time slice, so partitions overlap across them).
    #[arg(long, default_value_t = 4)]
    sstables: u32,
    /// Data.db compression: lz4, snappy, zstd, deflate or none.
    #[arg(long, default_value = "lz4")]
    compression: String,
    /// SSTable format version: nb (Cassandra 4.x/5.0) or oa (Cassandra 5.0).
    #[arg(long, default_value = "nb")]
    format: String,
    /// Number of nodes; each gets `nodeN/` with the replicas of its token ranges.
    #[arg(long, default_value_t = 1)]
    nodes: u32,
    /// Replication factor (with --nodes).
    #[arg(long, default_value_t = 1)]
    rf: u32,
    /// Random seed (same seed and end date, same files).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Last day of the period (YYYY-MM-DD, UTC midnight ends it; default: today).
    #[arg(long, value_name = "DATE")]
    end_date: Option<String>,
    /// TTL of events and hits in seconds (the tables' default_time_to_live); 0 writes no TTL.
    #[arg(long, default_value_t = 5_184_000)]
    ttl: u32,
    /// Number of apps the actors are spread over.
    #[arg(long, default_value_t = 3)]
    apps: u32,
    /// Snapshot tag (directory name under snapshots/).
    #[arg(long, default_value = "funnel-gen")]
    tag: String,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn end_ms(date: Option<&str>) -> Result<i64> {
    let day = match date {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .with_context(|| format!("--end-date {d:?}"))?,
        None => chrono::Utc::now().date_naive(),
    };
    let midnight = day.and_hms_opt(0, 0, 0).context("midnight")?.and_utc();
    Ok(midnight.timestamp_millis())
}

pub fn run(args: Args) -> Result<ExitCode> {
    let options = GenOptions {
        out: args.out.clone(),
        actors: args.actors,
        days: args.days,
        events_per_actor: args.events_per_actor,
        sstables: args.sstables,
        compression: args.compression.parse::<Compression>()?,
        version: writer_version(&args.format)?,
        nodes: args.nodes,
        rf: args.rf,
        seed: args.seed,
        end_ms: end_ms(args.end_date.as_deref())?,
        ttl: args.ttl,
        apps: args.apps,
        snapshot_tag: args.tag.clone(),
    };
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(estimate_bytes(&options));
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/~{total_bytes} uncompressed, {binary_bytes_per_sec}, {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    let mut last = 0u64;
    let report = generate(&options, &mut |bytes| {
        if bytes - last >= 1 << 20 {
            bar.set_position(bytes);
            last = bytes;
        }
    })?;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!(
        "wrote {:.1} MB uncompressed ({:.1} MB on disk) in {:.1}s: {:.1} MB/s",
        report.uncompressed_bytes as f64 / 1e6,
        report.data_bytes as f64 / 1e6,
        report.seconds,
        report.uncompressed_bytes as f64 / 1e6 / report.seconds.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}
