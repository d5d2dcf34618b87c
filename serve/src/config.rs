//! What a server serves and how: the fact store, the funnels file, the data the batch job reads, the
//! listen address and the token; [`Config::check`] refuses a listen address others can reach without a
//! token.

use std::net::SocketAddr;
use std::path::PathBuf;

use sstable_reader::Snapshot;

use crate::error::Error;

/// A server's settings. Build it with [`Config::new`] and set the fields that differ from the defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Fact store URL (`sqlite:PATH` or `cql://…`).
    pub facts: String,
    /// The funnels file the pages list and `POST /api/funnels` rewrites (the scheduler reads it too).
    pub funnels: PathBuf,
    /// The data paths the batch job reads when a funnel is defined in the browser.
    pub data: Vec<PathBuf>,
    /// Which copy of each table directory the batch job reads.
    pub snapshot: Snapshot,
    /// CREATE TABLE statements for the batch job (default: `schema.cql` next to the files).
    pub schema: Option<PathBuf>,
    /// Columnar extracts the batch job reads and keeps (`None`: no cache).
    pub cache: Option<PathBuf>,
    /// Worker threads of the batch job (`None`: one per core).
    pub threads: Option<usize>,
    /// The batch job's `now` (seconds since the epoch); `None`: the time the job starts.
    pub now_s: Option<i64>,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The token every request must carry; required when `listen` is not a loopback address.
    pub token: Option<String>,
    /// The scheduler's state file for `/runs` (default: next to a SQLite store).
    pub state: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
}

impl Config {
    /// Default listen address: loopback only.
    pub const LISTEN: &'static str = "127.0.0.1:8080";
    /// Default body limit: 256 KiB, far more than any funnels file.
    pub const BODY_LIMIT: usize = 256 * 1024;

    /// Serves `facts` and `funnels`, computing new funnels over `data`, on the default loopback address
    /// without a token.
    pub fn new(facts: String, funnels: PathBuf, data: Vec<PathBuf>) -> Config {
        Config {
            facts,
            funnels,
            data,
            snapshot: Snapshot::Live,
            schema: None,
            cache: None,
            threads: None,
            now_s: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            state: None,
            body_limit: Self::BODY_LIMIT,
        }
    }

    /// Refuses what must not start: a listen address other than loopback without a token (anyone on the
    /// network could read the facts and start jobs), and an empty token.
    pub fn check(&self) -> Result<(), Error> {
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(Error::EmptyToken);
        }
        if self.token.is_none() && !self.listen.ip().is_loopback() {
            return Err(Error::TokenRequired {
                listen: self.listen,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &str, token: Option<&str>) -> Config {
        let mut c = Config::new("sqlite:f.db".into(), "f.toml".into(), vec![]);
        c.listen = listen.parse().unwrap();
        c.token = token.map(str::to_string);
        c
    }

    #[test]
    fn only_loopback_may_listen_without_a_token() {
        assert!(config("127.0.0.1:8080", None).check().is_ok());
        assert!(config("[::1]:8080", None).check().is_ok());
        let err = config("0.0.0.0:8080", None).check().unwrap_err();
        assert!(err.to_string().contains("--token"), "{err}");
        assert!(config("10.0.0.5:80", None).check().is_err());
        assert!(config("0.0.0.0:8080", Some("s3cret")).check().is_ok());
        assert!(config("127.0.0.1:8080", Some(" ")).check().is_err());
    }
}
