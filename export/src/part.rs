//! One output file: a Parquet or Arrow IPC writer over a hidden temporary file in the output directory,
//! closed and synced by [`PartFile::close`], renamed to its final name only when the whole export
//! succeeded ([`ClosedPart::publish`]); a part dropped before that removes its temporary file.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_ipc::writer::FileWriter;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Parquet, zstd-compressed, dictionary-encoded where it pays (the writer's default).
    Parquet,
    /// The Arrow IPC file format (Feather v2), uncompressed so any reader can map it.
    Arrow,
}

impl Format {
    /// The file name extension (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Arrow => "arrow",
        }
    }
}

// Boxed: both writers are hundreds of bytes, of very different sizes.
enum Writer {
    Parquet(Box<ArrowWriter<BufWriter<File>>>),
    Arrow(Box<FileWriter<BufWriter<File>>>),
}

/// An output file being written.
pub struct PartFile {
    writer: Option<Writer>,
    tmp: PathBuf,
    path: PathBuf,
    rows: u64,
}

/// A finished output file still under its temporary name.
#[derive(Debug)]
pub struct ClosedPart {
    tmp: PathBuf,
    path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
}

/// The temporary name of `name` in `dir`: hidden, so `*.parquet` globs never read a partial file.
fn temp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.tmp-{}", std::process::id()))
}

/// Whether `name` is a temporary file an export (of any process) writes.
pub fn is_temp(name: &str) -> bool {
    name.starts_with(".part-") && name.contains(".tmp-")
}

impl PartFile {
    /// Creates `dir/name` (under its temporary name) for batches of `schema`; Parquet row groups hold
    /// at most `row_group_rows` rows.
    pub fn create(
        dir: &Path,
        name: &str,
        format: Format,
        schema: &SchemaRef,
        row_group_rows: usize,
    ) -> Result<PartFile> {
        let tmp = temp_path(dir, name);
        let path = dir.join(name);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut part = PartFile {
            writer: None,
            tmp,
            path,
            rows: 0,
        };
        let out = BufWriter::with_capacity(1 << 20, file);
        part.writer = Some(match format {
            Format::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .set_max_row_group_row_count(Some(row_group_rows.max(1)))
                    .set_created_by(format!("funnel export {}", env!("CARGO_PKG_VERSION")))
                    .build();
                Writer::Parquet(Box::new(
                    ArrowWriter::try_new(out, schema.clone(), Some(props))
                        .map_err(|e| part.parquet(e))?,
                ))
            }
            Format::Arrow => Writer::Arrow(Box::new(
                FileWriter::try_new(out, schema).map_err(|e| part.arrow(e))?,
            )),
        });
        Ok(part)
    }

    fn parquet(&self, source: parquet::errors::ParquetError) -> Error {
        Error::Parquet {
            path: self.tmp.clone(),
            source,
        }
    }

    fn arrow(&self, source: arrow_schema::ArrowError) -> Error {
        Error::Arrow {
            path: self.tmp.clone(),
            source,
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.writer {
            Some(Writer::Parquet(w)) => w.write(batch).map_err(|e| self.parquet(e))?,
            Some(Writer::Arrow(w)) => w.write(batch).map_err(|e| self.arrow(e))?,
            None => {}
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Writes the footer, flushes and syncs the file (still under its temporary name).
    pub fn close(mut self) -> Result<ClosedPart> {
        let out = match self.writer.take() {
            Some(Writer::Parquet(w)) => w.into_inner().map_err(|e| self.parquet(e))?,
            Some(Writer::Arrow(mut w)) => {
                w.finish().map_err(|e| self.arrow(e))?;
                w.into_inner().map_err(|e| self.arrow(e))?
            }
            None => unreachable!("a part is closed once"),
        };
        let file = out
            .into_inner()
            .map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        let bytes = file.metadata().map_err(|e| Error::io(&self.tmp, e))?.len();
        let tmp = std::mem::take(&mut self.tmp);
        Ok(ClosedPart {
            tmp,
            path: std::mem::take(&mut self.path),
            rows: self.rows,
            bytes,
        })
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl ClosedPart {
    /// Renames the file to its final name; returns it.
    pub fn publish(mut self) -> Result<PathBuf> {
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        self.tmp = PathBuf::new();
        Ok(std::mem::take(&mut self.path))
    }
}

impl Drop for ClosedPart {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
