//! CompressionInfo.db (`io/compress/CompressionMetadata.java`) and chunk decompression: LZ4 (lz4_flex),
//! Snappy (snap), Deflate (flate2) and Zstd (zstd). Every compressed chunk in Data.db is followed by a
//! big-endian CRC32 of its compressed bytes; from `na` on, a chunk whose compressed form would not be
//! smaller than `maxCompressedLength` is stored raw.

use std::path::Path;

use crate::bytes::Cursor;
use crate::descriptor::Version;
use crate::error::{Error, Result};

/// The compressors Cassandra ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Lz4,
    Snappy,
    Deflate,
    Zstd,
    /// `NoopCompressor`: chunked and checksummed, but stored as is.
    Noop,
}

impl Algorithm {
    /// Maps a compressor class name (`org.apache.cassandra.io.compress.LZ4Compressor` or its short form).
    pub fn from_class(class: &str) -> Option<Algorithm> {
        let short = class.rsplit('.').next().unwrap_or(class);
        Some(match short {
            "LZ4Compressor" => Algorithm::Lz4,
            "SnappyCompressor" => Algorithm::Snappy,
            "DeflateCompressor" => Algorithm::Deflate,
            "ZstdCompressor" => Algorithm::Zstd,
            "NoopCompressor" => Algorithm::Noop,
            _ => return None,
        })
    }

    pub fn class_name(&self) -> &'static str {
        match self {
            Algorithm::Lz4 => "org.apache.cassandra.io.compress.LZ4Compressor",
            Algorithm::Snappy => "org.apache.cassandra.io.compress.SnappyCompressor",
            Algorithm::Deflate => "org.apache.cassandra.io.compress.DeflateCompressor",
            Algorithm::Zstd => "org.apache.cassandra.io.compress.ZstdCompressor",
            Algorithm::Noop => "org.apache.cassandra.io.compress.NoopCompressor",
        }
    }

    /// Decompresses `src` into `dst`, which must be exactly the uncompressed size of the chunk.
    /// Returns a description of the problem on failure (the caller adds file and offset).
    pub fn decompress(&self, src: &[u8], dst: &mut [u8]) -> std::result::Result<(), String> {
        let n = match self {
            Algorithm::Lz4 => {
                if src.len() < 4 {
                    return Err("LZ4 chunk shorter than its 4-byte length header".into());
                }
                let declared = u32::from_le_bytes([src[0], src[1], src[2], src[3]]) as usize;
                if declared != dst.len() {
                    return Err(format!(
                        "LZ4 chunk declares {declared} bytes, expected {}",
                        dst.len()
                    ));
                }
                // LZ4_decompress_safe: never reads or writes outside the two slices.
                lz4::block::decompress_to_buffer(&src[4..], Some(declared as i32), dst)
                    .map_err(|e| format!("LZ4: {e}"))?
            }
            Algorithm::Snappy => snap::raw::Decoder::new()
                .decompress(src, dst)
                .map_err(|e| format!("Snappy: {e}"))?,
            Algorithm::Deflate => {
                let mut d = flate2::Decompress::new(true);
                d.decompress(src, dst, flate2::FlushDecompress::Finish)
                    .map_err(|e| format!("Deflate: {e}"))?;
                d.total_out() as usize
            }
            Algorithm::Zstd => {
                zstd::bulk::decompress_to_buffer(src, dst).map_err(|e| format!("Zstd: {e}"))?
            }
            Algorithm::Noop => {
                if src.len() != dst.len() {
                    return Err(format!(
                        "raw chunk has {} bytes, expected {}",
                        src.len(),
                        dst.len()
                    ));
                }
                dst.copy_from_slice(src);
                src.len()
            }
        };
        if n != dst.len() {
            return Err(format!("decompressed to {n} bytes, expected {}", dst.len()));
        }
        Ok(())
    }
}

/// Parsed CompressionInfo.db.
#[derive(Debug, Clone)]
pub struct CompressionInfo {
    pub class: String,
    pub algorithm: Algorithm,
    pub options: Vec<(String, String)>,
    /// Uncompressed bytes per chunk.
    pub chunk_length: u32,
    /// Chunks whose compressed length is at least this are stored raw (`na` and later).
    pub max_compressed_length: u32,
    /// Uncompressed length of Data.db.
    pub data_length: u64,
    /// Offset of each chunk in Data.db.
    pub chunk_offsets: Vec<u64>,
}

impl CompressionInfo {
    pub fn parse(bytes: &[u8], path: &Path, version: Version) -> Result<CompressionInfo> {
        let mut c = Cursor::new(bytes);
        let corrupt =
            |c: &Cursor<'_>, what: &str| Error::corrupt(path, c.pos() as u64, what.to_string());
        let class_bytes = c
            .utf()
            .map_err(|_| corrupt(&c, "the compressor class name"))?;
        let class = String::from_utf8_lossy(class_bytes).into_owned();
        let algorithm = Algorithm::from_class(&class)
            .ok_or_else(|| Error::unsupported(path, format!("compressor {class:?}")))?;
        let n = c.i32().map_err(|_| corrupt(&c, "the option count"))?;
        if !(0..=1024).contains(&n) {
            return Err(corrupt(&c, "an option count between 0 and 1024"));
        }
        let mut options = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let k = c.utf().map_err(|_| corrupt(&c, "an option name"))?;
            let v = c.utf().map_err(|_| corrupt(&c, "an option value"))?;
            options.push((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        }
        let chunk_length = c.i32().map_err(|_| corrupt(&c, "the chunk length"))?;
        if chunk_length <= 0 || (chunk_length & (chunk_length - 1)) != 0 {
            return Err(corrupt(&c, "a positive power-of-two chunk length"));
        }
        let max_compressed_length = if version.has_max_compressed_length() {
            let m = c.i32().map_err(|_| corrupt(&c, "maxCompressedLength"))?;
            if m <= 0 {
                return Err(corrupt(&c, "a positive maxCompressedLength"));
            }
            m as u32
        } else {
            i32::MAX as u32
        };
        let data_length = c
            .i64()
            .map_err(|_| corrupt(&c, "the uncompressed data length"))?;
        if data_length < 0 {
            return Err(corrupt(&c, "a non-negative data length"));
        }
        let count = c.i32().map_err(|_| corrupt(&c, "the chunk count"))?;
        let expected_chunks = (data_length as u64).div_ceil(chunk_length as u64);
        // Cassandra reads `count` offsets and addresses chunks by position; extra trailing offsets (seen in
        // files upgraded from 2.x) are harmless, too few are not.
        if count < 0 || (count as u64) < expected_chunks || count > 1 << 28 {
            return Err(corrupt(
                &c,
                &format!("at least {expected_chunks} chunks for {data_length} bytes in chunks of {chunk_length}, found {count}"),
            ));
        }
        let mut chunk_offsets = Vec::with_capacity(count as usize);
        for _ in 0..count {
            chunk_offsets.push(c.i64().map_err(|_| corrupt(&c, "a chunk offset"))? as u64);
        }
        Ok(CompressionInfo {
            class,
            algorithm,
            options,
            chunk_length: chunk_length as u32,
            max_compressed_length,
            data_length: data_length as u64,
            chunk_offsets,
        })
    }

    /// Compressed byte range of chunk `i` in Data.db (without its trailing CRC), given the file length.
    pub fn chunk_range(&self, i: usize, file_len: u64) -> Option<(u64, u64)> {
        let start = *self.chunk_offsets.get(i)?;
        let next = self.chunk_offsets.get(i + 1).copied().unwrap_or(file_len);
        let end = next.checked_sub(4)?;
        (end >= start && next <= file_len).then_some((start, end))
    }

    /// Uncompressed length of chunk `i`.
    pub fn chunk_uncompressed_len(&self, i: usize) -> usize {
        let start = i as u64 * self.chunk_length as u64;
        (self.data_length - start).min(self.chunk_length as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_round_trips_through_its_crate() {
        let data: Vec<u8> = (0..5000u32).flat_map(|i| (i % 97).to_be_bytes()).collect();
        let mut lz4 = (data.len() as u32).to_le_bytes().to_vec();
        lz4.extend(lz4_flex::block::compress(&data));
        let snappy = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let zstd = zstd::bulk::compress(&data, 3).unwrap();
        let mut deflate = Vec::new();
        {
            use std::io::Write;
            let mut e =
                flate2::write::ZlibEncoder::new(&mut deflate, flate2::Compression::default());
            e.write_all(&data).unwrap();
            e.finish().unwrap();
        }
        for (alg, src) in [
            (Algorithm::Lz4, lz4),
            (Algorithm::Snappy, snappy),
            (Algorithm::Zstd, zstd),
            (Algorithm::Deflate, deflate),
            (Algorithm::Noop, data.clone()),
        ] {
            let mut out = vec![0; data.len()];
            alg.decompress(&src, &mut out).unwrap();
            assert_eq!(out, data, "{alg:?}");
            let mut short = vec![0; data.len() + 1];
            assert!(
                alg.decompress(&src, &mut short).is_err(),
                "{alg:?} must notice a size mismatch"
            );
            assert!(
                alg.decompress(&src[..src.len() / 2], &mut out).is_err(),
                "{alg:?} must reject a truncated chunk"
            );
        }
    }

    #[test]
    fn a_corrupt_lz4_chunk_is_an_error_whatever_its_bytes() {
        let data: Vec<u8> = (0..4000u32).flat_map(|i| (i % 13).to_be_bytes()).collect();
        let mut good = (data.len() as u32).to_le_bytes().to_vec();
        good.extend(lz4_flex::block::compress(&data));
        let mut out = vec![0; data.len()];
        // A match reaching back before the start of the output.
        let mut bad = good[..4].to_vec();
        bad.extend([0x10, b'x', 0xff, 0xff, 0x00]);
        assert!(Algorithm::Lz4.decompress(&bad, &mut out).is_err());
        // Every single-byte flip of the body: an error or some output, never a panic or a write
        // outside `out`.
        for i in 4..good.len() {
            let mut flipped = good.clone();
            flipped[i] ^= 0xa5;
            let _ = Algorithm::Lz4.decompress(&flipped, &mut out);
        }
    }
}
