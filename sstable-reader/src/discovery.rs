//! Finding tables under what operators point at: Data.db files, table directories, `snapshots/<tag>`
//! directories, keyspace directories, data directories, or the directories of several nodes. Files are
//! grouped by (keyspace, table) — the same table on several nodes is one group, whose replicas the merge
//! collapses.
//!
//! Rules, per table directory (`<keyspace>/<table>-<id>/`):
//! - with `--snapshot TAG`, only `snapshots/TAG/` is read;
//! - otherwise the live SSTables in the table directory; when there are none, its only snapshot (several
//!   snapshots and no tag is an error listing the tags);
//! - `backups/` and hidden directories (secondary indexes, `.<index>/`) are skipped.
//!
//! Every `schema.cql` found for a table must declare it the same way; otherwise the error names the files.
//! (Partitioner and key-column agreement is checked when the table is opened, [`crate::merge::MergeTable`].)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::merge::MergeTable;
use crate::schema::{CqlSchema, CqlTable};
use crate::sstable::{table_location, ReadOptions, SSTable};

/// Which tables and which copy of them to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `keyspace.table` or `table`.
    pub table: Option<String>,
    /// A snapshot tag.
    pub snapshot: Option<String>,
}

impl Selection {
    fn wants(&self, ks: &str, name: &str) -> bool {
        match &self.table {
            None => true,
            Some(t) => match t.split_once('.') {
                Some((k, n)) => k == ks && n == name,
                None => t == name,
            },
        }
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

    /// Opens every SSTable (`schema` overrides the `schema.cql` files) and prepares the merge.
    pub fn open(&self, schema: Option<&CqlSchema>, options: ReadOptions) -> Result<MergeTable> {
        let ssts = self
            .files
            .iter()
            .map(|f| SSTable::open(f, schema, options))
            .collect::<Result<Vec<_>>>()?;
        MergeTable::new(ssts)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Copy {
    Live,
    Snapshot(String),
}

/// The table directory a Data.db belongs to, and which copy it is.
fn classify(data: &Path) -> (PathBuf, Copy) {
    let dir = data.parent().unwrap_or(Path::new("."));
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
            if !name.starts_with('.') && name != "backups" {
                walk(&p, out, depth + 1)?;
            }
        } else if name.ends_with("-Data.db") {
            out.push(p);
        }
    }
    Ok(())
}

/// Finds the tables under `paths`.
pub fn discover(paths: &[PathBuf], sel: &Selection) -> Result<Vec<DiscoveredTable>> {
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_file() {
            files.push(Descriptor::from_path(p)?.data_path());
        } else {
            walk(p, &mut files, 0)?;
        }
    }
    // table directory → copy → files
    let mut by_dir: BTreeMap<PathBuf, BTreeMap<Copy, Vec<PathBuf>>> = BTreeMap::new();
    for f in files {
        let (dir, copy) = classify(&f);
        by_dir
            .entry(dir)
            .or_default()
            .entry(copy)
            .or_default()
            .push(f);
    }
    let mut groups: BTreeMap<(String, String), DiscoveredTable> = BTreeMap::new();
    for (dir, copies) in by_dir {
        let chosen: Vec<PathBuf> = match &sel.snapshot {
            Some(tag) => copies
                .get(&Copy::Snapshot(tag.clone()))
                .cloned()
                .unwrap_or_default(),
            None => match copies.get(&Copy::Live) {
                Some(live) => live.clone(),
                None => {
                    let tags: Vec<&String> = copies
                        .keys()
                        .filter_map(|c| {
                            if let Copy::Snapshot(t) = c {
                                Some(t)
                            } else {
                                None
                            }
                        })
                        .collect();
                    if tags.len() > 1 {
                        return Err(Error::NotFound {
                            path: dir,
                            message: format!(
                                "several snapshots ({}): choose one with --snapshot TAG",
                                tags.iter()
                                    .map(|t| t.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        });
                    }
                    copies.into_values().next().unwrap_or_default()
                }
            },
        };
        let Some(first) = chosen.first() else {
            continue;
        };
        let (ks, name) = table_location(first);
        let ks = ks.unwrap_or_default();
        let name = name.unwrap_or_default();
        if !sel.wants(&ks, &name) {
            continue;
        }
        let g = groups
            .entry((ks.clone(), name.clone()))
            .or_insert_with(|| DiscoveredTable {
                keyspace: ks,
                name,
                files: Vec::new(),
                schema_files: Vec::new(),
            });
        let dirs: BTreeSet<PathBuf> = chosen
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        for d in dirs {
            let s = d.join("schema.cql");
            if s.is_file() && !g.schema_files.contains(&s) {
                g.schema_files.push(s);
            }
        }
        g.files.extend(chosen);
    }
    let mut out: Vec<DiscoveredTable> = groups.into_values().collect();
    for t in &mut out {
        t.files.sort();
        check_schema_files(t)?;
    }
    if out.is_empty() {
        let what = match (&sel.table, &sel.snapshot) {
            (Some(t), Some(s)) => format!("no SSTables of table {t} in snapshot {s}"),
            (Some(t), None) => format!("no SSTables of table {t}"),
            (None, Some(s)) => format!("no SSTables in snapshot {s}"),
            (None, None) => "no SSTables (…-Data.db)".into(),
        };
        return Err(Error::NotFound {
            path: paths.first().cloned().unwrap_or_default(),
            message: format!(
                "{what} under {}",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(out)
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
