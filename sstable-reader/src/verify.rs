//! Checking an SSTable whole, as `nodetool verify` / `sstableverify` do: every component the read uses
//! is opened and checked (TOC, Statistics.db and its checksums, CompressionInfo.db, CRC.db,
//! Digest.crc32 against the whole Data.db, every chunk's checksum and every row decoded), and the
//! partition index (Index.db and Summary.db, or BTI Partitions.db and Rows.db) must list exactly the
//! partitions Data.db holds, at their positions, Index.db's promoted row indexes and Rows.db's row
//! index tries the blocks of their rows, and Partitions.db's trie paths and hash bytes their keys.
//! TOC.txt must list exactly the SSTable's files. The bloom filter (Filter.db) must be the one its
//! keys build: every partition key in it (a key it says is absent would be skipped by a read by key)
//! and no other bit set. Summary.db must sample Index.db (its keys at the positions it names, one per
//! index interval, Data.db's first and last keys).
//! Statistics.db must agree with what Data.db holds — one partition per count of its partition size
//! histogram, every timestamp within its minimum and maximum, the histograms' fixed bucket offsets —
//! which is the only check of a Statistics.db from before `na` (it has no checksums) — and its key
//! cardinality estimate must be the HyperLogLog++ that Data.db's keys build. Each check is reported on
//! its own.

use std::path::{Path, PathBuf};

use crate::descriptor::{Component, Descriptor, FormatKind};
use crate::error::{Error, Result};
use crate::index::{PartitionIndex, Summary};
use crate::partitioner::{murmur3_token, murmur3_x64_128};
use crate::partitions::{data_positions, PartitionTrie, Target};
use crate::promoted::{self, Prefix};
use crate::row::{BoundKind, DeletionTime, Unfiltered};
use crate::rows_index;
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
    record(
        "TOC.txt (lists exactly the SSTable's component files)",
        check_toc(&sst.descriptor),
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
    if let Some(at) = sst.statistics.cardinality {
        let checked = check_cardinality(&sst, at, &positions);
        let what = if matches!(checked, Ok(false)) {
            "Statistics.db key cardinality estimate (a format not known here: not compared)"
        } else {
            "Statistics.db key cardinality estimate (the HyperLogLog++ of Data.db's keys)"
        };
        record(what, checked.map(|_| ()));
    }
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
            record(
                "Index.db promoted row indexes (blocks of Data.db's rows)",
                check_promoted(&sst, &positions),
            );
            record(
                "Summary.db (samples Index.db; first and last keys of Data.db)",
                check_summary(&sst, &positions),
            );
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
            record(
                "Partitions.db keys (trie paths, hash bytes, first and last keys of Data.db's keys)",
                check_trie_keys(&sst, &positions),
            );
            record(
                "Rows.db row indexes (blocks of Data.db's rows, partition deletions)",
                check_rows_index(&sst, &positions),
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
    // Some real `na` files (Cassandra's own legacy_na_*_compact test tables) hold their filter in the
    // pre-`na` layout: a filter that is exact in the other layout is not damaged.
    match filter_holds_exactly(&bytes, old, positions, &path) {
        Ok(()) => Ok(()),
        Err(e) => filter_holds_exactly(&bytes, !old, positions, &path).map_err(|_| e),
    }
}

/// Whether the filter in `bytes` (in the `old` layout or the current one) is the one a writer adding
/// Data.db's partition keys builds: every key in it (a key it says is absent would be skipped by a
/// read by key), and no bit set that no key sets (damage no read notices, but a changed file).
fn filter_holds_exactly(
    bytes: &[u8],
    old: bool,
    positions: &[(Vec<u8>, u64)],
    path: &Path,
) -> Result<()> {
    let filter =
        BloomFilter::parse(bytes, old).map_err(|(at, what)| Error::corrupt(path, at, what))?;
    if let Some((n, (_, at))) = positions
        .iter()
        .enumerate()
        .find(|(_, (key, _))| !filter.might_contain(key))
    {
        return Err(Error::corrupt(
            path,
            8,
            format!(
                "a bloom filter holding every partition key of Data.db; partition {n} (at {at} in Data.db) is not in it"
            ),
        ));
    }
    let rebuilt = filter.rebuilt(positions.iter().map(|(k, _)| k.as_slice()));
    let (stored, expected) = (filter.serialize(old), rebuilt.serialize(old));
    match stored.iter().zip(&expected).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(at) => Err(Error::corrupt(
            path,
            at as u64,
            "only the bits Data.db's partition keys set, found another bit set",
        )),
    }
}

/// TOC.txt against the directory: every component it lists exists, and every file of the SSTable is
/// listed. A read tolerates a damaged TOC (it opens the components it needs by name), so only this
/// check tells; a component deleted since it was written (a Filter.db, a Digest.crc32) shows here too.
fn check_toc(desc: &Descriptor) -> Result<()> {
    let path = desc.path(Component::Toc);
    let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let mut listed = Vec::new();
    let mut offset = 0u64;
    for raw in text.split_inclusive(|b| *b == b'\n') {
        let at = offset;
        offset += raw.len() as u64;
        let line = String::from_utf8_lossy(raw).trim().to_owned();
        if line.is_empty() {
            continue;
        }
        if !desc
            .directory
            .join(format!("{}{line}", desc.prefix))
            .is_file()
        {
            return Err(Error::corrupt(
                &path,
                at,
                format!("a component of the SSTable, found {line:?}, which has no file"),
            ));
        }
        listed.push(line);
    }
    if listed.is_empty() {
        return Err(Error::corrupt(
            &path,
            0,
            "the list of the SSTable's components, found none",
        ));
    }
    let entries = std::fs::read_dir(&desc.directory).map_err(|e| Error::io(&desc.directory, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&desc.directory, e))?;
        let name = entry.file_name();
        let Some(component) = name
            .to_str()
            .and_then(|n| n.strip_prefix(desc.prefix.as_str()))
        else {
            continue;
        };
        if !listed.iter().any(|l| l == component) {
            return Err(Error::corrupt(
                &path,
                offset,
                format!("a line naming {component}, which the SSTable has, found none"),
            ));
        }
    }
    Ok(())
}

/// Summary.db against Index.db and Data.db: each sampled key is the key of the Index.db entry at the
/// position it names, and the first and last keys are Data.db's.
fn check_summary(sst: &SSTable, positions: &[(Vec<u8>, u64)]) -> Result<()> {
    let summary = Summary::read(&sst.descriptor)?;
    let path = sst.descriptor.path(Component::Summary);
    let index = PartitionIndex::open(&sst.descriptor)?;
    for (n, (key, at)) in summary.entries.iter().enumerate() {
        let found = index.entry_at(*at).ok().map(|e| e.key);
        if found != Some(key.as_slice()) {
            return Err(Error::corrupt(
                &path,
                0,
                format!(
                    "sample {n} to name the key of the Index.db entry at {at}, found another key"
                ),
            ));
        }
    }
    // Cassandra samples every `min_index_interval`-th partition (`IndexSummaryBuilder`); ScyllaDB sizes
    // the header from its estimate of the partition count, so only Cassandra's is exact.
    let full = (positions.len() as i64 + summary.min_index_interval as i64 - 1)
        / (summary.min_index_interval as i64).max(1);
    let sampled_fully = summary.sampling_level == 128;
    if sst.scylla.is_none()
        && (summary.size_at_full_sampling as i64 != full
            || (sampled_fully && summary.entries.len() as i64 != full))
    {
        return Err(Error::corrupt(
            &path,
            16,
            format!(
                "{full} samples at full sampling (one per {} of Data.db's {} partitions), found {} at sampling level {} and {} at full sampling",
                summary.min_index_interval,
                positions.len(),
                summary.entries.len(),
                summary.sampling_level,
                summary.size_at_full_sampling
            ),
        ));
    }
    let first = positions.first().map(|(k, _)| k.as_slice());
    let last = positions.last().map(|(k, _)| k.as_slice());
    if first.is_some_and(|k| k != summary.first_key) || last.is_some_and(|k| k != summary.last_key)
    {
        return Err(Error::corrupt(
            &path,
            0,
            "the first and last partition keys of Data.db, found other keys",
        ));
    }
    Ok(())
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
    for (name, h) in [
        ("partition size", &stats.partition_sizes),
        ("cell count", &stats.cells_per_partition),
    ] {
        check_histogram_offsets(h).map_err(|n| {
            Error::corrupt(
                &path,
                0,
                format!(
                    "the {name} histogram's bucket offsets (Cassandra's fixed series), found another at bucket {n}"
                ),
            )
        })?;
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

/// The compaction component's key cardinality estimate (at `(offset, length)` in Statistics.db) against
/// the one Data.db's keys build. An estimate in a format this reader does not know is not compared
/// (`Ok(false)`).
fn check_cardinality(
    sst: &SSTable,
    (offset, len): (usize, usize),
    positions: &[(Vec<u8>, u64)],
) -> Result<bool> {
    let path = sst.descriptor.path(Component::Statistics);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let stored = bytes.get(offset..offset + len).ok_or_else(|| {
        Error::corrupt(
            &path,
            offset as u64,
            format!("a key cardinality estimate of {len} bytes"),
        )
    })?;
    crate::cardinality::check(stored, positions.iter().map(|(k, _)| k.as_slice())).map_err(
        |(at, what)| {
            Error::corrupt(
                &path,
                (offset + at) as u64,
                format!("a key cardinality estimate holding {what}"),
            )
        },
    )
}

/// An estimated histogram's bucket offsets are Cassandra's fixed series (`EstimatedHistogram.newOffsets`:
/// 1, 2, 3, … each the previous × 1.2 rounded, at least one more; a leading 0 where zeroes count), the
/// first repeated (the serializer writes each bucket with the offset below it): `Err(bucket)` where
/// they are not.
fn check_histogram_offsets(h: &[(i64, i64)]) -> std::result::Result<(), usize> {
    let Some(&(first, _)) = h.first() else {
        return Ok(());
    };
    let mut expected = Vec::with_capacity(h.len());
    expected.push(first);
    if first == 0 {
        expected.push(0);
    }
    let mut last = 1i64;
    while expected.len() < h.len() {
        expected.push(last);
        let next = (last as f64 * 1.2).round() as i64;
        last = if next == last { next + 1 } else { next };
    }
    match h.iter().zip(&expected).position(|((o, _), e)| o != e) {
        Some(n) => Err(n),
        None if first == 0 || first == 1 => Ok(()),
        None => Err(0),
    }
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

/// Each wide partition's promoted row index against Data.db: the partition header's length and
/// deletion, and blocks that tile the partition's rows — each starting at an unfiltered whose
/// clustering is the block's first, ending after the one whose clustering is its last, the next
/// starting where it ends and the last ending with the partition.
fn check_promoted(sst: &SSTable, positions: &[(Vec<u8>, u64)]) -> Result<()> {
    let index = PartitionIndex::open(&sst.descriptor)?;
    let types: Vec<_> = sst.schema.clustering.iter().map(|c| c.ty.clone()).collect();
    let uint = sst.descriptor.version.has_uint_deletion_time();
    let mut scan = sst.scanner(Projection::none(&sst.schema));
    for (n, entry) in index.entries().enumerate() {
        let e = entry?;
        if e.promoted_index_size == 0 {
            continue;
        }
        let (bytes, start) = index.promoted_index(&e);
        let promoted = promoted::parse(bytes, &types, uint)
            .map_err(|(at, what)| Error::corrupt(index.path(), start + at as u64, what))?;
        let wrong = |what: String| {
            Error::corrupt(
                index.path(),
                start,
                format!("partition {n}'s promoted row index to {what}"),
            )
        };
        let end = positions.get(n + 1).map_or(sst.data.len(), |(_, at)| *at);
        scan.set_range(e.data_position, end);
        let Some(header) = scan.next_partition()? else {
            return Err(wrong(format!(
                "index a partition at {}, found none",
                e.data_position
            )));
        };
        if header.deletion != promoted.deletion {
            return Err(wrong(format!(
                "hold the partition deletion {:?}, found {:?}",
                header.deletion, promoted.deletion
            )));
        }
        let blocks = &promoted.blocks;
        let mut block = 0;
        let mut header_end = None;
        let mut previous: Option<Prefix> = None;
        loop {
            let (at, prefix) = match scan.next_unfiltered()? {
                None => break,
                Some(Unfiltered::Row(r)) if r.is_static() => continue,
                Some(Unfiltered::Row(r)) => (
                    r.position(),
                    (
                        BoundKind::Clustering,
                        (0..r.clustering_len())
                            .map(|i| r.clustering(i).map(<[u8]>::to_vec))
                            .collect(),
                    ),
                ),
                Some(Unfiltered::Marker(m)) => (
                    m.position(),
                    (
                        m.kind,
                        (0..m.clustering_len())
                            .map(|i| m.clustering(i).map(<[u8]>::to_vec))
                            .collect(),
                    ),
                ),
            };
            let offset = at - e.data_position;
            header_end.get_or_insert(offset);
            if let Some(b) = blocks.get(block) {
                if offset > b.offset {
                    return Err(wrong(format!(
                        "start block {block} at an unfiltered, found offset {} inside one",
                        b.offset
                    )));
                }
                if offset == b.offset {
                    if b.first != prefix {
                        return Err(wrong(format!(
                            "start block {block} with its first clustering, found another"
                        )));
                    }
                    if block > 0 && previous.as_ref() != Some(&blocks[block - 1].last) {
                        return Err(wrong(format!(
                            "end block {} with its last clustering, found another",
                            block - 1
                        )));
                    }
                    block += 1;
                }
            }
            previous = Some(prefix);
        }
        let length = scan.position() - e.data_position;
        if block != blocks.len() || previous.as_ref() != blocks.last().map(|b| &b.last) {
            return Err(wrong(format!(
                "list blocks starting at the partition's unfiltereds and ending with its last, found {} blocks, {block} of them found",
                blocks.len()
            )));
        }
        if header_end.is_some_and(|h| h != promoted.header_length) {
            return Err(wrong(format!(
                "hold the partition header's length {header_end:?}, found {}",
                promoted.header_length
            )));
        }
        let tiled = blocks
            .windows(2)
            .all(|w| w[0].offset + w[0].width == w[1].offset)
            && blocks.last().is_some_and(|b| b.offset + b.width == length);
        if !tiled {
            return Err(wrong(format!(
                "have blocks that tile the partition's {length} bytes, found gaps or overlaps"
            )));
        }
    }
    Ok(())
}

/// The byte-comparable clusterings of the unfiltered before a block and of its first.
type Bounds = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Each BTI row index (Rows.db) against Data.db: the entry's key, position and partition deletion are
/// the partition's; its trie holds, in separator order (the first empty), one payload per block —
/// at offsets of the partition's unfiltereds, increasing, the first at its first unfiltered, each with
/// the range deletion open there, reached by a separator between the block's first clustering and the
/// one before — and a last one at the partition's end-of-partition flag, after its last clustering.
fn check_rows_index(sst: &SSTable, positions: &[(Vec<u8>, u64)]) -> Result<()> {
    let trie = PartitionTrie::open(&sst.descriptor)?;
    let (_, payloads) = trie.parse()?;
    if !payloads.iter().any(|p| matches!(p.target, Target::Rows(_))) {
        return Ok(());
    }
    let path = sst.descriptor.path(Component::Rows);
    let rows = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let uint = sst.descriptor.version.has_uint_deletion_time();
    let types: Vec<_> = sst.schema.clustering.iter().map(|c| c.ty.clone()).collect();
    let mut scan = sst.scanner(Projection::none(&sst.schema));
    let mut lo = 0usize;
    for (n, payload) in payloads.iter().enumerate() {
        let Target::Rows(at) = payload.target else {
            continue;
        };
        let index = rows_index::parse(&rows, &path, at, lo, uint)?;
        lo = rows_index::entry_end(&rows, at, uint).unwrap_or(lo);
        let wrong = |what: String| {
            Error::corrupt(&path, at, format!("partition {n}'s row index to {what}"))
        };
        let Some((key, data_position)) = positions.get(n) else {
            return Err(wrong("index a partition of Data.db, found none".into()));
        };
        if index.key != *key || index.data_position != *data_position {
            return Err(wrong(format!(
                "name the partition's key and position {data_position}, found position {}",
                index.data_position
            )));
        }
        let end = positions.get(n + 1).map_or(sst.data.len(), |(_, p)| *p);
        scan.set_range(*data_position, end);
        let Some(header) = scan.next_partition()? else {
            return Err(wrong(format!(
                "index a partition at {data_position}, found none"
            )));
        };
        if header.deletion != index.deletion {
            return Err(wrong(format!(
                "hold the partition deletion {:?}, found {:?}",
                header.deletion, index.deletion
            )));
        }
        // Each unfiltered's offset and the range deletion open where it starts; at block starts, the
        // byte-comparable clusterings of the unfiltered before and of this one (`None`: a marker, or
        // a type not encoded), which the block's separator lies between.
        let at_block: std::collections::HashSet<u64> =
            index.blocks.iter().map(|b| b.offset).collect();
        let mut bounds: std::collections::HashMap<u64, Bounds> = std::collections::HashMap::new();
        let mut starts: Vec<(u64, Option<DeletionTime>)> = Vec::new();
        let mut open = None;
        let mut previous: Option<Vec<u8>> = None;
        loop {
            let (offset, current) = match scan.next_unfiltered()? {
                None => break,
                Some(Unfiltered::Row(r)) if r.is_static() => continue,
                Some(Unfiltered::Row(r)) => {
                    let values: Vec<Option<&[u8]>> =
                        (0..r.clustering_len()).map(|i| r.clustering(i)).collect();
                    let offset = r.position() - data_position;
                    starts.push((offset, open));
                    (offset, rows_index::comparable_clustering(&values, &types))
                }
                Some(Unfiltered::Marker(m)) => {
                    let offset = m.position() - data_position;
                    starts.push((offset, open));
                    open = m.start_deletion;
                    (offset, None)
                }
            };
            if at_block.contains(&offset) {
                bounds.insert(offset, (previous.take(), current.clone()));
            }
            previous = current;
        }
        // Where the partition's end-of-partition flag is (the scan stopped after it).
        let length = (scan.position() - data_position).saturating_sub(1);
        let (blocks, last) = match index.blocks.split_last() {
            Some((last, blocks)) if blocks.len() as u64 == index.block_count => (blocks, last),
            _ => {
                return Err(wrong(format!(
                    "hold its {} blocks and the partition's end, found {} payloads",
                    index.block_count,
                    index.blocks.len()
                )))
            }
        };
        if blocks.first().is_some_and(|b| !b.separator.is_empty()) {
            return Err(wrong(
                "start with the empty separator, found another".into(),
            ));
        }
        let mut next = 0;
        for (i, b) in blocks.iter().enumerate() {
            let found = starts[next..].iter().position(|(o, _)| *o == b.offset);
            let at_start = i > 0 || starts.first().is_some_and(|(o, _)| *o == b.offset);
            let Some(k) = found.filter(|_| at_start) else {
                return Err(Error::corrupt(
                    &path,
                    b.node,
                    format!(
                        "partition {n}'s row index block {i} to start at one of its unfiltereds after the previous block, found offset {}",
                        b.offset
                    ),
                ));
            };
            next += k;
            if b.open != starts[next].1 {
                return Err(Error::corrupt(
                    &path,
                    b.node,
                    format!(
                        "partition {n}'s row index block {i} to hold the deletion open at its start ({:?}), found {:?}",
                        starts[next].1, b.open
                    ),
                ));
            }
            next += 1;
            if let (Some((Some(before), Some(first))), true) = (bounds.get(&b.offset), i > 0) {
                if !(before.as_slice() < b.separator.as_slice() && b.separator <= *first) {
                    return Err(Error::corrupt(
                        &path,
                        b.node,
                        format!(
                            "partition {n}'s row index block {i} to be reached by a separator between its first clustering and the one before, found {:02x?}",
                            b.separator
                        ),
                    ));
                }
            }
        }
        if previous
            .as_ref()
            .is_some_and(|last_row| last.separator.as_slice() <= last_row.as_slice())
        {
            return Err(Error::corrupt(
                &path,
                last.node,
                format!(
                    "partition {n}'s row index to end with a separator after its last clustering, found {:02x?}",
                    last.separator
                ),
            ));
        }
        if last.offset != length || last.open.is_some() {
            return Err(Error::corrupt(
                &path,
                last.node,
                format!(
                    "partition {n}'s row index to end at the partition's end ({length}) with no deletion open, found {} ({:?})",
                    last.offset, last.open
                ),
            ));
        }
    }
    Ok(())
}

/// Partitions.db against Data.db's keys, in order: the trie path to each payload is a prefix of the
/// key's byte-comparable form (`DecoratedKey.asComparableBytes`: a component separator, the token —
/// for Murmur3 its 8 bytes with the sign bit flipped, for the byte-ordered partitioner the key's own
/// bytes — then the key); a payload's hash byte is the low byte of the key's filter hash
/// (`DecoratedKey.filterHashLowerBits`); the footer's first and last keys are Data.db's.
fn check_trie_keys(sst: &SSTable, positions: &[(Vec<u8>, u64)]) -> Result<()> {
    let trie = PartitionTrie::open(&sst.descriptor)?;
    let partitioner = sst.partitioner().unwrap_or("Murmur3Partitioner");
    let comparable = |key: &[u8]| -> Vec<u8> {
        let mut out = vec![NEXT_COMPONENT];
        if partitioner.ends_with("Murmur3Partitioner") {
            out.extend((murmur3_token(key) as u64 ^ (1 << 63)).to_be_bytes());
        } else if partitioner.ends_with("ByteOrderedPartitioner") {
            // Up to the first zero byte, which the byte-comparable form escapes.
            out.extend(key.iter().take_while(|b| **b != 0));
        }
        out
    };
    let mut n = 0usize;
    let mut wrong: Option<(u64, String)> = None;
    let footer = trie.walk(|path, payload, hash| {
        if wrong.is_some() {
            return;
        }
        let Some((key, _)) = positions.get(n) else {
            return;
        };
        let expected = comparable(key);
        let len = path.len().min(expected.len());
        if path[..len] != expected[..len] {
            wrong = Some((
                payload.node,
                format!("a trie path that is a prefix of partition {n}'s key, found another"),
            ));
        } else if hash.is_some_and(|h| h != murmur3_x64_128(key, 0)[1] as u8) {
            wrong = Some((
                payload.node,
                format!("the hash byte of partition {n}'s key, found another"),
            ));
        }
        n += 1;
    })?;
    if let Some((at, what)) = wrong {
        return Err(Error::corrupt(trie.path(), at, what));
    }
    let first = positions.first().map(|(k, _)| k.as_slice());
    let last = positions.last().map(|(k, _)| k.as_slice());
    if first.is_some_and(|k| k != footer.first_key) || last.is_some_and(|k| k != footer.last_key) {
        return Err(Error::corrupt(
            trie.path(),
            footer.trie_end,
            "the first and last partition keys of Data.db, found other keys",
        ));
    }
    Ok(())
}

/// `ByteSource.NEXT_COMPONENT`: the byte before each component of a multi-component byte-comparable
/// form.
const NEXT_COMPONENT: u8 = 0x40;
