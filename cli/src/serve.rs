//! `funnel serve`: the dashboard and JSON API (`serve::Server`) from the command line — its arguments in,
//! the address it listens on out.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::common::{parse_now, SnapshotArg};

/// Serve the funnel dashboard and its JSON API; define funnels in the browser.
///
/// Pages: `/` (apps, funnels, last run, freshness), `/funnels/ID?app=A` (steps, conversion, drop-off,
/// trend, breakdown, time to convert, which layer answered each day), `/counts?app=A`, `/runs`, and
/// `/define`, where a funnel typed in the browser is validated, saved into --funnels (atomically; a
/// concurrent edit is detected) and computed over all history under --data in the background by the
/// batch job of `funnel run`. The API is described in docs/API.md.
///
/// Listens on loopback by default. Any other address needs --token (or FUNNEL_TOKEN): every request
/// must then carry it, as `Authorization: Bearer TOKEN` or through the login form's cookie.
///
/// Examples:
///   funnel serve --facts sqlite:facts.db --funnels testdata/funnels.toml --data testdata/snapshot
///   FUNNEL_TOKEN=s3cret funnel serve --facts sqlite:facts.db --funnels funnels.toml \
///       --data /backups/node1 --listen 0.0.0.0:8080
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    pub facts: crate::common::DefaultFactsArg,
    /// Funnel definitions (TOML): listed on the pages, rewritten when a funnel is defined in the browser.
    #[arg(long, value_name = "FILE")]
    pub funnels: PathBuf,
    /// What new funnels are computed over: Data.db files, table, snapshot, keyspace, data or node directories.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    pub data: Vec<PathBuf>,
    /// Address to listen on (anything but loopback needs --token).
    #[arg(long, default_value = serve::Config::LISTEN, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// The token every request must carry.
    #[arg(
        long,
        env = "FUNNEL_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    #[command(flatten)]
    pub snapshot: SnapshotArg,
    #[command(flatten)]
    pub cache: crate::cache::CacheArg,
    /// CREATE TABLE statements for the batch job (default: schema.cql next to the files).
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// Worker threads of the batch job (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// The batch job's time (RFC 3339, date or seconds; default: when the job starts).
    #[arg(long, value_name = "TS")]
    pub now: Option<String>,
    /// The scheduler's state file shown on /runs (default: next to a SQLite store).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut config = serve::Config::new(args.facts.url, args.funnels, args.data);
    config.listen = args.listen;
    config.token = args.token;
    config.snapshot = args.snapshot.snapshot;
    config.schema = args.schema;
    config.threads = args.threads;
    config.cache = args.cache.cache;
    config.state = args.state;
    config.now_s = match args.now {
        Some(now) => Some(parse_now(Some(&now))?),
        None => None,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let server = serve::Server::bind(config).await?;
        // Tests and scripts read this line to find the port of --listen 127.0.0.1:0.
        println!("listening on http://{}", server.local_addr()?);
        server
            .run(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok::<_, serve::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
