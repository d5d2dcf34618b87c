//! The partition-key cardinality estimate of Statistics.db's compaction component: stream-lib's
//! `HyperLogLogPlus(p = 13, sp = 25)` fed with `MurmurHash.hash2_64` of each key
//! (`MetadataCollector.addKey`), serialized by `HyperLogLogPlus.getBytes` in the NORMAL format:
//! `int -2` (version), varint p, varint sp, varint 0 (format), varint byte length, then the register set
//! as big-endian ints of six 5-bit registers each.

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
        let hash = murmur2_64(key, 0);
        let idx = (hash >> (64 - P)) as usize;
        let run = ((hash << P) | (1 << (P - 1))).leading_zeros() as u8 + 1;
        if self.registers[idx] < run {
            self.registers[idx] = run;
        }
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
        let words = self.registers.len().div_ceil(REGISTERS_PER_WORD);
        let mut out = Vec::with_capacity(16 + words * 4);
        out.extend_from_slice(&(-2i32).to_be_bytes());
        put_varint(&mut out, P);
        put_varint(&mut out, SP);
        put_varint(&mut out, 0);
        put_varint(&mut out, (words * 4) as u32);
        for w in self.registers.chunks(REGISTERS_PER_WORD) {
            let mut word: u32 = 0;
            for (i, &r) in w.iter().enumerate() {
                word |= (r as u32 & 0x1f) << (5 * i);
            }
            out.extend_from_slice(&word.to_be_bytes());
        }
        out
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
