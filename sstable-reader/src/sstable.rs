//! One SSTable opened for reading: its descriptor, Statistics.db, compression and checksums, the mapped
//! Data.db and the table schema.

use std::path::{Path, PathBuf};

use crate::compression::CompressionInfo;
use crate::data::{ChunkChecksums, DataFile};
use crate::descriptor::{read_toc, Component, Descriptor, FormatKind};
use crate::error::{Error, Result};
use crate::row::Deltas;
use crate::schema::{CqlSchema, TableSchema};
use crate::scylla::{freeze_in_collections, ScyllaMetadata};
use crate::statistics::{SerializationHeader, Statistics};

/// How to treat data Cassandra itself would consider damaged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Cells written with a TTL whose expiry overflowed 2038 (CASSANDRA-14092) have a negative local
    /// expiration time. By default that is reported as corruption; with this set they are read as
    /// expiring at the maximum deletion time, as `nodetool scrub --reinsert-overflowed-ttl` repairs them.
    pub recover_overflowed_ttl: bool,
}

/// An opened SSTable.
#[derive(Debug)]
pub struct SSTable {
    pub descriptor: Descriptor,
    pub components: Vec<Component>,
    pub statistics: Statistics,
    pub header: SerializationHeader,
    pub schema: TableSchema,
    pub data: DataFile,
    /// ScyllaDB's `Scylla.db`, when the SSTable has one (a file ScyllaDB wrote).
    pub scylla: Option<ScyllaMetadata>,
    pub options: ReadOptions,
    pub(crate) deltas: Deltas,
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Table and keyspace names implied by where a Data.db sits: `<ks>/<table>-<id>/` or
/// `<ks>/<table>-<id>/snapshots/<tag>/`.
pub fn table_location(data_path: &Path) -> (Option<String>, Option<String>) {
    let Some(dir) = data_path.parent() else {
        return (None, None);
    };
    let table_dir = match dir.parent() {
        Some(p)
            if p.file_name()
                .is_some_and(|n| n == "snapshots" || n == "backups") =>
        {
            p.parent()
        }
        _ => Some(dir),
    };
    let Some(table_dir) = table_dir else {
        return (None, None);
    };
    let name = table_dir
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| match n.rsplit_once('-') {
            Some((t, id)) if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) => {
                t.to_string()
            }
            _ => n.to_string(),
        });
    let ks = table_dir
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .map(str::to_string);
    (ks, name)
}

/// The `schema.cql` Cassandra writes next to the files of a snapshot (or in the table directory).
pub fn find_schema_file(data_path: &Path) -> Option<PathBuf> {
    let dir = data_path.parent()?;
    let candidate = dir.join("schema.cql");
    candidate.is_file().then_some(candidate)
}

/// Checks an uncompressed Data.db that no CRC.db covers against Digest.crc32 (the decimal CRC32 of the
/// whole file, `ChecksumWriter.writeFullChecksum`) before any of its rows is read: without it, a
/// flipped bit would be read as a different value. A Digest listed in TOC.txt but missing is an error
/// too; a file written without any checksum is read as it is.
fn verify_digest(desc: &Descriptor, components: &[Component], data: &DataFile) -> Result<()> {
    let path = desc.path(Component::Digest);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && !components.contains(&Component::Digest) =>
        {
            return Ok(())
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let stored = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .ok_or_else(|| Error::corrupt(&path, 0, "the decimal CRC32 of Data.db"))?;
    let computed = crc32fast::hash(data.raw());
    if stored != computed {
        return Err(Error::Digest {
            path: data.path().to_path_buf(),
            digest: path,
            stored,
            computed,
        });
    }
    Ok(())
}

impl SSTable {
    /// Opens the SSTable of any of its component files. `schema` names key columns (otherwise a
    /// `schema.cql` next to the files is used when present).
    pub fn open(path: &Path, schema: Option<&CqlSchema>, options: ReadOptions) -> Result<SSTable> {
        let descriptor = Descriptor::from_path(path)?;
        let components = if descriptor.path(Component::Toc).exists() {
            read_toc(&descriptor)?
        } else {
            Vec::new()
        };
        let data_path = descriptor.data_path();
        if !data_path.exists() {
            return Err(Error::NotFound {
                path: data_path,
                message: "Data.db is missing".into(),
            });
        }
        let stats_path = descriptor.path(Component::Statistics);
        let statistics =
            Statistics::parse(&read_file(&stats_path)?, &stats_path, descriptor.version)?;
        let mut header = statistics
            .header
            .clone()
            .ok_or_else(|| Error::corrupt(&stats_path, 0, "a serialization header component"))?;
        let scylla_path = descriptor.path(Component::Scylla);
        let scylla = if scylla_path.exists() {
            Some(ScyllaMetadata::parse(
                &read_file(&scylla_path)?,
                &scylla_path,
            )?)
        } else if components.contains(&Component::Scylla) {
            return Err(Error::NotFound {
                path: scylla_path,
                message: "TOC.txt lists Scylla.db but it is missing".into(),
            });
        } else {
            None
        };
        if scylla
            .as_ref()
            .is_some_and(ScyllaMetadata::freezes_udts_in_collections)
        {
            for (_, ty) in header
                .static_columns
                .iter_mut()
                .chain(header.regular_columns.iter_mut())
            {
                *ty = freeze_in_collections(ty);
            }
        }
        let ci_path = descriptor.path(Component::CompressionInfo);
        let compression = if ci_path.exists() {
            Some(CompressionInfo::parse(
                &read_file(&ci_path)?,
                &ci_path,
                descriptor.version,
            )?)
        } else if components.contains(&Component::CompressionInfo) {
            return Err(Error::NotFound {
                path: ci_path,
                message: "TOC.txt lists CompressionInfo.db but it is missing".into(),
            });
        } else {
            None
        };
        let crc_path = descriptor.path(Component::Crc);
        let checksums = if compression.is_none() && crc_path.exists() {
            Some(ChunkChecksums::parse(&read_file(&crc_path)?, &crc_path)?)
        } else {
            None
        };
        let unverified = compression.is_none() && checksums.is_none();
        let data = DataFile::open(&data_path, compression, checksums)?;
        if unverified {
            verify_digest(&descriptor, &components, &data)?;
        }

        let owned_schema;
        let cql = match schema {
            Some(s) => Some(s),
            None => match find_schema_file(&data_path) {
                Some(p) => {
                    owned_schema = CqlSchema::read(&p)?;
                    Some(&owned_schema)
                }
                None => None,
            },
        };
        let (_, table_name) = table_location(&data_path);
        let cql_table = cql.and_then(|s| s.table(table_name.as_deref()).or_else(|| s.table(None)));
        let mut table_schema =
            TableSchema::from_header(&header, cql_table).map_err(|message| Error::Schema {
                origin: data_path.display().to_string(),
                line: 0,
                column: 0,
                message,
            })?;
        if table_schema.table.is_none() {
            let (ks, t) = table_location(&data_path);
            table_schema.keyspace = ks;
            table_schema.table = t;
        }
        let deltas = Deltas::new(&header, descriptor.version.has_uint_deletion_time());
        Ok(SSTable {
            descriptor,
            components,
            statistics,
            header,
            schema: table_schema,
            data,
            scylla,
            options,
            deltas,
        })
    }

    pub fn data_path(&self) -> &Path {
        self.data.path()
    }

    pub fn format(&self) -> FormatKind {
        self.descriptor.kind
    }

    /// Partitioner class name from the validation metadata.
    pub fn partitioner(&self) -> Option<&str> {
        self.statistics
            .validation
            .as_ref()
            .map(|v| v.partitioner.as_str())
    }
}
