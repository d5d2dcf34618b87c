//! Partitioners: where a partition key sits on the ring, so that partitions of many SSTables (and nodes)
//! can be merged in the order Cassandra stores them (`DecoratedKey.compareTo`: token, then key bytes).
//!
//! - `Murmur3Partitioner`: the Murmur3 token of [`crate::writer::token`] (Cassandra's sign-extension quirk
//!   included), a signed 64-bit value;
//! - `RandomPartitioner`: `abs(BigInteger(md5(key)))`, a 0..=2^127 integer;
//! - `ByteOrderedPartitioner`: the key bytes themselves.
//!
//! Every token is mapped to a [`RingPosition`]: an unsigned 128-bit number that orders like the token,
//! plus the key. Comparing positions costs no allocation.

use std::cmp::Ordering;

use md5::{Digest, Md5};

use crate::writer::token::murmur3_token;

/// A partitioner Cassandra orders partitions by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partitioner {
    Murmur3,
    Random,
    ByteOrdered,
}

impl Partitioner {
    /// From the class name in Statistics.db (`org.apache.cassandra.dht.Murmur3Partitioner`); `None` when
    /// the partitioner cannot be merged across SSTables (Local, OrderPreserving, custom).
    pub fn from_class(name: &str) -> Option<Partitioner> {
        match name.rsplit('.').next().unwrap_or(name) {
            "Murmur3Partitioner" => Some(Partitioner::Murmur3),
            "RandomPartitioner" => Some(Partitioner::Random),
            "ByteOrderedPartitioner" => Some(Partitioner::ByteOrdered),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Partitioner::Murmur3 => "Murmur3Partitioner",
            Partitioner::Random => "RandomPartitioner",
            Partitioner::ByteOrdered => "ByteOrderedPartitioner",
        }
    }

    /// The token of a serialized partition key as an order-preserving unsigned number (ByteOrdered: 0 —
    /// the key bytes alone order partitions).
    #[inline]
    pub fn token(self, key: &[u8]) -> u128 {
        match self {
            Partitioner::Murmur3 => murmur3_u128(murmur3_token(key)),
            Partitioner::Random => {
                let digest = Md5::digest(key);
                let mut b = [0u8; 16];
                b.copy_from_slice(&digest);
                i128::from_be_bytes(b).unsigned_abs()
            }
            Partitioner::ByteOrdered => 0,
        }
    }

    /// The position of a key on the ring.
    #[inline]
    pub fn position<'k>(self, key: &'k [u8]) -> RingPosition<'k> {
        RingPosition {
            token: self.token(key),
            key,
        }
    }
}

/// A Murmur3 token mapped to an unsigned number of the same order.
#[inline]
pub fn murmur3_u128(token: i64) -> u128 {
    (token as u64 ^ (1u64 << 63)) as u128
}

/// The inverse of [`murmur3_u128`] (for display).
pub fn murmur3_from_u128(t: u128) -> i64 {
    ((t as u64) ^ (1u64 << 63)) as i64
}

/// Where a partition sits: token, then key bytes (Cassandra's `DecoratedKey` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingPosition<'k> {
    pub token: u128,
    pub key: &'k [u8],
}

impl Ord for RingPosition<'_> {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.token
            .cmp(&other.token)
            .then_with(|| self.key.cmp(other.key))
    }
}

impl PartialOrd for RingPosition<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// An owned ring position (range bounds).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnedPosition {
    pub token: u128,
    pub key: Vec<u8>,
}

impl OwnedPosition {
    pub fn of(p: Partitioner, key: &[u8]) -> OwnedPosition {
        OwnedPosition {
            token: p.token(key),
            key: key.to_vec(),
        }
    }

    pub fn as_ref(&self) -> RingPosition<'_> {
        RingPosition {
            token: self.token,
            key: &self.key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names() {
        assert_eq!(
            Partitioner::from_class("org.apache.cassandra.dht.Murmur3Partitioner"),
            Some(Partitioner::Murmur3)
        );
        assert_eq!(
            Partitioner::from_class("org.apache.cassandra.dht.RandomPartitioner"),
            Some(Partitioner::Random)
        );
        assert_eq!(
            Partitioner::from_class("org.apache.cassandra.dht.LocalPartitioner"),
            None
        );
    }

    #[test]
    fn murmur3_positions_keep_signed_order() {
        let ts = [i64::MIN + 1, -5, -1, 0, 1, 77, i64::MAX];
        for w in ts.windows(2) {
            assert!(murmur3_u128(w[0]) < murmur3_u128(w[1]));
            assert_eq!(murmur3_from_u128(murmur3_u128(w[0])), w[0]);
        }
    }

    #[test]
    fn random_partitioner_is_abs_of_signed_md5() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e: the top bit is set, so the token is its two's
        // complement magnitude (Java: new BigInteger(digest).abs()).
        let raw = u128::from_str_radix("d41d8cd98f00b204e9800998ecf8427e", 16).unwrap();
        assert_eq!(Partitioner::Random.token(b""), (!raw).wrapping_add(1));
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661: positive, taken as is.
        let a = u128::from_str_radix("0cc175b9c0f1b6a831c399e269772661", 16).unwrap();
        assert_eq!(Partitioner::Random.token(b"a"), a);
    }

    #[test]
    fn byte_ordered_orders_by_key() {
        let p = Partitioner::ByteOrdered;
        assert!(p.position(b"a") < p.position(b"b"));
        assert!(p.position(b"a") < p.position(b"ab"));
    }
}
