//! One SSTable written start to finish: partitions appended in token order go to Data.db (through the
//! chunked compressor), Index.db (with promoted indexes for wide partitions), Summary.db, the bloom filter
//! and the statistics collector; `finish` writes Filter.db, Statistics.db, CompressionInfo.db or CRC.db,
//! Digest.crc32 and TOC.txt. Memory is bounded by the largest partition plus the filter and summary.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::descriptor::{FormatKind, Version};
use crate::row::BoundKind;
use crate::schema::TableSchema;

use super::compression::{Compression, CompressionParams, DataFileWriter};
use super::data::{EncodingStats, RowSerializer};
use super::filter::BloomFilter;
use super::index::{put_index_entry, IndexInfo, DEFAULT_COLUMN_INDEX_SIZE};
use super::model::{MarkerDeletion, Partition, Row, Unfiltered};
use super::scylla;
use super::statistics::{self, MetadataCollector, StatisticsInput};
use super::summary::{SummaryBuilder, DEFAULT_MIN_INDEX_INTERVAL};
use super::WriterError;
use crate::partitioner::murmur3_token;

/// How an SSTable is written.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// `nb` or `oa` (big format).
    pub version: Version,
    pub compression: CompressionParams,
    pub bloom_fp_chance: f64,
    pub min_index_interval: u32,
    /// Partition bytes per promoted-index block (`column_index_size`).
    pub column_index_size: u64,
    /// Minimums for delta encoding; every timestamp, deletion time and TTL written must be >= these.
    pub encoding: EncodingStats,
    /// Expected partition count (sizes the bloom filter like Cassandra's key estimate).
    pub expected_partitions: u64,
    /// Write as ScyllaDB does: a `Scylla.db` component (sharding metadata, feature bits) listed in
    /// TOC.txt, and shadowable row deletions with ScyllaDB's extended flag.
    pub scylla: bool,
}

/// Parses a writer version: `nb` or `oa` (Cassandra 4.x / 5.0), or `me` (ScyllaDB's default, with
/// [`WriterOptions::scylla`]).
pub fn writer_version(s: &str) -> Result<Version, WriterError> {
    if s != "nb" && s != "oa" && s != "me" {
        return Err(WriterError::InvalidOption(format!(
            "the writer writes versions nb, oa and me, not {s:?}"
        )));
    }
    Version::parse(s, FormatKind::Big, Path::new(s))
        .map_err(|e| WriterError::InvalidOption(e.to_string()))
}

impl WriterOptions {
    pub fn new(version: Version, compression: Compression) -> Self {
        WriterOptions {
            version,
            compression: CompressionParams::new(compression),
            bloom_fp_chance: 0.01,
            min_index_interval: DEFAULT_MIN_INDEX_INTERVAL,
            column_index_size: DEFAULT_COLUMN_INDEX_SIZE,
            encoding: EncodingStats::default(),
            expected_partitions: 1024,
            scylla: false,
        }
    }
}

/// What a finished SSTable holds.
#[derive(Debug, Clone)]
pub struct WrittenSSTable {
    pub data_path: PathBuf,
    pub partitions: u64,
    /// Rows (not markers), as Statistics.db's `totalRows` counts them.
    pub rows: i64,
    pub uncompressed_bytes: u64,
    pub data_bytes: u64,
    pub min_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
    pub files: Vec<PathBuf>,
}

/// Writes one SSTable.
pub struct SSTableWriter<'s> {
    prefix: PathBuf,
    version: Version,
    options: WriterOptions,
    schema: &'s TableSchema,
    ser: RowSerializer<'s>,
    data: DataFileWriter,
    index: BufWriter<File>,
    index_path: PathBuf,
    index_pos: u64,
    summary: SummaryBuilder,
    filter: BloomFilter,
    collector: MetadataCollector,
    last: Option<(i64, Vec<u8>)>,
    buf: Vec<u8>,
    entry: Vec<u8>,
}

/// A bound kind and clustering prefix (what IndexInfo records).
type Prefix = (BoundKind, Vec<Option<Vec<u8>>>);

fn clustering_of(u: &Unfiltered) -> Prefix {
    match u {
        Unfiltered::Row(r) => (BoundKind::Clustering, r.clustering.clone()),
        Unfiltered::Marker(m) => (m.kind, m.values.clone()),
    }
}

impl<'s> SSTableWriter<'s> {
    /// Creates `<dir>/<version>-<generation>-big-*`.
    pub fn create(
        dir: &Path,
        generation: u32,
        schema: &'s TableSchema,
        options: WriterOptions,
    ) -> Result<Self, WriterError> {
        let version = options.version;
        std::fs::create_dir_all(dir).map_err(|e| WriterError::io(dir, e))?;
        let prefix = dir.join(format!("{}-{generation}-big-", version.as_str()));
        let path = |c: &str| PathBuf::from(format!("{}{c}", prefix.display()));
        let data = DataFileWriter::create(
            &path("Data.db"),
            options.compression,
            version.has_max_compressed_length(),
        )?;
        let index_path = path("Index.db");
        let index = BufWriter::with_capacity(
            256 * 1024,
            File::create(&index_path).map_err(|e| WriterError::io(&index_path, e))?,
        );
        let filter = BloomFilter::new(options.expected_partitions.max(1), options.bloom_fp_chance)?;
        Ok(SSTableWriter {
            version,
            ser: RowSerializer::new(schema, options.encoding, version.has_uint_deletion_time())
                .scylla_layout(options.scylla),
            summary: SummaryBuilder::new(options.min_index_interval),
            options,
            schema,
            data,
            index,
            index_path,
            index_pos: 0,
            filter,
            collector: MetadataCollector::default(),
            last: None,
            buf: Vec::with_capacity(64 * 1024),
            entry: Vec::with_capacity(256),
            prefix,
        })
    }

    fn path(&self, component: &str) -> PathBuf {
        PathBuf::from(format!("{}{component}", self.prefix.display()))
    }

    /// Uncompressed bytes written to Data.db so far.
    pub fn data_position(&self) -> u64 {
        self.data.position()
    }

    pub fn partitions(&self) -> u64 {
        self.collector.partitions
    }

    /// Appends a partition; partitions must come in Murmur3 token order (then key order).
    pub fn append(&mut self, p: &Partition) -> Result<(), WriterError> {
        let token = murmur3_token(&p.key);
        if let Some((t, k)) = &self.last {
            if (token, p.key.as_slice()) <= (*t, k.as_slice()) {
                return Err(WriterError::InvalidData(format!(
                    "partitions out of token order: key {:02x?} (token {token}) after token {t}",
                    &p.key[..p.key.len().min(32)]
                )));
            }
        }
        let position = self.data.position();
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        self.ser.put_partition_header(&mut buf, p)?;
        if !self.schema.statics.is_empty() {
            let empty = Row::new(Vec::new());
            self.ser
                .put_row(&mut buf, p.static_row.as_ref().unwrap_or(&empty), true, 0)?;
        } else if p.static_row.as_ref().is_some_and(|s| !s.columns.is_empty()) {
            return Err(WriterError::InvalidData(
                "static row for a table without static columns".into(),
            ));
        }
        let header_length = buf.len() as u64;
        let mut blocks: Vec<IndexInfo> = Vec::new();
        let mut block: Option<(u64, Prefix)> = None;
        let mut last_clustering = None;
        let mut prev_start = 0u64;
        let mut open_marker = None;
        for u in &p.unfiltereds {
            let pos = buf.len() as u64;
            if block.is_none() {
                block = Some((pos, clustering_of(u)));
            }
            match u {
                Unfiltered::Row(r) => self.ser.put_row(&mut buf, r, false, pos - prev_start)?,
                Unfiltered::Marker(m) => {
                    self.ser.put_marker(&mut buf, m, pos - prev_start)?;
                    open_marker = match (m.kind, m.deletion) {
                        (
                            BoundKind::InclStartBound | BoundKind::ExclStartBound,
                            MarkerDeletion::Bound(d),
                        ) => Some(d),
                        (_, MarkerDeletion::Boundary { start, .. }) => Some(start),
                        _ => None,
                    };
                }
            }
            last_clustering = Some(clustering_of(u));
            prev_start = pos;
            if let Some((start, _)) = &block {
                if buf.len() as u64 - start >= self.options.column_index_size {
                    if let (Some((start, first)), Some(last)) =
                        (block.take(), last_clustering.clone())
                    {
                        blocks.push(IndexInfo {
                            first,
                            last,
                            offset: start,
                            width: buf.len() as u64 - start,
                            end_open_marker: open_marker,
                        });
                    }
                }
            }
        }
        RowSerializer::put_end_of_partition(&mut buf);
        if let (Some((start, first)), Some(last)) = (block.take(), last_clustering) {
            blocks.push(IndexInfo {
                first,
                last,
                offset: start,
                width: buf.len() as u64 - start,
                end_open_marker: open_marker,
            });
        }
        self.data.append(&buf)?;
        self.entry.clear();
        put_index_entry(
            &mut self.entry,
            &self.ser,
            &p.key,
            position,
            header_length,
            &p.deletion,
            &blocks,
        )?;
        self.index
            .write_all(&self.entry)
            .map_err(|e| WriterError::io(&self.index_path, e))?;
        self.summary.add(&p.key, self.index_pos);
        self.index_pos += self.entry.len() as u64;
        self.filter.add(&p.key);
        self.collector.partition(p, buf.len() as u64);
        self.buf = buf;
        self.last = Some((token, p.key.clone()));
        Ok(())
    }

    /// Writes the remaining components and returns what was written.
    pub fn finish(mut self) -> Result<WrittenSSTable, WriterError> {
        let compressed = self.options.compression.compression != Compression::None;
        let info_name = if compressed {
            "CompressionInfo.db"
        } else {
            "CRC.db"
        };
        let data_path = self.path("Data.db");
        let (info_path, digest_path) = (self.path(info_name), self.path("Digest.crc32"));
        let data_stats = self.data.finish(&info_path, &digest_path)?;
        self.index
            .flush()
            .map_err(|e| WriterError::io(&self.index_path, e))?;
        let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, WriterError> {
            let p = PathBuf::from(format!("{}{name}", self.prefix.display()));
            std::fs::write(&p, bytes).map_err(|e| WriterError::io(&p, e))?;
            Ok(p)
        };
        write("Summary.db", &self.summary.serialize())?;
        write(
            "Filter.db",
            &self
                .filter
                .serialize(self.version.has_old_bloom_filter_format()),
        )?;
        let ratio = if compressed && data_stats.uncompressed_len > 0 {
            data_stats.on_disk_len as f64 / data_stats.uncompressed_len as f64
        } else {
            -1.0
        };
        let input = StatisticsInput {
            version: self.version,
            schema: self.schema,
            encoding: self.ser.stats(),
            bloom_fp_chance: self.options.bloom_fp_chance,
            compression_ratio: ratio,
        };
        write(
            "Statistics.db",
            &statistics::serialize(&input, &self.collector),
        )?;
        let mut components = vec![
            info_name,
            "Index.db",
            "TOC.txt",
            "Filter.db",
            "Summary.db",
            "Statistics.db",
            "Digest.crc32",
            "Data.db",
        ];
        if self.options.scylla {
            let first = self.collector.first_key.as_deref().unwrap_or_default();
            let last = self.last.as_ref().map_or(first, |(_, k)| k);
            write("Scylla.db", &scylla::serialize(first, last, &self.prefix))?;
            components.push("Scylla.db");
        }
        let toc: String = components.iter().map(|c| format!("{c}\n")).collect();
        write("TOC.txt", toc.as_bytes())?;
        Ok(WrittenSSTable {
            data_path,
            partitions: self.collector.partitions,
            rows: self.collector.total_rows,
            uncompressed_bytes: data_stats.uncompressed_len,
            data_bytes: data_stats.on_disk_len,
            min_timestamp: self.collector.min_timestamp,
            max_timestamp: self.collector.max_timestamp,
            files: components
                .iter()
                .map(|c| PathBuf::from(format!("{}{c}", self.prefix.display())))
                .collect(),
        })
    }
}
