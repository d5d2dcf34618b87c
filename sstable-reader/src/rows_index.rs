//! The BTI row index, Rows.db (`BtiFormat.md`, "Row index"; `RowIndexReader`, `TrieIndexEntry`): for
//! each partition with more than one index block, a trie from separators of the blocks' clusterings
//! (in byte-comparable form) to each block's offset within the partition and the deletion open at its
//! start, followed by the partition's entry — its key, Data.db position, the trie's root (a distance
//! from the entry's start), the block count and the partition deletion. Partitions.db points at the
//! entries. A read scans partitions whole and does not use these tries; `verify` checks them against
//! Data.db.

use std::path::Path;

use crate::bytes::Cursor;
use crate::error::{Error, Result};
use crate::partitions::{sized_int, walk_nodes};
use crate::row::{read_partition_deletion, DeletionTime};
use crate::types::CqlType;

/// One partition's row index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowIndex {
    pub key: Vec<u8>,
    pub data_position: u64,
    pub block_count: u64,
    pub deletion: DeletionTime,
    /// The trie's payloads in separator order.
    pub blocks: Vec<RowIndexBlock>,
    /// Where the entry (its key) starts in Rows.db.
    pub entry_at: u64,
}

/// One payload of a row index trie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowIndexBlock {
    /// The path to the payload: a separator of the blocks' clusterings in byte-comparable form.
    pub separator: Vec<u8>,
    /// Offset of the block's first unfiltered from the partition's start in Data.db.
    pub offset: u64,
    /// The range deletion open at the block's start, if any.
    pub open: Option<DeletionTime>,
    /// Where the payload's node is in Rows.db.
    pub node: u64,
}

/// Flag of a payload followed by the deletion open at the block's start (`RowIndexReader`).
const OPEN_MARKER: u8 = 8;

/// Parses the entry at `at` of Rows.db `rows` and walks its trie, whose nodes lie between `lo` (the
/// end of the previous partition's entry) and the entry. `uint_ldt`: the `oa` deletion time layout.
pub fn parse(rows: &[u8], path: &Path, at: u64, lo: usize, uint_ldt: bool) -> Result<RowIndex> {
    let start = usize::try_from(at).unwrap_or(usize::MAX);
    let mut c = Cursor::at(rows, start);
    let corrupt = |at: usize, what: &str| Error::corrupt(path, at as u64, what.to_string());
    let key = c
        .utf()
        .map_err(|_| corrupt(start, "a Rows.db entry starting with a partition key"))?
        .to_vec();
    // The root's distance is from here, where `TrieIndexEntry` starts.
    let base = c.pos();
    let data_position = c
        .uvint()
        .map_err(|_| corrupt(c.pos(), "the Data.db position of a Rows.db entry"))?;
    let root_at = c.pos();
    let root_delta = c
        .vint()
        .map_err(|_| corrupt(root_at, "the distance to the row index trie's root"))?;
    let block_count = c
        .uvint()
        .map_err(|_| corrupt(c.pos(), "the row index block count"))?;
    let deletion = read_partition_deletion(&mut c, uint_ldt)
        .map_err(|_| corrupt(c.pos(), "the partition deletion"))?;
    let root = (base as i64)
        .checked_add(root_delta)
        .and_then(|r| u64::try_from(r).ok())
        .filter(|&r| (lo as u64..at).contains(&r))
        .ok_or_else(|| {
            corrupt(
                root_at,
                &format!("a row index trie root between {lo} and the entry at {at}, found a distance of {root_delta}"),
            )
        })?;
    let trie = &rows[..start];
    let mut blocks = Vec::new();
    walk_nodes(trie, path, root, lo, |separator, node, raw| {
        let n = (raw.flags & !OPEN_MARKER) as usize;
        let offset = (n > 0)
            .then(|| sized_int(trie, raw.at, n))
            .flatten()
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| {
                corrupt(
                    node,
                    &format!("a row index payload of a non-negative {n}-byte offset"),
                )
            })?;
        let open = if raw.flags & OPEN_MARKER != 0 {
            let mut d = Cursor::at(trie, raw.at + n);
            Some(
                read_partition_deletion(&mut d, uint_ldt)
                    .map_err(|_| corrupt(raw.at + n, "the deletion open at a block's start"))?,
            )
        } else {
            None
        };
        blocks.push(RowIndexBlock {
            separator: separator.to_vec(),
            offset,
            open,
            node: node as u64,
        });
        Ok(())
    })?;
    Ok(RowIndex {
        key,
        data_position,
        block_count,
        deletion,
        blocks,
        entry_at: at,
    })
}

/// Where the entry at `at` ends in Rows.db (the next partition's trie starts there or
/// later, after padding).
pub fn entry_end(rows: &[u8], at: u64, uint_ldt: bool) -> Option<usize> {
    let mut c = Cursor::at(rows, usize::try_from(at).ok()?);
    c.utf().ok()?;
    c.uvint().ok()?;
    c.vint().ok()?;
    c.uvint().ok()?;
    read_partition_deletion(&mut c, uint_ldt).ok()?;
    Some(c.pos())
}

/// `ByteSource` codes of the byte-comparable form (version OSS50, Cassandra 5).
const NEXT_COMPONENT: u8 = 0x40;
const NEXT_COMPONENT_NULL: u8 = 0x3e;
const NEXT_COMPONENT_EMPTY: u8 = 0x3f;
const TERMINATOR: u8 = 0x38;
const ESCAPE: u8 = 0x00;
const ESCAPED_0_CONT: u8 = 0xff;

/// A row's clustering in byte-comparable form (`ClusteringComparator.asByteComparable`, kind
/// CLUSTERING), the order the row index's separators follow; `None` when a clustering type's form is
/// not one this module encodes (reversed, collections, UUIDs, decimals, …).
pub fn comparable_clustering(values: &[Option<&[u8]>], types: &[CqlType]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for (v, ty) in values.iter().zip(types) {
        match v {
            None => out.push(NEXT_COMPONENT_NULL),
            Some([]) if !matches!(ty, CqlType::Text | CqlType::Ascii | CqlType::Blob) => {
                out.push(NEXT_COMPONENT_EMPTY)
            }
            Some(v) => {
                out.push(NEXT_COMPONENT);
                match ty {
                    // Variable length: zero bytes escaped, then an escape byte ending the value.
                    CqlType::Text | CqlType::Ascii | CqlType::Blob => {
                        for &b in *v {
                            out.push(b);
                            if b == ESCAPE {
                                out.push(ESCAPED_0_CONT);
                            }
                        }
                        out.push(ESCAPE);
                    }
                    // Signed fixed length: the sign bit flipped.
                    CqlType::TinyInt
                    | CqlType::SmallInt
                    | CqlType::Int
                    | CqlType::BigInt
                    | CqlType::Timestamp => {
                        let (first, rest) = v.split_first()?;
                        out.push(first ^ 0x80);
                        out.extend_from_slice(rest);
                    }
                    CqlType::Boolean | CqlType::Date => out.extend_from_slice(v),
                    _ => return None,
                }
            }
        }
    }
    out.push(TERMINATOR);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusterings_compare_as_their_values() {
        let text = |s: &str| comparable_clustering(&[Some(s.as_bytes())], &[CqlType::Text]);
        assert!(text("1") < text("12") && text("12") < text("2"));
        assert!(text("a\0") > text("a") && text("a\0") < text("a\u{1}"));
        let int = |i: i32| comparable_clustering(&[Some(&i.to_be_bytes())], &[CqlType::Int]);
        assert!(int(-1) < int(0) && int(0) < int(7) && int(i32::MIN) < int(-1));
        let pair = |a: i32, b: &str| {
            comparable_clustering(
                &[Some(&a.to_be_bytes()), Some(b.as_bytes())],
                &[CqlType::Int, CqlType::Text],
            )
        };
        assert!(pair(1, "z") < pair(2, "a"));
        assert_eq!(
            comparable_clustering(&[Some(&[0u8; 16])], &[CqlType::Uuid]),
            None
        );
    }
}
