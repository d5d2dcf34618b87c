//! The BTI partition index, Partitions.db: an on-disk trie from unique prefixes of the partitions'
//! byte-comparable keys to where each partition is (`io/sstable/format/bti/BtiFormat.md`,
//! `io/tries/TrieNode.java`, `PartitionIndex.java`). Used to list every partition's Data.db position in
//! key order without reading Data.db, so that BTI (`da`) files can be split into ranges like big files.
//!
//! A payload is a Data.db position (stored as `~position`) or, for partitions with a row index, the
//! position of an entry in Rows.db (the key, then `TrieIndexEntry`, whose first field is the Data.db
//! position). The file ends with the first and last keys and a 24-byte footer: the position of those
//! keys, the key count and the root node's position. Child pointers always point backwards; a walk
//! checks that, so damaged files give [`Error::Corrupt`] instead of loops or panics.

use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::bytes::Cursor;
use crate::descriptor::{Component, Descriptor};
use crate::error::{Error, Result};
use crate::index::map;

/// Length of the Partitions.db footer (first-key position, key count, root position).
pub const FOOTER_LEN: usize = 24;

/// Where a payload points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Position of the partition in the uncompressed Data.db.
    Data(u64),
    /// Position of the partition's entry in Rows.db.
    Rows(u64),
}

/// One payload of the trie: the node that holds it and where it points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    /// Offset of the node in Partitions.db.
    pub node: u64,
    pub target: Target,
}

/// What the end of Partitions.db says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    pub root: u64,
    pub key_count: u64,
    pub first_key: Vec<u8>,
    pub last_key: Vec<u8>,
    /// End of the trie nodes (where the first and last keys start).
    pub trie_end: u64,
}

/// Reads the footer and the first/last keys it points to.
pub fn parse_footer(b: &[u8], path: &Path) -> Result<Footer> {
    let len = b.len();
    if len < FOOTER_LEN {
        return Err(Error::corrupt(
            path,
            len as u64,
            format!("a {FOOTER_LEN}-byte footer (first-key position, key count, root position)"),
        ));
    }
    let f = len - FOOTER_LEN;
    let long = |at: usize| {
        let mut c = Cursor::at(b, at);
        c.i64()
            .map_err(|_| Error::corrupt(path, at as u64, "an 8-byte footer field"))
    };
    let (first_pos, key_count, root) = (long(f)?, long(f + 8)?, long(f + 16)?);
    let trie_end = usize::try_from(first_pos)
        .ok()
        .filter(|&p| p <= f)
        .ok_or_else(|| {
            Error::corrupt(
                path,
                f as u64,
                format!("a first-key position inside the file (before {f}), found {first_pos}"),
            )
        })?;
    let mut c = Cursor::at(&b[..f], trie_end);
    let mut key = |what: &str| -> Result<Vec<u8>> {
        c.utf().map(<[u8]>::to_vec).map_err(|_| {
            Error::corrupt(
                path,
                c.pos() as u64,
                format!("the {what} key (u16 length and bytes) before the footer"),
            )
        })
    };
    let first_key = key("first")?;
    let last_key = key("last")?;
    let key_count = u64::try_from(key_count).map_err(|_| {
        Error::corrupt(
            path,
            f as u64 + 8,
            format!("a non-negative key count, found {key_count}"),
        )
    })?;
    let root = u64::try_from(root)
        .ok()
        .filter(|&r| r < trie_end as u64 || (trie_end == 0 && key_count == 0))
        .ok_or_else(|| {
            Error::corrupt(
                path,
                f as u64 + 16,
                format!("a root position inside the trie (before {trie_end}), found {root}"),
            )
        })?;
    Ok(Footer {
        root,
        key_count,
        first_key,
        last_key,
        trie_end: trie_end as u64,
    })
}

/// Big-endian unsigned integer of `n` bytes at `at`.
fn uint(b: &[u8], at: usize, n: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(n)?)?;
    Some(s.iter().fold(0u64, |v, &x| (v << 8) | x as u64))
}

/// The `i`-th 12-bit value packed from `base` (`TrieNode.read12Bits`).
fn bits12(b: &[u8], base: usize, i: usize) -> Option<u64> {
    let w = uint(b, base + 3 * i / 2, 2)?;
    Some(if i.is_multiple_of(2) {
        w >> 4
    } else {
        w & 0xfff
    })
}

/// A node's payload: where its bytes start and the node's payload flags (`pb`, 1..=15), whose meaning
/// is the trie's (a Partitions.db or a Rows.db payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawPayload {
    pub at: usize,
    pub flags: u8,
}

/// Decodes the node at `pos` of `trie` (the trie bytes only; nodes before `lo` belong to another
/// trie): pushes its children's positions and transition bytes onto `kids` in transition order and
/// returns its payload, if any.
fn node(
    trie: &[u8],
    path: &Path,
    pos: usize,
    lo: usize,
    kids: &mut Vec<(u64, u8)>,
) -> Result<Option<RawPayload>> {
    let first = *trie
        .get(pos)
        .ok_or_else(|| Error::corrupt(path, pos as u64, "a trie node"))?;
    let ty = first >> 4;
    let short = |what: &str| {
        Error::corrupt(
            path,
            pos as u64,
            format!(
                "a whole trie node of type {ty} ({what}) before the end of the trie at {}",
                trie.len()
            ),
        )
    };
    let mut child = |delta: Option<u64>, transition: u8, none_allowed: bool| -> Result<()> {
        let d = delta.ok_or_else(|| short("its child pointers"))?;
        if d == 0 && none_allowed {
            return Ok(());
        }
        if d == 0 || d > (pos - lo) as u64 {
            return Err(Error::corrupt(
                path,
                pos as u64,
                format!("a child pointer to an earlier node of the trie, found a distance of {d}"),
            ));
        }
        kids.push((pos as u64 - d, transition));
        Ok(())
    };
    // `n` child pointers from `base`, `bpp` bytes each (0: 12 bits each), the i-th for the transition
    // `transition(i)`; returns where they end.
    let mut pointers = |base: usize,
                        n: usize,
                        bpp: usize,
                        nulls: bool,
                        transition: &dyn Fn(usize) -> u8|
     -> Result<usize> {
        for i in 0..n {
            let d = match bpp {
                0 => bits12(trie, base, i),
                _ => uint(trie, base + i * bpp, bpp),
            };
            child(d, transition(i), nulls)?;
        }
        Ok(match bpp {
            0 => base + (3 * n).div_ceil(2),
            _ => base + n * bpp,
        })
    };
    let byte = |at: usize| trie.get(at).copied().map(u64::from);
    let mut flags = first & 0x0f;
    let payload_at = match ty {
        0 => pos + 1,
        1 => {
            let t = byte(pos + 1).ok_or_else(|| short("its transition byte"))?;
            child(Some((first & 0x0f) as u64), t as u8, false)?;
            flags = 0;
            pos + 2
        }
        2 | 4 => {
            let bpp = if ty == 2 { 1 } else { 2 };
            let t = byte(pos + 1).ok_or_else(|| short("its transition byte"))?;
            child(uint(trie, pos + 2, bpp), t as u8, false)?;
            pos + 2 + bpp
        }
        3 => {
            let lo = byte(pos + 1);
            let t = byte(pos + 2).ok_or_else(|| short("its transition byte"))?;
            child(
                lo.map(|lo| (((first & 0x0f) as u64) << 8) | lo),
                t as u8,
                false,
            )?;
            flags = 0;
            pos + 3
        }
        5..=9 => {
            let count = byte(pos + 1).ok_or_else(|| short("its child count"))? as usize;
            let trans = trie
                .get(pos + 2..pos + 2 + count)
                .ok_or_else(|| short("its transition bytes"))?;
            if trans.windows(2).any(|w| w[0] >= w[1]) {
                return Err(Error::corrupt(
                    path,
                    pos as u64 + 2,
                    "sparse transition bytes in increasing order",
                ));
            }
            // SPARSE_12 packs 12-bit pointers; the others have whole bytes per pointer.
            let bpp = [1, 0, 2, 3, 5][ty as usize - 5];
            pointers(pos + 2 + count, count, bpp, false, &|i| trans[i])?
        }
        _ => {
            let start = byte(pos + 1).ok_or_else(|| short("its first transition"))?;
            let range = byte(pos + 2).ok_or_else(|| short("its transition range"))? as usize + 1;
            if start as usize + range > 256 {
                return Err(Error::corrupt(
                    path,
                    pos as u64 + 1,
                    format!("a dense transition range within a byte, found {start} + {range}"),
                ));
            }
            // DENSE_12 packs 12-bit pointers; a dense node's gaps are null (0) pointers.
            let bpp = if ty == 10 {
                0
            } else {
                [2, 3, 4, 5, 8][ty as usize - 11]
            };
            pointers(pos + 3, range, bpp, true, &|i| (start as usize + i) as u8)?
        }
    };
    Ok((flags != 0).then_some(RawPayload {
        at: payload_at,
        flags,
    }))
}

/// A Partitions.db payload (`PartitionIndex.getIndexPos`): flags 8..15 mean a hash byte, then
/// flags - 7 bytes; 1..7 mean that many bytes, a sign-extended integer: `~position` in Data.db when
/// negative, else the position of the partition's entry in Rows.db. Returns it and the hash byte.
fn partition_payload(
    trie: &[u8],
    path: &Path,
    node: usize,
    p: RawPayload,
) -> Result<(Target, Option<u8>)> {
    let (skip, n) = if p.flags >= 8 {
        (1, p.flags as usize - 7)
    } else {
        (0, p.flags as usize)
    };
    let v = sized_int(trie, p.at + skip, n).ok_or_else(|| {
        Error::corrupt(
            path,
            node as u64,
            format!(
                "a whole trie node (its {n}-byte payload) before the end of the trie at {}",
                trie.len()
            ),
        )
    })?;
    let target = if v < 0 {
        Target::Data(!v as u64)
    } else {
        Target::Rows(v as u64)
    };
    Ok((target, (skip == 1).then(|| trie[p.at])))
}

/// The sign-extended big-endian integer of `n` (1..=8) bytes at `at` (`SizedInts.read`).
pub(crate) fn sized_int(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let raw = uint(b, at, n)?;
    let shift = 64 - 8 * n as u32;
    Some(((raw << shift) as i64) >> shift)
}

/// Visits the nodes with a payload of the trie rooted at `root` in `trie` (whose nodes before `lo`
/// belong to another trie), in order, with the path of transitions that leads to each. A node reached
/// twice, or a pointer outside `lo..root`, is an error.
pub(crate) fn walk_nodes(
    trie: &[u8],
    path: &Path,
    root: u64,
    lo: usize,
    mut visit: impl FnMut(&[u8], usize, RawPayload) -> Result<()>,
) -> Result<()> {
    let span = trie.len().saturating_sub(lo);
    let mut seen = vec![0u64; span.div_ceil(64)];
    // (node, depth, transition into it); the path holds the transitions from the root.
    let mut stack = vec![(root, 0usize, 0u8)];
    let mut key = Vec::new();
    let mut kids = Vec::new();
    while let Some((pos, depth, transition)) = stack.pop() {
        key.truncate(depth.saturating_sub(1));
        if depth > 0 {
            key.push(transition);
        }
        let p = usize::try_from(pos).unwrap_or(usize::MAX);
        if p < lo || p >= trie.len() {
            return Err(Error::corrupt(
                path,
                pos,
                format!("a trie node between {lo} and {}", trie.len()),
            ));
        }
        let (w, bit) = ((p - lo) / 64, 1u64 << ((p - lo) % 64));
        if seen[w] & bit != 0 {
            return Err(Error::corrupt(
                path,
                pos,
                "a tree (this node is reached by two paths)",
            ));
        }
        seen[w] |= bit;
        kids.clear();
        if let Some(payload) = node(trie, path, p, lo, &mut kids)? {
            visit(&key, p, payload)?;
        }
        stack.extend(kids.iter().rev().map(|&(k, t)| (k, depth + 1, t)));
    }
    Ok(())
}

/// Every payload of Partitions.db `b`, in key order, checked against the footer's key count.
pub fn parse(b: &[u8], path: &Path) -> Result<(Footer, Vec<Payload>)> {
    let mut out = Vec::new();
    let footer = walk(b, path, |_, p, _| out.push(p))?;
    Ok((footer, out))
}

/// Visits every payload of Partitions.db `b` in key order with the trie path that leads to it (the
/// shortest prefix of the partition's byte-comparable key that tells it from its neighbours) and its
/// hash byte; checks the count against the footer's key count, which it returns.
pub fn walk(
    b: &[u8],
    path: &Path,
    mut visit: impl FnMut(&[u8], Payload, Option<u8>),
) -> Result<Footer> {
    let footer = parse_footer(b, path)?;
    let end = footer.trie_end as usize;
    let trie = &b[..end];
    let mut count = 0u64;
    if end > 0 {
        walk_nodes(trie, path, footer.root, 0, |key, node, raw| {
            let (target, hash) = partition_payload(trie, path, node, raw)?;
            visit(
                key,
                Payload {
                    node: node as u64,
                    target,
                },
                hash,
            );
            count += 1;
            Ok(())
        })?;
    }
    if count != footer.key_count {
        return Err(Error::corrupt(
            path,
            b.len() as u64 - 16,
            format!(
                "a key count equal to the trie's {count} partitions, found {}",
                footer.key_count
            ),
        ));
    }
    Ok(footer)
}

/// A mapped Partitions.db.
#[derive(Debug)]
pub struct PartitionTrie {
    path: PathBuf,
    map: Option<Mmap>,
}

impl PartitionTrie {
    pub fn open(desc: &Descriptor) -> Result<PartitionTrie> {
        let path = desc.path(Component::Partitions);
        Ok(PartitionTrie {
            map: map(&path)?,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The footer and every payload, in key order.
    pub fn parse(&self) -> Result<(Footer, Vec<Payload>)> {
        parse(self.map.as_deref().unwrap_or(&[]), &self.path)
    }

    /// [`walk`] over this file.
    pub fn walk(&self, visit: impl FnMut(&[u8], Payload, Option<u8>)) -> Result<Footer> {
        walk(self.map.as_deref().unwrap_or(&[]), &self.path, visit)
    }
}

/// The Data.db position of the Rows.db entry at `at` (u16 key length, key, unsigned vint position).
fn rows_entry(rows: &[u8], path: &Path, at: u64) -> Result<u64> {
    let mut c = Cursor::at(rows, usize::try_from(at).unwrap_or(usize::MAX));
    c.utf()
        .map_err(|_| Error::corrupt(path, at, "a Rows.db entry starting with a partition key"))?;
    c.uvint().map_err(|_| {
        Error::corrupt(
            path,
            c.pos() as u64,
            "the Data.db position of a Rows.db entry",
        )
    })
}

/// Every partition's position in the uncompressed Data.db (of length `data_len`), in key order, with
/// Rows.db entries resolved. Positions must increase and lie inside the data.
pub fn data_positions(desc: &Descriptor, data_len: u64) -> Result<Vec<u64>> {
    let trie = PartitionTrie::open(desc)?;
    let (_, payloads) = trie.parse()?;
    let rows_path = desc.path(Component::Rows);
    let rows = if payloads.iter().any(|p| matches!(p.target, Target::Rows(_))) {
        map(&rows_path)?
    } else {
        None
    };
    let rows = rows.as_deref().unwrap_or(&[]);
    let mut out: Vec<u64> = Vec::with_capacity(payloads.len());
    for p in payloads {
        let (pos, file, at) = match p.target {
            Target::Data(d) => (d, trie.path(), p.node),
            Target::Rows(r) => (rows_entry(rows, &rows_path, r)?, rows_path.as_path(), r),
        };
        if pos >= data_len {
            return Err(Error::corrupt(
                file,
                at,
                format!("a partition position inside Data.db ({data_len} bytes), found {pos}"),
            ));
        }
        if let Some(&last) = out.last() {
            if pos <= last {
                return Err(Error::corrupt(
                    file,
                    at,
                    format!("partitions at increasing Data.db positions in key order, found {pos} after {last}"),
                ));
            }
        }
        out.push(pos);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SizedInts.nonZeroSize`: bytes of the shortest signed big-endian form.
    fn size(v: i64) -> usize {
        (1..8)
            .find(|&n| v >> (8 * n - 1) == 0 || v >> (8 * n - 1) == -1)
            .unwrap_or(8)
    }

    fn be(v: u64, n: usize) -> Vec<u8> {
        v.to_be_bytes()[8 - n..].to_vec()
    }

    fn pack12(v: &[u64]) -> Vec<u8> {
        let mut o = Vec::new();
        for p in v.chunks(2) {
            match *p {
                [a, b] => o.extend([(a >> 4) as u8, ((a << 4) | (b >> 8)) as u8, b as u8]),
                [a] => o.extend(((a << 4) as u16).to_be_bytes()),
                _ => unreachable!(),
            }
        }
        o
    }

    /// Serializes a node of type `ty` at `at` (as `TrieNode.serialize` does); `kids` are (byte, position).
    fn enc(ty: u8, payload: Option<(i64, bool)>, kids: &[(u8, usize)], at: usize) -> Vec<u8> {
        let d = |p: usize| (at - p) as u64;
        let (flags, tail) = match payload {
            None => (0, vec![]),
            Some((v, hash)) => {
                let n = size(v);
                let mut t = if hash { vec![0x5a] } else { vec![] };
                t.extend(be(v as u64, n));
                ((if hash { 7 } else { 0 } + n) as u8, t)
            }
        };
        let mut o = vec![(ty << 4) | flags];
        match ty {
            0 => {}
            1 => o = vec![0x10 | d(kids[0].1) as u8, kids[0].0],
            3 => {
                o = vec![
                    0x30 | (d(kids[0].1) >> 8) as u8,
                    d(kids[0].1) as u8,
                    kids[0].0,
                ]
            }
            2 | 4 => {
                o.push(kids[0].0);
                o.extend(be(d(kids[0].1), (ty / 2) as usize));
            }
            5..=9 => {
                o.push(kids.len() as u8);
                o.extend(kids.iter().map(|k| k.0));
                let ds: Vec<u64> = kids.iter().map(|k| d(k.1)).collect();
                if ty == 6 {
                    o.extend(pack12(&ds));
                } else {
                    let bpp = [1, 0, 2, 3, 5][ty as usize - 5];
                    ds.iter().for_each(|&x| o.extend(be(x, bpp)));
                }
            }
            _ => {
                let (lo, hi) = (kids[0].0, kids[kids.len() - 1].0);
                o.extend([lo, hi - lo]);
                let ds: Vec<u64> = (lo..=hi)
                    .map(|t| kids.iter().find(|k| k.0 == t).map_or(0, |k| d(k.1)))
                    .collect();
                if ty == 10 {
                    o.extend(pack12(&ds));
                } else {
                    let bpp = [2, 3, 4, 5, 8][ty as usize - 11];
                    ds.iter().for_each(|&x| o.extend(be(x, bpp)));
                }
            }
        }
        if !matches!(ty, 1 | 3) {
            o.extend(tail);
        }
        o
    }

    fn finish(mut b: Vec<u8>, root: usize, count: u64) -> Vec<u8> {
        let first = b.len() as u64;
        b.extend([0, 1, b'a', 0, 1, b'z']);
        for v in [first, count, root as u64] {
            b.extend(v.to_be_bytes());
        }
        b
    }

    fn targets(b: &[u8]) -> Result<Vec<Target>> {
        parse(b, Path::new("t-Partitions.db"))
            .map(|(_, p)| p.into_iter().map(|p| p.target).collect())
    }

    /// Three leaves (Data 10, Data 20 without a hash byte, Rows 300), then `pad` bytes, then a root.
    fn trie(ty: u8, pad: usize) -> (Vec<u8>, Vec<Target>) {
        let mut b = enc(0, Some((!10, true)), &[], 0);
        let l1 = b.len();
        b.extend(enc(0, Some((!20, false)), &[], l1));
        let l2 = b.len();
        b.extend(enc(0, Some((300, true)), &[], l2));
        b.resize(b.len() + pad, 0);
        let root = b.len();
        let single = (1..=4).contains(&ty);
        let kids: Vec<(u8, usize)> = if single {
            vec![(7, 0)]
        } else {
            vec![(0x10, 0), (0x12, l1), (0x20, l2)]
        };
        let payload = (!matches!(ty, 1 | 3)).then_some((!5, true));
        b.extend(enc(ty, payload, if ty == 0 { &[] } else { &kids }, root));
        let mut want: Vec<Target> = payload.iter().map(|_| Target::Data(5)).collect();
        if ty != 0 {
            want.push(Target::Data(10));
        }
        if !single && ty != 0 {
            want.extend([Target::Data(20), Target::Rows(300)]);
        }
        (finish(b, root, want.len() as u64), want)
    }

    #[test]
    fn every_node_type_in_key_order() {
        for ty in 0..16u8 {
            // Pointers of 12 bits or more get a distance above 255.
            let pad = if matches!(ty, 0 | 1 | 2 | 5) { 0 } else { 300 };
            let (b, want) = trie(ty, pad);
            assert_eq!(targets(&b).unwrap(), want, "type {ty}");
        }
    }

    #[test]
    fn damaged_tries_are_errors() {
        let err = |b: &[u8]| match targets(b) {
            Err(Error::Corrupt { offset, .. }) => offset,
            other => panic!("expected corruption, got {other:?}"),
        };
        // A sparse node pointing to itself, and one pointing forward.
        let mut b = enc(0, Some((!1, true)), &[], 0);
        b.extend([0x50, 1, 7, 0]);
        assert_eq!(err(&finish(b.clone(), 3, 1)), 3);
        b[6] = 200;
        assert_eq!(err(&finish(b, 3, 1)), 3);
        // Two transitions to the same leaf: not a tree.
        let mut b = enc(0, Some((!1, true)), &[], 0);
        b.extend(enc(5, None, &[(1, 0), (2, 0)], 3));
        assert_eq!(err(&finish(b, 3, 2)), 0);
        // Key count disagreeing with the trie; root outside the trie; a node cut by the keys.
        let (b, _) = trie(7, 0);
        let n = b.len();
        let mut c = b.clone();
        c[n - 9] = 9;
        assert_eq!(err(&c), n as u64 - 16);
        let mut c = b.clone();
        c[n - 1] = 0xff;
        assert_eq!(err(&c), n as u64 - 8);
        let (b, _) = trie(13, 0);
        let body = b.len() - FOOTER_LEN - 6;
        assert_eq!(err(&finish(b[..body - 2].to_vec(), 9, 4)), 9);
        assert!(targets(&[0; 10]).is_err());
        // An empty index.
        assert_eq!(targets(&finish(vec![0], 0, 0)).unwrap(), vec![]);
    }
}
