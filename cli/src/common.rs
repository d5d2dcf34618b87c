//! Small helpers shared by subcommands: time arguments, closed pipes, opening the fact store.

use anyhow::{Context, Result};

/// Parses `--now` (RFC 3339, a date or seconds since the epoch) into seconds; `None` is the current time.
pub fn parse_now(s: Option<&str>) -> Result<i64> {
    match s {
        None => Ok(chrono::Utc::now().timestamp()),
        Some(s) => Ok(funnelizer::parse_time(s)?),
    }
}

/// Treats a closed stdout (`funnel dump … | head`) as a normal end instead of an error.
pub fn write_or_quit(r: std::io::Result<()>) -> Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
}

/// What `--facts` says, on every command that takes it.
const FACTS_HELP: &str = "Fact store: `sqlite:PATH` or \
`cql://HOST:PORT[,HOST…]/KEYSPACE[?user=U&password=P&tls=true&ca=FILE&dc=DC&rf=N]` (docs/FACTS.md).";

/// `--facts` where the store must be named (or `FUNNEL_FACTS` set).
#[derive(Debug, Clone, clap::Args)]
pub struct FactsArg {
    #[arg(long = "facts", env = "FUNNEL_FACTS", value_name = "URL", help = FACTS_HELP)]
    pub url: String,
}

/// `--facts` with the embedded default, `sqlite:facts.db`.
#[derive(Debug, Clone, clap::Args)]
pub struct DefaultFactsArg {
    #[arg(
        long = "facts",
        env = "FUNNEL_FACTS",
        value_name = "URL",
        default_value = "sqlite:facts.db",
        help = FACTS_HELP
    )]
    pub url: String,
}

impl FactsArg {
    /// Opens the store; the error names it (password redacted).
    pub fn open(&self) -> Result<facts::Store> {
        open_store(&self.url)
    }
}

impl DefaultFactsArg {
    /// Opens the store; the error names it (password redacted).
    pub fn open(&self) -> Result<facts::Store> {
        open_store(&self.url)
    }
}

/// Opens the fact store at `url`; the error names it (password redacted).
pub fn open_store(url: &str) -> Result<facts::Store> {
    facts::open_store(url)
        .with_context(|| format!("opening fact store {}", facts::url::redact(url)))
}

/// `--snapshot`, shared by the commands that read SSTables.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArg {
    /// Which copy of each table directory: a tag under snapshots/, `newest` (the newest tag every
    /// table directory has, by manifest.json's created_at, else mtime) or `live` (default).
    #[arg(
        long,
        value_name = "TAG|newest",
        default_value = "live",
        hide_default_value = true
    )]
    pub snapshot: sstable_reader::Snapshot,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cmd {
        #[command(flatten)]
        facts: FactsArg,
    }

    /// Every command that opens a store says which one when it cannot, and never with its password:
    /// error messages end up in logs and CI output.
    #[test]
    fn a_store_that_cannot_be_opened_is_named_without_its_password() {
        let cmd = Cmd::try_parse_from([
            "funnel",
            "--facts",
            "cql://127.0.0.1:1/ks?user=u&password=s3cret&tls=maybe",
        ])
        .unwrap();
        let Err(e) = cmd.facts.open() else {
            panic!("opened a store with tls=maybe");
        };
        let e = format!("{e:#}");
        assert!(e.contains("cql://127.0.0.1:1/ks"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}
