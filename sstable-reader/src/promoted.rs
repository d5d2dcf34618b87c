//! The promoted row index of a wide partition, as Index.db holds it after the partition's key and
//! position (`RowIndexEntry.Serializer`, `IndexInfo.Serializer`): the partition header's length, the
//! partition deletion, and index blocks — the first and last clustering prefix of each block of rows,
//! its offset from the partition start and width, and the deletion of a range tombstone still open at
//! its end — then one `int` per block, its offset within the blocks. A read by clustering would seek
//! with it; `verify` checks it against Data.db.

use crate::bytes::Cursor;
use crate::row::{read_partition_deletion, BoundKind, DeletionTime};
use crate::types::CqlType;

/// `IndexInfo`'s widths are stored less 64 KiB (`IndexInfo.Serializer`'s `WIDTH_BASE`).
const WIDTH_BASE: i64 = 64 * 1024;

/// A clustering prefix: its kind and values (`None`: null).
pub type Prefix = (BoundKind, Vec<Option<Vec<u8>>>);

/// One index block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexBlock {
    pub first: Prefix,
    pub last: Prefix,
    /// Offset of the block's first unfiltered from the partition start.
    pub offset: u64,
    pub width: u64,
    /// The deletion of a range tombstone open at the block's end.
    pub end_open_marker: Option<DeletionTime>,
}

/// A parsed promoted index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotedIndex {
    /// Bytes from the partition start to its first unfiltered (key, deletion, static row).
    pub header_length: u64,
    pub deletion: DeletionTime,
    pub blocks: Vec<IndexBlock>,
}

/// Parses the promoted index `b` (exactly its bytes) of a table with clustering `types`; `uint_ldt`:
/// the `oa` deletion time layout. `Err`: the offset in `b` and what was expected there.
pub fn parse(
    b: &[u8],
    types: &[CqlType],
    uint_ldt: bool,
) -> Result<PromotedIndex, (usize, String)> {
    let mut c = Cursor::new(b);
    let short = |c: &Cursor<'_>, what: &str| (c.pos(), what.to_string());
    let header_length = c
        .uvint()
        .map_err(|_| short(&c, "the partition header length"))?;
    let deletion = read_partition_deletion(&mut c, uint_ldt)
        .map_err(|_| short(&c, "the partition deletion"))?;
    let count = c.uvint().map_err(|_| short(&c, "the block count"))?;
    // Each block takes at least 5 bytes: no more blocks than that fit.
    if count > (b.len() / 5) as u64 {
        return Err((
            c.pos(),
            format!("a block count that fits the index, found {count}"),
        ));
    }
    let mut blocks = Vec::with_capacity(count as usize);
    let mut starts = Vec::with_capacity(count as usize);
    let blocks_start = c.pos();
    for _ in 0..count {
        starts.push(c.pos() - blocks_start);
        let first = prefix(&mut c, types)?;
        let last = prefix(&mut c, types)?;
        let offset = c.uvint().map_err(|_| short(&c, "a block offset"))?;
        let width = c.vint().map_err(|_| short(&c, "a block width"))? + WIDTH_BASE;
        let width =
            u64::try_from(width).map_err(|_| (c.pos(), format!("a block width, found {width}")))?;
        let end_open_marker = match c.u8().map_err(|_| short(&c, "an open marker flag"))? {
            0 => None,
            1 => Some(
                read_partition_deletion(&mut c, uint_ldt)
                    .map_err(|_| short(&c, "the open marker's deletion"))?,
            ),
            f => {
                return Err((
                    c.pos() - 1,
                    format!("an open marker flag 0 or 1, found {f}"),
                ))
            }
        };
        blocks.push(IndexBlock {
            first,
            last,
            offset,
            width,
            end_open_marker,
        });
    }
    for (n, start) in starts.iter().enumerate() {
        let at = c.pos();
        let stored = c
            .i32()
            .map_err(|_| short(&c, "a block's offset within the blocks"))?;
        if i64::from(stored) != *start as i64 {
            return Err((
                at,
                format!("block {n} at {start} within the blocks, found {stored}"),
            ));
        }
    }
    if c.remaining() != 0 {
        return Err((
            c.pos(),
            format!(
                "the end of the promoted index, found {} more bytes",
                c.remaining()
            ),
        ));
    }
    Ok(PromotedIndex {
        header_length,
        deletion,
        blocks,
    })
}

/// A clustering prefix (`ClusteringPrefix.Serializer`): the kind, for a bound its size, then the values
/// with their presence headers (2 bits each, 32 per header: 0 a value, 1 empty, 2 null).
fn prefix(c: &mut Cursor<'_>, types: &[CqlType]) -> Result<Prefix, (usize, String)> {
    let at = c.pos();
    let ordinal = c.u8().map_err(|_| (at, "a clustering kind".to_string()))?;
    let kind = BoundKind::from_ordinal(ordinal)
        .filter(|k| *k != BoundKind::StaticClustering)
        .ok_or_else(|| (at, format!("a clustering kind, found {ordinal}")))?;
    let size = if kind == BoundKind::Clustering {
        types.len()
    } else {
        c.u16()
            .map_err(|_| (c.pos(), "a bound's size".to_string()))? as usize
    };
    if size > types.len() {
        return Err((
            at,
            format!("at most {} clustering values, found {size}", types.len()),
        ));
    }
    let mut values = Vec::with_capacity(size);
    let mut header = 0u64;
    for (i, ty) in types[..size].iter().enumerate() {
        if i % 32 == 0 {
            header = c
                .uvint()
                .map_err(|_| (c.pos(), "a clustering header".to_string()))?;
        }
        let value = match (header >> ((i % 32) * 2)) & 3 {
            0 => {
                let n = match ty.fixed_length() {
                    Some(n) => n,
                    None => c
                        .uvint_len()
                        .map_err(|_| (c.pos(), "a clustering value length".to_string()))?,
                };
                Some(
                    c.take(n)
                        .map_err(|_| (c.pos(), "a clustering value".to_string()))?
                        .to_vec(),
                )
            }
            1 => Some(Vec::new()),
            _ => None,
        };
        values.push(value);
    }
    Ok((kind, values))
}
