//! Checking an SSTable whole, as `nodetool verify` / `sstableverify` do: every component the read uses
//! is opened and checked (TOC, Statistics.db and its checksums, CompressionInfo.db, CRC.db,
//! Digest.crc32 against the whole Data.db, every chunk's checksum and every row decoded), and the
//! partition index (Index.db and Summary.db, or BTI Partitions.db and Rows.db) must list exactly the
//! partitions Data.db holds, at their positions, and the bloom filter (Filter.db) must hold every
//! partition key (a key it says is absent would be skipped by a read by key). Statistics.db must agree
//! with what Data.db holds — one partition per count of its partition size histogram, every
//! timestamp within its minimum and maximum — which is the only check of a Statistics.db from
//! before `na` (it has no checksums). Each check is reported on its own.

use std::path::{Path, PathBuf};

use crate::descriptor::{Component, FormatKind};
use crate::error::{Error, Result};
use crate::index::{PartitionIndex, Summary};
use crate::partitions::data_positions;
use crate::row::{DeletionTime, Unfiltered};
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
    let (positions, seen) = match scan_all(&sst) {
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
    record(
        "Statistics.db (agrees with Data.db: partitions, timestamps)",
        check_statistics(&sst, positions.len(), seen),
    );
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
    let missing = |old: bool| -> Result<Option<(usize, u64)>> {
        let filter = BloomFilter::parse(&bytes, old)
            .map_err(|(at, what)| Error::corrupt(&path, at, what))?;
        Ok(positions
            .iter()
            .enumerate()
            .find(|(_, (key, _))| !filter.might_contain(key))
            .map(|(n, (_, at))| (n, *at)))
    };
    // Some real `na` files (Cassandra's own legacy_na_*_compact test tables) hold their filter in the
    // pre-`na` layout: a filter that holds every key in the other layout is not damaged.
    let first = missing(old)?;
    if first.is_some() && missing(!old).ok().flatten().is_none() {
        return Ok(());
    }
    match first {
        None => Ok(()),
        Some((n, at)) => Err(Error::corrupt(
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

/// The smallest and largest timestamps of Data.db (liveness, cells and every deletion), when it has any.
type Seen = Option<(i64, i64)>;

/// Each partition's key and position in Data.db.
type Partitions = Vec<(Vec<u8>, u64)>;

/// Every partition's key and position, decoding every row on the way, and the timestamps seen.
fn scan_all(sst: &SSTable) -> Result<(Partitions, Seen)> {
    let mut scan = sst.scanner(Projection::all(&sst.schema));
    let mut out = Vec::new();
    let mut seen: Seen = None;
    let mut see = |ts: Option<i64>| {
        if let Some(t) = ts {
            seen = Some(seen.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))));
        }
    };
    let deleted_at = |d: DeletionTime| (!d.is_live()).then_some(d.marked_for_delete_at);
    while let Some(p) = scan.next_partition()? {
        out.push((scan.key().to_vec(), p.position));
        see(deleted_at(p.deletion));
        while let Some(u) = scan.next_unfiltered()? {
            match u {
                Unfiltered::Row(r) => {
                    let l = r.liveness();
                    see((!l.is_empty()).then_some(l.timestamp));
                    see(deleted_at(r.deletion()));
                    see(deleted_at(r.shadowable_deletion()));
                    r.complex_deletions().for_each(|(_, d)| see(deleted_at(d)));
                    r.cells().for_each(|c| see(Some(c.timestamp)));
                }
                Unfiltered::Marker(m) => {
                    for d in m.start_deletion.iter().chain(&m.end_deletion) {
                        see(deleted_at(*d));
                    }
                }
            }
        }
    }
    Ok((out, seen))
}

/// Statistics.db against what Data.db holds: the partition size histogram counts one per partition
/// (Cassandra's `MetadataCollector` adds each partition once), and every timestamp is within the
/// minimum and maximum.
fn check_statistics(sst: &SSTable, partitions: usize, seen: Seen) -> Result<()> {
    let path = sst.descriptor.path(Component::Statistics);
    let Some(stats) = &sst.statistics.stats else {
        return Ok(());
    };
    // (The cell count histogram is not one per partition in every version: real `mc` and `na` files
    // count 10 for 5 partitions.)
    let counted = stats.estimated_partitions();
    if counted != partitions as i64 {
        return Err(Error::corrupt(
            &path,
            0,
            format!(
                "a partition size histogram counting Data.db's {partitions} partitions, found {counted}"
            ),
        ));
    }
    if let Some((lo, hi)) = seen {
        if lo < stats.min_timestamp || hi > stats.max_timestamp {
            return Err(Error::corrupt(
                &path,
                0,
                format!(
                    "a minimum and maximum timestamp holding Data.db's ({lo} to {hi}), found {} to {}",
                    stats.min_timestamp, stats.max_timestamp
                ),
            ));
        }
    }
    Ok(())
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
