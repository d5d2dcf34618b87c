//! Parallel merged scans: the ring is cut into ranges at partition boundaries, each range merged
//! independently across every SSTable (of one or several tables sharing a partitioner) that overlaps it.
//!
//! Split points are sampled partition keys, taken at quantiles so ranges hold similar numbers of
//! partitions: for big files, Summary.db (every `min_index_interval`-th key); for BTI `da` files, every
//! ~128th partition listed by Partitions.db ([`crate::partitions`]; smaller files are sampled more
//! densely, up to every partition), its key read from Data.db. Each split point becomes, for every
//! SSTable, the Data.db offset of its first partition at or after the point: a binary search in the
//! samples and a short walk from the sampled entry (of Index.db, or of the partition positions, reading
//! keys from Data.db) — a scan *seeks* to its range, it never reads from the start of the file. With an
//! SSTable that has neither index (no Summary.db/Index.db, no Partitions.db) the plan is one range.
//!
//! ```no_run
//! # use sstable_reader::{for_each_ordered, plan_ranges, Columns, MergeTable};
//! # fn f(table: &MergeTable) -> sstable_reader::Result<()> {
//! let ranges = plan_ranges(&[table], 16)?;
//! for_each_ordered(&ranges, 2, |r| {
//!     let mut scan = table.scan_spans(&Columns::All, 1_700_000_000, &r.spans[0])?;
//!     let mut rows = 0;
//!     while let Some(p) = scan.next_partition()? { rows += p.row_count(); }
//!     Ok(rows)
//! }, |_range, rows| { println!("{rows}"); Ok(true) })?;
//! # Ok(()) }
//! ```

use rayon::prelude::*;

use crate::data::DataReader;
use crate::descriptor::{Component, FormatKind};
use crate::error::{Error, Result};
use crate::index::{PartitionIndex, Summary};
use crate::merge::MergeTable;
use crate::partitioner::{OwnedPosition, Partitioner};
use crate::partitions;
use crate::sstable::SSTable;
use crate::token_ring::TokenSpan;

/// One range of the ring: partitions at or after `start` and before `end` (`None`: the ring's ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRange {
    /// Position in the plan (ranges are in ring order).
    pub index: usize,
    pub start: Option<OwnedPosition>,
    pub end: Option<OwnedPosition>,
    /// `spans[table][sstable]`: the `[start, end)` of uncompressed Data.db to scan, `None` when empty.
    pub spans: Vec<Vec<Option<(u64, u64)>>>,
}

impl TokenRange {
    /// Uncompressed bytes the range covers (a size estimate).
    pub fn bytes(&self) -> u64 {
        self.spans
            .iter()
            .flatten()
            .flatten()
            .map(|(s, e)| e - s)
            .sum()
    }
}

/// `VIntCoding.computeUnsignedVIntSize`.
fn uvint_size(v: u64) -> u64 {
    let magnitude = (v | 1).leading_zeros() as u64;
    (639 - magnitude * 9) >> 6
}

/// Where the sampled keys of an SSTable come from.
enum Source<'a> {
    /// Summary.db samples; a sample's offset is its Index.db position.
    Big(PartitionIndex),
    /// Partitions.db: every partition's Data.db position in key order; a sample's offset is its index here.
    Bti {
        sst: &'a SSTable,
        positions: Vec<u64>,
    },
}

/// The sampled keys of an SSTable with their ring positions and offsets (see [`Source`]).
struct Sampled<'a> {
    samples: Vec<(OwnedPosition, u64)>,
    source: Source<'a>,
    data_len: u64,
}

/// At most this many partitions between two BTI samples (Summary.db's default interval).
const BTI_SAMPLE_INTERVAL: usize = 128;

/// The partition key at uncompressed Data.db position `pos` (u16 length, then the key).
fn key_at(r: &mut DataReader<'_>, pos: u64) -> Result<Vec<u8>> {
    let file = r.file();
    let short = || Error::corrupt(file.path(), pos, "a partition key (u16 length and bytes)");
    r.seek(pos);
    r.ensure(pos + 2)?;
    let off = pos.checked_sub(r.window_start()).ok_or_else(short)? as usize;
    let len = r
        .window()
        .get(off..off + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as u64)
        .ok_or_else(short)?;
    r.ensure(pos + 2 + len)?;
    r.window()
        .get(off + 2..off + 2 + len as usize)
        .map(<[u8]>::to_vec)
        .ok_or_else(short)
}

fn sample(sst: &SSTable, p: Partitioner) -> Result<Option<Sampled<'_>>> {
    let d = &sst.descriptor;
    if d.kind == FormatKind::Bti {
        if !d.path(Component::Partitions).exists() {
            return Ok(None);
        }
        let positions = partitions::data_positions(d, sst.data.len())?;
        let step = (positions.len() / BTI_SAMPLE_INTERVAL).clamp(1, BTI_SAMPLE_INTERVAL);
        let mut r = sst.data.reader();
        let samples = (0..positions.len())
            .step_by(step)
            .map(|i| {
                let key = key_at(&mut r, positions[i])?;
                Ok((OwnedPosition::of(p, &key), i as u64))
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(Some(Sampled {
            samples,
            source: Source::Bti { sst, positions },
            data_len: sst.data.len(),
        }));
    }
    if !d.path(Component::Summary).exists() || !d.path(Component::Index).exists() {
        return Ok(None);
    }
    let summary = Summary::read(d)?;
    let samples = summary
        .entries
        .into_iter()
        .map(|(k, pos)| {
            (
                OwnedPosition {
                    token: p.token(&k),
                    key: k,
                },
                pos,
            )
        })
        .collect();
    Ok(Some(Sampled {
        samples,
        source: Source::Big(PartitionIndex::open(d)?),
        data_len: sst.data.len(),
    }))
}

impl Sampled<'_> {
    /// Data.db offset of the first partition at or after `at`.
    fn offset_of(&self, at: &OwnedPosition, p: Partitioner) -> Result<u64> {
        let i = self.samples.partition_point(|(pos, _)| pos < at);
        let index = match &self.source {
            Source::Big(index) => index,
            Source::Bti { sst, positions } => {
                // The sample before `at` is known to be smaller: start after it.
                let from = if i == 0 {
                    0
                } else {
                    self.samples[i - 1].1 as usize + 1
                };
                let mut r = sst.data.reader();
                for &pos in positions.get(from..).unwrap_or(&[]) {
                    if p.position(&key_at(&mut r, pos)?) >= at.as_ref() {
                        return Ok(pos);
                    }
                }
                return Ok(self.data_len);
            }
        };
        let mut pos = if i == 0 { 0 } else { self.samples[i - 1].1 };
        let len = std::fs::metadata(index.path())
            .map_err(|e| Error::Io {
                path: index.path().to_path_buf(),
                source: e,
            })?
            .len();
        while pos < len {
            let e = index.entry_at(pos)?;
            if p.position(e.key) >= at.as_ref() {
                return Ok(e.data_position);
            }
            pos = e.index_position
                + 2
                + e.key.len() as u64
                + uvint_size(e.data_position)
                + uvint_size(e.promoted_index_size)
                + e.promoted_index_size;
        }
        Ok(self.data_len)
    }
}

/// Samples every SSTable of `tables`, per table; `Ok(Err(sstable))`: the first SSTable without an
/// index to sample.
fn sample_tables<'t>(
    tables: &[&'t MergeTable],
    p: Partitioner,
) -> Result<std::result::Result<Vec<Vec<Sampled<'t>>>, &'t SSTable>> {
    let mut sampled = Vec::with_capacity(tables.len());
    for t in tables {
        let mut v = Vec::new();
        for s in t.sstables() {
            match sample(s, p)? {
                Some(x) => v.push(x),
                None => return Ok(Err(s)),
            }
        }
        sampled.push(v);
    }
    Ok(Ok(sampled))
}

/// Every sampled position, in ring order, each once.
fn sorted_samples<'s>(sampled: &'s [Vec<Sampled<'_>>]) -> Vec<&'s OwnedPosition> {
    let mut all: Vec<&OwnedPosition> = sampled
        .iter()
        .flatten()
        .flat_map(|s| s.samples.iter().map(|(p, _)| p))
        .collect();
    all.sort();
    all.dedup();
    all
}

/// Cuts the ring into about `target` ranges for `tables` (all with the same partitioner).
pub fn plan_ranges(tables: &[&MergeTable], target: usize) -> Result<Vec<TokenRange>> {
    let whole = || TokenRange {
        index: 0,
        start: None,
        end: None,
        spans: tables
            .iter()
            .map(|t| {
                t.sstables()
                    .iter()
                    .map(|s| Some((0, s.data.len())))
                    .collect()
            })
            .collect(),
    };
    let Some(first) = tables.first() else {
        return Ok(vec![whole()]);
    };
    let p = first.partitioner();
    if let Some(t) = tables.iter().find(|t| t.partitioner() != p) {
        return Err(Error::Schema {
            origin: format!(
                "{} and {}",
                first.sstables()[0].data_path().display(),
                t.sstables()[0].data_path().display()
            ),
            line: 0,
            column: 0,
            message: format!(
                "tables merged together must share a partitioner ({} and {})",
                p.name(),
                t.partitioner().name()
            ),
        });
    }
    if target <= 1 {
        return Ok(vec![whole()]);
    }
    let Ok(sampled) = sample_tables(tables, p)? else {
        return Ok(vec![whole()]);
    };
    let all = sorted_samples(&sampled);
    let mut splits: Vec<OwnedPosition> = (1..target)
        .filter_map(|i| all.get(i * all.len() / target).map(|p| (*p).clone()))
        .collect();
    splits.dedup();
    if splits.is_empty() {
        return Ok(vec![whole()]);
    }
    // offsets[table][sstable][split]
    let offsets: Vec<Vec<Vec<u64>>> = sampled
        .iter()
        .map(|v| {
            v.iter()
                .map(|s| {
                    splits
                        .iter()
                        .map(|at| s.offset_of(at, p))
                        .collect::<Result<Vec<u64>>>()
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    let n = splits.len() + 1;
    let mut ranges = Vec::with_capacity(n);
    for i in 0..n {
        let spans = sampled
            .iter()
            .zip(&offsets)
            .map(|(v, offs)| {
                v.iter()
                    .zip(offs)
                    .map(|(s, o)| {
                        let a = if i == 0 { 0 } else { o[i - 1] };
                        let b = if i == n - 1 { s.data_len } else { o[i] };
                        (a < b).then_some((a, b))
                    })
                    .collect()
            })
            .collect();
        ranges.push(TokenRange {
            index: i,
            start: (i > 0).then(|| splits[i - 1].clone()),
            end: (i < n - 1).then(|| splits[i].clone()),
            spans,
        });
    }
    Ok(ranges)
}

/// Cuts the token `spans` (sorted, disjoint: [`crate::token_ring::normalize`]) into about `target`
/// ranges for `tables`, each within one span, split at sampled keys like [`plan_ranges`]: a shard's scan
/// seeks to its spans and never reads a partition outside them. Fails when an SSTable has no index to
/// seek by (neither Summary.db + Index.db nor Partitions.db), or the partitioner has no token space.
pub fn plan_ranges_in(
    tables: &[&MergeTable],
    spans: &[TokenSpan],
    target: usize,
) -> Result<Vec<TokenRange>> {
    let Some(first) = tables.first() else {
        return Ok(Vec::new());
    };
    let p = first.partitioner();
    if let Some(t) = tables.iter().find(|t| t.partitioner() != p) {
        return Err(Error::unsupported(
            t.sstables()[0].data_path(),
            format!(
                "tables merged together must share a partitioner ({} and {})",
                p.name(),
                t.partitioner().name()
            ),
        ));
    }
    if crate::token_ring::ring_end(p).is_none() {
        return Err(Error::unsupported(
            first.sstables()[0].data_path(),
            format!("token ranges of the {} (it has no token space)", p.name()),
        ));
    }
    let sampled = sample_tables(tables, p)?.map_err(|s| {
        Error::unsupported(
            s.data_path(),
            "reading only some token ranges of an SSTable without an index \
             (Summary.db + Index.db, or Partitions.db) to seek by",
        )
    })?;
    let all = sorted_samples(&sampled);
    let total = all.len().max(1);
    // The bounds of each range, in ring order: the span's ends and quantile splits within it.
    let mut bounds: Vec<(Option<OwnedPosition>, Option<OwnedPosition>)> = Vec::new();
    for span in spans {
        let (start, end) = (span.start(), span.end(p));
        let from = start
            .as_ref()
            .map_or(0, |s| all.partition_point(|x| *x < s));
        let to = end
            .as_ref()
            .map_or(all.len(), |e| all.partition_point(|x| *x < e));
        let inside = all.get(from..to).unwrap_or(&[]);
        let k = (target.max(1) * inside.len()).div_ceil(total).max(1);
        let mut cuts: Vec<OwnedPosition> = (1..k)
            .filter_map(|i| inside.get(i * inside.len() / k).map(|x| (*x).clone()))
            .filter(|x| start.as_ref().is_none_or(|s| x > s))
            .collect();
        cuts.dedup();
        let mut lo = start.clone();
        for cut in cuts {
            bounds.push((lo, Some(cut.clone())));
            lo = Some(cut);
        }
        bounds.push((lo, end));
    }
    let offset = |s: &Sampled, at: &Option<OwnedPosition>, is_end: bool| match at {
        Some(at) => s.offset_of(at, p),
        None => Ok(if is_end { s.data_len } else { 0 }),
    };
    let mut ranges = Vec::with_capacity(bounds.len());
    for (index, (start, end)) in bounds.into_iter().enumerate() {
        let spans = sampled
            .iter()
            .map(|v| {
                v.iter()
                    .map(|s| {
                        let (a, b) = (offset(s, &start, false)?, offset(s, &end, true)?);
                        Ok((a < b).then_some((a, b)))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        ranges.push(TokenRange {
            index,
            start,
            end,
            spans,
        });
    }
    Ok(ranges)
}

/// Runs `work` over `ranges` on `threads` rayon threads and hands the results to `sink` in ring order,
/// holding at most `2 × threads` results at a time. `sink` returns `false` to stop early.
pub fn for_each_ordered<T, W, S>(
    ranges: &[TokenRange],
    threads: usize,
    work: W,
    mut sink: S,
) -> Result<()>
where
    T: Send,
    W: Fn(&TokenRange) -> Result<T> + Sync,
    S: FnMut(&TokenRange, T) -> Result<bool>,
{
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::Unsupported {
            path: Default::default(),
            what: format!("a thread pool: {e}"),
        })?;
    let window = (threads.max(1) * 2).max(1);
    for batch in ranges.chunks(window) {
        let results: Vec<Result<T>> = pool.install(|| batch.par_iter().map(&work).collect());
        for (r, res) in batch.iter().zip(results) {
            if !sink(r, res?)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::uvint_size;

    #[test]
    fn vint_sizes() {
        for (v, n) in [
            (0u64, 1u64),
            (127, 1),
            (128, 2),
            (16383, 2),
            (16384, 3),
            (u64::MAX, 9),
        ] {
            let mut b = Vec::new();
            crate::bytes::put_uvint(&mut b, v);
            assert_eq!((uvint_size(v), b.len() as u64), (n, n), "{v}");
        }
    }
}
