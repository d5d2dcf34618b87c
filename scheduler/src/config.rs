//! The schedule config (TOML) and where the scheduler keeps its lock and state.
//!
//! ```toml
//! facts = "sqlite:/var/lib/funnel/facts.db"
//! funnels = "/etc/funnel/funnels.toml"      # reread before every run
//! data = ["/var/lib/cassandra/data/tracking"]
//! snapshot = "newest"                       # "newest" | a tag | omit: live SSTables
//! every = "1h"                              # or: cron = "0 15 * * * *" (sec min hour dom mon dow, UTC)
//! threads = 4
//! memory_budget = "8GiB"                    # anonymous memory of the run; mmapped SSTables do not count
//! spill_dir = "/scratch/funnel"             # where a shuffled run spills (tables not keyed by actor)
//! cache = "/var/cache/funnel"               # columnar extracts of the SSTables; default: off; true:
//!                                           # under $XDG_CACHE_HOME/funnel/extracts (docs/CACHE.md)
//! timeout = "2h"
//! retries = 2                               # re-list and rerun when inputs changed under a failed run
//! ```
//! Relative paths are relative to the config file's directory.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use funnelizer::{parse_bytes, parse_time};
use serde::Deserialize;
use sstable_reader::Snapshot;

use crate::error::Error;
use crate::log::LogFormat;

/// When runs start.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// Every interval, measured from the start of the previous attempt (the first one runs at once).
    Every(Duration),
    /// A cron expression (`cron` crate syntax: sec min hour day-of-month month day-of-week [year], UTC).
    Cron(Box<cron::Schedule>),
}

impl Trigger {
    /// The next start strictly after `after_ms` (Unix ms), given the previous start (if any).
    pub fn next_after(&self, after_ms: i64, previous_start_ms: Option<i64>) -> Option<i64> {
        match self {
            Trigger::Every(d) => {
                let step = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                Some(match previous_start_ms {
                    None => after_ms,
                    Some(p) => p.saturating_add(step).max(after_ms),
                })
            }
            Trigger::Cron(s) => {
                let after = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(after_ms)?;
                s.after(&after).next().map(|t| t.timestamp_millis())
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    facts: String,
    funnels: PathBuf,
    data: Vec<PathBuf>,
    snapshot: Option<String>,
    every: Option<String>,
    cron: Option<String>,
    threads: Option<usize>,
    memory_budget: Option<String>,
    spill_dir: Option<PathBuf>,
    cache: Option<CacheSetting>,
    timeout: Option<String>,
    retries: Option<u32>,
    state_dir: Option<PathBuf>,
    schema: Option<PathBuf>,
    now: Option<String>,
    log: Option<LogFormat>,
}

/// `cache = true | false | "DIR"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CacheSetting {
    On(bool),
    Dir(PathBuf),
}

/// Where the scheduler keeps extracts by default: `$XDG_CACHE_HOME/funnel/extracts`, else
/// `$HOME/.cache/funnel/extracts` (`None`: neither is set).
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    Some(base.join("funnel").join("extracts"))
}

/// A parsed, validated schedule config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config was read from (for messages).
    pub origin: PathBuf,
    /// Fact store URL (`sqlite:PATH` or `cql://…`).
    pub facts: String,
    /// The funnels TOML; reread before every run.
    pub funnels: PathBuf,
    /// Data paths (node, data, keyspace, table or snapshot directories).
    pub data: Vec<PathBuf>,
    /// Which copy of each table directory runs read: the live SSTables, a tag, or the newest tag every
    /// directory of the funnels' tables has (resolved before each attempt, so the fingerprint and the run
    /// read the same tag).
    pub snapshot: Snapshot,
    /// `None`: only `--once` makes sense.
    pub trigger: Option<Trigger>,
    pub threads: Option<usize>,
    /// Bytes of anonymous resident memory the run may use (it is killed past it). A run that shuffles
    /// (tables not keyed by actor) is given half of it as its `--memory-budget`, so it spills first.
    pub memory_budget: Option<u64>,
    /// The run's `--spill-dir` (default: the system temp dir).
    pub spill_dir: Option<PathBuf>,
    /// The run's `--cache` (extracts of the SSTables, so each run decodes only new SSTables); `None`
    /// unless the config asks for it: a warm run does not yet beat a run without cache (docs/CACHE.md).
    pub cache: Option<PathBuf>,
    pub timeout: Option<Duration>,
    /// Reruns after a failure during which the inputs changed (compaction).
    pub retries: u32,
    pub schema: Option<PathBuf>,
    /// A fixed `--now` for every run (replays, tests); default: the wall clock at each run.
    pub now: Option<String>,
    pub log: LogFormat,
    /// Lock and state files.
    pub paths: StatePaths,
}

fn bad(origin: &Path, message: impl Into<String>) -> Error {
    Error::Config {
        path: origin.display().to_string(),
        message: message.into(),
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
        Config::parse(&text, path)
    }

    /// Parses a config's text; relative paths are resolved against `origin`'s directory.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, Error> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| bad(origin, e.to_string()))?;
        let base = origin.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        if raw.data.is_empty() {
            return Err(bad(origin, "`data` must name at least one path"));
        }
        let trigger = match (&raw.every, &raw.cron) {
            (Some(_), Some(_)) => {
                return Err(bad(origin, "give either `every` or `cron`, not both"))
            }
            (Some(e), None) => {
                let d = humantime::parse_duration(e)
                    .map_err(|err| bad(origin, format!("every = {e:?}: {err}")))?;
                if d < Duration::from_secs(1) {
                    return Err(bad(origin, format!("every = {e:?}: at least 1s")));
                }
                Some(Trigger::Every(d))
            }
            (None, Some(c)) => Some(Trigger::Cron(Box::new(
                cron::Schedule::from_str(c).map_err(|err| {
                    bad(
                        origin,
                        format!("cron = {c:?}: {err} (fields: sec min hour day-of-month month day-of-week [year])"),
                    )
                })?,
            ))),
            (None, None) => None,
        };
        let snapshot: Snapshot = raw
            .snapshot
            .as_deref()
            .unwrap_or_default()
            .parse()
            .map_err(|e| bad(origin, format!("{e}")))?;
        let memory_budget = match &raw.memory_budget {
            None => None,
            Some(s) => Some(
                parse_bytes(s).map_err(|e| bad(origin, format!("memory_budget = {s:?}: {e}")))?,
            ),
        };
        let timeout = match &raw.timeout {
            None => None,
            Some(s) => Some(
                humantime::parse_duration(s)
                    .map_err(|err| bad(origin, format!("timeout = {s:?}: {err}")))?,
            ),
        };
        if raw.threads == Some(0) {
            return Err(bad(origin, "threads must be at least 1"));
        }
        if let Some(n) = &raw.now {
            if let Err(e) = parse_time(n) {
                return Err(bad(origin, format!("now = {n:?}: {e}")));
            }
        }
        let facts = raw.facts.trim().to_string();
        let facts = match facts.strip_prefix("sqlite:") {
            Some(p) if !p.starts_with("//") && !Path::new(p).is_absolute() => {
                format!("sqlite:{}", base.join(p).display())
            }
            _ => facts,
        };
        let state_dir = raw.state_dir.as_deref().map(resolve);
        let paths =
            StatePaths::for_store(&facts, state_dir.as_deref()).map_err(|m| bad(origin, m))?;
        Ok(Config {
            origin: origin.to_path_buf(),
            facts,
            funnels: resolve(&raw.funnels),
            data: raw.data.iter().map(|p| resolve(p)).collect(),
            snapshot,
            trigger,
            threads: raw.threads,
            memory_budget,
            spill_dir: raw.spill_dir.as_deref().map(resolve),
            cache: match raw.cache {
                Some(CacheSetting::On(true)) => default_cache_dir(),
                None | Some(CacheSetting::On(false)) => None,
                Some(CacheSetting::Dir(d)) => Some(resolve(&d)),
            },
            timeout,
            retries: raw.retries.unwrap_or(2),
            schema: raw.schema.as_deref().map(resolve),
            now: raw.now,
            log: raw.log.unwrap_or_default(),
            paths,
        })
    }
}

/// The scheduler's lock and state files for one fact store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePaths {
    /// Held (exclusive `flock`) for the whole attempt.
    pub lock: PathBuf,
    /// [`crate::ScheduleState`] as JSON.
    pub state: PathBuf,
}

impl StatePaths {
    /// Next to a SQLite store (`facts.db.schedule.lock`, `facts.db.schedule.json`), or in `state_dir`
    /// (required for CQL stores: a local directory; the lock then only excludes schedulers on this host).
    pub fn for_store(facts_url: &str, state_dir: Option<&Path>) -> Result<StatePaths, String> {
        if let Some(dir) = state_dir {
            return Ok(StatePaths {
                lock: dir.join("schedule.lock"),
                state: dir.join("schedule.json"),
            });
        }
        let path = facts_url
            .strip_prefix("sqlite://")
            .or_else(|| facts_url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                format!("facts = {facts_url:?} is not a SQLite store: set `state_dir` (where the scheduler keeps its lock and state)")
            })?;
        if path.is_empty() {
            return Err("facts = \"sqlite:\" names no file".into());
        }
        Ok(StatePaths {
            lock: PathBuf::from(format!("{path}.schedule.lock")),
            state: PathBuf::from(format!("{path}.schedule.json")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Error> {
        Config::parse(text, Path::new("/etc/funnel/schedule.toml"))
    }

    #[test]
    fn full_config_resolves_relative_paths_and_parses_units() {
        let c = parse(
            r#"
facts = "sqlite:facts.db"
funnels = "funnels.toml"
data = ["/data/node1", "snap"]
snapshot = "newest"
every = "90m"
threads = 3
memory_budget = "2GiB"
spill_dir = "spill"
timeout = "1h 30m"
retries = 1
log = "json"
"#,
        )
        .unwrap();
        assert_eq!(c.facts, "sqlite:/etc/funnel/facts.db");
        assert_eq!(c.spill_dir.as_deref(), Some(Path::new("/etc/funnel/spill")));
        assert_eq!(c.funnels, Path::new("/etc/funnel/funnels.toml"));
        assert_eq!(
            c.data,
            vec![
                PathBuf::from("/data/node1"),
                PathBuf::from("/etc/funnel/snap")
            ]
        );
        assert_eq!(c.snapshot, Snapshot::Newest);
        assert!(matches!(c.trigger, Some(Trigger::Every(d)) if d == Duration::from_secs(5400)));
        assert_eq!(c.memory_budget, Some(2 << 30));
        assert_eq!(c.timeout, Some(Duration::from_secs(5400)));
        assert_eq!(c.retries, 1);
        assert_eq!(c.log, LogFormat::Json);
        assert_eq!(
            c.paths.lock,
            PathBuf::from("/etc/funnel/facts.db.schedule.lock")
        );
    }

    #[test]
    fn mistakes_are_reported_with_the_file_name() {
        for (text, needle) in [
            (
                "facts='sqlite:f'\nfunnels='f'\ndata=[]",
                "at least one path",
            ),
            (
                "facts='sqlite:f'\nfunnels='f'\ndata=['d']\nevery='1h'\ncron='* * * * * *'",
                "not both",
            ),
            (
                "facts='sqlite:f'\nfunnels='f'\ndata=['d']\nevery='soon'",
                "every",
            ),
            (
                "facts='sqlite:f'\nfunnels='f'\ndata=['d']\ncron='nope'",
                "cron",
            ),
            (
                "facts='sqlite:f'\nfunnels='f'\ndata=['d']\nmemory_budget='lots'",
                "memory_budget",
            ),
            (
                "facts='sqlite:f'\nfunnels='f'\ndata=['d']\nthreads=0",
                "threads",
            ),
            (
                "facts='sqlite:f'\nfunnels='f'\ndata=['d']\nnow='yesterday'",
                "now",
            ),
            ("facts='sqlite:f'\nfunnels='f'\ndata=['d']\ntypo=1", "typo"),
            (
                "facts='cql://h:9042/ks'\nfunnels='f'\ndata=['d']",
                "state_dir",
            ),
        ] {
            let err = parse(text).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("/etc/funnel/schedule.toml: "), "{msg}");
            assert!(msg.contains(needle), "{text}: {msg}");
            assert!(matches!(err.outcome(), crate::Outcome::ConfigError));
        }
    }

    #[test]
    fn cql_store_with_state_dir_and_cron_trigger() {
        let c = parse(
            "facts='cql://h:9042/ks'\nfunnels='f'\ndata=['d']\nstate_dir='/var/lib/funnel'\ncron='0 15 * * * *'",
        )
        .unwrap();
        assert_eq!(
            c.paths.state,
            PathBuf::from("/var/lib/funnel/schedule.json")
        );
        let t = c.trigger.unwrap();
        // 2026-11-20T10:00:00Z → next is 10:15:00.
        let base = 1_795_168_800_000;
        assert_eq!(t.next_after(base, None), Some(base + 15 * 60_000));
    }

    #[test]
    fn interval_counts_from_the_previous_start_and_never_goes_back() {
        let t = Trigger::Every(Duration::from_secs(60));
        assert_eq!(t.next_after(1000, None), Some(1000));
        assert_eq!(t.next_after(5000, Some(1000)), Some(61_000));
        assert_eq!(t.next_after(100_000, Some(1000)), Some(100_000));
    }
}

#[cfg(test)]
mod sample {
    use super::*;

    #[test]
    fn the_shipped_sample_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/schedule.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.facts, "sqlite:/var/lib/funnel/facts.db");
        assert_eq!(c.snapshot, Snapshot::Newest);
        assert!(matches!(c.trigger, Some(Trigger::Every(_))));
        assert_eq!(c.memory_budget, Some(8 << 30));
        assert_eq!(c.log, LogFormat::Json);
    }
}
