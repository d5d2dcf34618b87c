//! Clustering order (`db/ClusteringComparator.java`, `db/ClusteringPrefix.java` `Kind`): values compared
//! by their CQL type (the `AbstractType.compare` of each marshal class), then, between a row and a range
//! tombstone bound with an equal prefix, by the bound kind, so that a merged stream interleaves rows and
//! markers of several SSTables exactly as one SSTable would store them.

use std::cmp::Ordering;

use num_bigint::BigInt;

use crate::row::BoundKind;
use crate::types::CqlType;

/// `ClusteringPrefix.Kind.comparison`: the order of kinds at an equal, full-length prefix.
#[inline]
pub fn kind_comparison(k: BoundKind) -> i8 {
    use BoundKind::*;
    match k {
        ExclEndBound | InclStartBound | ExclEndInclStartBoundary => 0,
        StaticClustering => 1,
        Clustering => 2,
        InclEndExclStartBoundary | InclEndBound | ExclStartBound => 3,
    }
}

/// `ClusteringPrefix.Kind.comparedToClustering`: where a bound sits relative to the clusterings it is a
/// prefix of.
#[inline]
pub fn compared_to_clustering(k: BoundKind) -> Ordering {
    use BoundKind::*;
    match k {
        ExclEndBound | InclStartBound | ExclEndInclStartBoundary | StaticClustering => {
            Ordering::Less
        }
        Clustering => Ordering::Equal,
        InclEndExclStartBoundary | InclEndBound | ExclStartBound => Ordering::Greater,
    }
}

/// `ClusteringComparator.compare` of two prefixes (`None` components are nulls).
pub fn compare_prefixes<'a>(
    types: &[CqlType],
    a_kind: BoundKind,
    a: impl ExactSizeIterator<Item = Option<&'a [u8]>>,
    b_kind: BoundKind,
    b: impl ExactSizeIterator<Item = Option<&'a [u8]>>,
) -> Ordering {
    let (la, lb) = (a.len(), b.len());
    for (i, (x, y)) in a.zip(b).enumerate() {
        let c = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => compare_values(types.get(i).unwrap_or(&CqlType::Blob), x, y),
        };
        if c != Ordering::Equal {
            return c;
        }
    }
    match la.cmp(&lb) {
        Ordering::Equal => kind_comparison(a_kind).cmp(&kind_comparison(b_kind)),
        Ordering::Less => compared_to_clustering(a_kind),
        Ordering::Greater => compared_to_clustering(b_kind).reverse(),
    }
}

#[inline]
fn be_signed(a: &[u8], b: &[u8]) -> Ordering {
    // 8 bytes (bigint, timestamp, counter): as integers, without a memcmp call.
    if let (Ok(x), Ok(y)) = (<[u8; 8]>::try_from(a), <[u8; 8]>::try_from(b)) {
        return i64::from_be_bytes(x).cmp(&i64::from_be_bytes(y));
    }
    // Same-length big-endian two's complement: flip the sign bit, then compare bytes.
    match (a.first(), b.first()) {
        (Some(&x), Some(&y)) if a.len() == b.len() => (x ^ 0x80)
            .cmp(&(y ^ 0x80))
            .then_with(|| a[1..].cmp(&b[1..])),
        _ => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
    }
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        x.copy_from_slice(s);
    }
    u64::from_be_bytes(x)
}

/// `TimeUUIDType.reorderTimestampBytes`.
fn reorder_timestamp(msb: u64) -> u64 {
    (msb << 48) | ((msb << 16) & 0xFFFF_0000_0000) | (msb >> 32)
}

fn varint_cmp(a: &[u8], b: &[u8]) -> Ordering {
    BigInt::from_signed_bytes_be(a).cmp(&BigInt::from_signed_bytes_be(b))
}

fn decimal_cmp(a: &[u8], b: &[u8]) -> Ordering {
    if a.len() < 4 || b.len() < 4 {
        return a.cmp(b);
    }
    let sa = i32::from_be_bytes([a[0], a[1], a[2], a[3]]) as i64;
    let sb = i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as i64;
    let ua = BigInt::from_signed_bytes_be(&a[4..]);
    let ub = BigInt::from_signed_bytes_be(&b[4..]);
    // a = ua * 10^-sa: scale both to the larger scale.
    let (ua, ub) = if sa >= sb {
        (ua, ub * BigInt::from(10).pow((sa - sb).min(4096) as u32))
    } else {
        (ua * BigInt::from(10).pow((sb - sa).min(4096) as u32), ub)
    };
    ua.cmp(&ub)
}

fn float_cmp(a: &[u8], b: &[u8]) -> Ordering {
    match (<[u8; 4]>::try_from(a), <[u8; 4]>::try_from(b)) {
        (Ok(x), Ok(y)) => f32::from_be_bytes(x).total_cmp(&f32::from_be_bytes(y)),
        _ => a.cmp(b),
    }
}

fn double_cmp(a: &[u8], b: &[u8]) -> Ordering {
    match (<[u8; 8]>::try_from(a), <[u8; 8]>::try_from(b)) {
        (Ok(x), Ok(y)) => f64::from_be_bytes(x).total_cmp(&f64::from_be_bytes(y)),
        _ => a.cmp(b),
    }
}

/// Cassandra's order of two serialized values of type `ty` (empty values sort first).
pub fn compare_values(ty: &CqlType, a: &[u8], b: &[u8]) -> Ordering {
    use CqlType as T;
    if let T::Reversed(t) = ty {
        return compare_values(t, a, b).reverse();
    }
    if a.is_empty() || b.is_empty() {
        return a.len().min(1).cmp(&b.len().min(1));
    }
    match ty.base() {
        T::Int | T::BigInt | T::SmallInt | T::TinyInt | T::Timestamp | T::Time | T::Counter => {
            be_signed(a, b)
        }
        T::Varint => varint_cmp(a, b),
        T::Decimal => decimal_cmp(a, b),
        T::Float => float_cmp(a, b),
        T::Double => double_cmp(a, b),
        T::TimeUuid if a.len() == 16 && b.len() == 16 => {
            let (ma, mb) = (
                reorder_timestamp(read_u64(a, 0)) as i64,
                reorder_timestamp(read_u64(b, 0)) as i64,
            );
            // lsb: a signed per-byte comparison (`signedBytesToNativeLong`).
            let fa = read_u64(a, 8) ^ 0x0080_8080_8080_8080;
            let fb = read_u64(b, 8) ^ 0x0080_8080_8080_8080;
            ma.cmp(&mb).then_with(|| (fa as i64).cmp(&(fb as i64)))
        }
        T::Uuid if a.len() == 16 && b.len() == 16 => {
            let (ma, mb) = (read_u64(a, 0), read_u64(b, 0));
            let (va, vb) = ((ma >> 12) & 0xf, (mb >> 12) & 0xf);
            va.cmp(&vb)
                .then_with(|| {
                    if va == 1 {
                        reorder_timestamp(ma).cmp(&reorder_timestamp(mb))
                    } else {
                        ma.cmp(&mb)
                    }
                })
                .then_with(|| read_u64(a, 8).cmp(&read_u64(b, 8)))
        }
        // text, ascii, blob, inet, boolean, date (unsigned days), duration, frozen values: bytes.
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_integers_and_reversed() {
        let m1 = (-1i32).to_be_bytes();
        let p1 = 1i32.to_be_bytes();
        assert_eq!(compare_values(&CqlType::Int, &m1, &p1), Ordering::Less);
        let rev = CqlType::Reversed(Box::new(CqlType::Int));
        assert_eq!(compare_values(&rev, &m1, &p1), Ordering::Greater);
        assert_eq!(
            compare_values(&CqlType::Varint, &[0xff], &[0x00, 0x80]),
            Ordering::Less
        );
    }

    #[test]
    fn bound_kinds_around_rows() {
        let t = [CqlType::Int];
        let v = 5i32.to_be_bytes();
        let row = || [Some(&v[..])].into_iter();
        let cmp = |k| compare_prefixes(&t, k, row(), BoundKind::Clustering, row());
        assert_eq!(cmp(BoundKind::InclStartBound), Ordering::Less);
        assert_eq!(cmp(BoundKind::ExclStartBound), Ordering::Greater);
        assert_eq!(cmp(BoundKind::InclEndBound), Ordering::Greater);
        assert_eq!(cmp(BoundKind::ExclEndBound), Ordering::Less);
        // an empty start bound precedes every row; an empty end bound follows it
        let empty = || std::iter::empty::<Option<&[u8]>>();
        assert_eq!(
            compare_prefixes(
                &t,
                BoundKind::InclStartBound,
                empty(),
                BoundKind::Clustering,
                row()
            ),
            Ordering::Less
        );
        assert_eq!(
            compare_prefixes(
                &t,
                BoundKind::InclEndBound,
                empty(),
                BoundKind::Clustering,
                row()
            ),
            Ordering::Greater
        );
    }
}
