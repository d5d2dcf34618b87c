//! The snapshot layout operators copy off a cluster: `<out>/[node<N>/]<keyspace>/<table>-<id>/snapshots/<tag>/`
//! holding the SSTable components, `manifest.json` (`{"files": [...Data.db], "created_at", "expires_at"}`)
//! and `schema.cql` (the CREATE statements). With several nodes the ring is split into equal token ranges,
//! one per node, and each range is replicated on the next `rf` nodes (SimpleStrategy), so every node
//! directory holds exactly its replicas.

use std::path::{Path, PathBuf};

use super::WriterError;

/// A deterministic table id (hex, as in Cassandra's `<table>-<id>` directory names).
pub fn table_id(keyspace: &str, table: &str, seed: u64) -> String {
    let a = super::token::murmur3_x64_128(format!("{keyspace}.{table}").as_bytes(), seed);
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

/// Token ranges of `nodes` equal slices of the Murmur3 ring and their replicas.
#[derive(Debug, Clone)]
pub struct Ring {
    nodes: u32,
    rf: u32,
}

impl Ring {
    pub fn new(nodes: u32, rf: u32) -> Result<Self, WriterError> {
        if nodes == 0 || rf == 0 || rf > nodes {
            return Err(WriterError::InvalidOption(format!(
                "need 1 <= rf <= nodes, got nodes {nodes}, rf {rf}"
            )));
        }
        Ok(Ring { nodes, rf })
    }

    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    /// The range (0..nodes) a token falls in.
    pub fn range_of(&self, token: i64) -> u32 {
        let offset = (token as i128 - i64::MIN as i128) as u128;
        ((offset * self.nodes as u128) >> 64) as u32
    }

    /// Nodes holding a replica of `token`: the range's node and the next `rf - 1`.
    pub fn replicas(&self, token: i64) -> impl Iterator<Item = u32> + '_ {
        let r = self.range_of(token);
        (0..self.rf).map(move |i| (r + i) % self.nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_splits_evenly_and_replicates() {
        let ring = Ring::new(4, 2).unwrap();
        assert_eq!(ring.range_of(i64::MIN), 0);
        assert_eq!(ring.range_of(-1), 1);
        assert_eq!(ring.range_of(0), 2);
        assert_eq!(ring.range_of(i64::MAX), 3);
        assert_eq!(ring.replicas(i64::MAX).collect::<Vec<_>>(), vec![3, 0]);
        assert!(Ring::new(2, 3).is_err());
    }
}
