//! The partition-key cardinality estimate of Statistics.db's compaction component: stream-lib's
//! `HyperLogLogPlus(p = 13, sp = 25)` fed with `MurmurHash.hash2_64` of each key
//! (`MetadataCollector.addKey`), serialized by `HyperLogLogPlus.getBytes`: `int -2` (version), varint
//! p, varint sp, varint format, then either (NORMAL, 0) varint byte length and the register set as
//! big-endian ints of six 5-bit registers each, or (SPARSE, 1) varint entry count and the
//! delta-encoded sparse entries. The writer writes NORMAL; Cassandra writes SPARSE until the set grows.
//! [`check`] recomputes it from Data.db's keys: nothing else notices a damaged estimate.

const P: u32 = 13;
const SP: u32 = 25;
const REGISTERS_PER_WORD: usize = 6;

/// `MurmurHash.hash2_64(key, 0, len, seed)` (MurmurHash64A; tail bytes sign-extended like Cassandra's).
pub fn murmur2_64(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let len = key.len();
    let mut h = (seed & 0xffff_ffff) ^ M.wrapping_mul(len as u64);
    let blocks = len / 8;
    for i in 0..blocks {
        let mut b = [0u8; 8];
        b.copy_from_slice(&key[i * 8..i * 8 + 8]);
        let mut k = u64::from_le_bytes(b);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let rest = &key[blocks * 8..];
    if !rest.is_empty() {
        for (i, &b) in rest.iter().enumerate() {
            h ^= (b as i8 as i64 as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// HyperLogLog++ registers (NORMAL representation).
#[derive(Debug, Clone)]
pub struct Cardinality {
    registers: Vec<u8>,
}

impl Default for Cardinality {
    fn default() -> Self {
        Cardinality {
            registers: vec![0; 1 << P],
        }
    }
}

impl Cardinality {
    /// Offers a serialized partition key.
    pub fn offer_key(&mut self, key: &[u8]) {
        self.offer_key_at(key, P);
    }

    fn offer_key_at(&mut self, key: &[u8], p: u32) {
        let hash = murmur2_64(key, 0);
        let idx = (hash >> (64 - p)) as usize;
        let run = run_length(hash, p) as u8;
        if self.registers[idx] < run {
            self.registers[idx] = run;
        }
    }

    /// The register set's ints (`RegisterSet`: six 5-bit registers per int, the first in the low bits).
    fn words(&self) -> Vec<u32> {
        self.registers
            .chunks(REGISTERS_PER_WORD)
            .map(|w| {
                w.iter()
                    .enumerate()
                    .fold(0u32, |word, (i, &r)| word | (r as u32 & 0x1f) << (5 * i))
            })
            .collect()
    }

    /// Raw HyperLogLog estimate (for tests).
    #[cfg(test)]
    pub fn estimate(&self) -> f64 {
        let m = self.registers.len() as f64;
        let sum: f64 = self.registers.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let e = alpha * m * m / sum;
        if e <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            e
        }
    }

    /// `HyperLogLogPlus.getBytes()`.
    pub fn serialize(&self) -> Vec<u8> {
        let words = self.words();
        let mut out = Vec::with_capacity(16 + words.len() * 4);
        out.extend_from_slice(&(-2i32).to_be_bytes());
        put_varint(&mut out, P);
        put_varint(&mut out, SP);
        put_varint(&mut out, 0);
        put_varint(&mut out, (words.len() * 4) as u32);
        for w in words {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out
    }
}

/// Why a stored estimate is not the one `keys` build: the offset in the serialized bytes and what was
/// expected there. `Ok(false)` when its format is not one this module knows (nothing to compare).
pub fn check<'k>(
    stored: &[u8],
    keys: impl Iterator<Item = &'k [u8]>,
) -> Result<bool, (usize, String)> {
    let mut c = VarCursor { b: stored, at: 0 };
    let version = c
        .int()
        .ok_or((0, "a cardinality estimate's version".to_string()))?;
    if version != -2 {
        return Ok(false);
    }
    let (p, sp, format) = (c.varint(), c.varint(), c.varint());
    let (Some(p), Some(sp), Some(format)) = (p, sp, format) else {
        return Err((c.at, "the estimate's precisions and format".into()));
    };
    if !(4..=16).contains(&p) || !(p..=25).contains(&sp) {
        return Ok(false);
    }
    match format {
        0 => {
            let len = c
                .varint()
                .ok_or((c.at, "the register set's length".to_string()))?;
            let mut expected = Cardinality {
                registers: vec![0; 1 << p],
            };
            for k in keys {
                expected.offer_key_at(k, p);
            }
            let want = expected.words();
            let start = c.at;
            if len as usize != want.len() * 4 || stored.len() != start + want.len() * 4 {
                return Err((
                    start,
                    format!(
                        "a register set of {} bytes ending the estimate, found {len} of {} bytes",
                        want.len() * 4,
                        stored.len() - start
                    ),
                ));
            }
            for (i, w) in want.iter().enumerate() {
                let at = start + 4 * i;
                let got = u32::from_be_bytes([
                    stored[at],
                    stored[at + 1],
                    stored[at + 2],
                    stored[at + 3],
                ]);
                if got != *w {
                    return Err((
                        at,
                        format!("registers {w:#010x} (those of Data.db's keys), found {got:#010x}"),
                    ));
                }
            }
            Ok(true)
        }
        1 => {
            let n = c
                .varint()
                .ok_or((c.at, "the sparse set's entry count".to_string()))?;
            let mut found = std::collections::BTreeMap::new();
            let mut prev = 0u32;
            for _ in 0..n {
                let at = c.at;
                let delta = c
                    .varint()
                    .ok_or((at, "a sparse entry (a varint delta)".to_string()))?;
                // Deltas are written as unsigned ints of `k - previous`: they wrap.
                let k = prev.wrapping_add(delta);
                prev = k;
                keep_min(&mut found, k);
            }
            if c.at != stored.len() {
                return Err((c.at, "the end of the estimate after its sparse set".into()));
            }
            let mut expected = std::collections::BTreeMap::new();
            for k in keys {
                keep_min(&mut expected, encode_hash(murmur2_64(k, 0), p, sp));
            }
            if found != expected {
                let differ = expected
                    .iter()
                    .find(|(i, k)| found.get(*i) != Some(*k))
                    .map(|(i, _)| *i)
                    .or_else(|| found.keys().find(|i| !expected.contains_key(*i)).copied())
                    .unwrap_or(0);
                return Err((
                    0,
                    format!(
                        "the {} sparse entries of Data.db's keys, found {} (they differ at sparse index {differ})",
                        expected.len(),
                        found.len()
                    ),
                ));
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// stream-lib keeps, per sparse index, the smallest encoded entry (the longest run: run lengths are
/// stored inverted); a set merged out of order may hold others too.
fn keep_min(set: &mut std::collections::BTreeMap<u32, i32>, k: u32) {
    let k = k as i32;
    let idx = sparse_index(k);
    set.entry(idx)
        .and_modify(|m: &mut i32| *m = (*m).min(k))
        .or_insert(k);
}

/// `HyperLogLogPlus.getSparseIndex`.
fn sparse_index(k: i32) -> u32 {
    if k & 1 == 1 {
        (k as u32) >> 7
    } else {
        (k as u32) >> 1
    }
}

/// `HyperLogLogPlus.encodeHash`: the first `sp` bits of the hash, with the run length when the bits
/// between `p` and `sp` are all zero (flag bit 1).
fn encode_hash(x: u64, p: u32, sp: u32) -> u32 {
    let idx = (x >> (64 - sp)) as u32;
    let zero_test = if p < sp {
        idx.wrapping_shl(32 - sp + p)
    } else {
        0
    };
    if zero_test == 0 {
        let run = run_length(x, p);
        (((idx << 6) | (run ^ 63)) << 1) | 1
    } else {
        idx << 1
    }
}

/// The run length a hash offers to register `x >> (64 - p)`: leading zeros after the first `p` bits,
/// plus one (`(x << p) | (1 << (p - 1))`, as stream-lib computes it).
fn run_length(x: u64, p: u32) -> u32 {
    ((x << p) | (1 << (p - 1))).leading_zeros() + 1
}

struct VarCursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl VarCursor<'_> {
    fn int(&mut self) -> Option<i32> {
        let s = self.b.get(self.at..self.at + 4)?;
        self.at += 4;
        Some(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// stream-lib `Varint.readUnsignedVarInt` (at most 5 bytes).
    fn varint(&mut self) -> Option<u32> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = *self.b.get(self.at)?;
            self.at += 1;
            v |= ((b & 0x7f) as u32) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
}

/// stream-lib `Varint.writeUnsignedVarInt` (LEB128).
fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v & !0x7f != 0 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_is_close() {
        let mut c = Cardinality::default();
        for i in 0..20_000u32 {
            c.offer_key(format!("actor-{i}").as_bytes());
        }
        let e = c.estimate();
        assert!((e - 20_000.0).abs() < 1_000.0, "estimate {e}");
    }

    #[test]
    fn layout_header_and_size() {
        let b = Cardinality::default().serialize();
        assert_eq!(&b[..6], &[0xff, 0xff, 0xff, 0xfe, 0x0d, 0x19]);
        assert_eq!(b[6], 0);
        // 1366 words * 4 = 5464 = varint [0xd8, 0x2a]
        assert_eq!(&b[7..9], &[0xd8, 0x2a]);
        assert_eq!(b.len(), 9 + 5464);
    }

    #[test]
    fn a_normal_estimate_is_checked_register_by_register() {
        let keys: Vec<Vec<u8>> = (0..500u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut c = Cardinality::default();
        keys.iter().for_each(|k| c.offer_key(k));
        let mut bytes = c.serialize();
        assert_eq!(check(&bytes, keys.iter().map(|k| k.as_slice())), Ok(true));
        // One key fewer leaves (at least) one register lower.
        assert!(check(&bytes, keys[1..].iter().map(|k| k.as_slice())).is_err());
        let at = bytes.len() - 4 * 700;
        bytes[at] ^= 0x10;
        let (offset, what) = check(&bytes, keys.iter().map(|k| k.as_slice())).unwrap_err();
        assert_eq!(offset, at, "{what}");
        // Another version or precision is not compared.
        bytes[3] = 0xfd;
        assert_eq!(check(&bytes, keys.iter().map(|k| k.as_slice())), Ok(false));
    }

    #[test]
    fn sparse_entries_decode_as_stream_lib_encodes_them() {
        // A hash whose bits 13..25 are zero carries its run length (flag 1), others only idx'.
        let x: u64 = 0b1_0000_0000_0000 << (64 - 13); // idx 4096, then zeros
        let k = encode_hash(x, 13, 25);
        assert_eq!(k & 1, 1);
        assert_eq!(sparse_index(k as i32), (x >> (64 - 25)) as u32);
        assert_eq!(((k >> 1) & 63) ^ 63, run_length(x, 13));
        let y = x | 1 << 45; // a one within bits 13..25
        let k = encode_hash(y, 13, 25);
        assert_eq!(k & 1, 0);
        assert_eq!(sparse_index(k as i32), (y >> (64 - 25)) as u32);
    }

    #[test]
    fn murmur2_tail_is_sign_extended() {
        assert_ne!(murmur2_64(&[0x80], 0), murmur2_64(&[0x7f], 0));
        assert_eq!(murmur2_64(b"", 0), {
            let m: u64 = 0xc6a4_a793_5bd1_e995;
            let mut h: u64 = 0;
            h ^= h >> 47;
            h = h.wrapping_mul(m);
            h ^ (h >> 47)
        });
    }
}
