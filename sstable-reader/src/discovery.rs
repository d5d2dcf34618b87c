//! Finding the SSTables under what operators point at — Data.db files, table directories
//! (`<keyspace>/<table>-<id>/`), `snapshots/<tag>/` and `backups/` directories, keyspace and data
//! directories, the directories of several nodes — under one set of rules that every command and the
//! scheduler share. Files are grouped by (keyspace, table): the same table on several nodes is one group,
//! whose replicas the merge collapses.
//!
//! A table directory of a node holds several copies of its data side by side: the live SSTables, one
//! `snapshots/<tag>/` per `nodetool snapshot`, and `backups/` (incremental backups). Which copy is read:
//! - [`Snapshot::Live`] (no choice): the live SSTables. A table directory without any (one copied off a
//!   node as a snapshot) reads its only snapshot; with several snapshots and no live SSTables, discovery
//!   fails listing the tags.
//! - [`Snapshot::Tag`]: exactly `snapshots/<tag>/`. Every directory of a table that has the tag somewhere
//!   must have it (a node whose snapshot failed is an error naming it, not a replica silently left out);
//!   a table that has it nowhere is not read.
//! - [`Snapshot::Newest`]: one tag for the whole read — the newest of the tags that every directory of
//!   the tables read has — then as [`Snapshot::Tag`]. Newest is judged by the snapshot's `manifest.json`
//!   `created_at` when present, else the directory's modification time (ties: the later directory,
//!   then the greater tag). One tag rather than each directory's newest, because events and conversions
//!   are joined per actor and the replicas of several nodes are merged: they must show one point in
//!   time. So an ad-hoc snapshot of one table, or tonight's snapshot missing on one node, leaves the
//!   read at the last snapshot taken everywhere ([`Discovery::snapshot`] names it); no common tag at all
//!   is an error listing each directory's tags.
//! - `backups/` is read only when a path points into it.
//!
//! A path that points at a Data.db file, a `snapshots/<tag>/` or a `backups/` directory reads exactly
//! that, whatever the choice. Snapshots Cassandra takes by itself (`truncated-…` and `dropped-…` on
//! TRUNCATE and DROP, `pre-scrub-…`, and those `manifest.json` marks `ephemeral`, e.g. for repair) are
//! never picked as the only or the newest snapshot, and a table directory holding nothing else — what a
//! dropped table leaves behind — is read only when its tag is asked for. Hidden directories (secondary
//! indexes, `.<index>/`) are skipped.
//!
//! Every `schema.cql` found for a table must declare it the same way; otherwise the error names the files.
//! (Partitioner and key-column agreement is checked when the table is opened, [`crate::MergeTable`].)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::merge::MergeTable;
use crate::node_schema::{find_data_dir, NodeSchema};
use crate::schema::{CqlSchema, CqlTable};
use crate::sstable::{table_location, ReadOptions, SSTable};

/// Which copy of each table directory to read (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Snapshot {
    /// The live SSTables (a table directory without any: its only snapshot).
    #[default]
    Live,
    /// Exactly this `snapshots/<tag>/`.
    Tag(String),
    /// The newest tag every directory of the tables read has.
    Newest,
}

impl Snapshot {
    /// `Some(tag)`: that tag; `None`: the live SSTables.
    pub fn from_tag(tag: Option<String>) -> Snapshot {
        tag.map_or(Snapshot::Live, Snapshot::Tag)
    }
}

/// How operators name a [`Snapshot`] (`--snapshot`, the scheduler's `snapshot =`): `newest`, `live` (or
/// empty), else a tag. A tag is one directory name, so it has no `/`.
impl std::str::FromStr for Snapshot {
    type Err = InvalidSnapshot;

    fn from_str(s: &str) -> std::result::Result<Snapshot, InvalidSnapshot> {
        match s {
            "" | "live" => Ok(Snapshot::Live),
            "newest" => Ok(Snapshot::Newest),
            tag if tag.contains('/') => Err(InvalidSnapshot(tag.to_string())),
            tag => Ok(Snapshot::Tag(tag.to_string())),
        }
    }
}

/// A snapshot name that cannot be a tag (it holds a `/`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot {0:?}: a tag is one directory name under snapshots/ and has no '/' (or: newest, live)")]
pub struct InvalidSnapshot(pub String);

/// Which tables and which copy of them to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only these tables, each `keyspace.table` or `table`; empty: every table found.
    pub tables: Vec<String>,
    pub snapshot: Snapshot,
}

impl Selection {
    /// Every table, `snapshot` of each.
    pub fn snapshot(snapshot: Snapshot) -> Selection {
        Selection {
            tables: Vec::new(),
            snapshot,
        }
    }

    fn wants(&self, ks: &str, name: &str) -> bool {
        self.tables.is_empty() || self.tables.iter().any(|t| names_table(t, ks, name))
    }
}

/// Whether `wanted` (`keyspace.table` or `table`) names the table `ks.name`.
fn names_table(wanted: &str, ks: &str, name: &str) -> bool {
    match wanted.split_once('.') {
        Some((k, n)) => k == ks && n == name,
        None => wanted == name,
    }
}

/// One table's files across every path (and node) given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredTable {
    pub keyspace: String,
    pub name: String,
    /// Data.db files, sorted.
    pub files: Vec<PathBuf>,
    /// The `schema.cql` files next to them.
    pub schema_files: Vec<PathBuf>,
}

impl DiscoveredTable {
    /// `keyspace.table`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.keyspace, self.name)
    }

    /// Whether `wanted` (`keyspace.table` or `table`) names this table.
    pub fn is(&self, wanted: &str) -> bool {
        names_table(wanted, &self.keyspace, &self.name)
    }

    /// Opens every SSTable (`schema` overrides the `schema.cql` files; without either, the node's own
    /// `system_schema` names the columns, [`DiscoveredTable::node_schema`]) and prepares the merge.
    pub fn open(&self, schema: Option<&CqlSchema>, options: ReadOptions) -> Result<MergeTable> {
        let (node, dropped) = match schema {
            None => self.node_schema_and_dropped()?,
            Some(_) => (None, Dropped::default()),
        };
        let schema = schema.or(node.as_ref());
        let ssts = self
            .files
            .iter()
            .map(|f| SSTable::open(f, schema, options))
            .collect::<Result<Vec<_>>>()?;
        let gone: Vec<&str> = dropped.gone.iter().map(String::as_str).collect();
        let readded: Vec<(&str, i64)> = dropped
            .readded
            .iter()
            .map(|(c, at)| (c.as_str(), *at))
            .collect();
        Ok(MergeTable::without_columns(ssts, &gone)?.hiding_cells_dropped_before(&readded))
    }

    /// The table's schema from the `system_schema` of the node its files are on, when no
    /// `schema.cql` lies next to them and the node knows the table (`None` otherwise).
    pub fn node_schema(&self) -> Result<Option<CqlSchema>> {
        Ok(self.node_schema_and_dropped()?.0)
    }

    /// [`DiscoveredTable::node_schema`], and the columns the node dropped from the table.
    fn node_schema_and_dropped(&self) -> Result<(Option<CqlSchema>, Dropped)> {
        if !self.schema_files.is_empty() {
            return Ok((None, Dropped::default()));
        }
        let Some(data_dir) = self.files.first().and_then(|f| find_data_dir(f)) else {
            return Ok((None, Dropped::default()));
        };
        let node = NodeSchema::read(&data_dir)?;
        let dropped = Dropped {
            gone: node
                .dropped_columns(&self.keyspace, &self.name)
                .into_iter()
                .map(|d| d.column.clone())
                .collect(),
            readded: node
                .readded_columns(&self.keyspace, &self.name)
                .into_iter()
                .map(|d| (d.column.clone(), d.dropped_at))
                .collect(),
        };
        let found = node.table_schema(&self.keyspace, &self.name)?;
        if found.is_none() {
            tracing::warn!(
                table = %self.qualified(),
                system_schema = %data_dir.join("system_schema").display(),
                "the node's system_schema does not know the table; key columns are named pk0…, ck0…"
            );
        }
        Ok((found, dropped))
    }
}

/// The columns a node dropped from a table: those it no longer has, and those added again since
/// (with the drop time, µs).
#[derive(Debug, Default)]
struct Dropped {
    gone: Vec<String>,
    readded: Vec<(String, i64)>,
}

/// What [`discover`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The tables, sorted by keyspace and name.
    pub tables: Vec<DiscoveredTable>,
    /// The snapshot tag read ([`Snapshot::Newest`] resolved); `None` for the live SSTables.
    pub snapshot: Option<String>,
}

impl Discovery {
    /// The table `wanted` names (`keyspace.table` or `table`).
    pub fn table(&self, wanted: &str) -> Option<&DiscoveredTable> {
        self.tables.iter().find(|t| t.is(wanted))
    }

    /// Every Data.db file, table after table.
    pub fn files(&self) -> impl Iterator<Item = &PathBuf> + '_ {
        self.tables.iter().flat_map(|t| &t.files)
    }
}

/// Which copy of a table directory a Data.db belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Copy {
    Live,
    Snapshot(String),
    Backups,
}

/// The copies found in one table directory.
#[derive(Debug, Default)]
struct TableDir {
    live: Vec<PathBuf>,
    snapshots: BTreeMap<String, Vec<PathBuf>>,
    /// Files under a path given by the user that points into one copy (a file, a snapshot or backups
    /// directory): read whatever the choice.
    explicit: BTreeSet<PathBuf>,
}

/// The table directory a Data.db belongs to, and which copy it is.
fn classify(data: &Path) -> (PathBuf, Copy) {
    let dir = data.parent().unwrap_or(Path::new("."));
    if dir.file_name().is_some_and(|n| n == "backups") {
        if let Some(table_dir) = dir.parent() {
            return (table_dir.to_path_buf(), Copy::Backups);
        }
    }
    if let (Some(tag), Some(snaps)) = (dir.file_name(), dir.parent()) {
        if snaps.file_name().is_some_and(|n| n == "snapshots") {
            if let Some(table_dir) = snaps.parent() {
                return (
                    table_dir.to_path_buf(),
                    Copy::Snapshot(tag.to_string_lossy().into_owned()),
                );
            }
        }
    }
    (dir.to_path_buf(), Copy::Live)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if depth > 16 {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let ft = e.file_type().map_err(|err| Error::io(&p, err))?;
        if ft.is_dir() {
            if !name.starts_with('.') {
                walk(&p, out, depth + 1)?;
            }
        } else if name.ends_with("-Data.db") {
            // Unsupported or foreign files are reported when opened, not silently skipped.
            out.push(p);
        }
    }
    Ok(())
}

/// Snapshots Cassandra takes by itself, which an operator never means by "the snapshot".
fn is_automatic(tag: &str, dir: &Path) -> bool {
    ["truncated-", "dropped-", "pre-scrub-"]
        .iter()
        .any(|p| tag.starts_with(p))
        || manifest(dir).is_some_and(|m| m.get("ephemeral") == Some(&serde_json::Value::Bool(true)))
}

fn manifest(snapshot_dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read(snapshot_dir.join("manifest.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

/// `created_at` of a manifest in ns since the epoch: an RFC 3339 instant (Cassandra), or a number of
/// seconds (with a fraction) or milliseconds, as a number or a string.
fn created_at_ns(m: &serde_json::Value) -> Option<i128> {
    let v = m.get("created_at")?;
    let text = match v {
        serde_json::Value::String(s) => s.trim().to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&text) {
        return t.timestamp_nanos_opt().map(i128::from);
    }
    let n: f64 = text.parse().ok()?;
    // Seconds until the year 5138; anything larger is milliseconds.
    let seconds = if n.abs() < 1e11 { n } else { n / 1000.0 };
    seconds.is_finite().then_some((seconds * 1e9) as i128)
}

/// When a snapshot directory was taken: (`created_at` or else the mtime, the mtime), in ns.
fn taken_at(snapshot_dir: &Path) -> (i128, i128) {
    let mtime = std::fs::metadata(snapshot_dir)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    let created = manifest(snapshot_dir).and_then(|m| created_at_ns(&m));
    (created.unwrap_or(mtime), mtime)
}

fn list(items: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn shown(paths: &[PathBuf]) -> String {
    list(paths.iter().map(|p| p.display().to_string()))
}

/// Finds the tables under `paths` and the files of the copy `sel` chooses (see the module docs).
pub fn discover(paths: &[PathBuf], sel: &Selection) -> Result<Discovery> {
    let mut dirs: BTreeMap<PathBuf, TableDir> = BTreeMap::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        let mut files = Vec::new();
        if meta.is_file() {
            files.push(Descriptor::from_path(p)?.data_path());
        } else {
            walk(p, &mut files, 0)?;
        }
        for f in files {
            let (dir, copy) = classify(&f);
            let d = dirs.entry(dir).or_default();
            // The path points at this very file or into this copy's directory.
            let explicit = meta.is_file()
                || (copy != Copy::Live && f.parent().is_some_and(|c| p.starts_with(c)));
            if explicit {
                d.explicit.insert(f);
                continue;
            }
            match copy {
                Copy::Live => d.live.push(f),
                Copy::Snapshot(tag) => d.snapshots.entry(tag).or_default().push(f),
                Copy::Backups => {}
            }
        }
    }
    // Only the selected tables, with the snapshots that an operator took.
    let mut selected: Vec<(PathBuf, TableDir, (String, String))> = Vec::new();
    for (dir, mut d) in dirs {
        let (ks, name) = table_location(&dir.join("x"));
        let (ks, name) = (ks.unwrap_or_default(), name.unwrap_or_default());
        if !sel.wants(&ks, &name) {
            continue;
        }
        if let Snapshot::Tag(t) = &sel.snapshot {
            // An asked-for tag is read even when Cassandra took it.
            d.snapshots
                .retain(|tag, _| tag == t || !is_automatic(tag, &snapshot_dir(&dir, tag)));
        } else {
            d.snapshots
                .retain(|tag, _| !is_automatic(tag, &snapshot_dir(&dir, tag)));
        }
        selected.push((dir, d, (ks, name)));
    }
    let tag = match &sel.snapshot {
        Snapshot::Live => None,
        Snapshot::Tag(t) => Some(t.clone()),
        Snapshot::Newest => Some(newest(&selected, paths)?),
    };
    // Tables (keyspace, name) with the tag in some directory: their every directory must have it.
    let tagged: BTreeSet<&(String, String)> = selected
        .iter()
        .filter(|(_, d, _)| tag.as_ref().is_some_and(|t| d.snapshots.contains_key(t)))
        .map(|(_, _, t)| t)
        .collect();
    let mut missing = Vec::new();
    let mut groups: BTreeMap<(String, String), DiscoveredTable> = BTreeMap::new();
    for (dir, d, table) in &selected {
        let mut chosen: Vec<PathBuf> = d.explicit.iter().cloned().collect();
        match &tag {
            None if !d.live.is_empty() => chosen.extend(d.live.iter().cloned()),
            None => match d.snapshots.len() {
                0 => {}
                1 => chosen.extend(d.snapshots.values().flatten().cloned()),
                _ => {
                    return Err(Error::NotFound {
                        path: dir.clone(),
                        message: format!(
                            "several snapshots ({}) and no live SSTables: choose one with --snapshot TAG (scheduler: snapshot = \"TAG\" or \"newest\"), or point at its snapshots/<tag>/ directory",
                            list(d.snapshots.keys())
                        ),
                    });
                }
            },
            Some(t) => match d.snapshots.get(t) {
                Some(files) => chosen.extend(files.iter().cloned()),
                None if tagged.contains(table)
                    && (!d.live.is_empty() || !d.snapshots.is_empty()) =>
                {
                    missing.push(format!(
                        "{} (snapshots: {})",
                        dir.display(),
                        list(d.snapshots.keys())
                    ));
                }
                None => {}
            },
        }
        if chosen.is_empty() {
            continue;
        }
        let g = groups
            .entry(table.clone())
            .or_insert_with(|| DiscoveredTable {
                keyspace: table.0.clone(),
                name: table.1.clone(),
                files: Vec::new(),
                schema_files: Vec::new(),
            });
        let parents: BTreeSet<PathBuf> = chosen
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        for p in parents {
            let s = p.join("schema.cql");
            if s.is_file() && !g.schema_files.contains(&s) {
                g.schema_files.push(s);
            }
        }
        g.files.extend(chosen);
    }
    if !missing.is_empty() {
        let t = tag.unwrap_or_default();
        return Err(Error::NotFound {
            path: paths.first().cloned().unwrap_or_default(),
            message: format!(
                "snapshot {t} is missing in {} while other directories of the same table have it: take it there too, or choose a tag every directory has",
                missing.join("; ")
            ),
        });
    }
    let mut tables: Vec<DiscoveredTable> = groups.into_values().collect();
    for t in &mut tables {
        t.files.sort();
        t.files.dedup();
        check_schema_files(t)?;
    }
    if tables.is_empty() {
        let what = match (sel.tables.is_empty(), &tag) {
            (false, Some(s)) => format!("no SSTables of {} in snapshot {s}", list(&sel.tables)),
            (false, None) => format!("no SSTables of {}", list(&sel.tables)),
            (true, Some(s)) => format!("no SSTables in snapshot {s}"),
            (true, None) => "no SSTables (…-Data.db)".into(),
        };
        return Err(Error::NotFound {
            path: paths.first().cloned().unwrap_or_default(),
            message: format!("{what} under {}", shown(paths)),
        });
    }
    Ok(Discovery {
        tables,
        snapshot: tag,
    })
}

fn snapshot_dir(table_dir: &Path, tag: &str) -> PathBuf {
    table_dir.join("snapshots").join(tag)
}

/// [`Snapshot::Newest`]: the newest tag that every directory of the tables with snapshots has.
fn newest(selected: &[(PathBuf, TableDir, (String, String))], paths: &[PathBuf]) -> Result<String> {
    let with_snapshots: BTreeSet<&(String, String)> = selected
        .iter()
        .filter(|(_, d, _)| !d.snapshots.is_empty())
        .map(|(_, _, t)| t)
        .collect();
    let dirs: Vec<&(PathBuf, TableDir, (String, String))> = selected
        .iter()
        .filter(|(_, _, t)| with_snapshots.contains(t))
        .collect();
    let mut common: Option<BTreeSet<&String>> = None;
    for (_, d, _) in &dirs {
        let tags: BTreeSet<&String> = d.snapshots.keys().collect();
        common = Some(match common {
            None => tags,
            Some(c) => c.intersection(&tags).copied().collect(),
        });
    }
    let common = common.unwrap_or_default();
    let best = common
        .iter()
        .map(|tag| {
            let at = dirs
                .iter()
                .map(|(dir, _, _)| taken_at(&snapshot_dir(dir, tag)))
                .max()
                .unwrap_or_default();
            (at, *tag)
        })
        .max();
    match best {
        Some((_, tag)) => Ok(tag.clone()),
        None if dirs.is_empty() => Err(Error::NotFound {
            path: paths.first().cloned().unwrap_or_default(),
            message: format!(
                "newest snapshot: no snapshots/<tag>/ directories with SSTables under {}",
                shown(paths)
            ),
        }),
        None => Err(Error::NotFound {
            path: paths.first().cloned().unwrap_or_default(),
            message: format!(
                "newest snapshot: no snapshot tag is in every table directory ({}); choose a tag",
                dirs.iter()
                    .map(|(dir, d, _)| format!("{}: {}", dir.display(), list(d.snapshots.keys())))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }),
    }
}

fn check_schema_files(t: &DiscoveredTable) -> Result<()> {
    let mut first: Option<(&PathBuf, CqlTable)> = None;
    for f in &t.schema_files {
        let s = CqlSchema::read(f)?;
        let Some(def) = s.table(Some(&t.name)).or_else(|| s.table(None)).cloned() else {
            continue;
        };
        match &first {
            None => first = Some((f, def)),
            Some((f0, d0)) if *d0 != def => {
                return Err(Error::Schema {
                    origin: format!("{} and {}", f0.display(), f.display()),
                    line: 0,
                    column: 0,
                    message: format!("table {} is declared differently", t.qualified()),
                })
            }
            Some(_) => {}
        }
    }
    Ok(())
}
