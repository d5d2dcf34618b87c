//! The mapped Arrow IPC file of an extract, read in place: the footer is parsed once when the extract
//! is opened, a record batch is decoded straight from the mapping (arrow-ipc's `FileDecoder` over a
//! `Buffer` that borrows the map — no copy of the batch's bytes first, as `FileReader` makes; an
//! uncompressed buffer is used where it lies), and the dictionaries are decoded once per projection
//! and shared by every cursor of the extract (a scan opens one cursor per SSTable and ring range).

use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::{read_footer_length, FileDecoder};
use arrow_ipc::{Block, MetadataVersion};
use arrow_schema::SchemaRef;
use memmap2::Mmap;

/// An Arrow IPC file in a memory map (its first `len` bytes: the checksummed container's payload).
pub(crate) struct IpcFile {
    buffer: Buffer,
    schema: SchemaRef,
    version: MetadataVersion,
    dictionaries: Vec<Block>,
    batches: Vec<Block>,
    metadata: HashMap<String, String>,
    /// Decoders (holding the decoded dictionaries) by projection.
    decoders: Mutex<Vec<(Vec<usize>, Arc<FileDecoder>)>>,
}

/// Bytes of the IPC file's end: the footer's length (4) and the magic `ARROW1` (6).
const END: usize = 10;

impl IpcFile {
    /// Parses the footer of the IPC file in `map[..len]` (errors say what is wrong, for
    /// [`crate::Error::Damaged`]).
    pub(crate) fn open(map: Arc<Mmap>, len: usize) -> Result<IpcFile, String> {
        if len > map.len() || len < END {
            return Err(format!("an Arrow IPC file of {len} bytes"));
        }
        let ptr = NonNull::new(map.as_ptr().cast_mut()).ok_or("an unmapped file")?;
        // SAFETY: the map holds `len` readable bytes (checked above) and lives as long as the buffer
        // (it owns an `Arc` of it); extracts are never modified in place (see `Extract::open`).
        let buffer = unsafe { Buffer::from_custom_allocation(ptr, len, map) };
        let bytes = buffer.as_slice();
        let mut end = [0u8; END];
        end.copy_from_slice(&bytes[len - END..]);
        let footer_len = read_footer_length(end).map_err(|e| e.to_string())?;
        let start = (len - END)
            .checked_sub(footer_len)
            .ok_or_else(|| format!("a footer of {footer_len} bytes in a file of {len}"))?;
        let footer = arrow_ipc::root_as_footer(&bytes[start..len - END])
            .map_err(|e| format!("its footer: {e}"))?;
        let ipc_schema = footer.schema().ok_or("no schema in the footer")?;
        if !ipc_schema.endianness().equals_to_target_endianness() {
            return Err("written on a machine of the other endianness".into());
        }
        let schema =
            Arc::new(arrow_ipc::convert::try_fb_to_schema(ipc_schema).map_err(|e| e.to_string())?);
        let mut metadata = HashMap::new();
        for kv in footer.custom_metadata().into_iter().flatten() {
            if let (Some(k), Some(v)) = (kv.key(), kv.value()) {
                metadata.insert(k.to_string(), v.to_string());
            }
        }
        Ok(IpcFile {
            version: footer.version(),
            dictionaries: footer
                .dictionaries()
                .map(|v| v.iter().copied().collect())
                .unwrap_or_default(),
            batches: footer
                .recordBatches()
                .map(|v| v.iter().copied().collect())
                .unwrap_or_default(),
            schema,
            metadata,
            buffer,
            decoders: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The footer's custom metadata.
    pub(crate) fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// The record batches in the file.
    pub(crate) fn batches(&self) -> usize {
        self.batches.len()
    }

    /// The bytes of a block (message and body), checked to lie in the file.
    fn block(&self, b: &Block) -> Result<Buffer, String> {
        let (offset, meta, body) = (b.offset(), b.metaDataLength(), b.bodyLength());
        let range = usize::try_from(offset).ok().and_then(|o| {
            let n = usize::try_from(meta)
                .ok()?
                .checked_add(usize::try_from(body).ok()?)?;
            (o.checked_add(n)? <= self.buffer.len()).then_some((o, n))
        });
        let (o, n) = range.ok_or_else(|| {
            format!(
                "a block of {meta} + {body} bytes at {offset}, past the end of the {} bytes",
                self.buffer.len()
            )
        })?;
        Ok(self.buffer.slice_with_length(o, n))
    }

    /// The decoder of batches projected to the file's columns `projection`, its dictionaries decoded
    /// (once per extract and projection).
    pub(crate) fn decoder(&self, projection: Vec<usize>) -> Result<Arc<FileDecoder>, String> {
        // A panic elsewhere while the lock was held leaves the list whole: it is only ever pushed to.
        let mut decoders = self.decoders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, d)) = decoders.iter().find(|(p, _)| *p == projection) {
            return Ok(d.clone());
        }
        let mut d =
            FileDecoder::new(self.schema.clone(), self.version).with_projection(projection.clone());
        for b in &self.dictionaries {
            d.read_dictionary(b, &self.block(b)?)
                .map_err(|e| format!("a dictionary at {}: {e}", b.offset()))?;
        }
        let d = Arc::new(d);
        decoders.push((projection, d.clone()));
        Ok(d)
    }

    /// Record batch `index`, decoded by `decoder`.
    pub(crate) fn batch(&self, decoder: &FileDecoder, index: usize) -> Result<RecordBatch, String> {
        let b = self.batches.get(index).ok_or_else(|| {
            format!(
                "record batch {index} of {}: fewer record batches than its footer lists",
                self.batches.len()
            )
        })?;
        decoder
            .read_record_batch(b, &self.block(b)?)
            .map_err(|e| format!("record batch {index}: {e}"))?
            .ok_or_else(|| format!("record batch {index} is empty"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array, StringArray};
    use arrow_ipc::writer::FileWriter;
    use arrow_schema::{DataType, Field, Schema};

    /// An IPC file of two batches of two columns.
    fn file() -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let mut out = Vec::new();
        let mut w = FileWriter::try_new(&mut out, &schema).unwrap();
        for base in [0i64, 100] {
            let n = Int64Array::from_iter_values(base..base + 3);
            let s = StringArray::from(vec![Some("a"), None, Some("c")]);
            w.write(&RecordBatch::try_new(schema.clone(), vec![Arc::new(n), Arc::new(s)]).unwrap())
                .unwrap();
        }
        w.finish().unwrap();
        drop(w);
        out
    }

    fn mapped(bytes: &[u8]) -> Arc<Mmap> {
        let mut m = memmap2::MmapOptions::new()
            .len(bytes.len())
            .map_anon()
            .unwrap();
        m.copy_from_slice(bytes);
        Arc::new(m.make_read_only().unwrap())
    }

    #[test]
    fn batches_are_decoded_from_the_map_and_decoders_shared_by_projection() {
        let bytes = file();
        let f = IpcFile::open(mapped(&bytes), bytes.len()).unwrap();
        assert_eq!(f.batches(), 2);
        let d = f.decoder(vec![0]).unwrap();
        assert!(Arc::ptr_eq(&d, &f.decoder(vec![0]).unwrap()));
        assert!(!Arc::ptr_eq(&d, &f.decoder(vec![0, 1]).unwrap()));
        let b = f.batch(&d, 1).unwrap();
        assert_eq!(b.num_columns(), 1);
        let n = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(n.values(), &[100, 101, 102]);
        // Uncompressed values are used where they lie in the map.
        let map_range = f.buffer.as_ptr() as usize..f.buffer.as_ptr() as usize + f.buffer.len();
        assert!(map_range.contains(&(n.values().as_ptr() as usize)));
        let all = f.batch(&f.decoder(vec![0, 1]).unwrap(), 0).unwrap();
        let s = all
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!((s.value(0), s.is_null(1), s.value(2)), ("a", true, "c"));
        assert!(f.batch(&d, 2).unwrap_err().contains("fewer record batches"));
    }

    #[test]
    fn blocks_past_the_end_and_bad_footers_are_errors_not_panics() {
        let bytes = file();
        // The batches' bytes cut out, the footer kept: its blocks point past the end.
        let footer_at = bytes.len()
            - 10
            - read_footer_length(bytes[bytes.len() - 10..].try_into().unwrap()).unwrap();
        let mut cut = bytes[..64].to_vec();
        cut.extend_from_slice(&bytes[footer_at..]);
        let f = IpcFile::open(mapped(&cut), cut.len()).unwrap();
        let d = f.decoder(vec![0]).unwrap();
        let e = f.batch(&d, 1).unwrap_err();
        assert!(e.contains("past the end"), "{e}");
        // A footer longer than the file.
        let mut long = bytes.clone();
        let n = long.len();
        long[n - 10..n - 6].copy_from_slice(&(n as i32).to_le_bytes());
        let e = IpcFile::open(mapped(&long), n).err().unwrap();
        assert!(e.contains("footer"), "{e}");
        // Too short to hold a footer; a flipped footer byte.
        assert!(IpcFile::open(mapped(&bytes[..4]), 4).is_err());
        for at in footer_at..n - 10 {
            let mut bad = bytes.clone();
            bad[at] ^= 0xff;
            if let Ok(f) = IpcFile::open(mapped(&bad), n) {
                for p in [vec![0], vec![1], vec![0, 1]] {
                    if let Ok(d) = f.decoder(p) {
                        for i in 0..f.batches() {
                            let _ = f.batch(&d, i);
                        }
                    }
                }
            }
        }
    }
}
