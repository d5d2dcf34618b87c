//! Input fingerprints: which SSTables (path, size, mtime, `Digest.crc32`) and which funnel versions a run
//! covers. Two runs with equal [`Fingerprint::key`]s compute the same facts, so the second is skipped.
//!
//! Listing a live data directory races with compaction, which deletes SSTables at any time: a file that
//! vanishes between listing and `stat` makes the whole listing start again (up to [`RELIST_ATTEMPTS`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sstable_reader::{discover, Component, Descriptor, DiscoveredTable, Selection, Snapshot};

use crate::error::Error;
use funnelizer::FunnelSet;

/// How many times a listing is restarted when files vanish under it.
pub const RELIST_ATTEMPTS: usize = 5;

/// One SSTable as the fingerprint sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SstableFile {
    /// The Data.db path.
    pub path: PathBuf,
    /// Data.db size in bytes.
    pub size: u64,
    /// Data.db modification time, ns since the epoch.
    pub mtime_ns: u128,
    /// The decimal CRC32 in `Digest.crc32`, when present.
    pub digest: Option<String>,
}

/// What a run covers. Everything that changes the facts a run publishes is in here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `keyspace.table` → its SSTables, sorted by path.
    pub tables: BTreeMap<String, Vec<SstableFile>>,
    /// `(funnel_id, funnel_version)`, sorted.
    pub funnels: Vec<(String, String)>,
    /// The snapshot tag read (`None`: live SSTables).
    pub snapshot: Option<String>,
    /// UTC day (days since the epoch) of the run's `--now`: a new day moves the watermark and expires
    /// TTLs, so it reruns even when the files did not change.
    pub now_day: i64,
    /// SHA-256 of the `--schema` file, when one is given.
    pub schema_sha256: Option<String>,
}

impl Fingerprint {
    /// Stable hex key (SHA-256 of the canonical JSON).
    pub fn key(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex(&Sha256::digest(&json))
    }

    /// Number of SSTables over all tables.
    pub fn sstable_count(&self) -> usize {
        self.tables.values().map(Vec::len).sum()
    }

    /// Total Data.db bytes.
    pub fn bytes(&self) -> u64 {
        self.tables.values().flatten().map(|f| f.size).sum()
    }

    /// Human summary of how `self` differs from `before` (for "why did this run").
    pub fn diff(&self, before: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        let old: BTreeMap<&Path, &SstableFile> = before
            .tables
            .values()
            .flatten()
            .map(|f| (f.path.as_path(), f))
            .collect();
        let new: BTreeMap<&Path, &SstableFile> = self
            .tables
            .values()
            .flatten()
            .map(|f| (f.path.as_path(), f))
            .collect();
        let added = new.keys().filter(|p| !old.contains_key(*p)).count();
        let removed = old.keys().filter(|p| !new.contains_key(*p)).count();
        let changed = new
            .iter()
            .filter(|(p, f)| old.get(*p).is_some_and(|o| o != *f))
            .count();
        if added + removed + changed > 0 {
            out.push(format!(
                "sstables: {added} new, {removed} gone, {changed} changed"
            ));
        }
        let of: BTreeSet<_> = before.funnels.iter().collect();
        let nf: BTreeSet<_> = self.funnels.iter().collect();
        for (id, v) in nf.difference(&of) {
            out.push(format!("funnel {id}@{v} is new"));
        }
        for (id, v) in of.difference(&nf) {
            out.push(format!("funnel {id}@{v} is gone"));
        }
        if self.snapshot != before.snapshot {
            out.push(format!(
                "snapshot {:?} → {:?}",
                before.snapshot, self.snapshot
            ));
        }
        if self.now_day != before.now_day {
            out.push(format!("day {} → {}", before.now_day, self.now_day));
        }
        if self.schema_sha256 != before.schema_sha256 {
            out.push("schema file changed".into());
        }
        out
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The tables a run over `set` reads (its `[source]` events and conversions tables).
pub fn source_tables(set: &FunnelSet) -> Vec<String> {
    vec![
        set.source.events.table.clone(),
        set.source.conversions.table.clone(),
    ]
}

/// The funnels part of a fingerprint.
pub fn funnel_versions(set: &FunnelSet) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = set
        .funnels
        .iter()
        .map(|f| (f.id.clone(), f.version.clone()))
        .collect();
    v.sort();
    v
}

/// The snapshot tag to read: `Newest` resolves, as the reader's discovery does, to the newest tag every
/// directory of `tables` (`keyspace.table` or `table`; empty: all) under `data` has.
pub fn resolve_snapshot(
    data: &[PathBuf],
    tables: &[String],
    choice: &Snapshot,
) -> Result<Option<String>, Error> {
    match choice {
        Snapshot::Live => Ok(None),
        Snapshot::Tag(t) => Ok(Some(t.clone())),
        Snapshot::Newest => {
            let selection = Selection {
                tables: tables.to_vec(),
                snapshot: Snapshot::Newest,
            };
            let found = discover(data, &selection).map_err(Error::Newest)?;
            Ok(found.snapshot)
        }
    }
}

/// Everything but the SSTables: funnel versions, snapshot, day, schema, and which tables count.
#[derive(Debug, Clone)]
pub struct RunKey {
    /// Tables whose SSTables are fingerprinted, as the funnels' `[source]` names them (`keyspace.table`
    /// or `table`), the same ones `funnel run` reads; empty: every table found.
    pub tables: Vec<String>,
    pub funnels: Vec<(String, String)>,
    pub snapshot: Option<String>,
    pub now_day: i64,
    pub schema: Option<PathBuf>,
}

/// Fingerprints what a run over `data` would read. See [`collect_with`].
pub fn collect(data: &[PathBuf], key: &RunKey) -> Result<(Fingerprint, usize), Error> {
    collect_with(data, key, &mut |_| {})
}

/// Lists the tables under `data` as `funnel run` does (same discovery, same snapshot selection) and stats
/// every Data.db and its digest. `after_list` sees each listing before the files are stat'ed (tests use it
/// to delete files at that moment). Returns the fingerprint and how many times the listing was restarted
/// because files vanished.
pub fn collect_with(
    data: &[PathBuf],
    key: &RunKey,
    after_list: &mut dyn FnMut(&[PathBuf]),
) -> Result<(Fingerprint, usize), Error> {
    let schema_sha256 = match &key.schema {
        None => None,
        Some(p) => Some(hex(&Sha256::digest(std::fs::read(p).map_err(|e| {
            Error::Config {
                path: p.display().to_string(),
                message: format!("schema: {e}"),
            }
        })?))),
    };
    let selection = Selection {
        tables: key.tables.clone(),
        snapshot: Snapshot::from_tag(key.snapshot.clone()),
    };
    let mut last_vanished = None;
    for relisted in 0..RELIST_ATTEMPTS {
        let tables = match discover(data, &selection) {
            Ok(found) => found.tables,
            Err(sstable_reader::Error::Io { path, source })
                if source.kind() == ErrorKind::NotFound && relisted + 1 < RELIST_ATTEMPTS =>
            {
                last_vanished = Some(path);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let all: Vec<PathBuf> = tables.iter().flat_map(|t| t.files.clone()).collect();
        after_list(&all);
        match stat_all(&tables) {
            Ok(map) => {
                return Ok((
                    Fingerprint {
                        tables: map,
                        funnels: key.funnels.clone(),
                        snapshot: key.snapshot.clone(),
                        now_day: key.now_day,
                        schema_sha256,
                    },
                    relisted,
                ))
            }
            Err(Stat::Vanished(p)) => last_vanished = Some(p),
            Err(Stat::Failed(e)) => return Err(e),
        }
    }
    Err(Error::Vanishing {
        last: last_vanished.unwrap_or_default(),
    })
}

fn input_io(path: &Path, source: std::io::Error) -> Error {
    Error::InputIo {
        path: path.to_path_buf(),
        source,
    }
}

enum Stat {
    Vanished(PathBuf),
    Failed(Error),
}

fn stat_all(tables: &[DiscoveredTable]) -> Result<BTreeMap<String, Vec<SstableFile>>, Stat> {
    let mut out = BTreeMap::new();
    for t in tables {
        let mut files = Vec::with_capacity(t.files.len());
        for f in &t.files {
            let meta = match std::fs::metadata(f) {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::NotFound => return Err(Stat::Vanished(f.clone())),
                Err(e) => return Err(Stat::Failed(input_io(f, e))),
            };
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let digest = match Descriptor::from_path(f) {
                Ok(d) => match std::fs::read_to_string(d.path(Component::Digest)) {
                    Ok(s) => Some(s.trim().to_string()),
                    Err(e) if e.kind() == ErrorKind::NotFound => None,
                    Err(e) => return Err(Stat::Failed(input_io(f, e))),
                },
                Err(e) => return Err(Stat::Failed(e.into())),
            };
            files.push(SstableFile {
                path: f.clone(),
                size: meta.len(),
                mtime_ns,
                digest,
            });
        }
        out.insert(t.qualified(), files);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/snapshot")
    }

    fn key() -> RunKey {
        RunKey {
            tables: Vec::new(),
            funnels: vec![("a".into(), "0123".into())],
            snapshot: None,
            now_day: 20_000,
            schema: None,
        }
    }

    /// A copy of the committed snapshot in a temp dir (so tests may change it).
    fn copy_snapshot(to: &Path) {
        fn copy_dir(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).unwrap();
            for e in std::fs::read_dir(from).unwrap() {
                let e = e.unwrap();
                let dest = to.join(e.file_name());
                if e.file_type().unwrap().is_dir() {
                    copy_dir(&e.path(), &dest);
                } else {
                    std::fs::copy(e.path(), &dest).unwrap();
                }
            }
        }
        copy_dir(&testdata(), to);
    }

    #[test]
    fn fingerprint_lists_every_table_with_sizes_and_digests() {
        let (fp, relisted) = collect(&[testdata()], &key()).unwrap();
        assert_eq!(relisted, 0);
        assert_eq!(
            fp.tables.keys().cloned().collect::<Vec<_>>(),
            ["tracking.conversions", "tracking.events", "tracking.hits"]
        );
        for f in fp.tables.values().flatten() {
            assert!(f.size > 0 && f.mtime_ns > 0);
            let d = f.digest.as_deref().expect("gen writes Digest.crc32");
            assert!(d.parse::<u32>().is_ok(), "{d}");
        }
        // Same inputs, same key; a funnel version or the day changes it.
        let (again, _) = collect(&[testdata()], &key()).unwrap();
        assert_eq!(fp.key(), again.key());
        let mut k = key();
        k.funnels.push(("b".into(), "ffff".into()));
        let (other, _) = collect(&[testdata()], &k).unwrap();
        assert_ne!(fp.key(), other.key());
        assert_eq!(other.diff(&fp), vec!["funnel b@ffff is new".to_string()]);
        let mut k = key();
        k.now_day += 1;
        assert_ne!(collect(&[testdata()], &k).unwrap().0.key(), fp.key());
        // Only the tables the funnels read, named as `[source]` names them.
        let mut k = key();
        k.tables = vec!["tracking.events".into(), "conversions".into()];
        let (some, _) = collect(&[testdata()], &k).unwrap();
        assert_eq!(
            some.tables.keys().cloned().collect::<Vec<_>>(),
            ["tracking.conversions", "tracking.events"]
        );
    }

    #[test]
    fn a_touched_or_grown_file_changes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        copy_snapshot(dir.path());
        let (before, _) = collect(&[dir.path().to_path_buf()], &key()).unwrap();
        let victim = before.tables["tracking.events"][0].path.clone();
        let mut bytes = std::fs::read(&victim).unwrap();
        bytes.push(0);
        std::fs::write(&victim, bytes).unwrap();
        let (after, _) = collect(&[dir.path().to_path_buf()], &key()).unwrap();
        assert_ne!(before.key(), after.key());
        assert_eq!(
            after.diff(&before),
            vec!["sstables: 0 new, 0 gone, 1 changed".to_string()]
        );
    }

    #[test]
    fn a_file_deleted_between_listing_and_stat_is_relisted() {
        let dir = tempfile::tempdir().unwrap();
        copy_snapshot(dir.path());
        let mut deleted: Option<PathBuf> = None;
        let (fp, relisted) = collect_with(&[dir.path().to_path_buf()], &key(), &mut |files| {
            if deleted.is_none() {
                // What compaction does: the Data.db and its siblings go away.
                let victim = files
                    .iter()
                    .find(|f| f.to_string_lossy().contains("events"))
                    .unwrap();
                let d = Descriptor::from_path(victim).unwrap();
                for c in [Component::Data, Component::Digest, Component::Index] {
                    let _ = std::fs::remove_file(d.path(c));
                }
                deleted = Some(victim.clone());
            }
        })
        .unwrap();
        assert_eq!(relisted, 1);
        let deleted = deleted.unwrap();
        assert!(fp.tables.values().flatten().all(|f| f.path != deleted));
        assert!(!fp.tables["tracking.events"].is_empty());
    }

    #[test]
    fn newest_snapshot_is_the_most_recent_tag_the_tables_share() {
        let dir = tempfile::tempdir().unwrap();
        copy_snapshot(dir.path());
        let table = std::fs::read_dir(dir.path().join("tracking"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains("events"))
            .unwrap();
        let old = table.join("snapshots/funnel-gen");
        let newer = table.join("snapshots/aaa-later");
        std::fs::create_dir_all(&newer).unwrap();
        for e in std::fs::read_dir(&old).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), newer.join(e.file_name())).unwrap();
        }
        // The copied tag is older than the new one, whatever the clock granularity.
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::open(&old)
            .unwrap()
            .set_modified(past)
            .unwrap();
        let data = [dir.path().to_path_buf()];
        let events = ["tracking.events".to_string()];
        let t = resolve_snapshot(&data, &events, &Snapshot::Newest).unwrap();
        assert_eq!(t.as_deref(), Some("aaa-later"));
        // Over every table: the newest tag all of them have (hits and conversions lack aaa-later).
        let t = resolve_snapshot(&data, &[], &Snapshot::Newest).unwrap();
        assert_eq!(t.as_deref(), Some("funnel-gen"));
        let empty = tempfile::tempdir().unwrap();
        let err = resolve_snapshot(&[empty.path().to_path_buf()], &[], &Snapshot::Newest);
        assert!(err.is_err());
    }
}
