//! Index.db entries (`RowIndexEntry.Serializer`, `IndexInfo.Serializer`, `ColumnIndex`).
//!
//! One entry per partition: key (u16 length + bytes), uvint Data.db position (uncompressed), uvint size of
//! the promoted index (0 when the partition fits one index block). A promoted index — written for
//! partitions larger than `column_index_size` — is: uvint partition header length, the partition deletion
//! (`DeletionTime.Serializer`), uvint block count, the IndexInfo blocks (first and last clustering
//! prefix, uvint offset from the partition start, vint `width - 65536`, boolean + deletion of a range
//! tombstone still open at the block end), then one `int` per block: its offset within the blocks.

use crate::row::{BoundKind, DeletionTime};

use super::data::RowSerializer;
use super::encode::{put_i32, put_short_bytes, put_unsigned_vint, put_vint};
use super::model::ClusteringValue;
use super::WriterError;

/// Cassandra's default `column_index_size` (64 KiB).
pub const DEFAULT_COLUMN_INDEX_SIZE: u64 = 64 * 1024;
const WIDTH_BASE: i64 = 64 * 1024;

/// One index block of a wide partition.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexInfo {
    pub first: (BoundKind, Vec<ClusteringValue>),
    pub last: (BoundKind, Vec<ClusteringValue>),
    /// Offset of the block from the partition start.
    pub offset: u64,
    pub width: u64,
    /// Deletion of a range tombstone open at the end of the block.
    pub end_open_marker: Option<DeletionTime>,
}

/// Serializes one Index.db entry.
pub fn put_index_entry(
    out: &mut Vec<u8>,
    ser: &RowSerializer<'_>,
    key: &[u8],
    position: u64,
    header_length: u64,
    deletion: &DeletionTime,
    blocks: &[IndexInfo],
) -> Result<(), WriterError> {
    put_short_bytes(out, key);
    put_unsigned_vint(out, position);
    if blocks.len() <= 1 {
        put_unsigned_vint(out, 0);
        return Ok(());
    }
    let mut infos = Vec::new();
    let mut offsets = Vec::with_capacity(blocks.len());
    for b in blocks {
        offsets.push(infos.len() as i32);
        ser.put_clustering_prefix(&mut infos, b.first.0, &b.first.1)?;
        ser.put_clustering_prefix(&mut infos, b.last.0, &b.last.1)?;
        put_unsigned_vint(&mut infos, b.offset);
        put_vint(&mut infos, b.width as i64 - WIDTH_BASE);
        match &b.end_open_marker {
            Some(d) => {
                infos.push(1);
                ser.put_deletion_time(&mut infos, d)?;
            }
            None => infos.push(0),
        }
    }
    let mut promoted = Vec::with_capacity(infos.len() + 4 * offsets.len() + 32);
    put_unsigned_vint(&mut promoted, header_length);
    ser.put_deletion_time(&mut promoted, deletion)?;
    put_unsigned_vint(&mut promoted, blocks.len() as u64);
    promoted.extend_from_slice(&infos);
    for o in offsets {
        put_i32(&mut promoted, o);
    }
    put_unsigned_vint(out, promoted.len() as u64);
    out.extend_from_slice(&promoted);
    Ok(())
}
