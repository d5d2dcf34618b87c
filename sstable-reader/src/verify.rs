//! Checking an SSTable whole, as `nodetool verify` / `sstableverify` do: every component the read uses
//! is opened and checked (TOC, Statistics.db and its checksums, CompressionInfo.db, CRC.db,
//! Digest.crc32 against the whole Data.db, every chunk's checksum and every row decoded), and the
//! partition index (Index.db and Summary.db, or BTI Partitions.db and Rows.db) must list exactly the
//! partitions Data.db holds, at their positions, and the bloom filter (Filter.db) must hold every
//! partition key (a key it says is absent would be skipped by a read by key). Each check is reported on
//! its own.

use std::path::{Path, PathBuf};

use crate::descriptor::{Component, FormatKind};
use crate::error::{Error, Result};
use crate::index::{PartitionIndex, Summary};
use crate::partitions::data_positions;
use crate::scanner::Projection;
use crate::sstable::{ReadOptions, SSTable};
use crate::writer::filter::BloomFilter;

/// The outcome of one check: the component (or what) it checked, and its error when it failed.
#[derive(Debug)]
pub struct Check {
    pub what: String,
    pub error: Option<Error>,
}

/// What [`verify`] found for one SSTable.
#[derive(Debug)]
pub struct Verification {
    /// The SSTable's Data.db.
    pub data_path: PathBuf,
    pub checks: Vec<Check>,
}

impl Verification {
    /// Whether every check passed.
    pub fn is_ok(&self) -> bool {
        self.checks.iter().all(|c| c.error.is_none())
    }
}

/// Verifies the SSTable of the component file `path`.
pub fn verify(path: &Path) -> Verification {
    let mut v = Verification {
        data_path: path.to_path_buf(),
        checks: Vec::new(),
    };
    let mut record = |what: &str, r: Result<()>| {
        v.checks.push(Check {
            what: what.to_string(),
            error: r.err(),
        })
    };
    let sst = match SSTable::open(path, None, ReadOptions::default()) {
        Ok(s) => s,
        Err(e) => {
            record(
                "open (TOC, Statistics, CompressionInfo, CRC, Digest of uncompressed data)",
                Err(e),
            );
            return v;
        }
    };
    record(
        "open (TOC, Statistics, CompressionInfo, CRC, Digest of uncompressed data)",
        Ok(()),
    );
    let digest = sst.descriptor.path(Component::Digest);
    if sst.data.compression().is_some() && digest.exists() {
        record(
            "Digest.crc32 (whole compressed Data.db)",
            check_digest(&sst, &digest),
        );
    }
    let positions = match scan_all(&sst) {
        Ok(p) => {
            record("Data.db (every chunk and row)", Ok(()));
            p
        }
        Err(e) => {
            record("Data.db (every chunk and row)", Err(e));
            v.data_path = sst.data_path().to_path_buf();
            return v;
        }
    };
    if sst.descriptor.path(Component::Filter).exists() {
        record(
            "Filter.db (holds every partition key)",
            check_filter(&sst, &positions),
        );
    }
    match sst.format() {
        FormatKind::Big => {
            record(
                "Index.db (lists Data.db's partitions)",
                check_index(&sst, &positions),
            );
            record("Summary.db", Summary::read(&sst.descriptor).map(|_| ()));
        }
        FormatKind::Bti => {
            let found = data_positions(&sst.descriptor, sst.data.len()).and_then(|p| {
                let scanned: Vec<u64> = positions.iter().map(|(_, at)| *at).collect();
                if p == scanned {
                    Ok(())
                } else {
                    Err(Error::corrupt(
                        &sst.descriptor.path(Component::Partitions),
                        0,
                        format!(
                            "the {} partitions of Data.db, found {} (or other positions)",
                            scanned.len(),
                            p.len()
                        ),
                    ))
                }
            });
            record(
                "Partitions.db and Rows.db (list Data.db's partitions)",
                found,
            );
        }
    }
    v.data_path = sst.data_path().to_path_buf();
    v
}

fn check_filter(sst: &SSTable, positions: &[(Vec<u8>, u64)]) -> Result<()> {
    let path = sst.descriptor.path(Component::Filter);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let old = sst.descriptor.version.has_old_bloom_filter_format();
    let filter =
        BloomFilter::parse(&bytes, old).map_err(|(at, what)| Error::corrupt(&path, at, what))?;
    match positions
        .iter()
        .enumerate()
        .find(|(_, (key, _))| !filter.might_contain(key))
    {
        None => Ok(()),
        Some((n, (_, at))) => Err(Error::corrupt(
            &path,
            8,
            format!(
                "a bloom filter holding every partition key of Data.db; partition {n} (at {at} in Data.db) is not in it"
            ),
        )),
    }
}

fn check_digest(sst: &SSTable, digest: &Path) -> Result<()> {
    let text = std::fs::read(digest).map_err(|e| Error::io(digest, e))?;
    let stored = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .ok_or_else(|| Error::corrupt(digest, 0, "the decimal CRC32 of Data.db"))?;
    let computed = crc32fast::hash(sst.data.raw());
    if stored != computed {
        return Err(Error::Digest {
            path: sst.data_path().to_path_buf(),
            digest: digest.to_path_buf(),
            stored,
            computed,
        });
    }
    Ok(())
}

/// Every partition's key and position, decoding every row on the way.
fn scan_all(sst: &SSTable) -> Result<Vec<(Vec<u8>, u64)>> {
    let mut scan = sst.scanner(Projection::all(&sst.schema));
    let mut out = Vec::new();
    while let Some(p) = scan.next_partition()? {
        out.push((scan.key().to_vec(), p.position));
        while scan.next_unfiltered()?.is_some() {}
    }
    Ok(out)
}

fn check_index(sst: &SSTable, positions: &[(Vec<u8>, u64)]) -> Result<()> {
    let index = PartitionIndex::open(&sst.descriptor)?;
    let mut n = 0;
    for entry in index.entries() {
        let e = entry?;
        let mismatch = match positions.get(n) {
            Some((key, at)) => key.as_slice() != e.key || *at != e.data_position,
            None => true,
        };
        if mismatch {
            return Err(Error::corrupt(
                index.path(),
                e.index_position,
                format!(
                    "entry {n} to name Data.db's partition {n} and its position ({:?}), found position {}",
                    positions.get(n).map(|(_, at)| at),
                    e.data_position
                ),
            ));
        }
        n += 1;
    }
    if n != positions.len() {
        return Err(Error::corrupt(
            index.path(),
            index.file_len(),
            format!(
                "{} entries (one per partition of Data.db), found {n}",
                positions.len()
            ),
        ));
    }
    Ok(())
}
