//! The identity of an SSTable ([`Identity`]) as the cache keys it.

use std::path::Path;

use sstable_reader::{Component, Descriptor, SSTable};

use crate::error::{Error, Result};
use crate::summary::Identity;

/// `<table>-<id>` of the table directory holding a Data.db (its parent, or the parent of
/// `snapshots/<tag>` / `backups`).
fn table_dir(data: &Path) -> Option<&Path> {
    let dir = data.parent()?;
    match dir.parent() {
        Some(p) if p.file_name().is_some_and(|n| n == "snapshots") => p.parent(),
        _ if dir.file_name().is_some_and(|n| n == "backups") => dir.parent(),
        _ => Some(dir),
    }
}

/// The identity of `sst` ([`identity_at`] of its Data.db).
pub fn identity(sst: &SSTable) -> Result<Identity> {
    identity_at(sst.data_path())
}

/// The identity of the SSTable whose Data.db is `data`: keyspace, table and table id from where it sits
/// (not from a schema, so every command computes the same one), generation, version, Data.db size, the
/// CRC32 Digest.crc32 holds, and Data.db's modification time.
pub fn identity_at(data: &Path) -> Result<Identity> {
    let descriptor = Descriptor::from_path(data)?;
    let (keyspace, table, table_id) = match table_dir(data) {
        Some(dir) => {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let ks = dir
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match name.rsplit_once('-') {
                Some((t, id)) => (ks, t.to_string(), id.to_string()),
                None => (ks, name, String::new()),
            }
        }
        None => Default::default(),
    };
    let meta = std::fs::metadata(data).map_err(|e| Error::io(data, e))?;
    let digest_path = descriptor.path(Component::Digest);
    let digest = match std::fs::read_to_string(&digest_path) {
        Ok(s) => Some(s.trim().parse::<u64>().map_err(|_| {
            Error::damaged(
                &digest_path,
                format!("a decimal CRC32, found {:?}", s.trim()),
            )
        })? as u32),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&digest_path, e)),
    };
    // Hard links (snapshots, backups) share the file's mtime; a Data.db rewritten in place (restored,
    // damaged by a tool) gets a new one even where Digest.crc32 stays as it was.
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos());
    Ok(Identity {
        keyspace,
        table,
        table_id,
        generation: descriptor.generation.clone(),
        version: format!("{}-{:?}", descriptor.version.as_str(), descriptor.kind).to_lowercase(),
        data_size: meta.len(),
        digest,
        mtime_ns,
    })
}
