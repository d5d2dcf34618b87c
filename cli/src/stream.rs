//! `funnel stream`: the speed layer — consume hits and events from Kafka into the fact store, exactly once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ::stream::{AttributionConfig, DeadLetterSink, Metrics, StartFrom, StreamOptions};
use anyhow::{bail, Context};

/// Consume hits and SDK events from Kafka into the fact store: real-time daily counts and
/// hit→event conversions, exactly once.
///
/// Each message is one JSON hit or event (schema, examples, the dead-letter reason of every
/// malformed case: docs/STREAM.md). Producers key messages `app_id|fingerprint` (the rule:
/// docs/STREAM.md), so one device's clicks and events share a partition and are matched in
/// one order. A copy of a hit or event (same app and id) applied within `dedupe_window` is
/// dropped and counted in funnel_stream_duplicates_total.
///
/// Each batch of one partition is applied to the store in one transaction with the offset
/// to resume from. The store, not Kafka, decides where a partition resumes: a crash (even
/// kill -9), a broker restart or a rebalance neither loses nor double-counts anything.
/// Malformed messages are counted per reason and dead-lettered; they never stop the stream.
/// SIGINT/SIGTERM: current batches are applied and committed, then the group is left.
///
/// With --raw cql://…, every valid hit/event is also written as a row of the 60-day tables
/// `hits` / `events` (their CQL: docs/STREAM.md) in that keyspace, before its batch is applied: idempotent
/// upserts, so retries never duplicate rows; if they cannot be written, the batch is not
/// applied and is retried (metric funnel_stream_raw_write_failures_total). --init-raw
/// creates the keyspace and both tables first (or run the CQL in docs/STREAM.md).
///
/// Examples:
///
///   funnel stream --brokers 127.0.0.1:9092 --topic tracking \
///       --group funnel-speed --facts sqlite:facts.db
///
///   funnel stream --brokers 127.0.0.1:9092 --topic tracking \
///       --group funnel-speed --facts sqlite:facts.db --config attribution.toml \
///       --metrics 127.0.0.1:9464 --dead-letter-topic tracking-dead
///
///   funnel stream --brokers 127.0.0.1:9092 --topic tracking \
///       --group funnel-speed --facts sqlite:facts.db \
///       --raw 'cql://10.0.0.1:9042,10.0.0.2/tracking?user=funnel&password=…&rf=3' --init-raw
///
/// Attribution config (TOML; every key optional):
///
///   [defaults]
///   policy = "first_click"        # or "last_click"
///   device_window = "7d"          # click and event carry the same device id
///   fingerprint_window = "24h"    # (IP, user agent) only
///   conversion_events = ["install", "open"]
///   late_arrival = "1d"           # how long pending items wait for late messages
///   dedupe_window = "1d"          # how long ids are remembered (default late_arrival, >= 1d)
///   [apps.a1]                     # per-app overrides
///   policy = "last_click"
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Kafka bootstrap servers, `host:port[,host:port…]`.
    #[arg(long, env = "FUNNEL_BROKERS")]
    pub brokers: String,
    /// Topic with the hits and events.
    #[arg(long)]
    pub topic: String,
    /// Consumer group; offsets are kept per group in the fact store.
    #[arg(long)]
    pub group: String,
    #[command(flatten)]
    pub facts: crate::common::FactsArg,
    /// Attribution settings (TOML): windows, first/last click, conversion events, per app.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Serve Prometheus metrics at `http://ADDR/metrics`, e.g. `127.0.0.1:9464`.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Produce malformed messages (with reason and origin) to this topic.
    #[arg(long, conflicts_with = "dead_letter_file")]
    pub dead_letter_topic: Option<String>,
    /// Append malformed messages (JSON lines) to this file.
    #[arg(long)]
    pub dead_letter_file: Option<PathBuf>,
    /// Cut a partition's batch at this many messages…
    #[arg(long, default_value_t = 2000)]
    pub batch_max_messages: usize,
    /// …or this many milliseconds after its first message was received.
    #[arg(long, default_value_t = ::stream::consumer::DEFAULT_BATCH_MAX_MS)]
    pub batch_max_ms: u64,
    /// Where a partition the store has no offset for starts.
    #[arg(long, value_enum, default_value_t = Start::Earliest)]
    pub start: Start,
    /// Extra librdkafka setting `key=value` (repeatable), e.g. `--kafka session.timeout.ms=6000`.
    #[arg(long, value_name = "KEY=VALUE")]
    pub kafka: Vec<String>,
    /// Also write raw rows (`hits`, `events`) to Cassandra/Scylla:
    /// `cql://host:port[,host…]/keyspace?user=..&password=..&rf=N`.
    #[arg(long, value_name = "URL", env = "FUNNEL_RAW")]
    pub raw: Option<String>,
    /// Create the --raw keyspace and tables if missing before consuming.
    #[arg(long, requires = "raw")]
    pub init_raw: bool,
    /// Log as JSON lines instead of text (filter with RUST_LOG, default `info`).
    #[arg(long)]
    pub log_json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Start {
    Earliest,
    Latest,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging(args.log_json);
    let mut opts = StreamOptions::new(&args.brokers, &args.topic, &args.group);
    if let Some(path) = &args.config {
        opts.attribution = AttributionConfig::load(path)?;
    }
    if args.batch_max_messages == 0 {
        bail!("--batch-max-messages must be at least 1");
    }
    opts.batch_max_messages = args.batch_max_messages;
    opts.batch_max_wait = Duration::from_millis(args.batch_max_ms);
    opts.start = match args.start {
        Start::Earliest => StartFrom::Earliest,
        Start::Latest => StartFrom::Latest,
    };
    for kv in &args.kafka {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--kafka {kv:?} is not key=value"))?;
        opts.kafka
            .push((k.trim().to_string(), v.trim().to_string()));
    }
    let store = args.facts.open()?;
    // No DDL here: concurrent CREATE TABLEs from consumers starting together split table ids on
    // Cassandra. Tables come from `funnel facts init` (SQLite files create theirs when opened).
    let store: Arc<dyn facts::StreamStore> = Arc::new(store);
    let dead = Arc::new(match (&args.dead_letter_topic, &args.dead_letter_file) {
        (Some(topic), _) => DeadLetterSink::topic(&args.brokers, topic)?,
        (None, Some(path)) => DeadLetterSink::file(path)?,
        (None, None) => DeadLetterSink::LogOnly,
    });
    let metrics = Arc::new(Metrics::new()?);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        let mut opts = opts;
        if let Some(url) = &args.raw {
            // The error names the URL (password redacted) or the nodes.
            let writer = ::stream::raw::RawWriter::connect(url, args.init_raw).await?;
            tracing::info!(keyspace = writer.keyspace(), "writing raw rows");
            opts.raw = Some(Arc::new(writer));
        }
        let _server = match args.metrics {
            Some(addr) => Some(::stream::metrics::serve(metrics.clone(), addr).await?),
            None => None,
        };
        ::stream::run(opts, store, dead, metrics, None, shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown signal received");
}

fn init_logging(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
