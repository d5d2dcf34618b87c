//! Partitioners: where a partition key sits on the ring, so that partitions of many SSTables (and nodes)
//! can be merged in the order Cassandra stores them (`DecoratedKey.compareTo`: token, then key bytes).
//!
//! - `Murmur3Partitioner`: Cassandra's `MurmurHash.hash3_x64_128` of the key ([`murmur3_token`]), a signed
//!   64-bit value. Cassandra's port differs from the reference MurmurHash3 in one place: the 1–15 tail
//!   bytes are read as *signed* Java bytes and sign-extended to 64 bits before being shifted in
//!   (`(long) key.get(i) << n`), whereas full 16-byte blocks are read unsigned. Keys with a tail byte of
//!   0x80 or more therefore hash differently from every other MurmurHash3 implementation — and
//!   partitions are ordered by *this* hash. The token is `hash[0]`, with `i64::MIN` mapped to `i64::MAX`
//!   (`Murmur3Partitioner.normalize`);
//! - `RandomPartitioner`: `abs(BigInteger(md5(key)))`, a 0..=2^127 integer;
//! - `ByteOrderedPartitioner`: the key bytes themselves.
//!
//! Every token is mapped to a [`RingPosition`]: an unsigned 128-bit number that orders like the token,
//! plus the key. Comparing positions costs no allocation.

use std::cmp::Ordering;

use md5::{Digest, Md5};

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

/// The inverse of [`murmur3_u128`].
#[cfg(test)]
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

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

fn block(key: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Sign-extended tail byte, as Java's `(long) byte`.
fn tail(byte: u8) -> u64 {
    byte as i8 as i64 as u64
}

/// `MurmurHash.hash3_x64_128(key, 0, key.len(), seed)` exactly as Cassandra computes it.
pub fn murmur3_x64_128(key: &[u8], seed: u64) -> [u64; 2] {
    let len = key.len();
    let nblocks = len / 16;
    let mut h1 = seed;
    let mut h2 = seed;
    for i in 0..nblocks {
        let mut k1 = block(key, i * 16);
        let mut k2 = block(key, i * 16 + 8);
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let rest = &key[nblocks * 16..];
    let mut k1: u64 = 0;
    let mut k2: u64 = 0;
    for (i, &b) in rest.iter().enumerate().skip(8) {
        k2 ^= tail(b) << ((i - 8) * 8);
    }
    if rest.len() > 8 {
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
    }
    for (i, &b) in rest.iter().enumerate().take(8) {
        k1 ^= tail(b) << (i * 8);
    }
    if !rest.is_empty() {
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
    }
    h1 ^= len as u64;
    h2 ^= len as u64;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    [h1, h2]
}

/// The Murmur3Partitioner token of a serialized partition key.
pub fn murmur3_token(key: &[u8]) -> i64 {
    let t = murmur3_x64_128(key, 0)[0] as i64;
    if t == i64::MIN {
        i64::MAX
    } else {
        t
    }
}

/// Cassandra's partition order: by token, then by key bytes (`DecoratedKey.compareTo`).
pub fn partition_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    murmur3_token(a)
        .cmp(&murmur3_token(b))
        .then_with(|| a.cmp(b))
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

    #[test]
    fn empty_key_hashes_to_zero() {
        assert_eq!(murmur3_x64_128(b"", 0), [0, 0]);
    }

    #[test]
    fn ascii_keys_match_reference_murmur3() {
        // Reference MurmurHash3_x64_128("hello", seed 0) = (0xcbd8a7b341bd9b02, 0x5b1e906a48ae1d19) — for
        // ASCII input Cassandra's port equals the reference implementation.
        assert_eq!(
            murmur3_x64_128(b"hello", 0),
            [0xcbd8_a7b3_41bd_9b02, 0x5b1e_906a_48ae_1d19]
        );
    }

    #[test]
    fn high_tail_bytes_are_sign_extended() {
        // With a tail byte >= 0x80 the quirk changes the result; with the byte < 0x80 it does not matter.
        let mut reference = [0u64; 2];
        let key = [0x01u8, 0xff];
        // Unsigned tail (reference MurmurHash3) computed inline:
        let mut k1: u64 = 0x01 | (0xffu64 << 8);
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        let mut h1 = k1;
        let mut h2 = 0u64;
        h1 ^= 2;
        h2 ^= 2;
        h1 = h1.wrapping_add(h2);
        h2 = h2.wrapping_add(h1);
        h1 = fmix(h1);
        h2 = fmix(h2);
        h1 = h1.wrapping_add(h2);
        h2 = h2.wrapping_add(h1);
        reference[0] = h1;
        reference[1] = h2;
        assert_ne!(murmur3_x64_128(&key, 0), reference);
    }
}
