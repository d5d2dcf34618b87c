//! Which part of the ring one shard of a sharded run reads: `--shard I/N` alone is the `I`-th of `N`
//! equal parts of the partitioner's token space; with `--token-ranges FILE` it is the ranges that file
//! lists (a node's primary ranges, say). Either way the shard decodes only partitions whose token lies
//! in its spans ([`sstable_reader::plan_ranges_in`]), and since events and conversions are partitioned
//! by (app, actor), it sees whole actors.
//!
//! # Token-range files
//! One range per line, Cassandra's `(start, end]` (start excluded, end included; `start >= end` wraps
//! past the ring's end, `start == end` is the whole ring), tokens as Cassandra prints them (Murmur3: a
//! signed 64-bit integer; Random: 0..=2^127). A line is either `START END` or a `TokenRange(start_token:
//! START, end_token: END, …)` line of `nodetool describering KEYSPACE`, whose header lines (`Schema
//! Version:…`, `TokenRange:`) are skipped. Blank lines and lines starting with `#` are ignored.
//! Ranges may not overlap (an error names both lines).

use std::path::{Path, PathBuf};

use sstable_reader::token_ring::{self, TokenSpan};
use sstable_reader::Partitioner;

use crate::error::Error;

/// One shard of a sharded run: its name and number, and where its token ranges come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardSpec {
    /// The sharded run's name: every shard of one run uses the same.
    pub run_name: String,
    /// 1-based shard number.
    pub index: u32,
    /// Shards of the run.
    pub count: u32,
    /// A file listing this shard's token ranges (`None`: the `index`-th of `count` equal parts).
    pub token_ranges: Option<PathBuf>,
}

/// Longest run name accepted (it keys the partials in the fact store).
const MAX_RUN_NAME: usize = 200;

impl ShardSpec {
    /// Shard `position` (`"I/N"`, `1 <= I <= N`) of the run `run_name`.
    pub fn parse(run_name: &str, position: &str) -> Result<ShardSpec, Error> {
        let bad = || {
            Error::Shard {
            message: format!(
                "--shard {position:?}: expected I/N with 1 <= I <= N (e.g. 2/8: the second of 8 shards)"
            ),
        }
        };
        let (i, n) = position.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        check_run_name(run_name)?;
        Ok(ShardSpec {
            run_name: run_name.to_string(),
            index,
            count,
            token_ranges: None,
        })
    }

    /// The same shard reading the ranges `path` lists instead of an equal part of the ring.
    pub fn with_token_ranges(mut self, path: impl Into<PathBuf>) -> ShardSpec {
        self.token_ranges = Some(path.into());
        self
    }

    /// The shard's token spans under partitioner `p`, sorted and joined.
    pub fn spans(&self, p: Partitioner) -> Result<Vec<TokenSpan>, Error> {
        if token_ring::ring_end(p).is_none() {
            return Err(Error::Shard {
                message: format!(
                    "the tables use the {}, which orders partitions by key bytes alone: it has no token space to shard",
                    p.name()
                ),
            });
        }
        match &self.token_ranges {
            Some(path) => read_token_ranges(path, p),
            None => Ok(token_ring::equal_shard(p, self.index, self.count)
                .into_iter()
                .collect()),
        }
    }
}

/// A run name: 1 to 200 characters, no control characters.
pub fn check_run_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_RUN_NAME || name.chars().any(char::is_control) {
        return Err(Error::Shard {
            message: format!(
                "--run-name {name:?}: expected 1 to {MAX_RUN_NAME} characters without control characters"
            ),
        });
    }
    Ok(())
}

/// The spans of a token-range file (see the module doc), sorted and joined.
pub fn read_token_ranges(path: &Path, p: Partitioner) -> Result<Vec<TokenSpan>, Error> {
    let at = |line: usize, message: String| Error::TokenRanges {
        path: path.to_path_buf(),
        line,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| at(0, format!("cannot read: {e}")))?;
    let mut spans: Vec<(TokenSpan, usize)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty()
            || line.starts_with('#')
            || line.starts_with("Schema Version")
            || line == "TokenRange:"
        {
            continue;
        }
        let (start, end) = range_tokens(line).ok_or_else(|| {
            at(
                n + 1,
                format!("expected `START END` or a `TokenRange(start_token:START, end_token:END, …)` line, found {line:?}"),
            )
        })?;
        let token = |t: &str| {
            token_ring::parse_token(p, t).ok_or_else(|| {
                let range = match p {
                    Partitioner::Random => "an integer in 0..=2^127",
                    _ => "a signed 64-bit integer",
                };
                at(
                    n + 1,
                    format!("{t:?} is not a {} token ({range})", p.name()),
                )
            })
        };
        let (start, end) = (token(start)?, token(end)?);
        for s in token_ring::cassandra_range(p, start, end).unwrap_or_default() {
            spans.push((s, n + 1));
        }
    }
    if spans.is_empty() {
        return Err(at(0, "no token ranges in the file".into()));
    }
    spans.sort();
    for w in spans.windows(2) {
        if w[1].0.lo < w[0].0.hi {
            return Err(at(
                w[1].1.max(w[0].1),
                format!(
                    "this range overlaps the range of line {}",
                    w[1].1.min(w[0].1)
                ),
            ));
        }
    }
    token_ring::normalize(spans.into_iter().map(|(s, _)| s).collect())
        .map_err(|(a, b)| at(0, format!("ranges {a:?} and {b:?} overlap")))
}

/// `(start, end)` of a `START END` or `TokenRange(start_token:START, end_token:END, …)` line.
fn range_tokens(line: &str) -> Option<(&str, &str)> {
    if line.starts_with("TokenRange(") {
        let field = |name: &str| {
            let from = line.find(name)? + name.len();
            let rest = &line[from..];
            let to = rest.find([',', ')'])?;
            Some(rest[..to].trim())
        };
        return Some((field("start_token:")?, field("end_token:")?));
    }
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(a), Some(b), None) => Some((a, b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_positions_are_checked() {
        let s = ShardSpec::parse("nightly", "2/7").unwrap();
        assert_eq!((s.index, s.count), (2, 7));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "-1/3"] {
            let e = ShardSpec::parse("r", bad).unwrap_err().to_string();
            assert!(e.contains("expected I/N"), "{bad}: {e}");
        }
        assert!(ShardSpec::parse("", "1/2").is_err());
        assert!(ShardSpec::parse("a\nb", "1/2").is_err());
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ranges.txt");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn token_range_files_read_both_forms_and_name_bad_lines() {
        let p = Partitioner::Murmur3;
        let (_d, path) = file(
            "# node 1\nSchema Version:1b2c\nTokenRange: \n\
             \tTokenRange(start_token:-100, end_token:100, endpoints:[127.0.0.1], rpc_endpoints:[127.0.0.1])\n\
             100 9223372036854775807\n",
        );
        let spans = read_token_ranges(&path, p).unwrap();
        let t = |s: &str| token_ring::parse_token(p, s).unwrap();
        assert_eq!(
            spans,
            [TokenSpan {
                lo: t("-99"),
                hi: 1 << 64
            }]
        );

        let (_d, path) = file("1 2\n\n3 4 5\n");
        let e = read_token_ranges(&path, p).unwrap_err().to_string();
        assert!(e.ends_with(":3: expected `START END` or a `TokenRange(start_token:START, end_token:END, …)` line, found \"3 4 5\""), "{e}");
        let (_d, path) = file("1 2\n0 x\n");
        let e = read_token_ranges(&path, p).unwrap_err().to_string();
        assert!(
            e.contains(":2: \"x\" is not a Murmur3Partitioner token"),
            "{e}"
        );
        let (_d, path) = file("0 100\n200 300\n50 60\n");
        let e = read_token_ranges(&path, p).unwrap_err().to_string();
        assert!(
            e.ends_with(":3: this range overlaps the range of line 1"),
            "{e}"
        );
        // Wrapping (100, -100] overlaps (-200, -150].
        let (_d, path) = file("100 -100\n-200 -150\n");
        let e = read_token_ranges(&path, p).unwrap_err().to_string();
        assert!(e.contains("overlaps the range of line 1"), "{e}");
        let (_d, path) = file("# nothing\n");
        let e = read_token_ranges(&path, p).unwrap_err().to_string();
        assert!(e.ends_with(":0: no token ranges in the file"), "{e}");
        let e = ShardSpec::parse("r", "1/2")
            .unwrap()
            .spans(Partitioner::ByteOrdered)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no token space"), "{e}");
    }
}
