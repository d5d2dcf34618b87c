//! Filter.db: Cassandra's Murmur3 bloom filter (`BloomCalculations`, `FilterFactory`, `BloomFilter`,
//! `BloomFilterSerializer`, `OffHeapBitSet`).
//!
//! Sizing: `bits = keys * buckets_per_element + 20`, rounded up to 64-bit words; the bucket count and the
//! number of hashes come from Cassandra's false-positive table for the requested fp chance. Hashing:
//! `hash3_x64_128(key)` gives `[h0, h1]`; hash `i` sets bit `|(h1 + i*h0) mod capacity|`.
//! Serialization: `int hashCount`, `int wordCount`, then the bits. From `na` on the bitset is written as
//! raw bytes (bit `i` is bit `i % 8` of byte `i / 8`); before `na` as big-endian longs (bit `i` is bit
//! `i % 64` of long `i / 64`).

use super::WriterError;
use crate::partitioner::murmur3_x64_128;

const BITSET_EXCESS: u64 = 20;

/// False-positive rate with `i` buckets per element and `j` hashes (`BloomCalculations.probs`).
const PROBS: [&[f64]; 21] = [
    &[1.0],
    &[1.0, 1.0],
    &[1.0, 0.393, 0.400],
    &[1.0, 0.283, 0.237, 0.253],
    &[1.0, 0.221, 0.155, 0.147, 0.160],
    &[1.0, 0.181, 0.109, 0.092, 0.092, 0.101],
    &[1.0, 0.154, 0.0804, 0.0609, 0.0561, 0.0578, 0.0638],
    &[1.0, 0.133, 0.0618, 0.0423, 0.0359, 0.0347, 0.0364],
    &[1.0, 0.118, 0.0489, 0.0306, 0.024, 0.0217, 0.0216, 0.0229],
    &[
        1.0, 0.105, 0.0397, 0.0228, 0.0166, 0.0141, 0.0133, 0.0135, 0.0145,
    ],
    &[
        1.0, 0.0952, 0.0329, 0.0174, 0.0118, 0.00943, 0.00844, 0.00819, 0.00846,
    ],
    &[
        1.0, 0.0869, 0.0276, 0.0136, 0.00864, 0.0065, 0.00552, 0.00513, 0.00509,
    ],
    &[
        1.0, 0.08, 0.0236, 0.0108, 0.00646, 0.00459, 0.00371, 0.00329, 0.00314,
    ],
    &[
        1.0, 0.074, 0.0203, 0.00875, 0.00492, 0.00332, 0.00255, 0.00217, 0.00199, 0.00194,
    ],
    &[
        1.0, 0.0689, 0.0177, 0.00718, 0.00381, 0.00244, 0.00179, 0.00146, 0.00129, 0.00121, 0.0012,
    ],
    &[
        1.0, 0.0645, 0.0156, 0.00596, 0.003, 0.00183, 0.00128, 0.001, 0.000852, 0.000775, 0.000744,
    ],
    &[
        1.0, 0.0606, 0.0138, 0.005, 0.00239, 0.00139, 0.000935, 0.000702, 0.000574, 0.000505,
        0.00047, 0.000459,
    ],
    &[
        1.0, 0.0571, 0.0123, 0.00423, 0.00193, 0.00107, 0.000692, 0.000499, 0.000394, 0.000335,
        0.000302, 0.000287, 0.000284,
    ],
    &[
        1.0, 0.054, 0.0111, 0.00362, 0.00158, 0.000839, 0.000519, 0.00036, 0.000275, 0.000226,
        0.000198, 0.000183, 0.000176,
    ],
    &[
        1.0, 0.0513, 0.00998, 0.00312, 0.0013, 0.000663, 0.000394, 0.000264, 0.000194, 0.000155,
        0.000132, 0.000118, 0.000111, 0.000109,
    ],
    &[
        1.0, 0.0488, 0.00906, 0.0027, 0.00108, 0.00053, 0.000303, 0.000196, 0.00014, 0.000108,
        8.89e-05, 7.77e-05, 7.12e-05, 6.79e-05, 6.71e-05,
    ],
];

/// Optimal hash count per buckets-per-element (first minimum of each row, at least 1).
fn opt_k(buckets: usize) -> usize {
    let row = PROBS[buckets];
    let mut best = f64::MAX;
    let mut k = 1;
    for (j, &p) in row.iter().enumerate() {
        if p < best {
            best = p;
            k = j.max(1);
        }
    }
    k
}

/// `BloomCalculations.computeBloomSpec(maxBucketsPerElement, fp)`: (hash count, buckets per element).
pub fn bloom_spec(num_elements: u64, fp_chance: f64) -> Result<(u32, u64), WriterError> {
    if !(fp_chance > 0.0 && fp_chance < 1.0) {
        return Err(WriterError::InvalidOption(format!(
            "bloom filter fp chance must be in (0, 1), got {fp_chance}"
        )));
    }
    let n = num_elements.max(1);
    let v = (i64::MAX as u64 - BITSET_EXCESS) as f64 / n as f64;
    let max_buckets = (PROBS.len() - 1).min(v as usize).max(1);
    let max_k = PROBS[max_buckets].len() - 1;
    if fp_chance >= PROBS[2][1] {
        return Ok((2, opt_k(2) as u64));
    }
    if fp_chance < PROBS[max_buckets][max_k] {
        return Err(WriterError::InvalidOption(format!(
            "cannot satisfy bloom filter fp chance {fp_chance} with {max_buckets} buckets per element"
        )));
    }
    let mut buckets = 2;
    let mut k = opt_k(2);
    while PROBS[buckets][k] > fp_chance {
        buckets += 1;
        k = opt_k(buckets);
    }
    while PROBS[buckets][k - 1] <= fp_chance {
        k -= 1;
    }
    Ok((k as u32, buckets as u64))
}

/// An in-memory bloom filter laid out like Cassandra's `OffHeapBitSet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BloomFilter {
    hash_count: u32,
    bytes: Vec<u8>,
}

impl BloomFilter {
    /// A filter sized the way Cassandra sizes one for `num_elements` keys at `fp_chance`.
    pub fn new(num_elements: u64, fp_chance: f64) -> Result<Self, WriterError> {
        let (hash_count, buckets) = bloom_spec(num_elements, fp_chance)?;
        let num_bits = num_elements
            .checked_mul(buckets)
            .and_then(|b| b.checked_add(BITSET_EXCESS))
            .ok_or_else(|| {
                WriterError::InvalidOption(format!(
                    "bloom filter for {num_elements} keys is too large"
                ))
            })?;
        let words = (num_bits - 1) / 64 + 1;
        let len = usize::try_from(words * 8).map_err(|_| {
            WriterError::InvalidOption(format!("bloom filter of {words} words is too large"))
        })?;
        Ok(Self {
            hash_count,
            bytes: vec![0; len],
        })
    }

    #[cfg(test)]
    pub fn hash_count(&self) -> u32 {
        self.hash_count
    }

    /// Number of addressable bits (the bitset capacity: whole 64-bit words).
    pub fn capacity(&self) -> u64 {
        self.bytes.len() as u64 * 8
    }

    fn indexes(&self, key: &[u8]) -> impl Iterator<Item = u64> {
        let [h0, h1] = murmur3_x64_128(key, 0);
        let max = self.capacity() as i64;
        let (mut base, inc) = (h1 as i64, h0 as i64);
        (0..self.hash_count).map(move |_| {
            let idx = (base % max).unsigned_abs();
            base = base.wrapping_add(inc);
            idx
        })
    }

    /// Adds a serialized partition key.
    pub fn add(&mut self, key: &[u8]) {
        let idx: Vec<u64> = self.indexes(key).collect();
        for i in idx {
            self.bytes[(i >> 3) as usize] |= 1 << (i & 7);
        }
    }

    /// A Filter.db's filter ([`BloomFilter::serialize`]'s bytes); `Err`: the byte offset and what
    /// was expected there.
    pub fn parse(b: &[u8], old_format: bool) -> Result<Self, (u64, String)> {
        let int = |at: usize| {
            b.get(at..at + 4)
                .map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
        };
        let (Some(hash_count), Some(words)) = (int(0), int(4)) else {
            return Err((
                0,
                format!(
                    "a hash count and a word count (8 bytes), found {} bytes",
                    b.len()
                ),
            ));
        };
        if !(1..=64).contains(&hash_count) {
            return Err((0, format!("a hash count of 1 to 64, found {hash_count}")));
        }
        let want = usize::try_from(words).ok().and_then(|w| w.checked_mul(8));
        if want.is_none_or(|w| w != b.len() - 8) || words == 0 {
            return Err((
                4,
                format!(
                    "{words} words of 8 bytes after the header, found {} bytes",
                    b.len() - 8
                ),
            ));
        }
        let bits = &b[8..];
        let bytes = if old_format {
            bits.chunks_exact(8)
                .flat_map(|w| {
                    let mut x = [0u8; 8];
                    x.copy_from_slice(w);
                    u64::from_be_bytes(x).to_le_bytes()
                })
                .collect()
        } else {
            bits.to_vec()
        };
        Ok(Self {
            hash_count: hash_count as u32,
            bytes,
        })
    }

    /// A filter of this one's size and hash count holding only `keys`: the filter a writer adding
    /// exactly those keys wrote.
    pub fn rebuilt<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) -> Self {
        let mut f = Self {
            hash_count: self.hash_count,
            bytes: vec![0; self.bytes.len()],
        };
        for k in keys {
            f.add(k);
        }
        f
    }

    /// Whether `key` may be present (false means definitely absent).
    pub fn might_contain(&self, key: &[u8]) -> bool {
        self.indexes(key)
            .all(|i| self.bytes[(i >> 3) as usize] & (1 << (i & 7)) != 0)
    }

    /// The Filter.db bytes; `old_format` for versions before `na` (big-endian longs).
    pub fn serialize(&self, old_format: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.bytes.len());
        out.extend_from_slice(&(self.hash_count as i32).to_be_bytes());
        out.extend_from_slice(&((self.bytes.len() / 8) as i32).to_be_bytes());
        if old_format {
            for word in self.bytes.chunks_exact(8) {
                let mut w = [0u8; 8];
                w.copy_from_slice(word);
                out.extend_from_slice(&u64::from_le_bytes(w).to_be_bytes());
            }
        } else {
            out.extend_from_slice(&self.bytes);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_for_default_fp_chance() {
        // 0.01: 10 buckets are needed (row 10 reaches 0.00819 at K=7); relaxing K: 0.00844 (K=6), 0.00943 (K=5) <= 0.01,
        // 0.0118 (K=4) > 0.01, so K=5 — the hash count of the real nb fixtures.
        assert_eq!(bloom_spec(1000, 0.01).unwrap(), (5, 10));
        assert_eq!(bloom_spec(1000, 0.1).unwrap(), (3, 5));
    }

    #[test]
    fn added_keys_are_found_and_absent_keys_mostly_not() {
        let mut f = BloomFilter::new(1000, 0.01).unwrap();
        for i in 0..1000u32 {
            f.add(&i.to_be_bytes());
        }
        assert!((0..1000u32).all(|i| f.might_contain(&i.to_be_bytes())));
        let false_pos = (1000..11000u32)
            .filter(|i| f.might_contain(&i.to_be_bytes()))
            .count();
        assert!(false_pos < 300, "{false_pos} false positives out of 10000");
    }

    #[test]
    fn formats_differ_only_in_word_byte_order() {
        let mut f = BloomFilter::new(5, 0.01).unwrap();
        f.add(b"k");
        let new = f.serialize(false);
        let old = f.serialize(true);
        assert_eq!(new[..8], old[..8]);
        for (a, b) in new[8..].chunks(8).zip(old[8..].chunks(8)) {
            let mut r = b.to_vec();
            r.reverse();
            assert_eq!(a, &r[..]);
        }
    }
}
