//! The token space of a partitioner as half-open spans of [`RingPosition::token`] values (the
//! order-preserving unsigned form): cutting the ring into `N` equal shards, and turning Cassandra's token
//! ranges — `(start, end]`, wrapping past the ring's end when `start >= end`, as `nodetool describering`
//! prints them — into spans. A span holds every partition whose token lies in it, whatever its key, so a
//! shard of spans holds whole partitions (and, for tables partitioned by actor, whole actors).
//!
//! [`RingPosition::token`]: crate::RingPosition

use crate::partitioner::{murmur3_u128, OwnedPosition, Partitioner};

/// Tokens `lo <= t < hi` in the unsigned form of [`Partitioner::token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenSpan {
    pub lo: u128,
    pub hi: u128,
}

impl TokenSpan {
    /// The first ring position of the span (`None`: the ring's start).
    pub fn start(&self) -> Option<OwnedPosition> {
        (self.lo > 0).then(|| OwnedPosition {
            token: self.lo,
            key: Vec::new(),
        })
    }

    /// The first ring position after the span (`None`: the ring's end).
    pub fn end(&self, p: Partitioner) -> Option<OwnedPosition> {
        (Some(self.hi) != ring_end(p)).then(|| OwnedPosition {
            token: self.hi,
            key: Vec::new(),
        })
    }
}

/// One past the largest unsigned token of `p` (`None`: the partitioner has no token space to cut —
/// ByteOrdered orders by key bytes alone).
pub fn ring_end(p: Partitioner) -> Option<u128> {
    match p {
        // Signed 64-bit tokens map to 0..2^64.
        Partitioner::Murmur3 => Some(1u128 << 64),
        // 0..=2^127.
        Partitioner::Random => Some((1u128 << 127) + 1),
        Partitioner::ByteOrdered => None,
    }
}

/// Shard `index` (1-based) of `count` equal parts of the token space (`None`: no token space, or
/// `index` not in `1..=count`). The parts cover the ring without gaps or overlaps.
pub fn equal_shard(p: Partitioner, index: u32, count: u32) -> Option<TokenSpan> {
    let end = ring_end(p)?;
    if count == 0 || index == 0 || index > count {
        return None;
    }
    let (n, i) = (count as u128, index as u128 - 1);
    // end / n * i + min(i, end % n): exact, and no overflow of `i * end`.
    let at = |i: u128| (end / n) * i + i.min(end % n);
    Some(TokenSpan {
        lo: at(i),
        hi: at(i + 1),
    })
}

/// A Cassandra token as printed by `nodetool` (a signed decimal; Murmur3: 64-bit, Random: 0..=2^127) in
/// the unsigned form, or `None` when out of the partitioner's range.
pub fn parse_token(p: Partitioner, text: &str) -> Option<u128> {
    match p {
        Partitioner::Murmur3 => text.parse::<i64>().ok().map(murmur3_u128),
        Partitioner::Random => text.parse::<u128>().ok().filter(|&t| Some(t) < ring_end(p)),
        Partitioner::ByteOrdered => None,
    }
}

/// Cassandra's range `(start, end]` of unsigned tokens as spans: one span, or two when it wraps past
/// the ring's end (`start >= end`; `start == end` is the whole ring). `None` for ByteOrdered.
pub fn cassandra_range(p: Partitioner, start: u128, end: u128) -> Option<Vec<TokenSpan>> {
    let ring = ring_end(p)?;
    let (lo, hi) = (start + 1, end + 1);
    Some(if start < end {
        vec![TokenSpan { lo, hi }]
    } else if start == end {
        vec![TokenSpan { lo: 0, hi: ring }]
    } else {
        [TokenSpan { lo: 0, hi }, TokenSpan { lo, hi: ring }]
            .into_iter()
            .filter(|s| s.lo < s.hi)
            .collect()
    })
}

/// `spans` sorted, with touching spans joined. Fails with the two spans that overlap.
pub fn normalize(mut spans: Vec<TokenSpan>) -> Result<Vec<TokenSpan>, (TokenSpan, TokenSpan)> {
    spans.retain(|s| s.lo < s.hi);
    spans.sort();
    let mut out: Vec<TokenSpan> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if s.lo < last.hi => return Err((*last, s)),
            Some(last) if s.lo == last.hi => last.hi = s.hi,
            _ => out.push(s),
        }
    }
    Ok(out)
}

/// Whether normalized `spans` cover the whole token space of `p` exactly once.
pub fn covers_ring(p: Partitioner, spans: &[TokenSpan]) -> bool {
    matches!((spans, ring_end(p)), ([one], Some(end)) if one.lo == 0 && one.hi == end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_shards_cover_the_ring_once() {
        for p in [Partitioner::Murmur3, Partitioner::Random] {
            for n in [1u32, 2, 3, 7, 64] {
                let spans: Vec<TokenSpan> =
                    (1..=n).map(|i| equal_shard(p, i, n).unwrap()).collect();
                assert!(spans.iter().all(|s| s.lo < s.hi));
                assert!(covers_ring(p, &normalize(spans).unwrap()), "{p:?} {n}");
            }
        }
        assert_eq!(equal_shard(Partitioner::Murmur3, 0, 3), None);
        assert_eq!(equal_shard(Partitioner::Murmur3, 4, 3), None);
        assert_eq!(equal_shard(Partitioner::ByteOrdered, 1, 3), None);
    }

    #[test]
    fn cassandra_ranges_exclude_the_start_and_include_the_end() {
        let p = Partitioner::Murmur3;
        let t = |s: &str| parse_token(p, s).unwrap();
        let spans = cassandra_range(p, t("-10"), t("20")).unwrap();
        assert_eq!(
            spans,
            [TokenSpan {
                lo: t("-9"),
                hi: t("21")
            }]
        );
        // Wrapping: (100, -100] is (100, MAX] and [MIN, -100].
        let wrap = cassandra_range(p, t("100"), t("-100")).unwrap();
        assert_eq!(
            wrap,
            [
                TokenSpan {
                    lo: 0,
                    hi: t("-99")
                },
                TokenSpan {
                    lo: t("101"),
                    hi: 1 << 64
                }
            ]
        );
        let a = cassandra_range(p, t("-100"), t("100")).unwrap();
        let mut all = wrap;
        all.extend(a);
        assert!(covers_ring(p, &normalize(all).unwrap()));
        assert_eq!(parse_token(p, "9223372036854775808"), None);
        assert_eq!(parse_token(Partitioner::Random, "-1"), None);
    }

    #[test]
    fn overlapping_spans_are_named() {
        let a = TokenSpan { lo: 0, hi: 10 };
        let b = TokenSpan { lo: 5, hi: 20 };
        assert_eq!(normalize(vec![b, a]), Err((a, b)));
    }
}
