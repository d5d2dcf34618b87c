//! The big format's partition indexes: Index.db (every partition key with its Data.db position, and
//! the promoted row index of wide partitions, `io/sstable/format/big/RowIndexEntry.java`) and
//! Summary.db (every N-th Index.db entry, `io/sstable/indexsummary/IndexSummary.java`). Enough to list
//! partitions with their offsets and to split a file into ranges at partition boundaries.

use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::bytes::Cursor;
use crate::descriptor::{Component, Descriptor};
use crate::error::{Error, Result};

pub(crate) fn map(path: &Path) -> Result<Option<Mmap>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Ok(None);
    }
    // SAFETY: read-only map of an immutable SSTable component.
    Ok(Some(
        unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?,
    ))
}

/// A mapped Index.db.
#[derive(Debug)]
pub struct PartitionIndex {
    path: PathBuf,
    map: Option<Mmap>,
}

/// One Index.db entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry<'a> {
    pub key: &'a [u8],
    /// Position of the partition in the uncompressed Data.db.
    pub data_position: u64,
    /// Position of this entry in Index.db.
    pub index_position: u64,
    /// Size of the promoted row index (0 for narrow partitions).
    pub promoted_index_size: u64,
}

impl PartitionIndex {
    pub fn open(desc: &Descriptor) -> Result<PartitionIndex> {
        let path = desc.path(Component::Index);
        Ok(PartitionIndex {
            map: map(&path)?,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Size of Index.db.
    pub fn file_len(&self) -> u64 {
        self.bytes().len() as u64
    }

    /// The entry at `position` in Index.db.
    pub fn entry_at(&self, position: u64) -> Result<IndexEntry<'_>> {
        let b = self.bytes();
        let corrupt =
            |at: usize, what: &str| Error::corrupt(&self.path, at as u64, what.to_string());
        let mut c = Cursor::at(b, position as usize);
        let klen = c
            .u16()
            .map_err(|_| corrupt(c.pos(), "a partition key length"))? as usize;
        let key = c
            .take(klen)
            .map_err(|_| corrupt(c.pos(), "a partition key"))?;
        let data_position = c
            .uvint()
            .map_err(|_| corrupt(c.pos(), "a Data.db position"))?;
        let promoted_index_size = c
            .uvint()
            .map_err(|_| corrupt(c.pos(), "a promoted index size"))?;
        c.skip(promoted_index_size as usize)
            .map_err(|_| corrupt(c.pos(), "a promoted index no longer than the file"))?;
        Ok(IndexEntry {
            key,
            data_position,
            index_position: position,
            promoted_index_size,
        })
    }

    /// The promoted row index bytes of `e` (empty for a narrow partition) and where they start in
    /// Index.db.
    pub fn promoted_index(&self, e: &IndexEntry<'_>) -> (&[u8], u64) {
        let start = e.index_position
            + 2
            + e.key.len() as u64
            + vint_size(e.data_position)
            + vint_size(e.promoted_index_size);
        let b = self.bytes();
        let s = (start as usize).min(b.len());
        let end = s
            .saturating_add(e.promoted_index_size as usize)
            .min(b.len());
        (&b[s..end], start)
    }

    /// Every entry, in order.
    pub fn entries(&self) -> IndexEntries<'_> {
        IndexEntries {
            index: self,
            pos: 0,
            last_data: None,
        }
    }
}

/// Iterator over Index.db entries; checks that Data.db positions increase.
pub struct IndexEntries<'a> {
    index: &'a PartitionIndex,
    pos: u64,
    last_data: Option<u64>,
}

impl<'a> Iterator for IndexEntries<'a> {
    type Item = Result<IndexEntry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.index.bytes().len() as u64 {
            return None;
        }
        let e = match self.index.entry_at(self.pos) {
            Ok(e) => e,
            Err(err) => {
                self.pos = u64::MAX;
                return Some(Err(err));
            }
        };
        if self.last_data.is_some_and(|l| e.data_position <= l) {
            self.pos = u64::MAX;
            return Some(Err(Error::corrupt(
                &self.index.path,
                e.index_position,
                format!(
                    "Data.db positions that increase, found {} after {:?}",
                    e.data_position, self.last_data
                ),
            )));
        }
        self.last_data = Some(e.data_position);
        self.pos = e.index_position
            + 2
            + e.key.len() as u64
            + vint_size(e.data_position)
            + vint_size(e.promoted_index_size)
            + e.promoted_index_size;
        Some(Ok(e))
    }
}

fn vint_size(v: u64) -> u64 {
    crate::bytes::uvint_size(v) as u64
}

/// Summary.db: a sample of Index.db entries (key, Index.db position), and the first and last keys.
#[derive(Debug, Clone)]
// The header fields and the first and last keys are parsed (the format has them in order) and checked by
// the fixture tests; the reader itself uses the samples.
#[cfg_attr(not(any(test, feature = "test_common")), allow(dead_code))]
pub struct Summary {
    pub min_index_interval: i32,
    pub sampling_level: i32,
    /// The number of samples at full sampling (`sampling_level` 128).
    pub size_at_full_sampling: i32,
    pub entries: Vec<(Vec<u8>, u64)>,
    pub first_key: Vec<u8>,
    pub last_key: Vec<u8>,
}

impl Summary {
    pub fn read(desc: &Descriptor) -> Result<Summary> {
        let path = desc.path(Component::Summary);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        Summary::parse(&bytes, &path)
    }

    pub fn parse(b: &[u8], path: &Path) -> Result<Summary> {
        let corrupt = |at: usize, what: &str| Error::corrupt(path, at as u64, what.to_string());
        let mut c = Cursor::new(b);
        let min_index_interval = c
            .i32()
            .map_err(|_| corrupt(0, "the minimum index interval"))?;
        let count = c.i32().map_err(|_| corrupt(4, "the entry count"))?;
        let size = c.i64().map_err(|_| corrupt(8, "the summary size"))?;
        let sampling_level = c.i32().map_err(|_| corrupt(16, "the sampling level"))?;
        let size_at_full_sampling = c
            .i32()
            .map_err(|_| corrupt(20, "the size at full sampling"))?;
        let base = c.pos();
        if count < 0 || size < (count as i64) * 4 || base as i64 + size > b.len() as i64 {
            return Err(corrupt(
                4,
                &format!(
                    "{count} entries in {size} bytes inside a {}-byte file",
                    b.len()
                ),
            ));
        }
        let region = &b[base..base + size as usize];
        let count = count as usize;
        let mut offsets = Vec::with_capacity(count + 1);
        for i in 0..count {
            let o = u32::from_le_bytes([
                region[i * 4],
                region[i * 4 + 1],
                region[i * 4 + 2],
                region[i * 4 + 3],
            ]) as usize;
            offsets.push(o);
        }
        offsets.push(region.len());
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let (s, e) = (offsets[i], offsets[i + 1]);
            if s < count * 4 || e > region.len() || e < s + 8 {
                return Err(corrupt(
                    base + i * 4,
                    &format!("summary entry {i} inside the summary (offsets {s}..{e})"),
                ));
            }
            let key = region[s..e - 8].to_vec();
            let mut p = [0u8; 8];
            p.copy_from_slice(&region[e - 8..e]);
            entries.push((key, u64::from_le_bytes(p)));
        }
        let mut c = Cursor::at(b, base + size as usize);
        let mut key = |what: &str| -> Result<Vec<u8>> {
            let at = c.pos();
            let n = c.i32().map_err(|_| corrupt(at, what))?;
            let n = usize::try_from(n).map_err(|_| corrupt(at, what))?;
            Ok(c.take(n).map_err(|_| corrupt(at, what))?.to_vec())
        };
        let first_key = key("the first key")?;
        let last_key = key("the last key")?;
        Ok(Summary {
            min_index_interval,
            sampling_level,
            size_at_full_sampling,
            entries,
            first_key,
            last_key,
        })
    }
}
