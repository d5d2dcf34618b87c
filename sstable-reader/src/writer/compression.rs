//! Data.db output: chunked compression with per-chunk CRC32 and CompressionInfo.db, or plain output with
//! CRC.db; Digest.crc32 in both cases (`CompressedSequentialWriter`, `ChecksumWriter`,
//! `CompressionMetadata.Writer`).
//!
//! Compressed layout: each `chunk_length` bytes of uncompressed data become one chunk, followed by the
//! big-endian CRC32 of the bytes stored for it. CompressionInfo.db: `writeUTF(compressor class)`,
//! `int option count` (+ UTF key/value pairs), `int chunk_length`, from `na` on `int max_compressed_length`
//! (a chunk whose compressed form is at least that long is stored raw), `long uncompressed length`,
//! `int chunk count`, one `long` offset per chunk. Uncompressed layout: Data.db as is, CRC.db = `int 65536`
//! then one CRC32 per 64 KiB. Digest.crc32 holds the decimal CRC32 of the whole Data.db file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::encode::{put_i32, put_i64, put_java_utf};
use super::WriterError;

/// Chunk size of CRC.db for uncompressed Data.db (`ChecksumWriter`'s default buffer).
pub const CRC_CHUNK: usize = 64 * 1024;
/// Cassandra's default compression chunk length (16 KiB since 4.0).
pub const DEFAULT_CHUNK_LENGTH: u32 = 16 * 1024;

/// Data.db compression algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Lz4,
    Snappy,
    Zstd,
    Deflate,
}

impl Compression {
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Lz4,
        Compression::Snappy,
        Compression::Zstd,
        Compression::Deflate,
    ];

    /// The class name Cassandra stores in CompressionInfo.db.
    pub fn class_name(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Lz4 => Some("LZ4Compressor"),
            Compression::Snappy => Some("SnappyCompressor"),
            Compression::Zstd => Some("ZstdCompressor"),
            Compression::Deflate => Some("DeflateCompressor"),
        }
    }

    /// Lower-case name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Snappy => "snappy",
            Compression::Zstd => "zstd",
            Compression::Deflate => "deflate",
        }
    }

    /// The CQL `compression` table option for schema.cql.
    pub fn cql_option(self) -> String {
        match self.class_name() {
            None => "{'enabled': 'false'}".to_string(),
            Some(c) => format!(
                "{{'class': 'org.apache.cassandra.io.compress.{c}', 'chunk_length_in_kb': '16'}}"
            ),
        }
    }

    fn compress(self, input: &[u8], out: &mut Vec<u8>) -> Result<(), WriterError> {
        out.clear();
        match self {
            Compression::None => out.extend_from_slice(input),
            Compression::Lz4 => {
                out.extend_from_slice(&(input.len() as u32).to_le_bytes());
                let bound = lz4_flex::block::get_maximum_output_size(input.len());
                out.resize(4 + bound, 0);
                let n = lz4_flex::block::compress_into(input, &mut out[4..])
                    .map_err(|e| WriterError::Compression(format!("lz4: {e}")))?;
                out.truncate(4 + n);
            }
            Compression::Snappy => {
                out.resize(snap::raw::max_compress_len(input.len()), 0);
                let n = snap::raw::Encoder::new()
                    .compress(input, out)
                    .map_err(|e| WriterError::Compression(format!("snappy: {e}")))?;
                out.truncate(n);
            }
            Compression::Zstd => {
                let v = zstd::bulk::compress(input, 3)
                    .map_err(|e| WriterError::Compression(format!("zstd: {e}")))?;
                out.extend_from_slice(&v);
            }
            Compression::Deflate => {
                let mut enc = flate2::write::ZlibEncoder::new(
                    std::mem::take(out),
                    flate2::Compression::default(),
                );
                enc.write_all(input)?;
                *out = enc.finish()?;
            }
        }
        Ok(())
    }
}

impl FromStr for Compression {
    type Err = WriterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compression::ALL
            .into_iter()
            .find(|c| {
                c.name().eq_ignore_ascii_case(s)
                    || c.class_name().is_some_and(|n| n.eq_ignore_ascii_case(s))
            })
            .ok_or_else(|| {
                WriterError::InvalidOption(format!(
                    "unknown compression {s:?} (none, lz4, snappy, zstd, deflate)"
                ))
            })
    }
}

/// How Data.db is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionParams {
    pub compression: Compression,
    pub chunk_length: u32,
    /// `max_compressed_length` (from `na` on). `None` writes `i32::MAX` (Cassandra's default: always compress).
    pub max_compressed_length: Option<u32>,
}

impl CompressionParams {
    pub fn new(compression: Compression) -> Self {
        Self {
            compression,
            chunk_length: DEFAULT_CHUNK_LENGTH,
            max_compressed_length: None,
        }
    }
}

/// What finishing Data.db produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataFileStats {
    /// Bytes of uncompressed partition data (the positions Index.db refers to).
    pub uncompressed_len: u64,
    /// Bytes of Data.db on disk.
    pub on_disk_len: u64,
    /// CRC32 of the whole Data.db (Digest.crc32).
    pub digest: u32,
}

/// A streaming Data.db writer: callers append uncompressed bytes, it writes chunks as they fill.
pub struct DataFileWriter {
    params: CompressionParams,
    has_max_compressed_length: bool,
    path: PathBuf,
    out: BufWriter<File>,
    digest: crc32fast::Hasher,
    pending: Vec<u8>,
    scratch: Vec<u8>,
    uncompressed_pos: u64,
    on_disk_pos: u64,
    chunk_offsets: Vec<u64>,
    chunk_crcs: Vec<u32>,
}

impl DataFileWriter {
    /// Creates `path`; `has_max_compressed_length` is true for versions `na` and later.
    pub fn create(
        path: &Path,
        params: CompressionParams,
        has_max_compressed_length: bool,
    ) -> Result<Self, WriterError> {
        if params.chunk_length == 0 || !params.chunk_length.is_power_of_two() {
            return Err(WriterError::InvalidOption(format!(
                "chunk length must be a power of two, got {}",
                params.chunk_length
            )));
        }
        let file = File::create(path).map_err(|e| WriterError::io(path, e))?;
        let chunk = match params.compression {
            Compression::None => CRC_CHUNK,
            _ => params.chunk_length as usize,
        };
        Ok(Self {
            params,
            has_max_compressed_length,
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(256 * 1024, file),
            digest: crc32fast::Hasher::new(),
            pending: Vec::with_capacity(chunk),
            scratch: Vec::new(),
            uncompressed_pos: 0,
            on_disk_pos: 0,
            chunk_offsets: Vec::new(),
            chunk_crcs: Vec::new(),
        })
    }

    fn chunk_size(&self) -> usize {
        match self.params.compression {
            Compression::None => CRC_CHUNK,
            _ => self.params.chunk_length as usize,
        }
    }

    /// Uncompressed position of the next byte appended.
    pub fn position(&self) -> u64 {
        self.uncompressed_pos
    }

    /// Appends uncompressed bytes.
    pub fn append(&mut self, mut data: &[u8]) -> Result<(), WriterError> {
        self.uncompressed_pos += data.len() as u64;
        let chunk = self.chunk_size();
        while !data.is_empty() {
            let take = (chunk - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == chunk {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), WriterError> {
        self.out
            .write_all(bytes)
            .map_err(|e| WriterError::io(&self.path, e))?;
        self.digest.update(bytes);
        self.on_disk_pos += bytes.len() as u64;
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<(), WriterError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        if self.params.compression == Compression::None {
            self.chunk_crcs.push(crc32fast::hash(&pending));
            self.write_raw(&pending)?;
        } else {
            let mut scratch = std::mem::take(&mut self.scratch);
            self.params.compression.compress(&pending, &mut scratch)?;
            let max = if self.has_max_compressed_length {
                self.params.max_compressed_length
            } else {
                None
            };
            let stored: &[u8] = match max {
                Some(m) if scratch.len() >= m as usize => &pending,
                _ => &scratch,
            };
            self.chunk_offsets.push(self.on_disk_pos);
            let crc = crc32fast::hash(stored);
            let stored = stored.to_vec();
            self.write_raw(&stored)?;
            self.write_raw(&crc.to_be_bytes())?;
            self.scratch = scratch;
        }
        self.pending = pending;
        self.pending.clear();
        Ok(())
    }

    /// Flushes the last chunk and writes CompressionInfo.db (or CRC.db) and Digest.crc32.
    pub fn finish(
        mut self,
        info_path: &Path,
        digest_path: &Path,
    ) -> Result<DataFileStats, WriterError> {
        self.flush_chunk()?;
        self.out
            .flush()
            .map_err(|e| WriterError::io(&self.path, e))?;
        let mut info = Vec::new();
        match self.params.compression.class_name() {
            None => {
                put_i32(&mut info, CRC_CHUNK as i32);
                for crc in &self.chunk_crcs {
                    info.extend_from_slice(&crc.to_be_bytes());
                }
            }
            Some(class) => {
                put_java_utf(&mut info, class);
                put_i32(&mut info, 0);
                put_i32(&mut info, self.params.chunk_length as i32);
                if self.has_max_compressed_length {
                    let m = self
                        .params
                        .max_compressed_length
                        .map_or(i32::MAX, |m| m.min(i32::MAX as u32) as i32);
                    put_i32(&mut info, m);
                }
                put_i64(&mut info, self.uncompressed_pos as i64);
                put_i32(&mut info, self.chunk_offsets.len() as i32);
                for off in &self.chunk_offsets {
                    put_i64(&mut info, *off as i64);
                }
            }
        }
        std::fs::write(info_path, &info).map_err(|e| WriterError::io(info_path, e))?;
        let digest = self.digest.finalize();
        std::fs::write(digest_path, digest.to_string())
            .map_err(|e| WriterError::io(digest_path, e))?;
        Ok(DataFileStats {
            uncompressed_len: self.uncompressed_pos,
            on_disk_len: self.on_disk_pos,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn decompress(c: Compression, chunk: &[u8], len: usize) -> Vec<u8> {
        match c {
            Compression::None => chunk.to_vec(),
            Compression::Lz4 => {
                let n = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize;
                assert_eq!(n, len);
                lz4_flex::block::decompress(&chunk[4..], n).unwrap()
            }
            Compression::Snappy => snap::raw::Decoder::new().decompress_vec(chunk).unwrap(),
            Compression::Zstd => zstd::bulk::decompress(chunk, len).unwrap(),
            Compression::Deflate => {
                let mut v = Vec::new();
                flate2::read::ZlibDecoder::new(chunk)
                    .read_to_end(&mut v)
                    .unwrap();
                v
            }
        }
    }

    #[test]
    fn chunks_round_trip_with_crc_and_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in Compression::ALL
            .into_iter()
            .filter(|c| *c != Compression::None)
        {
            let p = dir.path().join(format!("{}-Data.db", c.name()));
            let ci = dir.path().join(format!("{}-CompressionInfo.db", c.name()));
            let dg = dir.path().join(format!("{}-Digest.crc32", c.name()));
            let mut w = DataFileWriter::create(&p, CompressionParams::new(c), true).unwrap();
            w.append(&data[..1000]).unwrap();
            w.append(&data[1000..]).unwrap();
            let stats = w.finish(&ci, &dg).unwrap();
            let file = std::fs::read(&p).unwrap();
            assert_eq!(stats.on_disk_len, file.len() as u64);
            assert_eq!(
                std::fs::read_to_string(&dg).unwrap(),
                crc32fast::hash(&file).to_string()
            );
            let info = std::fs::read(&ci).unwrap();
            let name_len = u16::from_be_bytes([info[0], info[1]]) as usize;
            assert_eq!(&info[2..2 + name_len], c.class_name().unwrap().as_bytes());
            let mut at = 2 + name_len + 4;
            assert_eq!(&info[at..at + 4], &16384i32.to_be_bytes());
            at += 8;
            assert_eq!(
                i64::from_be_bytes(info[at..at + 8].try_into().unwrap()),
                data.len() as i64
            );
            at += 8;
            let n = i32::from_be_bytes(info[at..at + 4].try_into().unwrap()) as usize;
            assert_eq!(n, data.len().div_ceil(16384));
            let offsets: Vec<usize> = (0..n)
                .map(|i| {
                    i64::from_be_bytes(info[at + 4 + 8 * i..at + 12 + 8 * i].try_into().unwrap())
                        as usize
                })
                .collect();
            let mut out = Vec::new();
            for (i, &off) in offsets.iter().enumerate() {
                let end = offsets.get(i + 1).copied().unwrap_or(file.len()) - 4;
                let chunk = &file[off..end];
                assert_eq!(crc32fast::hash(chunk).to_be_bytes(), file[end..end + 4]);
                let len = (data.len() - i * 16384).min(16384);
                out.extend(decompress(c, chunk, len));
            }
            assert_eq!(out, data, "{c:?}");
        }
    }

    #[test]
    fn uncompressed_writes_crc_db() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![7u8; 100_000];
        let p = dir.path().join("Data.db");
        let mut w =
            DataFileWriter::create(&p, CompressionParams::new(Compression::None), true).unwrap();
        w.append(&data).unwrap();
        w.finish(&dir.path().join("CRC.db"), &dir.path().join("Digest.crc32"))
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), data);
        let crc = std::fs::read(dir.path().join("CRC.db")).unwrap();
        assert_eq!(&crc[..4], &65536i32.to_be_bytes());
        assert_eq!(&crc[4..8], &crc32fast::hash(&data[..65536]).to_be_bytes());
        assert_eq!(&crc[8..12], &crc32fast::hash(&data[65536..]).to_be_bytes());
        assert_eq!(crc.len(), 12);
    }

    #[test]
    fn incompressible_chunks_are_stored_raw_below_max_compressed_length() {
        let dir = tempfile::tempdir().unwrap();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let data: Vec<u8> = (0..16384)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let p = dir.path().join("Data.db");
        let mut params = CompressionParams::new(Compression::Lz4);
        params.max_compressed_length = Some(16000);
        let mut w = DataFileWriter::create(&p, params, true).unwrap();
        w.append(&data).unwrap();
        w.finish(&dir.path().join("CI.db"), &dir.path().join("D.crc32"))
            .unwrap();
        let file = std::fs::read(&p).unwrap();
        assert_eq!(&file[..16384], &data[..]);
    }
}
