//! The file around an extract: the Arrow IPC file's bytes, then a 20-byte trailer — their length
//! (u64 LE), their CRC32 (u32 LE) and the magic `FNLXTR01` — so that a truncated file, a flipped byte or
//! a file of something else is detected before a single row of it is used.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

pub const MAGIC: &[u8; 8] = b"FNLXTR01";
pub const TRAILER: usize = 20;

/// A writer that checksums what goes through it and appends the trailer at [`Checksummed::finish`].
pub struct Checksummed<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> Checksummed<W> {
    pub fn new(inner: W) -> Self {
        Checksummed {
            inner,
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    /// Writes the trailer and returns the inner writer, flushed.
    pub fn finish(mut self) -> std::io::Result<W> {
        let crc = self.crc.clone().finalize();
        self.inner.write_all(&self.len.to_le_bytes())?;
        self.inner.write_all(&crc.to_le_bytes())?;
        self.inner.write_all(MAGIC)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The Arrow IPC bytes of a whole extract file, once its trailer and checksum are verified.
pub fn payload<'a>(path: &Path, file: &'a [u8]) -> Result<&'a [u8]> {
    if file.len() < TRAILER {
        return Err(Error::damaged(
            path,
            format!(
                "{} bytes, shorter than the {TRAILER}-byte trailer (truncated)",
                file.len()
            ),
        ));
    }
    let (body, trailer) = file.split_at(file.len() - TRAILER);
    if &trailer[12..] != MAGIC {
        return Err(Error::damaged(
            path,
            format!(
                "no trailer magic {:?} at offset {} (truncated, or not an extract)",
                String::from_utf8_lossy(MAGIC),
                body.len() + 12
            ),
        ));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&trailer[..8]);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&trailer[8..12]);
    let (len, stored) = (u64::from_le_bytes(len), u32::from_le_bytes(crc));
    if len != body.len() as u64 {
        return Err(Error::damaged(
            path,
            format!(
                "the trailer says {len} bytes of data, the file holds {}",
                body.len()
            ),
        ));
    }
    let computed = crc32fast::hash(body);
    if computed != stored {
        return Err(Error::damaged(
            path,
            format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"),
        ));
    }
    Ok(body)
}
