//! The snapshot layout operators copy off a cluster: `<out>/[node<N>/]<keyspace>/<table>-<id>/snapshots/<tag>/`
//! holding the SSTable components, `manifest.json` (`{"files": [...Data.db], "created_at", "expires_at"}`)
//! and `schema.cql` (the CREATE statements).

use std::path::{Path, PathBuf};

use super::WriterError;

/// A deterministic table id (hex, as in Cassandra's `<table>-<id>` directory names).
pub fn table_id(keyspace: &str, table: &str, seed: u64) -> String {
    let a = crate::partitioner::murmur3_x64_128(format!("{keyspace}.{table}").as_bytes(), seed);
    format!("{:016x}{:016x}", a[0], a[1])
}

/// `<out>/[node<N>/]<keyspace>/<table>-<id>/snapshots/<tag>`.
pub fn snapshot_dir(
    out: &Path,
    node: Option<u32>,
    keyspace: &str,
    table: &str,
    id: &str,
    tag: &str,
) -> PathBuf {
    let mut p = out.to_path_buf();
    if let Some(n) = node {
        p.push(format!("node{n}"));
    }
    p.push(keyspace);
    p.push(format!("{table}-{id}"));
    p.push("snapshots");
    p.push(tag);
    p
}

/// Writes `manifest.json` and `schema.cql` into a snapshot directory.
pub fn write_snapshot_files(
    dir: &Path,
    data_files: &[PathBuf],
    created_at: &str,
    schema_cql: &str,
) -> Result<(), WriterError> {
    let files: Vec<String> = data_files
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
        .collect();
    let manifest =
        serde_json::json!({ "files": files, "created_at": created_at, "expires_at": null });
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| WriterError::InvalidData(e.to_string()))?;
    let m = dir.join("manifest.json");
    std::fs::write(&m, text).map_err(|e| WriterError::io(&m, e))?;
    let s = dir.join("schema.cql");
    std::fs::write(&s, schema_cql).map_err(|e| WriterError::io(&s, e))?;
    Ok(())
}
