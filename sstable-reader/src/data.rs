//! Data.db as a stream of uncompressed bytes. The file is memory-mapped; uncompressed files are read in
//! place (values borrow straight from the map), compressed files are decompressed chunk by chunk into one
//! reused buffer (values borrow from it). Every chunk's checksum is verified before its bytes are used:
//! the CRC32 that follows each compressed chunk, or CRC.db's per-chunk CRC32 for uncompressed files.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::bytes::Cursor;
use crate::compression::CompressionInfo;
use crate::error::{Error, Result};

/// Per-chunk CRC32s of an uncompressed Data.db (CRC.db: chunk size, then one CRC per chunk).
#[derive(Debug, Clone)]
pub struct ChunkChecksums {
    pub chunk_size: u32,
    pub crcs: Vec<u32>,
}

impl ChunkChecksums {
    pub fn parse(bytes: &[u8], path: &Path) -> Result<ChunkChecksums> {
        let mut c = Cursor::new(bytes);
        let chunk_size = c
            .i32()
            .map_err(|_| Error::corrupt(path, 0, "a 4-byte chunk size"))?;
        if chunk_size <= 0 {
            return Err(Error::corrupt(path, 0, "a positive chunk size"));
        }
        if !c.remaining().is_multiple_of(4) {
            return Err(Error::corrupt(
                path,
                bytes.len() as u64,
                "a whole number of 4-byte checksums",
            ));
        }
        let mut crcs = Vec::with_capacity(c.remaining() / 4);
        while let Ok(v) = c.u32() {
            crcs.push(v);
        }
        Ok(ChunkChecksums {
            chunk_size: chunk_size as u32,
            crcs,
        })
    }
}

/// A mapped Data.db with what is needed to turn it into uncompressed, verified bytes.
#[derive(Debug)]
pub struct DataFile {
    path: PathBuf,
    map: Option<Mmap>,
    compression: Option<CompressionInfo>,
    checksums: Option<ChunkChecksums>,
}

impl DataFile {
    /// Maps `path`. `compression` comes from CompressionInfo.db, `checksums` from CRC.db (uncompressed).
    pub fn open(
        path: &Path,
        compression: Option<CompressionInfo>,
        checksums: Option<ChunkChecksums>,
    ) -> Result<DataFile> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        // SAFETY: the map is read-only; SSTables are immutable once written. A file truncated or deleted
        // under us by another process keeps its mapping readable on Linux (the inode lives on).
        let map = if len == 0 {
            None
        } else {
            Some(unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?)
        };
        let df = DataFile {
            path: path.to_path_buf(),
            map,
            compression,
            checksums,
        };
        if let Some(ci) = &df.compression {
            let mut prev: Option<u64> = None;
            for (i, &o) in ci.chunk_offsets.iter().enumerate() {
                if prev.is_some_and(|p| o < p + 4) || o > len {
                    return Err(Error::corrupt(
                        path,
                        o,
                        format!("chunk {i} at an offset after the previous chunk and inside the file (CompressionInfo.db lists offset {o})"),
                    ));
                }
                prev = Some(o);
            }
            if let Some(&last) = ci.chunk_offsets.last() {
                if last + 4 > len {
                    return Err(Error::corrupt(
                        path,
                        len,
                        format!("chunk {} at offset {last} plus its checksum inside the file (file is truncated)", ci.chunk_offsets.len() - 1),
                    ));
                }
            }
        }
        Ok(df)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn raw(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Asks the kernel to map the file's bytes `from..from + len` now, in one call, rather than page
    /// fault by page fault as the reader touches them (`MADV_POPULATE_READ`). Only advice: on a kernel
    /// without it (before Linux 5.14) the faults simply happen as before.
    fn prefault(&self, from: u64, len: u64) {
        #[cfg(target_os = "linux")]
        if let Some(map) = &self.map {
            let from = from.min(map.len() as u64) as usize;
            let len = (len as usize).min(map.len() - from);
            if len > 0 {
                let _ = map.advise_range(memmap2::Advice::PopulateRead, from, len);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (from, len);
    }

    /// Size of Data.db on disk.
    pub fn file_len(&self) -> u64 {
        self.raw().len() as u64
    }

    /// Uncompressed length of the data.
    pub fn len(&self) -> u64 {
        match &self.compression {
            Some(ci) => ci.data_length,
            None => self.file_len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn compression(&self) -> Option<&CompressionInfo> {
        self.compression.as_ref()
    }

    /// A reader with its own chunk buffer (one per worker thread).
    pub fn reader(&self) -> DataReader<'_> {
        DataReader {
            file: self,
            buf: Vec::new(),
            filled: 0,
            head: 0,
            buf_start: 0,
            next_chunk: 0,
            verified: 0,
            compressed_read: 0,
            base: 0,
            prefaulted: (0, 0),
        }
    }
}

/// How much of the file a reader asks the kernel to map ahead of itself at a time (see
/// [`DataFile::prefault`]).
const PREFAULT_BYTES: u64 = 4 << 20;

/// A position-addressed view of the uncompressed bytes of one [`DataFile`]. Callers ask for a range to be
/// available with [`DataReader::ensure`] and then read it from [`DataReader::window`].
#[derive(Debug)]
pub struct DataReader<'f> {
    file: &'f DataFile,
    /// Compressed files: `buf[head..filled]` is the window (bytes before `head` are released; they are
    /// reclaimed when the next chunk is loaded, so releasing never moves bytes). `buf` only grows, so
    /// a chunk is decompressed into bytes that need no zeroing first.
    buf: Vec<u8>,
    filled: usize,
    head: usize,
    /// Uncompressed position of `buf[head]`.
    buf_start: u64,
    next_chunk: usize,
    verified: u64,
    compressed_read: u64,
    /// Uncompressed files: the window starts here (positions before it are released).
    base: u64,
    /// The file's bytes last prefaulted ([`DataFile::prefault`]).
    prefaulted: (u64, u64),
}

impl<'f> DataReader<'f> {
    pub fn file(&self) -> &'f DataFile {
        self.file
    }

    /// Bytes available for reading (verified); `window()[i]` is uncompressed position
    /// `window_start() + i`.
    #[inline]
    pub fn window(&self) -> &[u8] {
        match self.file.compression {
            Some(_) => &self.buf[self.head..self.filled],
            None => self
                .file
                .raw()
                .get(self.base as usize..self.verified as usize)
                .unwrap_or(&[]),
        }
    }

    #[inline]
    pub fn window_start(&self) -> u64 {
        match self.file.compression {
            Some(_) => self.buf_start,
            None => self.base,
        }
    }

    /// Compressed (on-disk) bytes consumed so far, for progress reporting.
    pub fn disk_bytes_read(&self) -> u64 {
        match self.file.compression {
            Some(_) => self.compressed_read,
            None => self.verified,
        }
    }

    /// Prepares reading from `pos` (a partition start): drops buffered bytes that cannot be needed.
    pub fn seek(&mut self, pos: u64) {
        if self.file.compression.is_none() {
            self.base = pos.min(self.file.file_len());
            if let Some(sums) = &self.file.checksums {
                // Verification restarts at the chunk holding `pos` (never trusting chunks skipped over
                // by an earlier seek, and not re-reading from the start of the file).
                let size = sums.chunk_size as u64;
                self.verified = self.base / size * size;
            }
            return;
        }
        if let Some(ci) = &self.file.compression {
            let end = self.buf_start + (self.filled - self.head) as u64;
            if pos < self.buf_start || pos > end {
                let chunk = (pos / ci.chunk_length as u64) as usize;
                self.filled = 0;
                self.head = 0;
                self.buf_start = chunk as u64 * ci.chunk_length as u64;
                self.next_chunk = chunk;
            }
        }
        self.release(pos);
    }

    /// Lets the reader forget bytes before `pos`.
    pub fn release(&mut self, pos: u64) {
        if self.file.compression.is_none() {
            self.base = self.base.max(pos.min(self.file.file_len()));
            return;
        }
        if pos <= self.buf_start {
            return;
        }
        let drop = ((pos - self.buf_start) as usize).min(self.filled - self.head);
        self.head += drop;
        self.buf_start += drop as u64;
    }

    /// Reclaims released bytes before a chunk is appended, when it pays (most of the buffer is dead):
    /// what moves is then only the unread tail of the previous chunk.
    fn compact(&mut self) {
        let h = self.head;
        if h > 0 && (h >= 64 * 1024 || h * 2 >= self.filled) {
            self.buf.copy_within(h..self.filled, 0);
            self.filled -= h;
            self.head = 0;
        }
    }

    /// Makes uncompressed bytes up to `end` available (and verified). Asking past the end of the data is
    /// a corruption error (a record claims more bytes than the file has).
    pub fn ensure(&mut self, end: u64) -> Result<()> {
        let len = self.file.len();
        if end > len {
            return Err(Error::corrupt(
                &self.file.path,
                len,
                format!("{} more bytes of data (a record runs past the end of the data at {len}; truncated file?)", end - len),
            ));
        }
        match &self.file.compression {
            Some(ci) => {
                while self.buf_start + ((self.filled - self.head) as u64) < end {
                    self.load_chunk(ci)?;
                }
            }
            None => self.verify_uncompressed(end)?,
        }
        Ok(())
    }

    /// Makes at least one more chunk available beyond what is buffered (for readers that do not know
    /// how far they need to go). Returns false at the end of the data.
    pub fn extend(&mut self) -> Result<bool> {
        let have = self.window_start() + self.window().len() as u64;
        match &self.file.compression {
            Some(ci) => {
                if have >= ci.data_length {
                    return Ok(false);
                }
                self.load_chunk(ci)?;
                Ok(true)
            }
            None => {
                if have >= self.file.file_len() {
                    return Ok(false);
                }
                self.verify_uncompressed(have + 1)?;
                Ok(true)
            }
        }
    }

    /// Prefaults the file's bytes `start..end` (on-disk offsets) with what follows, a few MiB at a time,
    /// before they are read.
    #[inline]
    fn prefault_for(&mut self, start: u64, end: u64) {
        if start < self.prefaulted.0 || end > self.prefaulted.1 {
            let to = end.max(start + PREFAULT_BYTES);
            self.file.prefault(start, to - start);
            self.prefaulted = (start, to);
        }
    }

    fn load_chunk(&mut self, ci: &CompressionInfo) -> Result<()> {
        let i = self.next_chunk;
        let path = &self.file.path;
        let raw = self.file.raw();
        let (start, end) = ci.chunk_range(i, raw.len() as u64).ok_or_else(|| {
            Error::corrupt(
                path,
                ci.chunk_offsets.get(i).copied().unwrap_or(raw.len() as u64),
                format!("chunk {i} of {} inside the file", ci.chunk_offsets.len()),
            )
        })?;
        self.prefault_for(start, end + 4);
        let compressed = &raw[start as usize..end as usize];
        // The chunk is read front to back, then the checksum after it: one stream through memory (the
        // checksum read first was a cache miss on every chunk).
        let computed = crc32fast::hash(compressed);
        let stored = u32::from_be_bytes([
            raw[end as usize],
            raw[end as usize + 1],
            raw[end as usize + 2],
            raw[end as usize + 3],
        ]);
        if stored != computed {
            return Err(Error::Checksum {
                path: path.clone(),
                offset: start,
                length: compressed.len(),
                stored,
                computed,
            });
        }
        let ulen = ci.chunk_uncompressed_len(i);
        self.compact();
        let old = self.filled;
        if self.buf.len() < old + ulen {
            self.buf.resize(old + ulen, 0);
        }
        let dst = &mut self.buf[old..old + ulen];
        let result = if compressed.len() as u64 >= ci.max_compressed_length as u64 {
            // Stored raw (`maxCompressedLength` rule, na and later).
            if compressed.len() == ulen {
                dst.copy_from_slice(compressed);
                Ok(())
            } else {
                Err(format!(
                    "raw chunk of {} bytes, expected {ulen}",
                    compressed.len()
                ))
            }
        } else {
            ci.algorithm.decompress(compressed, dst)
        };
        if let Err(msg) = result {
            return Err(Error::corrupt(
                path,
                start,
                format!("a decompressible chunk {i}: {msg}"),
            ));
        }
        self.filled = old + ulen;
        self.next_chunk += 1;
        self.compressed_read += compressed.len() as u64 + 4;
        Ok(())
    }

    fn verify_uncompressed(&mut self, end: u64) -> Result<()> {
        let Some(sums) = &self.file.checksums else {
            // Nothing to verify: all of the file is available.
            self.verified = self.file.file_len();
            return Ok(());
        };
        let raw = self.file.raw();
        let size = sums.chunk_size as u64;
        while self.verified < end {
            let i = (self.verified / size) as usize;
            let start = i as u64 * size;
            let stop = (start + size).min(raw.len() as u64);
            self.prefault_for(start, stop);
            let stored = *sums.crcs.get(i).ok_or_else(|| {
                Error::corrupt(
                    &self.file.path,
                    start,
                    format!("a CRC.db checksum for chunk {i}"),
                )
            })?;
            let computed = crc32fast::hash(&raw[start as usize..stop as usize]);
            if stored != computed {
                return Err(Error::Checksum {
                    path: self.file.path.clone(),
                    offset: start,
                    length: (stop - start) as usize,
                    stored,
                    computed,
                });
            }
            self.verified = stop;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An uncompressed Data.db of four 64-byte chunks with its CRC.db checksums; `damage` flips a byte
    /// of the given chunk after the checksums are taken.
    fn file(damage: Option<usize>) -> (tempfile::TempDir, DataFile) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nb-1-big-Data.db");
        let mut bytes: Vec<u8> = (0..256u32).map(|i| (i * 7) as u8).collect();
        let crcs = bytes.chunks(64).map(crc32fast::hash).collect();
        if let Some(chunk) = damage {
            bytes[chunk * 64 + 5] ^= 0x40;
        }
        std::fs::write(&path, &bytes).expect("write");
        let sums = ChunkChecksums {
            chunk_size: 64,
            crcs,
        };
        let f = DataFile::open(&path, None, Some(sums)).expect("open");
        (dir, f)
    }

    #[test]
    fn the_window_of_an_uncompressed_file_holds_only_verified_chunks() {
        let (_d, f) = file(Some(0));
        let mut r = f.reader();
        // Seeking past the damaged chunk reads the later ones, and the window never shows chunk 0.
        r.seek(130);
        assert!(r.window().is_empty(), "nothing verified yet");
        r.ensure(140).expect("chunk 2 is intact");
        assert_eq!(r.window_start(), 130);
        assert_eq!(r.window().len(), 192 - 130, "up to the end of chunk 2");
        // Going back to the damaged chunk is a checksum error, not its bytes.
        r.seek(10);
        assert!(r.window().is_empty());
        match r.ensure(20) {
            Err(Error::Checksum { offset, .. }) => assert_eq!(offset, 0),
            other => panic!("expected a checksum error, got {other:?}"),
        }
    }

    #[test]
    fn extend_verifies_the_next_chunk_of_an_uncompressed_file() {
        let (_d, f) = file(None);
        let mut r = f.reader();
        r.seek(0);
        let mut seen = 0;
        while r.extend().expect("intact") {
            seen += 1;
        }
        assert_eq!(seen, 4);
        assert_eq!(r.window().len(), 256);
    }
}
