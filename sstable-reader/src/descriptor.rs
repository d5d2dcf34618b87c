//! What an SSTable's file names say: the format version (`ma` … `oa`, `da`), the format family
//! (`big` or `bti`), the generation, and where each component file is. Also which on-disk features each
//! version has (`io/sstable/format/big/BigFormat.java`, `format/bti/BtiFormat.java`).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The two SSTable families: `big` (Index.db + Summary.db) and `bti` (trie indexes: Partitions.db +
/// Rows.db). Both use the same Data.db row format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatKind {
    Big,
    Bti,
}

impl fmt::Display for FormatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FormatKind::Big => "big",
            FormatKind::Bti => "bti",
        })
    }
}

/// A supported format version (two letters), with the feature flags the decoder needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version([u8; 2]);

/// Versions this reader decodes. Older ones (`ic`, `jb`, `ka`, `la`: Cassandra 1.2–2.2) use the pre-3.0
/// cell layout and are rejected with an error naming the version.
pub const SUPPORTED_VERSIONS: &[&str] =
    &["ma", "mb", "mc", "md", "me", "na", "nb", "nc", "oa", "da"];

impl Version {
    /// Parses and checks a version string for the given family.
    pub fn parse(s: &str, kind: FormatKind, path: &Path) -> Result<Version> {
        let b = s.as_bytes();
        if b.len() != 2 || !b.iter().all(|c| c.is_ascii_lowercase()) {
            return Err(Error::unsupported(
                path,
                format!("unknown SSTable version {s:?}"),
            ));
        }
        let known = match kind {
            FormatKind::Big => matches!(
                s,
                "ma" | "mb" | "mc" | "md" | "me" | "na" | "nb" | "nc" | "oa"
            ),
            FormatKind::Bti => s == "da",
        };
        if !known {
            let why = match (kind, b[0]) {
                // ScyllaDB 2025.4+ (docs: architecture/sstable/sstable3/sstable-ms-index): Data.db of
                // 3.x, but a trie-based partition index of ScyllaDB's own, not documented as
                // Cassandra's BTI; refused rather than guessed.
                (_, b'm') if matches!(s, "ms" | "mt") => {
                    " (ScyllaDB's format with its trie-based partition index, ScyllaDB 2025.4 and later, not supported; ScyllaDB writes `me` files with `sstable_format: me`)"
                }
                (FormatKind::Big, b'a'..=b'l') => {
                    " (Cassandra 2.x or older: pre-3.0 storage format, not supported; upgradesstables first)"
                }
                (FormatKind::Bti, b'a'..=b'c') => " (DataStax Enterprise/Astra BTI version, not supported)",
                _ => "",
            };
            return Err(Error::unsupported(
                path,
                format!(
                    "SSTable version {s:?} of the {kind} format{why}; supported: {}",
                    SUPPORTED_VERSIONS.join(" ")
                ),
            ));
        }
        Ok(Version([b[0], b[1]]))
    }

    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII lowercase letters (checked in `parse`).
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    fn at_least(&self, v: &str) -> bool {
        self.0.as_slice() >= v.as_bytes()
    }

    fn is_bti(&self) -> bool {
        self.0[0] == b'd'
    }

    /// From `na` on, CompressionInfo.db carries `maxCompressedLength` and chunks at or above it are raw.
    pub fn has_max_compressed_length(&self) -> bool {
        self.is_bti() || self.at_least("na")
    }
    /// From `na` on, Statistics.db has CRC32s after its table of contents and after each component.
    pub fn has_metadata_checksum(&self) -> bool {
        self.is_bti() || self.at_least("na")
    }
    /// From `oa` (and BTI `da`), deletion times are unsigned and LIVE is a single 0x80 byte.
    pub fn has_uint_deletion_time(&self) -> bool {
        self.is_bti() || self.at_least("oa")
    }
    /// `m*` and `n*` keep the legacy min/max clustering values in the stats component.
    pub fn has_legacy_min_max(&self) -> bool {
        !self.is_bti() && (self.0[0] == b'm' || self.0[0] == b'n')
    }
    /// `nc`, `oa`, `da`: min/max as a clustering slice with its types.
    pub fn has_improved_min_max(&self) -> bool {
        self.is_bti() || self.at_least("nc")
    }
    pub fn has_commit_log_lower_bound(&self) -> bool {
        self.is_bti() || self.at_least("mb")
    }
    pub fn has_commit_log_intervals(&self) -> bool {
        self.is_bti() || self.at_least("mc")
    }
    pub fn has_pending_repair(&self) -> bool {
        self.is_bti() || self.at_least("na")
    }
    pub fn has_is_transient(&self) -> bool {
        self.is_bti() || self.at_least("na")
    }
    pub fn has_originating_host_id(&self) -> bool {
        self.is_bti() || self.at_least("nb") || (self.0[0] == b'm' && self.0[1] >= b'e')
    }
    pub fn has_partition_level_deletions_marker(&self) -> bool {
        self.is_bti() || self.at_least("nc")
    }
    pub fn has_key_range(&self) -> bool {
        self.is_bti() || self.at_least("nc")
    }
    pub fn has_token_space_coverage(&self) -> bool {
        self.is_bti() || self.at_least("oa")
    }
    /// Pre-`na` bloom filters hash with the two longs swapped (CASSANDRA-9067).
    pub fn has_old_bloom_filter_format(&self) -> bool {
        !self.is_bti() && !self.at_least("na")
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The components an SSTable may have, as named in TOC.txt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Data,
    Index,
    Summary,
    Filter,
    Statistics,
    CompressionInfo,
    Crc,
    Digest,
    Toc,
    Partitions,
    Rows,
    /// ScyllaDB's metadata (`Scylla.db`: sharding, features, large-data statistics).
    Scylla,
}

impl Component {
    /// File-name suffix of the component (Digest is `Digest.crc32` from `ma` on).
    pub fn file_name(&self) -> &'static str {
        match self {
            Component::Data => "Data.db",
            Component::Index => "Index.db",
            Component::Summary => "Summary.db",
            Component::Filter => "Filter.db",
            Component::Statistics => "Statistics.db",
            Component::CompressionInfo => "CompressionInfo.db",
            Component::Crc => "CRC.db",
            Component::Digest => "Digest.crc32",
            Component::Toc => "TOC.txt",
            Component::Partitions => "Partitions.db",
            Component::Rows => "Rows.db",
            Component::Scylla => "Scylla.db",
        }
    }

    pub fn from_file_name(name: &str) -> Option<Component> {
        Some(match name {
            "Data.db" => Component::Data,
            "Index.db" => Component::Index,
            "Summary.db" => Component::Summary,
            "Filter.db" => Component::Filter,
            "Statistics.db" => Component::Statistics,
            "CompressionInfo.db" => Component::CompressionInfo,
            "CRC.db" => Component::Crc,
            "Digest.crc32" | "Digest.adler32" | "Digest.sha1" => Component::Digest,
            "TOC.txt" => Component::Toc,
            "Partitions.db" => Component::Partitions,
            "Rows.db" => Component::Rows,
            "Scylla.db" => Component::Scylla,
            _ => return None,
        })
    }
}

/// Identifies one SSTable: its directory, file-name prefix, version, family and generation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Descriptor {
    pub directory: PathBuf,
    /// Everything before the component name, including the trailing dash (`nb-1-big-`).
    pub prefix: String,
    pub version: Version,
    pub kind: FormatKind,
    pub generation: String,
}

impl Descriptor {
    /// Parses the name of any component file (`nb-1-big-Data.db`, `da-1-bti-Statistics.db`,
    /// `Keyspace1-Standard1-ic-0-Data.db`). Unsupported versions are an error naming the file.
    pub fn from_path(path: &Path) -> Result<Descriptor> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::NotFound {
                path: path.to_path_buf(),
                message: "not an SSTable component file name".into(),
            })?;
        let not_sstable = || {
            Error::NotFound {
            path: path.to_path_buf(),
            message: "not an SSTable component file name (expected <version>-<generation>-<big|bti>-<Component>)".into(),
        }
        };
        let directory = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let parts: Vec<&str> = name.split('-').collect();
        if parts.len() < 2 {
            return Err(not_sstable());
        }
        let component = parts[parts.len() - 1];
        if Component::from_file_name(component).is_none() {
            return Err(not_sstable());
        }
        let prefix = &name[..name.len() - component.len()];
        // New layout: <ver>-<gen>-<big|bti>-<Component>.
        if parts.len() == 4 && (parts[2] == "big" || parts[2] == "bti") {
            let kind = if parts[2] == "big" {
                FormatKind::Big
            } else {
                FormatKind::Bti
            };
            let version = Version::parse(parts[0], kind, path)?;
            return Ok(Descriptor {
                directory,
                prefix: prefix.to_string(),
                version,
                kind,
                generation: parts[1].to_string(),
            });
        }
        // Legacy layout (Cassandra 2.x and older): <ks>-<table>-<ver>-<gen>-<Component>,
        // or la-era <ver>-<gen>-big-<Component> handled above. Any two-letter version is reported.
        if parts.len() >= 3 {
            let ver = parts[parts.len() - 3];
            if ver.len() == 2 {
                Version::parse(ver, FormatKind::Big, path)?;
            }
        }
        Err(not_sstable())
    }

    /// The path of one component of this SSTable.
    pub fn path(&self, component: Component) -> PathBuf {
        self.directory
            .join(format!("{}{}", self.prefix, component.file_name()))
    }

    /// The Data.db path (the name users see in messages).
    pub fn data_path(&self) -> PathBuf {
        self.path(Component::Data)
    }
}

/// Reads TOC.txt: the list of components the SSTable was written with. Components this reader does not
/// know (another writer's, e.g. a newer ScyllaDB's) are tolerated as Cassandra tolerates them, with one
/// warning per SSTable naming them; a line that cannot be a component file name is corruption.
pub fn read_toc(desc: &Descriptor) -> Result<Vec<Component>> {
    let path = desc.path(Component::Toc);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    let mut offset = 0u64;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let at = offset;
        offset += raw.len() as u64;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        match Component::from_file_name(line) {
            Some(c) => out.push(c),
            None if is_component_name(line) => unknown.push(line),
            None => {
                return Err(Error::corrupt(
                    &path,
                    at,
                    format!("a component name on line {}, found {line:?}", i + 1),
                ))
            }
        }
    }
    if !unknown.is_empty() {
        tracing::warn!(
            toc = %path.display(),
            components = ?unknown,
            "TOC.txt lists components this reader does not know; they are not read"
        );
    }
    Ok(out)
}

/// Whether a TOC line can name a component file: `Name.ext`, letters, digits, `_` and `-` (no path).
fn is_component_name(line: &str) -> bool {
    line.split_once('.').is_some_and(|(name, ext)| {
        let ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        ok(name) && ok(ext)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_new_layout() {
        let d = Descriptor::from_path(Path::new("/x/nb-12-big-Data.db")).unwrap();
        assert_eq!(d.version.as_str(), "nb");
        assert_eq!(d.kind, FormatKind::Big);
        assert_eq!(d.generation, "12");
        assert_eq!(d.path(Component::Index), Path::new("/x/nb-12-big-Index.db"));
        let d = Descriptor::from_path(Path::new("da-1-bti-Partitions.db")).unwrap();
        assert_eq!(d.kind, FormatKind::Bti);
        assert!(d.version.has_uint_deletion_time());
    }

    #[test]
    fn rejects_old_versions_by_name() {
        let err =
            Descriptor::from_path(Path::new("/x/Keyspace1-Standard1-ic-0-Data.db")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("\"ic\"") && msg.contains("Keyspace1-Standard1-ic-0-Data.db"),
            "{msg}"
        );
        let err = Descriptor::from_path(Path::new("/x/la-1-big-Data.db")).unwrap_err();
        assert!(err.to_string().contains("\"la\""));
        let err = Descriptor::from_path(Path::new("/x/zz-1-big-Data.db")).unwrap_err();
        assert!(err.to_string().contains("\"zz\""));
    }

    #[test]
    fn feature_flags_follow_versions() {
        let v = |s| Version::parse(s, FormatKind::Big, Path::new("x")).unwrap();
        assert!(!v("me").has_max_compressed_length());
        assert!(v("na").has_max_compressed_length());
        assert!(v("me").has_originating_host_id());
        assert!(!v("na").has_originating_host_id());
        assert!(v("nb").has_originating_host_id());
        assert!(v("nc").has_legacy_min_max() && v("nc").has_improved_min_max());
        assert!(!v("oa").has_legacy_min_max());
    }
}
